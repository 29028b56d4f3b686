"""What happened, in a few plain lines: the run's key events in order, on the load's clock."""

import re
from collections.abc import Iterable, Mapping
from typing import Any

from harness.abort import story_line
from harness.analysis import RunData, signal_lines
from harness.features import Phrase


def _exited(e: dict[str, Any]) -> str | None:
    if e.get("planned"):
        return None
    how = e.get("signal") or f"exit code {e.get('exit_code')}"
    if "ended" in e:  # journals since roles were declared: how it ended, and what the loss was
        how = f"{e['ended']}; {e.get('loss')}"
        if e.get("consequence"):
            how += ", went down with the entry process"
    return f"{e['role']} process {e['pid']} exited ({how})"


def _log_match(e: dict[str, Any]) -> str:
    where = f"'{e['pattern']}' in the {e.get('role')} log"
    nth = e.get("nth") or 1  # signal patterns journal every line, others only their first
    line = _short(e.get("line"))
    return f"first {where}: {line}" if nth == 1 else f"{where} (match {nth}): {line}"


def _short(line: Any) -> str:
    """A log line without the source-file prefix C++ loggers put first."""
    return re.sub(r"File: \S+:\d+ ", "", str(line))[:120]


_PHRASES: dict[str, Phrase] = {
    "stack_ready": lambda e: f"stack {'up again' if e.get('restart') else 'ready'} in {e.get('startup_s')}s",
    "load_started": lambda e: f"load started ({e.get('user')})",
    "fault_injected": lambda e: f"fault {e['id']} injected: {e.get('name') or e['kind']}",
    "fault_failed": lambda e: f"fault {e['id']} failed: {e.get('error')}",
    "log_match": _log_match,
    "process_exited": _exited,
    "hang_detected": lambda e: (
        f"{e['role']} process {e['pid']} alive ({e.get('process_status')}) but not answering its health probe"
    ),
    "not_serving": lambda e: (
        f"health says ready, inference fails (canary: {e.get('status') or e.get('detail')})"
    ),
    "canary_slow": lambda e: f"canary slow: {e.get('latency_s')}s (alive and slow)",
    "replicas_restored": lambda e: f"{e.get('role')} back at {e.get('live')} of {e.get('expected')} after"
                                   f" {e.get('after_s')}s",
    "degraded": lambda e: f"serving with errors: error rate {e.get('error_rate')} ({e.get('errors')})",
    "recovered": lambda e: f"recovered from {e.get('after')} after {e.get('downtime_s')}s",
    "restarting": lambda e: f"restart policy: restart {e.get('attempt')} in {e.get('backoff_s')}s",
    "liveness_kill": lambda e: f"liveness timeout: {e.get('role')} {e.get('pid')} killed",
    "load_stopped": lambda e: "load stopped",
    "interrupted": lambda e: f"run interrupted by {e.get('signal')}",
    "run_aborted": story_line,
    "stack_failed": lambda e: f"stack failed: {e.get('error')}",
}
MAX_LINES = 25
_WITH_REQUEST_COUNT = {"log_match", "process_exited", "hang_detected", "fault_injected"}


def _requests_before(data: RunData, t: float) -> int:
    """Requests completed before `t`, to the second."""
    return sum(r["requests"] for r in data.seconds if r["t"] + 1 <= t)


def story(data: RunData, feature_phrases: Iterable[Mapping[str, Phrase]] = ()) -> list[str]:
    """The run's key events, in the core's words and the features' (start attempts, OOM kills, ...)."""
    phrases = dict(_PHRASES)
    for more in feature_phrases:
        phrases.update(more)
    origin = data.load_start or 0.0
    # A line reporting a signal the harness sent (its SIGTERM at the stop) is not the server's story.
    harness_caused = {id(event) for event, by_harness in signal_lines(data) if by_harness}
    lines = []
    for event in data.events:
        if id(event) in harness_caused:
            continue
        phrase = phrases.get(event["event"])
        text = phrase(event) if phrase else None
        if text and event["event"] in _WITH_REQUEST_COUNT:
            text += f" (after {_requests_before(data, event['t'])} requests)"
        if text:
            lines.append(f"{event['t'] - origin:+7.2f}s  {text}")
    if len(lines) > MAX_LINES:
        hidden = len(lines) - MAX_LINES
        lines = lines[: MAX_LINES - 5] + [f"   ... {hidden} more events ..."] + lines[-5:]
    return lines
