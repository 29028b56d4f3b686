"""TorchServe frontend log lines -> worker lifecycle events.

The harness starts the frontend with its own log4j2 layout (`%d{ISO8601} [%-5p] %t %c - %m`),
so every line names its thread; worker threads are `W-<port>-<model>_<version>` and the lines a
worker prints are relayed on `W-<port>-<model>_<version>-stdout` / `-stderr`. The wording below is
TorchServe 0.12's (WorkerThread, WorkerLifeCycle), as seen in real runs on this machine:

    Worker cmdline: [...model_service_worker.py...]          a worker process is launched
    W-9000-echo_1.0 State change WORKER_STARTED -> WORKER_MODEL_LOADED
    W-9000-echo_1.0 State change WORKER_MODEL_LOADED -> WORKER_STOPPED
    Retry worker: 9000 in 1 seconds.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Kind = Literal["launch", "ready", "stopped", "retry", "error"]

_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d{3}) \[(\w+)\s*\] (\S+) (\S+) - (.*)$")
_WORKER_THREAD = re.compile(r"^W-(\d+)-(.+?)(-stdout|-stderr)?$")
_STATE = re.compile(r"State change (\w+) -> (\w+)")
_RETRY = re.compile(r"^Retry worker: (\d+) in (\d+) seconds")
# The first line of a Python exception as a traceback ends it: `ModuleNotFoundError: No module ...`
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))(?::\s.*)?$")


@dataclass(frozen=True)
class WorkerEvent:
    t: float  # wall-clock seconds (the log's own timestamp)
    kind: Kind
    worker: str  # TorchServe's worker id (its port number), e.g. "9000"
    model: str  # e.g. "echo_1.0"
    delay_s: int | None = None  # retry: the back-off TorchServe announced
    text: str = ""  # error: the exception line; stopped: the state it left


def log_time(stamp: str) -> float:
    """`2026-11-22T00:22:34,924` (local time, as log4j writes it) -> epoch seconds."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S,%f").timestamp()


def parse_line(line: str) -> WorkerEvent | None:
    """The lifecycle event one log line records, if any."""
    match = _LINE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    stamp, _level, thread, logger, message = match.groups()
    thread_match = _WORKER_THREAD.match(thread)
    if thread_match is None:
        return None
    worker, model, stream = thread_match.groups()
    t = log_time(stamp)
    if stream is not None:
        return _from_worker_output(t, worker, model, logger, message)
    if message.startswith("Worker cmdline:"):
        return WorkerEvent(t, "launch", worker, model)
    state = _STATE.search(message)
    if state is not None:
        return _from_state(t, worker, model, state.group(1), state.group(2))
    retry = _RETRY.match(message)
    if retry is not None:
        return WorkerEvent(t, "retry", retry.group(1), model, delay_s=int(retry.group(2)))
    return None


def _from_state(t: float, worker: str, model: str, before: str, after: str) -> WorkerEvent | None:
    if after == "WORKER_MODEL_LOADED":
        return WorkerEvent(t, "ready", worker, model)
    if after == "WORKER_STOPPED":
        return WorkerEvent(t, "stopped", worker, model, text=before)
    return None


def _from_worker_output(t: float, worker: str, model: str, logger: str, message: str) -> WorkerEvent | None:
    """A line the worker process printed; only exception lines matter here."""
    if logger != "MODEL_LOG":
        return None
    if _EXCEPTION.match(message.strip()) is None:
        return None
    return WorkerEvent(t, "error", worker, model, text=message.strip()[:500])


def parse_lines(text: str) -> list[WorkerEvent]:
    events = []
    for line in text.splitlines():
        event = parse_line(line)
        if event is not None:
            events.append(event)
    return events
