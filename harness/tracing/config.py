"""Trace settings for `tritonserver`: validation and `--trace-config` arguments.

Input is a plain dict (e.g. from a scenario file):

    mode           "triton" (default) or "opentelemetry"
    level          "TIMESTAMPS" | "TENSORS" | "OFF", or a list of them (required: Triton's
                   default OFF collects nothing)
    rate           trace every rate-th request (Triton's default 1000)
    count          stop after this many traces; -1 = never (default)
    file           triton mode: where traces go (required; F, or F.0, F.1, ... with
                   log_frequency > 0). The trace protocol cannot change it at run time.
    log_frequency  triton mode: write to file every N traces; 0 = only at shutdown
    url            opentelemetry mode: OTLP/HTTP endpoint, e.g. 127.0.0.1:4318/v1/traces
    resource       opentelemetry mode: "key=value", a list of them, or a {key: value} dict
    bsp_max_queue_size, bsp_schedule_delay (ms), bsp_max_export_batch_size
                   opentelemetry mode: the batch span processor

Rules checked (from Triton's trace documentation and what a real 2.51 server accepted):
export batch size <= queue size (Triton's defaults 512 and 2048 count when one is not given);
TENSORS is not supported in opentelemetry mode; settings of one mode are refused in the other.
"""

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from harness.loopback import is_loopback

MODES = ("triton", "opentelemetry")
LEVELS = ("TIMESTAMPS", "TENSORS", "OFF")
GLOBAL_KEYS = ("mode", "level", "rate", "count")
TRITON_KEYS = ("file", "log_frequency")
OTEL_KEYS = ("url", "resource", "bsp_max_queue_size", "bsp_schedule_delay",
             "bsp_max_export_batch_size")
KNOWN_KEYS = GLOBAL_KEYS + TRITON_KEYS + OTEL_KEYS

# Batch span processor defaults, as a real Triton 2.51 reports them in /v2/trace/setting.
DEFAULT_BSP_MAX_QUEUE_SIZE = 2048
DEFAULT_BSP_MAX_EXPORT_BATCH_SIZE = 512
DEFAULT_BSP_SCHEDULE_DELAY_MS = 5000


@dataclass(frozen=True)
class TraceConfig:
    """Validated trace settings; `args()` gives the tritonserver command-line arguments."""

    mode: str
    levels: tuple[str, ...]
    rate: int | None = None
    count: int | None = None
    file: str | None = None
    log_frequency: int | None = None
    url: str | None = None
    resource: tuple[tuple[str, str], ...] = ()
    bsp_max_queue_size: int | None = None
    bsp_schedule_delay: int | None = None
    bsp_max_export_batch_size: int | None = None

    def args(self) -> list[str]:
        values: list[str] = [f"mode={self.mode}"]
        values += [f"level={level}" for level in self.levels]
        if self.rate is not None:
            values.append(f"rate={self.rate}")
        if self.count is not None:
            values.append(f"count={self.count}")
        if self.mode == "triton":
            values.append(f"triton,file={self.file}")
            if self.log_frequency is not None:
                values.append(f"triton,log-frequency={self.log_frequency}")
        else:
            values.append(f"opentelemetry,url={self.url}")
            values += [f"opentelemetry,resource={key}={value}" for key, value in self.resource]
            for name in ("bsp_max_queue_size", "bsp_schedule_delay", "bsp_max_export_batch_size"):
                value = getattr(self, name)
                if value is not None:
                    values.append(f"opentelemetry,{name}={value}")
        out: list[str] = []
        for value in values:
            out += ["--trace-config", value]
        return out

    def expected_settings(self) -> dict[str, Any]:
        """What `GET /v2/trace/setting` should report right after start (values as strings)."""
        expected: dict[str, Any] = {"trace_mode": self.mode, "trace_level": list(self.levels)}
        if self.rate is not None:
            expected["trace_rate"] = str(self.rate)
        if self.count is not None:
            expected["trace_count"] = str(self.count)
        if self.mode == "triton":
            expected["trace_file"] = self.file
            if self.log_frequency is not None:
                expected["log_frequency"] = str(self.log_frequency)
        else:
            expected["url"] = self.url
            for name in ("bsp_max_queue_size", "bsp_schedule_delay", "bsp_max_export_batch_size"):
                value = getattr(self, name)
                if value is not None:
                    expected[name] = str(value)
        return expected


def parse_trace_config(settings: Mapping[str, Any], loopback_only: bool = True) -> TraceConfig:
    """Validate `settings`; raises ValueError naming the setting and what is wrong."""
    unknown = [key for key in settings if key not in KNOWN_KEYS]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key).replace("-", "_"), KNOWN_KEYS, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(
            f"unknown trace setting(s): {', '.join(hints)}; known: {', '.join(KNOWN_KEYS)}"
        )
    mode = str(settings.get("mode", "triton")).lower()
    if mode not in MODES:
        raise ValueError(f"trace mode must be one of {', '.join(MODES)}, got {settings['mode']!r}")
    other = OTEL_KEYS if mode == "triton" else TRITON_KEYS
    misplaced = [key for key in other if key in settings]
    if misplaced:
        owner = "opentelemetry" if mode == "triton" else "triton"
        raise ValueError(
            f"trace setting(s) {', '.join(misplaced)} belong to {owner} mode, but mode is {mode}"
        )
    levels = _levels(settings.get("level"), mode)
    rate = _int(settings, "rate", minimum=0 if mode == "opentelemetry" else 1)
    count = _int(settings, "count", minimum=-1)
    if count == 0:
        raise ValueError("trace count 0 collects no trace; use -1 for no limit or a positive count")
    if mode == "triton":
        file = settings.get("file")
        if file is None or not str(file).strip():
            raise ValueError(
                "trace mode triton needs `file` (where traces are written; Triton's trace "
                "protocol cannot set it later)"
            )
        return TraceConfig(
            mode=mode,
            levels=levels,
            rate=rate,
            count=count,
            file=str(file),
            log_frequency=_int(settings, "log_frequency", minimum=0),
        )
    url = _url(settings.get("url"), loopback_only)
    queue = _int(settings, "bsp_max_queue_size", minimum=1)
    batch = _int(settings, "bsp_max_export_batch_size", minimum=1)
    delay = _int(settings, "bsp_schedule_delay", minimum=1)
    queue_eff = DEFAULT_BSP_MAX_QUEUE_SIZE if queue is None else queue
    batch_eff = DEFAULT_BSP_MAX_EXPORT_BATCH_SIZE if batch is None else batch
    if batch_eff > queue_eff:
        given = []
        if batch is None:
            given.append(f"default {DEFAULT_BSP_MAX_EXPORT_BATCH_SIZE}")
        if queue is None:
            given.append(f"default {DEFAULT_BSP_MAX_QUEUE_SIZE}")
        note = f" ({' / '.join(given)})" if given else ""
        raise ValueError(
            f"bsp_max_export_batch_size ({batch_eff}) must not exceed bsp_max_queue_size "
            f"({queue_eff}){note}: the batch span processor would drop the excess spans"
        )
    return TraceConfig(
        mode=mode,
        levels=levels,
        rate=rate,
        count=count,
        url=url,
        resource=_resource(settings.get("resource")),
        bsp_max_queue_size=queue,
        bsp_schedule_delay=delay,
        bsp_max_export_batch_size=batch,
    )


def trace_config_args(settings: Mapping[str, Any], loopback_only: bool = True) -> list[str]:
    """The `--trace-config` arguments for `settings` (see the module doc); ValueError if invalid."""
    return parse_trace_config(settings, loopback_only).args()


def _levels(value: Any, mode: str) -> tuple[str, ...]:
    if value is None:
        raise ValueError(
            "trace `level` is required (TIMESTAMPS, TENSORS or OFF): Triton's default OFF "
            "collects nothing"
        )
    raw = [value] if isinstance(value, str) else value
    if not isinstance(raw, list | tuple) or not raw:
        raise ValueError(f"trace level must be a name or a non-empty list, got {value!r}")
    levels: list[str] = []
    for item in raw:
        if not isinstance(item, str) or item.upper() not in LEVELS:
            raise ValueError(f"trace level must be one of {', '.join(LEVELS)}, got {item!r}")
        if item.upper() not in levels:
            levels.append(item.upper())
    if "OFF" in levels and len(levels) > 1:
        raise ValueError(f"trace level OFF cannot be combined with {', '.join(levels)}")
    if mode == "opentelemetry" and "TENSORS" in levels:
        raise ValueError("trace level TENSORS is not supported in opentelemetry mode")
    return tuple(levels)


def _int(settings: Mapping[str, Any], key: str, minimum: int) -> int | None:
    value = settings.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"trace setting {key} must be an integer, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"trace setting {key} must be an integer, got {value!r}") from None
    if isinstance(value, float) and number != value:
        raise ValueError(f"trace setting {key} must be an integer, got {value!r}")
    if number < minimum:
        raise ValueError(f"trace setting {key} must be >= {minimum}, got {number}")
    return number


def _url(value: Any, loopback_only: bool) -> str:
    if value is None or not str(value).strip():
        raise ValueError(
            "trace mode opentelemetry needs `url` (the OTLP/HTTP collector, "
            "e.g. 127.0.0.1:4318/v1/traces)"
        )
    url = str(value).strip()
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"opentelemetry url must be http(s), got {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"opentelemetry url has an invalid port: {url!r}") from None
    if not parts.hostname:
        raise ValueError(f"opentelemetry url has no host: {url!r}")
    if port is None:
        raise ValueError(f"opentelemetry url needs an explicit port: {url!r}")
    if loopback_only and not is_loopback(parts.hostname):
        raise ValueError(f"opentelemetry url host {parts.hostname} is not a loopback address")
    return url



def _resource(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    items: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        raw = [value] if isinstance(value, str) else value
        if not isinstance(raw, list | tuple):
            raise ValueError(f"opentelemetry resource must be 'key=value', a list or a dict, "
                             f"got {value!r}")
        pairs = []
        for entry in raw:
            if not isinstance(entry, str) or "=" not in entry:
                raise ValueError(f"opentelemetry resource entry must be 'key=value', got {entry!r}")
            key, _, val = entry.partition("=")
            pairs.append((key, val))
    for key, val in pairs:
        if not key.strip() or "," in key or "," in val:
            raise ValueError(f"opentelemetry resource {key}={val} needs a key and no commas")
        items.append((key.strip(), val))
    return tuple(items)
