"""The `--help` texts of `harness` and its commands: what each writes, its exit codes, examples.

Exit codes are listed from `ExitCode` itself (each command names the ones it can return), and the
environment lines from `harness.clienv`, so the help cannot drift from either.
"""

import argparse

from harness.clienv import env_lines
from harness.exitcodes import ExitCode

# One line each: what the code means to whoever reads a CI log.
EXIT_MEANINGS: dict[ExitCode, str] = {
    ExitCode.PASS: "every SLO held (with `expect: reproduced`: the failure was reproduced)",
    ExitCode.SLO_FAILED: "at least one SLO failed (or the failure did not reproduce)",
    ExitCode.USAGE_ERROR: "bad command line, environment variable or scenario file; nothing was started",
    ExitCode.STACK_FAILED: "the system under test did not start or never became ready",
    ExitCode.INTERNAL_ERROR: "an error in the harness itself; the teardown still ran",
    ExitCode.INTERRUPTED: "Ctrl-C / SIGTERM, or a journal whose run never ended; partial report written",
}

_ALL = tuple(ExitCode)
_QUICK = (ExitCode.PASS, ExitCode.USAGE_ERROR, ExitCode.INTERNAL_ERROR)

# The codes each command can return (a verdict's codes where it reaches or rebuilds one).
COMMAND_EXITS: dict[str, tuple[ExitCode, ...]] = {
    "run": _ALL,
    "soak": _ALL,
    "report": _ALL,
    "worker": (*_QUICK, ExitCode.INTERRUPTED),
    "cleanup": _QUICK,
    "validate": _QUICK,
    "compare": _QUICK,
    "list": _QUICK,
    "schema": _QUICK,
}

# What the codes mean for a command that reaches no verdict (all but run, soak and report).
_TOOL_MEANINGS: dict[ExitCode, str] = {
    ExitCode.PASS: "done",
    ExitCode.USAGE_ERROR: "bad command line, environment variable or input file",
    ExitCode.INTERNAL_ERROR: "an error in the harness itself (a bug: the traceback is on stderr)",
    ExitCode.INTERRUPTED: "Ctrl-C / SIGTERM",
}
_VERDICT_COMMANDS = {"run", "soak", "report"}

# Where a command gives a code a narrower meaning still.
_COMMAND_MEANINGS: dict[tuple[str, ExitCode], str] = {
    ("validate", ExitCode.PASS): "every file is a valid scenario",
    ("validate", ExitCode.USAGE_ERROR): "a file is not (one `file:line: field: message` per problem)",
    ("report", ExitCode.PASS): "the verdict rebuilt from the journal: as for `harness run`",
    ("cleanup", ExitCode.PASS): "everything recorded was undone (or nothing was left)",
    ("cleanup", ExitCode.USAGE_ERROR): "not a run folder (no restore.jsonl)",
    ("compare", ExitCode.USAGE_ERROR): "a folder is not a finished run (no summary.json)",
    ("worker", ExitCode.PASS): "the master ended the run",
    ("worker", ExitCode.INTERNAL_ERROR): "no master answered within 5 minutes, or a harness error",
    ("schema", ExitCode.PASS): "printed or written",
    ("schema", ExitCode.USAGE_ERROR): "the output file cannot be written",
}

_RUN_FOLDER = """\
a run folder RUNS_DIR/<name>-<time>/:
  journal.jsonl   events and one record a second, appended and flushed as the run goes
  summary.json    the verdict, each SLO's value and interval, faults, findings (machine-readable)
  junit.xml       one test case per SLO, for CI
  report.html     a self-contained page: timeline, latency, faults, the story of the run
  harness.log     harness and Locust logs;  stack/logs/: the servers' logs
  scenario.yaml   a copy;  restore.jsonl: what `harness cleanup` undoes after a SIGKILL"""

WRITES: dict[str, str] = {
    "run": _RUN_FOLDER + """
with --repeat M (or `repeat:` in the file): a series folder <name>-series-<time>/ holding one
run folder per repetition, series.json, junit.xml and series.html.
with a FOLDER of scenarios: a library folder library-<folder>-<time>/ holding each
scenario's run (or series) folder, library.json and junit.xml (one test case per scenario).
stdout: the run folder, a progress line, the verdict; with --json one JSON object (the rest to stderr).""",
    "soak": """\
a run folder RUNS_DIR/<name>-<time>/: journal.jsonl, soak.jsonl (one record per cycle, as it goes),
cycles/NNNN/ (each cycle's summary.json and report.html), soak.json (trends, limits, verdict),
soak.html, junit.xml, harness.log.
stdout: the run folder, the cycle plan, the verdict; with --json one JSON object.""",
    "validate": """\
nothing. stdout: `ok: FILE (name)` per valid file; stderr: `file:line: field: message` per problem.
with --json: one JSON object on stdout, each file's result and its error lines.""",
    "report": """\
summary.json, junit.xml and report.html in RUN_DIR, rebuilt from its journal.jsonl (a killed
run's too); for a soak's folder: soak.json, soak.html and junit.xml.""",
    "cleanup": "nothing new: undoes what RUN_DIR/restore.jsonl records (faults, processes,\n"
               "containers) and prints each action.",
    "compare": "a table on stdout; with --html FILE, also that self-contained page.",
    "list": "stdout only; with --json one JSON object with each section as data.",
    "schema": "the scenario format's JSON Schema (draft 2020-12) on stdout, or to FILE with -o.",
    "worker": "nothing: logs to stderr; its users' results go to the master's run folder.",
}

EXAMPLES: dict[str, tuple[str, ...]] = {
    "run": (
        "harness run scenarios/quickstart.yaml",
        "harness run scenarios/quickstart.yaml --seed 1234 --no-progress   # replay a run",
        "harness run SCENARIO --repeat 3 --json > result.json               # a series, for CI",
        "HARNESS_RUNS_DIR=/tmp/runs harness run SCENARIO --workers 4",
        "harness run scenarios/repro/                 # the reproduction library, one scenario after another",
    ),
    "soak": (
        "harness soak scenarios/soak/triton-nightly.yaml --for 8h",
        "harness soak SCENARIO --for 1h --max-rss-slope-mb-per-h 50 --max-p99-drift-ms 20",
    ),
    "validate": (
        "harness validate scenarios/*.yaml scenarios/*/*.yaml",
        "harness validate SCENARIO --json | jq '.files[] | select(.ok | not)'",
    ),
    "report": ("harness report runs/quickstart-20260101-120000",),
    "cleanup": ("harness cleanup runs/quickstart-20260101-120000",),
    "compare": ("harness compare runs/a runs/b --html compare.html",),
    "list": ("harness list metrics", "harness list stacks --json"),
    "schema": ("harness schema -o schema/scenario.schema.json", "harness schema | jq '.[\"$defs\"] | keys'"),
    "worker": ("harness worker --master 10.0.0.5:5557",),
}


def exit_lines(command: str) -> list[str]:
    """`N  NAME  meaning` for each code `command` can return."""
    return [f"{int(code)}  {code.name:<15} {meaning(command, code)}" for code in COMMAND_EXITS[command]]


def meaning(command: str, code: ExitCode) -> str:
    """What `code` means when `command` returns it."""
    if (command, code) in _COMMAND_MEANINGS:
        return _COMMAND_MEANINGS[(command, code)]
    if command not in _VERDICT_COMMANDS and code in _TOOL_MEANINGS:
        return _TOOL_MEANINGS[code]
    return EXIT_MEANINGS[code]


def epilog(command: str, dests: set[str]) -> str:
    """The text under a command's options: writes, exit codes, environment, examples."""
    parts = [("writes", WRITES[command]), ("exit codes", "\n".join(exit_lines(command)))]
    env = env_lines(dests)
    if env:
        parts.append(("environment (defaults for these options; a flag given wins)", "\n".join(env)))
    parts.append(("examples", "\n".join(EXAMPLES[command])))
    return "\n\n".join(f"{title}:\n{_indent(text)}" for title, text in parts)


DESCRIPTION = """\
Load testing and fault injection for ML inference serving: start a real stack, drive Locust load
at it, inject faults, judge the scenario's SLOs and write the reports."""


def main_epilog() -> str:
    """Under `harness --help`: every exit code and variable, and where to read more."""
    codes = "\n".join(f"{int(code)}  {code.name:<15} {EXIT_MEANINGS[code]}" for code in ExitCode)
    env = "\n".join(env_lines({"runs_dir", "seed", "workers", "no_progress", "json"}))
    return (f"exit codes:\n{_indent(codes)}\n\nenvironment (defaults for options; a flag given wins):\n"
            f"{_indent(env)}\n\n`harness COMMAND --help` says what each command writes and returns.")


def finish(parser: argparse.ArgumentParser, command: str) -> None:
    """Give a command's parser its description and epilog, kept as written (line breaks)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = epilog(command, {action.dest for action in parser._actions})


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" if line else line for line in text.splitlines())


def version_line() -> str:
    """`harness 0.1.0 (Python 3.11.9, Locust 2.40.1)`: what a bug report needs, without importing Locust."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from harness import __version__

    try:
        locust = version("locust")
    except PackageNotFoundError:
        locust = "not installed"
    return f"harness {__version__} (Python {platform.python_version()}, Locust {locust})"
