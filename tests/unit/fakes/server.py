"""The fake stack's entry process: a tiny threaded HTTP server with replica children.

Run as `python server.py --port P ...` by `FakeStack` (standard library only, loopback only):
- `GET /health`: 200 while healthy (503 after `{"health_fail": true}`);
- `POST /infer`: the canary's and the load's request; 200, or 500 after `{"fail_infer": true}`
  (health stays 200: "health says ready, inference fails"), after `infer_delay` seconds;
- `POST /control` with a JSON object: `fail_infer`, `infer_delay`, `health_fail` set the state;
  `crash` ends the process, by a signal (`"SIGSEGV"`) or with an exit code (an int), and with
  `"with_replicas": true` its replicas a moment before it (a process tree dying together);
- `GET /replicas`: the live replicas' PIDs.
It keeps `--replicas` children alive (sleeping Python processes), starting a new one
`--respawn-after` seconds after one died. Every process here ends by itself: the replicas when
this process is gone, this process when the harness that started it is gone or after `--max-life`.
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

POLL_S = 0.02
# A replica (and the stack's dependency): sleeps until its parent is gone, 600 s at most. The
# parent's PID is given, not read at start: the parent may die before this child's Python runs.
ORPHAN_WATCH = (
    "import os, time\n"
    "parent = {parent}\n"
    "deadline = time.monotonic() + {life}\n"
    "while time.monotonic() < deadline and os.getppid() == parent:\n"
    "    time.sleep(0.02)\n"
)


def sleeper_argv(life: float = 600.0) -> list[str]:
    """A child of this process that ends when this process is gone."""
    return [sys.executable, "-c", ORPHAN_WATCH.format(parent=os.getpid(), life=life)]


class State:
    def __init__(self, replicas: int, respawn_after: float):
        self.lock = threading.Lock()
        self.fail_infer = False
        self.infer_delay = 0.0
        self.health_fail = False
        self.respawn_after = respawn_after
        self.replicas: list[subprocess.Popen[bytes] | None] = [None] * replicas
        self.died_at: list[float | None] = [None] * replicas
        self.stopping = False

    def keep_replicas(self, stop: threading.Event, until: float) -> None:
        while not stop.is_set() and time.monotonic() < until:
            now = time.monotonic()
            with self.lock:
                if self.stopping:
                    return
                for i, proc in enumerate(self.replicas):
                    if proc is not None and proc.poll() is not None:  # died (and reaped here)
                        self.replicas[i] = None
                        self.died_at[i] = now
                    died = self.died_at[i]
                    if self.replicas[i] is None and (died is None or now - died >= self.respawn_after):
                        self.replicas[i] = subprocess.Popen(sleeper_argv(), stdin=subprocess.DEVNULL)
                        self.died_at[i] = None
            stop.wait(POLL_S)

    def shutdown(self, stop: threading.Event) -> None:
        """SIGTERM: end the replicas first (waited for), as a real server stops its workers."""
        stop.set()
        with self.lock:
            self.stopping = True
            live = [p for p in self.replicas if p is not None]
            for proc in live:
                proc.terminate()
            for proc in live:
                try:
                    proc.wait(1.0)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def live_replicas(self) -> list[int]:
        with self.lock:
            return [p.pid for p in self.replicas if p is not None and p.poll() is None]


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the load's users expect

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
            return

        def _answer(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else {}

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/health":
                if state.health_fail:
                    self._answer(503, {"ready": False})
                else:
                    self._answer(200, {"ready": True})
            elif self.path == "/replicas":
                self._answer(200, {"pids": state.live_replicas()})
            else:
                self._answer(404, {"error": "no such path"})

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self._body()
            if self.path == "/infer":
                if state.infer_delay:
                    time.sleep(state.infer_delay)
                if state.fail_infer:
                    self._answer(500, {"error": "inference failed: backend stub is gone"})
                else:
                    self._answer(200, {"outputs": [1.0, 2.0, 3.0, 4.0]})
            elif self.path == "/control":
                self._control(body)
            else:
                self._answer(404, {"error": "no such path"})

        def _control(self, body: dict[str, Any]) -> None:
            for key in ("fail_infer", "health_fail"):
                if key in body:
                    setattr(state, key, bool(body[key]))
            if "infer_delay" in body:
                state.infer_delay = float(body["infer_delay"])
            crash = body.get("crash")
            self._answer(200, {"ok": True})
            self.wfile.flush()
            if body.get("with_replicas"):  # the whole tree at once, replicas a moment first
                for pid in state.live_replicas():
                    os.kill(pid, signal.Signals[crash] if isinstance(crash, str) else signal.SIGKILL)
            if isinstance(crash, str):
                os.kill(os.getpid(), signal.Signals[crash])  # e.g. SIGSEGV: dies as a segfault would
            elif isinstance(crash, int):
                os._exit(crash)

    return Handler


def watch_parent(parent: int, stop: threading.Event) -> None:
    """The harness that started us is gone: end, so a killed test leaves nothing behind."""
    while not stop.is_set():
        if os.getppid() != parent:
            os._exit(70)
        stop.wait(0.1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--respawn-after", type=float, default=0.3)
    parser.add_argument("--exit-at-start", type=int, default=None)
    parser.add_argument("--fail-infer", action="store_true")  # healthy, but inference fails from the start
    parser.add_argument("--max-life", type=float, default=300.0)
    parser.add_argument("--parent", type=int, default=None)  # the harness's PID (default: our parent)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # told to die of SIGSEGV: no core file
    if args.exit_at_start is not None:
        print(f"fake server: refusing to start (exit {args.exit_at_start})", flush=True)
        return int(args.exit_at_start)
    state = State(args.replicas, args.respawn_after)
    state.fail_infer = args.fail_infer
    stop = threading.Event()
    until = time.monotonic() + args.max_life
    threading.Thread(target=state.keep_replicas, args=(stop, until), daemon=True).start()

    def on_term(signum: int, frame: Any) -> None:
        state.shutdown(stop)
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    threading.Thread(target=watch_parent, args=(args.parent or os.getppid(), stop), daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    server.daemon_threads = True
    server.timeout = 0.1
    print(f"fake server: serving on 127.0.0.1:{args.port}", flush=True)
    while time.monotonic() < until:
        server.handle_request()
    stop.set()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
