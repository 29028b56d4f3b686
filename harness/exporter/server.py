"""The exporter's HTTP endpoint on 127.0.0.1 and the push of the final figures to a Pushgateway.

prometheus_client serves from a daemon thread; under the harness's gevent patching that thread
is a greenlet on the run's loop, and a scrape costs one pass over the figures (no HDR walk).
"""

import logging
from typing import Any

from prometheus_client import CollectorRegistry, push_to_gateway, start_http_server

from harness.errors import UsageError
from harness.exporter.settings import HOST

log = logging.getLogger(__name__)
JOB = "harness"  # the Pushgateway's `job`; each scenario is one group under it (its latest run)
PUSH_TIMEOUT_S = 5.0


class MetricsServer:
    def __init__(self, registry: CollectorRegistry, port: int):
        self.registry = registry
        self.requested_port = port
        self.port = port  # the bound one once started (port 0: the free one chosen), kept after stop
        self._httpd: Any = None
        self._thread: Any = None

    def start(self) -> str:
        """Listen (port 0: a free one); returns the URL to scrape. UsageError if the port is taken."""
        try:
            self._httpd, self._thread = start_http_server(self.requested_port, addr=HOST,
                                                          registry=self.registry)
        except OSError as exc:
            raise UsageError(f"metrics port {self.requested_port} on {HOST}: {exc.strerror or exc} "
                             "(choose another, or 0 for a free one)") from None
        self.port = int(self._httpd.server_port)
        return self.url

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/metrics"

    def stop(self) -> None:
        if self._httpd is None:
            return
        httpd, self._httpd = self._httpd, None
        httpd.shutdown()  # serve_forever returns within its 0.5 s poll
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def push(gateway: str, registry: CollectorRegistry, scenario: str) -> str | None:
    """Push the registry's figures (replacing the scenario's previous push); None, or the one line
    saying why it failed. A Pushgateway that is down must never cost the run its results."""
    try:
        push_to_gateway(gateway, job=JOB, registry=registry, grouping_key={"scenario": scenario},
                        timeout=PUSH_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - refused, timed out, 4xx/5xx: each is one line, not a traceback
        log.warning("push to %s failed", gateway, exc_info=True)
        reason = str(getattr(exc, "reason", "") or exc).strip() or type(exc).__name__
        return f"pushgateway {gateway}: not pushed ({reason}); the run's results are in its folder as usual"
    return None
