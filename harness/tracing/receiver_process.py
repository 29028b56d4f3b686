"""The OTLP receiver in a process of its own, driven from the run's process through a pipe.

At trace rate 1 Triton exports three spans per request, and decoding them in the load process
took CPU from the load itself (bench/otlp_receiver.py measures it). `ReceiverProcess` has the
interface the tracing feature, its collector faults and its observer use of `OtlpReceiver`
(start, stop, the modes, snapshot, spans, reset, wait_for, url): the child process runs a real
`OtlpReceiver` and answers each call with one JSON line, so the per-span accounting is the
receiver's own, unchanged; only its counts and its kept spans cross the pipe.

The child reads its commands from stdin: when the harness dies, even by SIGKILL, the pipe closes
and the child stops its server and exits. It runs in its own session, so a Ctrl-C meant for the
harness does not kill the collector before the harness's teardown has read it.

    python -m harness.tracing.receiver_process --keep-spans 20000     (the child; JSON lines)
"""

import argparse
import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from harness.tracing.otlp_receiver import MODES, OtlpReceiver, SpanRecord


class ReceiverError(RuntimeError):
    """The receiver process failed or is gone."""


def _encode(value: Any) -> Any:
    """JSON for an attribute value: bytes (an OTLP bytesValue) are tagged base64."""
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot send {type(value).__name__}")


def _decode(node: dict[str, Any]) -> Any:
    if set(node) == {"__bytes__"}:
        return base64.b64decode(node["__bytes__"])
    return node


def span_to_wire(span: SpanRecord) -> list[Any]:
    return [span.name, span.kind, span.trace_id, span.span_id, span.parent_span_id, span.start_ns,
            span.end_ns, [list(event) for event in span.events], span.attributes]


def span_from_wire(item: list[Any]) -> SpanRecord:
    name, kind, trace_id, span_id, parent, start_ns, end_ns, events, attributes = item
    return SpanRecord(name, kind, trace_id, span_id, parent, start_ns, end_ns,
                      tuple((str(n), int(t)) for n, t in events), attributes)


class ReceiverProcess:
    """`OtlpReceiver`'s interface, served by a child process (see the module doc)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", path: str = "/v1/traces",
                 keep_spans: int = 0):
        self.host = host
        self.port = port
        self.path = path
        self.keep_spans = keep_spans
        self._lock = threading.Lock()  # one call at a time on the pipe (a gevent lock when patched)
        self._proc: subprocess.Popen[bytes] | None = None
        self._running = False
        self._mode = "healthy"

    # ----- lifecycle -----

    def start(self) -> int:
        """Listen (again) on the port, starting the child first if needed; returns the port."""
        if self._proc is None:
            argv = [sys.executable, "-m", "harness.tracing.receiver_process", "--host", self.host,
                    "--port", str(self.port), "--path", self.path, "--keep-spans", str(self.keep_spans)]
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          start_new_session=True)
        self.port = int(self._call("start"))
        self._running = True
        return self.port

    def stop(self) -> None:
        """Stop listening and drop every connection; the child stays for start() and the counts."""
        if self._proc is None or self._proc.poll() is not None:
            self._running = False
            return
        self._call("stop")
        self._running = False

    def close(self) -> None:
        """Stop and end the child process (the last snapshot() is no longer available)."""
        proc, self._proc = self._proc, None
        self._running = False
        if proc is None:
            return
        try:
            if proc.poll() is None:
                self._call_on(proc, "quit")
        except ReceiverError:
            pass
        finally:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:  # a command still buffered for a child already gone
                        pass
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()  # our own child, by its handle
                proc.wait()

    def __enter__(self) -> "ReceiverProcess":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def url(self) -> str:
        """The `opentelemetry,url=` value for Triton: host:port/path."""
        return f"{self.host}:{self.port}{self.path}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # ----- modes -----

    def set_healthy(self) -> None:
        self.set_mode("healthy")

    def set_slow(self, delay_s: float) -> None:
        if delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        self.set_mode("slow", delay_s=delay_s)

    def set_error(self, status: int = 503) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"error status must be 4xx or 5xx, got {status}")
        self.set_mode("error", status=status)

    def set_mode(self, mode: str, delay_s: float = 0.0, status: int = 503) -> None:
        if mode not in MODES:
            raise ValueError(f"receiver mode must be one of {', '.join(MODES)}, got {mode!r}")
        self._call("mode", mode=mode, delay_s=delay_s, status=status)
        self._mode = mode

    @property
    def mode(self) -> str:
        return self._mode

    # ----- results -----

    def spans(self) -> list[SpanRecord]:
        return [span_from_wire(item) for item in self._call("spans")]

    def reset(self) -> None:
        self._call("reset")

    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = self._call("snapshot")
        return snap

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self.snapshot()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # ----- the pipe -----

    def _call(self, op: str, **args: Any) -> Any:
        if self._proc is None:
            raise ReceiverError("the receiver process is not started")
        return self._call_on(self._proc, op, **args)

    def _call_on(self, proc: "subprocess.Popen[bytes]", op: str, **args: Any) -> Any:
        assert proc.stdin is not None and proc.stdout is not None
        with self._lock:
            try:
                proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
            except OSError as exc:  # a broken pipe: the child is gone
                raise ReceiverError(f"receiver process pid {proc.pid} exited ({proc.poll()}): {exc}") from exc
        if not line:
            raise ReceiverError(f"receiver process pid {proc.pid} exited ({proc.poll()})")
        reply = json.loads(line, object_hook=_decode)
        if "error" in reply:
            raise ReceiverError(f"receiver process: {op}: {reply['error']}")
        return reply["ok"]


# ---------------------------------------------------------------- the child


def serve(receiver: OtlpReceiver, commands: IO[bytes], replies: IO[bytes]) -> None:
    """Answer commands until `quit` or the end of the input (the parent is gone)."""
    try:
        for line in commands:
            command = json.loads(line)
            op = command.pop("op")
            try:
                result = _run(receiver, op, command)
                reply = json.dumps({"ok": result}, default=_encode)
            except Exception as exc:  # noqa: BLE001 - told to the parent, which raises it
                reply = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
            replies.write(reply.encode() + b"\n")
            replies.flush()
            if op == "quit":
                return
    finally:
        receiver.stop()


def _run(receiver: OtlpReceiver, op: str, args: dict[str, Any]) -> Any:
    if op == "start":
        return receiver.start()
    if op == "stop":
        receiver.stop()
        return None
    if op == "mode":
        receiver.set_mode(args["mode"], float(args.get("delay_s", 0.0)), int(args.get("status", 503)))
        return None
    if op == "snapshot":
        return receiver.snapshot()
    if op == "spans":
        return [span_to_wire(span) for span in receiver.spans()]
    if op == "reset":
        receiver.reset()
        return None
    if op == "quit":
        return None
    raise ValueError(f"unknown command {op!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the harness's OTLP receiver as a child process")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--path", default="/v1/traces")
    parser.add_argument("--keep-spans", type=int, default=0)
    args = parser.parse_args(argv)
    receiver = OtlpReceiver(port=args.port, host=args.host, path=args.path, keep_spans=args.keep_spans)
    serve(receiver, sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
