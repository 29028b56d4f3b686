"""Where the exporter serves and pushes: the `run` command's flags, else `HARNESS_METRICS_*` variables.

The flags reach the feature as plain values in `RunHooksContext.services[SERVICE_KEY]` (the CLI
puts them there; it imports nothing of this package); a flag left out (None) falls back to its
variable, as every `HARNESS_*` default does (harness.clienv). A bad value is one line naming
the flag or variable, raised as a UsageError before anything is started.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from harness.errors import UsageError
from harness.loopback import is_loopback

PORT_ENV = "HARNESS_METRICS_PORT"
PUSHGATEWAY_ENV = "HARNESS_PUSHGATEWAY"
LINGER_ENV = "HARNESS_METRICS_LINGER"
SERVICE_KEY = "metrics_export"  # {"port": int | None, "pushgateway": str | None, "linger": float | None}
HOST = "127.0.0.1"  # the exporter binds loopback only, as all of the harness's traffic stays there
MAX_LINGER_S = 600.0


@dataclass(frozen=True)
class ExporterSettings:
    port: int | None = None  # None: no HTTP exporter; 0: a free port, chosen at start
    pushgateway: str | None = None  # None: nothing pushed at the end
    linger_s: float = 0.0  # how long the exporter keeps serving the final figures after the verdict

    @property
    def enabled(self) -> bool:
        return self.port is not None or self.pushgateway is not None


def parse_port(text: str, source: str) -> int:
    try:
        port = int(str(text).strip())
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise UsageError(f"{source}={text!r}: expected a port number 0-65535 (0: a free one)")
    return port


def parse_pushgateway(text: str, source: str) -> str:
    url = str(text).strip()
    parts = urlsplit(url if "://" in url else f"http://{url}")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"{source}={text!r}: the port is not a number") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{source}={text!r}: expected http://HOST:PORT, e.g. http://127.0.0.1:9091")
    if not is_loopback(parts.hostname):
        raise UsageError(f"{source}={text!r}: {parts.hostname} is not a loopback address "
                         "(the harness sends nothing off this host)")
    if port is None:
        raise UsageError(f"{source}={text!r}: needs an explicit port (the Pushgateway's is 9091)")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def parse_linger(text: str, source: str) -> float:
    try:
        seconds = float(str(text).strip().removesuffix("s"))
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_LINGER_S):
        raise UsageError(f"{source}={text!r}: expected seconds, 0 to {MAX_LINGER_S:g}")
    return seconds


def settings_from(services: Mapping[str, Any], environ: Mapping[str, str]) -> ExporterSettings:
    """The flags the CLI left in `services`, each falling back to its variable; UsageError on bad input."""
    flags = services.get(SERVICE_KEY) or {}

    def given(key: str, flag: str, var: str) -> tuple[str, str] | None:
        value = flags.get(key)
        if value is not None:
            return str(value), flag
        text = environ.get(var, "")
        return (text, var) if text.strip() else None  # empty means unset, as in clienv

    port = given("port", "--metrics-port", PORT_ENV)
    gateway = given("pushgateway", "--pushgateway", PUSHGATEWAY_ENV)
    linger = given("linger", "--metrics-linger", LINGER_ENV)
    return ExporterSettings(
        port=parse_port(*port) if port else None,
        pushgateway=parse_pushgateway(*gateway) if gateway else None,
        linger_s=parse_linger(*linger) if linger else 0.0,
    )
