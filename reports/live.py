"""The live view (`--web`): the report's charts for a run or soak while it goes, in a browser.

It runs as its own process (`python -m reports.live FOLDER`), started and ended by the harness:
the charts are rebuilt from the journal on disk, never from the load process's memory, so
drawing them takes nothing from the load's event loop, and the page cannot reach anything that
starts or steers load (it serves GET only). It follows the newest `journal.jsonl` below the
folder (a run's own; a series' current repetition; a soak's current cycle), reads what was
appended since the last look, keeps every event and the last LIVE_WINDOW_S seconds of
per-second records and samples (a day-long soak's would not fit in memory), and answers:
- `/`: the page, with uPlot and `charts.js` inline, polling `/charts` every POLL_S;
- `/charts`: JSON with the charts' HTML and a status line.
It binds 127.0.0.1 only, prints `live view: URL` once it listens, and ends by itself when the
harness that started it is gone (a SIGKILLed harness leaves no watcher behind).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness.analysis import RunData
from harness.errors import UsageError
from harness.journal import JOURNAL_NAME
from reports.charts import chart_assets
from reports.html import live_charts
from reports.style import BASE_CSS, CHART_HELP

LIVE_WINDOW_S = 900.0
POLL_S = 2.0
FOLLOW_DEPTH = 3  # run/journal, series/run-N/journal, soak/cycles/NNNN/journal
START_TIMEOUT_S = 15.0
LINGER_S = 2.5 * POLL_S  # a watched view's wait, at the stop, for its page's last look
READY_PREFIX = "live view: "


class JournalTail:
    """The newest journal below a folder, read incrementally; a torn last line waits for its end."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path: Path | None = None
        self.offset = 0
        self.partial = b""
        self.events: list[dict[str, Any]] = []
        self.recent: deque[dict[str, Any]] = deque()
        self.version = 0  # bumped when something new was read

    def poll(self) -> None:
        newest = self._newest()
        if newest is None:
            return
        if newest != self.path:
            self.path, self.offset, self.partial = newest, 0, b""
            self.events, self.recent = [], deque()
            self.version += 1
        try:
            with newest.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except OSError:
            return
        if not chunk:
            return
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            self._take(line)
        self.version += 1

    def _take(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return
        if not isinstance(record, dict) or not isinstance(record.get("t"), int | float):
            return
        if record.get("type") == "event":
            self.events.append(record)
            return
        self.recent.append(record)
        while self.recent and record["t"] - self.recent[0]["t"] > LIVE_WINDOW_S:
            self.recent.popleft()

    def _newest(self) -> Path | None:
        found = [path for depth in range(FOLLOW_DEPTH + 1)
                 for path in self.folder.glob("*/" * depth + JOURNAL_NAME)]
        best: tuple[float, Path] | None = None
        for path in found:
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if best is None or mtime > best[0]:
                best = (mtime, path)
        return best[1] if best else None

    def data(self) -> RunData:
        return RunData.from_records([*self.events, *self.recent])


def status(tail: JournalTail, data: RunData) -> dict[str, Any]:
    names = {e["event"] for e in data.events}
    started = data.first_event("run_started") or {}
    requests = sum(int(s.get("requests", 0)) for s in data.seconds)
    ok = sum(int(s.get("ok", 0)) for s in data.seconds)
    last_second = data.seconds[-1]["t"] + 1 - data.load_start if data.seconds and data.load_start else 0.0
    return {
        "scenario": started.get("scenario"), "journal": str(tail.path) if tail.path else None,
        "load_s": round(last_second, 1), "requests": requests, "errors": requests - ok,
        "last_event": data.events[-1]["event"] if data.events else None,
        "ended": "run_ended" in names, "window_s": LIVE_WINDOW_S,
    }


def page() -> str:
    body = (
        "<h1>Live view</h1><p id='live-status' class='muted'>waiting for the journal&hellip;</p>"
        f"<p class='muted'>The charts follow the journal every {POLL_S:g} s (the last "
        f"{LIVE_WINDOW_S / 60:g} minutes of samples). Read-only: nothing here starts or changes "
        f"load. {CHART_HELP}</p><div id='live-charts'></div>"
    )
    # An empty icon inline: the browser asks for /favicon.ico otherwise, and logs the 404.
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>harness: live view</title>"
            "<link rel='icon' href='data:,'>"
            f"<style>{BASE_CSS}</style></head><body>{body}{chart_assets()}<script>{_POLLER}</script>"
            "</body></html>")


# Redraws when the journal grew; keeps the reader's zoom across redraws; stops when the run ended.
_POLLER = """
(function () {
  var shown = -1, home = null;
  function text(s) {
    var head = (s.scenario || "run") + ": " + s.load_s + " s of load, " + s.requests + " requests, " +
      s.errors + " failed; last event: " + (s.last_event || "-");
    return s.ended ? head + ". The run ended; its report.html is in the run folder." : head;
  }
  function poll() {
    fetch("charts?since=" + shown).then(function (r) { return r.json(); }).then(function (answer) {
      document.getElementById("live-status").textContent = text(answer.status);
      if (answer.version !== shown && answer.html !== null) {
        var zoom = window.HarnessCharts.currentX(), wasHome = home;
        window.HarnessCharts.destroyAll();
        var box = document.getElementById("live-charts");
        box.innerHTML = answer.html;
        window.HarnessCharts.mountAll(box);
        home = window.HarnessCharts.currentX();
        var zoomed = zoom && wasHome && (zoom[0] !== wasHome[0] || zoom[1] !== wasHome[1]);
        if (zoomed) window.HarnessCharts.setX(zoom[0], zoom[1]);
        shown = answer.version;
        document.body.dataset.version = String(shown);
      }
      if (!answer.status.ended) setTimeout(poll, POLL_MS);
      else document.body.dataset.ended = "1";
    }).catch(function (err) { console.warn("live view: " + err); setTimeout(poll, 2 * POLL_MS); });
  }
  poll();
})();
""".replace("POLL_MS", str(int(POLL_S * 1000)))


class _Watchers:
    """Whether a page is watching, and whether it has been told the run ended: at the harness's
    stop a watched view lingers until its page has seen the end (at most LINGER_S)."""

    def __init__(self) -> None:
        self.last_poll = 0.0
        self.told_end = threading.Event()

    def watching(self) -> bool:
        return time.monotonic() - self.last_poll < 2.5 * POLL_S


class _Handler(BaseHTTPRequestHandler):
    tail: JournalTail
    lock: threading.Lock
    watchers: _Watchers

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path, _, query = self.path.partition("?")
        if path == "/":
            self._send(200, "text/html; charset=utf-8", page().encode())
        elif path == "/charts":
            self._send(200, "application/json", json.dumps(self._charts(query)).encode())
        else:
            self._send(404, "text/plain", b"not found")

    def _charts(self, query: str) -> dict[str, Any]:
        with self.lock:
            self.tail.poll()
            data = self.tail.data()
            since = dict(p.partition("=")[::2] for p in query.split("&") if p).get("since")
            fresh = since != str(self.tail.version)
            answer: dict[str, Any] = {"version": self.tail.version, "status": status(self.tail, data),
                                      "html": live_charts(data) if fresh else None}
        self.watchers.last_poll = time.monotonic()
        if answer["status"]["ended"]:
            self.watchers.told_end.set()
        return answer

    def _send(self, code: int, kind: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        return  # a poll every 2 s would fill the terminal


def serve(folder: Path, port: int, parent: int | None) -> None:
    watchers = _Watchers()
    handler = type("Handler", (_Handler,), {"tail": JournalTail(folder), "lock": threading.Lock(),
                                            "watchers": watchers})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    print(f"{READY_PREFIX}http://127.0.0.1:{server.server_address[1]}/", flush=True)
    if parent is not None:
        threading.Thread(target=_end_with_parent, args=(server, parent), daemon=True).start()

    def end_after_last_look() -> None:
        if watchers.watching():
            watchers.told_end.wait(LINGER_S)
        server.shutdown()

    def on_sigterm(*_: Any) -> None:
        threading.Thread(target=end_after_last_look, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()


def _end_with_parent(server: ThreadingHTTPServer, parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    server.shutdown()


class LiveView:
    """The watcher process, owned by the harness: started with the run, ended with it (by PID)."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.process: subprocess.Popen[str] | None = None
        self.url: str | None = None

    def start(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reports.live", str(self.folder), "--port", str(self.port),
             "--parent", str(os.getpid())],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        line = _first_line(self.process, START_TIMEOUT_S)
        if not line.startswith(READY_PREFIX):
            error = self._reap()
            raise OSError(f"the live view did not start: {error or line or 'no answer'}")
        self.url = line.removeprefix(READY_PREFIX).strip()
        return self.url

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(LINGER_S + 3.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(3.0)
        self._reap()
        self.process = None

    def _reap(self) -> str:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(3.0)
        err = self.process.stderr.read() if self.process.stderr else ""
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()
        return err.strip().splitlines()[-1] if err.strip() else ""


class LiveSession:
    """`--web` for one command: the port checked before anything starts, the watcher started on
    the first folder it is given, ended when the command ends. No port given: it does nothing."""

    def __init__(self, port: int | None):
        self.port = port
        self.view: LiveView | None = None
        if port:
            _check_free(port)

    def follow(self, folder: Path) -> None:
        if self.port is None or self.view is not None:
            return
        self.view = LiveView(folder, self.port)
        try:
            url = self.view.start()
        except OSError as exc:  # the port was taken meanwhile: the run matters more than its view
            self.view = None
            print(f"live view: not started ({exc}); the run goes on without it", file=sys.stderr, flush=True)
            return
        print(f"live view: {url} (follows {folder})", flush=True)

    def stop(self) -> None:
        if self.view is not None:
            self.view.stop()
            self.view = None


def _check_free(port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UsageError(f"--web {port}: 127.0.0.1:{port}: {exc.strerror or exc}") from None


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    found: list[str] = []

    def read() -> None:
        found.append(process.stdout.readline() if process.stdout else "")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0] if found else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.live", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        serve(args.folder, args.port, args.parent)
    except OSError as exc:
        print(f"live view: 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
