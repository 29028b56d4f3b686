"""One run's exporter: follow its journal into `RunFigures`, serve them, and at the end push them.

`start()` before the stack is built (a scrape sees the run from `starting` on); `finish(summary)`
once summary.json is written: the last records, the verdict, the push, a linger while Prometheus
takes its last scrape, then the server stops. A process runs one session at a time (a series
runs its runs one after another): starting one closes any left open, so a fixed port is free.
"""

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from harness.exporter.follow import JournalFollower, Paths
from harness.exporter.metrics import FiguresCollector
from harness.exporter.server import MetricsServer, push
from harness.exporter.settings import ExporterSettings
from harness.exporter.state import RunFigures

log = logging.getLogger(__name__)
POLL_S = 0.25  # how often the journal is read: a fault's gauge is at most this late
Say = Callable[[str], None]

_current: "ExportSession | None" = None
_current_lock = threading.Lock()


def _say(line: str) -> None:
    print(line, file=sys.stdout, flush=True)  # under --json, stdout is already redirected to stderr


class ExportSession:
    def __init__(self, settings: ExporterSettings, figures: RunFigures, paths: Paths,
                 journal: Any = None, say: Say = _say):
        self.settings = settings
        self.figures = figures
        self.follower = JournalFollower(paths)
        self.journal = journal  # where the URL is journaled (None: nowhere)
        self.say = say
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(FiguresCollector(figures))
        self.server: MetricsServer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def start(self) -> None:
        """Serve (if a port is set) and follow the journal. UsageError if the port is taken."""
        global _current
        with _current_lock:
            previous, _current = _current, self
        if previous is not None:
            previous.close()
        if self.settings.port is not None:
            self.server = MetricsServer(self.registry, self.settings.port)
            url = self.server.start()
            self.say(f"metrics: {url}")
        if self.journal is not None:
            self.journal.event("metrics_exporter", url=self.url, pushgateway=self.settings.pushgateway)
        self._thread = threading.Thread(target=self._follow, name="harness-exporter", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.wait(POLL_S):
            self.drain()

    def drain(self) -> None:
        try:
            self.figures.add_all(self.follower.read())
        except Exception:  # noqa: BLE001 - the exporter's bug must never touch the run
            log.exception("the exporter could not read the journal")

    def finish(self, summary: Mapping[str, Any]) -> None:
        """The run is judged: final figures, the push, the linger, then the server stops."""
        if self._finished:
            return
        self._finished = True
        self._stop_following()
        self.figures.finish(summary)
        if self.settings.pushgateway is not None:
            problem = push(self.settings.pushgateway, self._final_registry(), self.figures.scenario)
            self.say(problem or f"metrics: pushed to {self.settings.pushgateway}")
        if self.server is not None and self.settings.linger_s > 0:
            self.say(f"metrics: serving the final figures at {self.url} for {self.settings.linger_s:g}s")
            try:
                time.sleep(self.settings.linger_s)
            except KeyboardInterrupt:  # Ctrl-C ends the linger, never the run: it is already judged
                pass
        self.close()

    def _final_registry(self) -> CollectorRegistry:
        """What is pushed: the run's totals and results, not the figures of its last second."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FiguresCollector(self.figures, live=False))
        return registry

    def _stop_following(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.drain()  # what was written since the last read: the run's last records

    def close(self) -> None:
        """Stop following and serving (idempotent); nothing is pushed."""
        global _current
        self._stop.set()
        if self.server is not None:
            self.server.stop()
        with _current_lock:
            if _current is self:
                _current = None
