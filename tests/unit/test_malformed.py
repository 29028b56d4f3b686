"""Malformed scenarios: each is refused by `harness run` before anything starts.

Every case must get exactly one line `FILE:LINE: FIELD: message` on stderr, exit 2, no run
folder, and no child process. The cases were written by trying each field's worst value.
"""

import re
from pathlib import Path

import psutil
import pytest

from harness.cli import main

GOOD = """\
name: edge
stack:
  kind: triton
  model: identity
load:
  user: triton_http
  users: 4
  duration: 20s
faults:
  - {kind: process_kill, at: 5s, role: server}
slo:
  - {metric: error_rate, max: 0.01}
  - "p99_ms < 250"
"""


def _with(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


def _alias_bomb() -> str:
    lines = ["name: edge", 'a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n" + GOOD.split("\n", 1)[1]


# (case id, file text, (expected line, expected field, a word the message must contain))
CASES: list[tuple[str, str, tuple[int, str, str]]] = [
    # --- YAML that would exhaust or fool the parser
    ("alias-bomb", _alias_bomb(), (6, "YAML", "alias")),
    ("deep-nesting", GOOD + "extra: " + "[" * 200 + "]" * 200 + "\n", (14, "YAML", "nested")),
    ("duplicate-key", _with("  users: 4\n", "  users: 4\n  users: 400\n"), (8, "load.users", "twice")),
    ("duplicate-top-key", GOOD + "name: other\n", (14, "name", "twice")),
    ("nan-threshold", _with("max: 0.01", "max: .nan"), (12, "slo.0.max", "finite")),
    ("inf-threshold", _with('"p99_ms < 250"', "{metric: p99_ms, max: .inf}"), (13, "slo.1.max", "finite")),
    ("huge-integer", _with("users: 4", "users: " + "9" * 5000), (7, "load.users", "characters")),
    ("complex-key", GOOD + "? [a, b]\n: 1\n", (14, "(top level)", "plain name")),
    ("tab-indent", _with("  users: 4\n", "\tusers: 4\n"), (7, "YAML syntax", "")),
    (
        "python-tag",
        _with("name: edge", "name: !!python/object:os.system x"),
        (1, "YAML syntax", "constructor"),
    ),
    ("two-documents", GOOD + "---\nname: again\n", (14, "YAML syntax", "another document")),
    # --- silently overridden or ignored
    ("fault-after-load", _with("at: 5s", "at: 25s"), (10, "faults.0.at", "never fire")),
    ("fault-at-load-end", _with("at: 5s", "at: 20s"), (10, "faults.0.at", "never fire")),
    (
        "fault-held-past-end",
        _with(
            "{kind: process_kill, at: 5s, role: server}",
            "{kind: process_freeze, at: 15s, duration: 10s, role: server}",
        ),
        (10, "faults.0.duration", "after the load ends"),
    ),
    (
        "fault-count-past-end",
        _with("at: 5s,", "at: 5s, every: 5s, count: 4,"),
        (10, "faults.0.count", "after"),
    ),
    (
        "fault-overlaps-itself",
        _with(
            "{kind: process_kill, at: 5s, role: server}",
            "{kind: process_freeze, at: 1s, every: 2s, duration: 3s, role: server}",
        ),
        (10, "faults.0.duration", "restored"),
    ),
    (
        "jitter-swaps-firings",
        _with("at: 5s,", "at: 1s, every: 4s, jitter: 3s,"),
        (10, "faults.0.jitter", "half"),
    ),
    (
        "window-after-load",
        _with("max: 0.01}", "max: 0.01, window: {from: 30s}}"),
        (12, "slo.0.window.from", "before"),
    ),
    (
        "window-ends-after-load",
        _with("max: 0.01}", "max: 0.01, window: {from: 1s, to: 60s}}"),
        (12, "slo.0.window.to", "after"),
    ),
    (
        "window-backwards",
        _with("max: 0.01}", "max: 0.01, window: {from: 8s, to: 4s}}"),
        (12, "slo.0.window", "before it starts"),
    ),
    (
        "faults-window-without-faults",
        _with("faults:\n  - {kind: process_kill, at: 5s, role: server}\n", "").replace(
            "max: 0.01}", "max: 0.01, window: faults}"
        ),
        (10, "slo.0.window", "no faults"),
    ),
    (
        "abort-grace-past-end",
        _with("max: 0.01}", "max: 0.01, abort: true, abort_grace: 1h}"),
        (12, "slo.0.abort_grace", "never abort"),
    ),
    (
        "memory-step-past-end",
        _with(
            "{kind: process_kill, at: 5s, role: server}",
            "{kind: memory_limit, at: 2s, duration: 5s, role: server, "
            "steps: [{after: 0s, limit: 1Gi}, {after: 8s, limit: 500Mi}]}",
        ),
        (10, "faults.0.steps.1.after", "never apply"),
    ),
    # --- numbers nobody can mean
    ("duration-absurd", _with("duration: 20s", "duration: 100000h"), (8, "load.duration", "limit")),
    ("duration-one-day-plus", _with("duration: 20s", "duration: 25h"), (8, "load.duration", "86400")),
    ("duration-negative", _with("duration: 20s", "duration: -5"), (8, "load.duration", "negative")),
    ("duration-nan-text", _with("duration: 20s", "duration: .nan"), (8, "load.duration", "finite")),
    ("duration-zero", _with("duration: 20s", "duration: 0s"), (8, "load.duration", "greater than 0")),
    ("rate-absurd", _with("  users: 4\n", "  users: 4\n  rate: 1.0e+9\n"), (8, "load.rate", "100000")),
    ("rate-inf-text", _with("  users: 4\n", "  users: 4\n  rate: inf\n"), (8, "load.rate", "finite")),
    ("users-absurd", _with("users: 4", "users: 1000000"), (7, "load.users", "10000")),
    ("users-zero", _with("users: 4", "users: 0"), (7, "load.users", "greater than or equal to 1")),
    (
        "spawn-rate-absurd",
        _with("  users: 4\n", "  users: 4\n  spawn_rate: 1.0e+12\n"),
        (8, "load.spawn_rate", "10000"),
    ),
    (
        "request-timeout-absurd",
        _with("  users: 4\n", "  users: 4\n  request_timeout: 30d\n"),
        (8, "load.request_timeout", "600"),
    ),
    (
        "late-after-zero",
        _with("  users: 4\n", "  users: 4\n  late_after: 0\n"),
        (8, "load.late_after", "greater"),
    ),
    ("stages-empty", _with("  duration: 20s\n", "  stages: []\n"), (8, "load.stages", "at least 1")),
    (
        "stages-too-long",
        _with("  duration: 20s\n", "  stages: [{duration: 20h, users: 2}, {duration: 20h, users: 4}]\n"),
        (5, "load", "over the limit"),
    ),
    (
        "stage-rate-absurd",
        _with("  duration: 20s\n", "  stages: [{duration: 20s, rate: 1.0e+7}]\n"),
        (8, "load.stages.0.rate", "100000"),
    ),
    ("negative-threshold", _with("max: 0.01", "max: -1"), (12, "slo.0.threshold", "negative")),
    ("share-over-one", _with("max: 0.01", "max: 5"), (12, "slo.0.threshold", "over 1")),
    (
        "percent-over-hundred",
        _with('"p99_ms < 250"', '"error_rate < 150%"'),
        (13, "slo.1.threshold", "over 1"),
    ),
    ("unit-misfit", _with('"p99_ms < 250"', '"error_rate < 5ms"'), (13, "slo.1", "does not fit")),
    ("threshold-unreadable", _with('"p99_ms < 250"', '"p99_ms < fast"'), (13, "slo.1", "cannot read")),
    (
        "confidence-one",
        _with("max: 0.01}", "max: 0.01, confidence: 1}"),
        (12, "slo.0.confidence", "less than 1"),
    ),
    ("seed-negative", GOOD + "seed: -3\n", (14, "seed", "greater than or equal to 0")),
    ("seed-huge", GOOD + "seed: 99999999999999999999999\n", (14, "seed", "less than or equal")),
    ("repeat-absurd", GOOD + "repeat: 100000\n", (14, "repeat", "100")),
    ("name-too-long", _with("name: edge", "name: " + "e" * 300), (1, "name", "at most 100")),
    ("name-path", _with("name: edge", "name: ../../etc"), (1, "name", "pattern")),
    ("slo-name-newline", _with("max: 0.01}", 'max: 0.01, name: "a\\nb"}'), (12, "slo.0.name", "pattern")),
    (
        "startup-timeout-zero",
        _with("  model: identity\n", "  model: identity\n  startup_timeout: 0\n"),
        (5, "stack.startup_timeout", "greater than 0"),
    ),
    (
        "startup-timeout-absurd",
        _with("  model: identity\n", "  model: identity\n  startup_timeout: 20d\n"),
        (5, "stack.startup_timeout", "3600"),
    ),
    (
        "restart-backoff-order",
        _with(
            "  model: identity\n",
            "  model: identity\n  restart: {policy: on-failure, backoff: 60, max_backoff: 5}\n",
        ),
        (5, "stack.restart", "below"),
    ),
    (
        "restarts-absurd",
        _with("  model: identity\n", "  model: identity\n  restart: {max_restarts: 1000000}\n"),
        (5, "stack.restart.max_restarts", "1000"),
    ),
    (
        "metrics-interval-tiny",
        GOOD + "observe: {metrics_interval: 1ms}\n",
        (14, "observe.metrics_interval", "0.05"),
    ),
    (
        "canary-slow-over-timeout",
        GOOD + "observe: {canary: {slow: 5s, timeout: 2s}}\n",
        (14, "observe.canary", "below"),
    ),
    # --- typos get a suggestion
    (
        "unknown-key-suggests",
        _with("  users: 4\n", "  userz: 4\n"),
        (7, "load.userz", "did you mean 'users'"),
    ),
    (
        "unknown-stack-key-suggests",
        _with("  model: identity\n", "  model: identity\n  instnces: 2\n"),
        (5, "stack.instnces", "did you mean 'instances'"),
    ),
    (
        "unknown-fault-param-suggests",
        _with("role: server}", "rol: server}"),
        (10, "faults.0.rol", "did you mean 'role'"),
    ),
    (
        "unknown-kind-suggests",
        _with("kind: triton", "kind: trtion"),
        (3, "stack.kind", "did you mean 'triton'"),
    ),
    (
        "unknown-fault-suggests",
        _with("kind: process_kill", "kind: process_kil"),
        (10, "faults.0.kind", "did you mean 'process_kill'"),
    ),
    (
        "unknown-role-suggests",
        _with("role: server", "role: servr"),
        (10, "faults.0.role", "did you mean 'server'"),
    ),
    (
        "unknown-metric-suggests",
        _with("metric: error_rate", "metric: eror_rate"),
        (12, "slo.0.metric", "did you mean 'error_rate'"),
    ),
    (
        "unknown-user-suggests",
        _with("user: triton_http", "user: triton_htp"),
        (6, "load.user", "did you mean 'triton_http'"),
    ),
    # --- structure
    ("not-a-mapping", "- just\n- a list\n", (1, "(top level)", "mapping")),
    ("empty-file", "", (1, "(top level)", "mapping")),
    ("not-utf8", "name: \udcff\n", (1, "file", "UTF-8")),
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    return path


@pytest.mark.parametrize("text, expected", [(t, e) for _, t, e in CASES], ids=[c for c, _, _ in CASES])
def test_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: tuple[int, str, str]
) -> None:
    path = _write(tmp_path, text)
    runs = tmp_path / "runs"
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}

    code = main(["run", str(path), "--runs-dir", str(runs), "--no-progress"])

    err = capsys.readouterr().err.strip()
    line, field, word = expected
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    match = re.fullmatch(rf"(?:harness: )?{re.escape(str(path))}:(\d+): (.+?): (.+)", err)
    assert match is not None, err
    assert (int(match.group(1)), match.group(2)) == (line, field), err
    assert word.lower() in match.group(3).lower(), err
    assert match.group(3).strip(), err  # never an empty message
    assert not runs.exists(), "a run folder was made for a refused scenario"
    assert {p.pid for p in psutil.Process().children(recursive=True)} == children_before


def test_at_least_forty_cases() -> None:
    assert len(CASES) >= 40 and len({c for c, _, _ in CASES}) == len(CASES)


def test_the_good_scenario_is_accepted(tmp_path: Path) -> None:
    from harness.scenario import load_scenario

    assert load_scenario(_write(tmp_path, GOOD)).name == "edge"
