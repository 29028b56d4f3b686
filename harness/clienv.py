"""`HARNESS_*` environment variables: defaults for the options CI sets once for every command.

A command-line flag always wins: the options these fill have no argparse default (None means
"not given"), and `apply_env` fills only those still None after parsing. A variable is read only
by the commands that have its option, so a bad `HARNESS_SEED` does not break `harness list`;
where it is read, a bad value is one line naming the variable (exit 2), not a silent fallback.
"""

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.load.workeropts import WORKERS_ENV

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("expected 1/true/yes or 0/false/no")


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None


def _count(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise ValueError("expected a number >= 0")
    return value


def _path(text: str) -> Path:
    return Path(text.strip())


@dataclass(frozen=True)
class EnvDefault:
    """One variable: the option it stands for, how its text reads, and the value when unset."""

    var: str
    dest: str  # the argparse destination it fills
    flag: str  # the option, for --help
    parse: Callable[[str], Any]
    fallback: Any  # the default when neither the flag nor the variable is given


# HARNESS_JSON first: when a later variable is bad, the error is already known to be wanted as JSON.
ENV_DEFAULTS = (
    EnvDefault("HARNESS_JSON", "json", "--json", _flag, False),
    EnvDefault("HARNESS_RUNS_DIR", "runs_dir", "--runs-dir", _path, Path("runs")),
    EnvDefault("HARNESS_SEED", "seed", "--seed", _integer, None),
    EnvDefault(WORKERS_ENV, "workers", "--workers", _count, 0),
    EnvDefault("HARNESS_NO_PROGRESS", "no_progress", "--no-progress", _flag, False),
)


def apply_env(args: Any, environ: Mapping[str, str] | None = None) -> None:
    """Fill each option the command has and the command line left unset; UsageError on a bad value."""
    env = os.environ if environ is None else environ
    for option in ENV_DEFAULTS:
        if not hasattr(args, option.dest) or getattr(args, option.dest) is not None:
            continue
        text = env.get(option.var, "")
        if not text.strip():  # unset and empty both mean "not given", as in most CI systems
            setattr(args, option.dest, option.fallback)
            continue
        try:
            setattr(args, option.dest, option.parse(text))
        except ValueError as exc:
            raise UsageError(f"environment variable {option.var}={text!r}: {exc} (it stands for "
                             f"{option.flag})") from None


def json_requested(argv: list[str], environ: Mapping[str, str] | None = None) -> bool:
    """Whether the output should be JSON, before (or without) a parsed command line."""
    if "--json" in argv:
        return True
    env = os.environ if environ is None else environ
    return env.get("HARNESS_JSON", "").strip().lower() in _TRUE


def env_lines(dests: set[str]) -> list[str]:
    """`HARNESS_X  --flag` for each variable whose option is one of `dests`, for --help."""
    return [f"{o.var:<21} {o.flag}" for o in ENV_DEFAULTS if o.dest in dests]


def add_run_options(parser: argparse.ArgumentParser, noun: str) -> None:
    """--runs-dir, --no-progress and --seed for `run` and `soak` (a `noun`), each with its variable."""
    # No argparse defaults: None is "not given", which apply_env fills from the environment.
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where run folders go (default: $HARNESS_RUNS_DIR, else ./runs)")
    parser.add_argument("--no-progress", action="store_true", default=None,
                        help="no live progress view (default: $HARNESS_NO_PROGRESS, else shown)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"replay a {noun}: the seed its journal recorded (default: $HARNESS_SEED, "
                             "else the scenario's `seed` or a new one)")


def _web_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port number (0: a free one)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port}: a port is 0 to 65535")
    return port


def add_web_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web", nargs="?", const=0, default=None, type=_web_port, metavar="PORT",
                        help="serve a live view of the charts on http://127.0.0.1:PORT/ while it runs "
                             "(PORT left out or 0: a free port); read-only")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", default=None,
                        help="print one JSON object on stdout, everything else on stderr "
                             "(default: $HARNESS_JSON)")
