"""A small OTLP/HTTP trace receiver (collector stand-in) with failure modes.

Point Triton at it with `--trace-config mode=opentelemetry
--trace-config opentelemetry,url=<receiver.url>`. It accepts `POST /v1/traces` carrying an
`ExportTraceServiceRequest`, decoded with the `opentelemetry-proto` package, in either OTLP/HTTP
encoding: binary protobuf (`application/x-protobuf`) or OTLP JSON (`application/json`).
Triton 2.51's exporter (`OTel-OTLP-Exporter-Cpp/1.13.0`) sends **JSON**, with trace and span
ids as hex strings as OTLP JSON prescribes; they are turned into bytes before decoding.

Spans are counted by the kinds of Triton's trace documentation; a real Triton 2.51 names them:
- `request`: the top-level span, named `InferRequest` (HTTP_*/GRPC_* events, no parent);
- `model`: one per model execution, named after the model, with `triton.model_name`,
  `triton.model_version`, `triton.trace_id`, `triton.trace_parent_id` attributes
  (REQUEST_START, QUEUE_START, REQUEST_END events);
- `compute`: named `compute` (COMPUTE_START, COMPUTE_INPUT_END, COMPUTE_OUTPUT_START,
  COMPUTE_END events);
- `other`: anything else.
All three carry span kind SERVER (2).

Modes, changeable at any time from any thread: `healthy` (answer 200), `slow` (sleep
`delay_s` per export, then answer 200), `error` (answer HTTP `status`). `stop()` closes the
listening socket and every open connection (collector down); `start()` listens again on the
same port (collector back).

It runs `http.server.ThreadingHTTPServer` in a background thread. Under gevent's monkey
patching the threads are greenlets and the sockets cooperative; the handler does no blocking
work apart from the optional delay (an Event wait, which also ends early on stop()).
"""

import base64
import binascii
import collections
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from harness.tracing.trace_files import Trace

TOP_LEVEL_SPAN = "InferRequest"
COMPUTE_SPAN = "compute"
MODEL_ATTRIBUTE = "triton.model_name"
SPAN_KINDS = ("request", "model", "compute", "other")
MODES = ("healthy", "slow", "error")
MAX_BODY = 64 * 1024 * 1024


def classify_span(name: str, attributes: dict[str, Any], has_parent: bool) -> str:
    """Which of Triton's span kinds a span is: request, model, compute or other."""
    if name == COMPUTE_SPAN:
        return "compute"
    if MODEL_ATTRIBUTE in attributes:
        return "model"
    if name == TOP_LEVEL_SPAN or (not has_parent and name.endswith("InferRequest")):
        return "request"
    return "other"


@dataclass(frozen=True)
class SpanRecord:
    """One received span, in plain Python values."""

    name: str
    kind: str  # request | model | compute | other
    trace_id: str  # hex
    span_id: str  # hex
    parent_span_id: str  # hex, "" for a root span
    start_ns: int  # wall clock (unix ns), unlike Triton-mode files
    end_ns: int
    events: tuple[tuple[str, int], ...]
    attributes: dict[str, Any] = field(default_factory=dict)


def _any_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP JSON writes traceId/spanId/parentSpanId as hex; protobuf's JSON parser wants base64."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id",
                       "parent_span_id") and isinstance(value, str):
                try:
                    out[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError:
                    out[key] = value  # already base64 (some exporters): leave it
            else:
                out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def decode_export(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest from an OTLP/HTTP body (protobuf or JSON)."""
    request = ExportTraceServiceRequest()
    if "json" in content_type.lower():
        data = json.loads(body.decode("utf-8"))
        json_format.ParseDict(_hex_ids_to_base64(data), request, ignore_unknown_fields=True)
    else:
        request.ParseFromString(body)
    return request


# OTLP/JSON field names: lowerCamelCase as the spec writes them; protobuf's JSON parser, which
# this decoder replaces, also takes the proto's own snake_case names, so both are read.
def _field(node: dict[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    value = node.get(camel)
    return node.get(snake, default) if value is None else value


def _json_id(value: Any) -> str:
    """A trace or span id as lowercase hex: OTLP/JSON writes hex, some exporters base64."""
    if not value:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"an id must be a string, got {type(value).__name__}")
    try:
        return bytes.fromhex(value).hex()
    except ValueError:
        return base64.b64decode(value, validate=True).hex()


def _json_int(value: Any) -> int:
    """(u)int64 fields: OTLP/JSON writes them as decimal strings, numbers are accepted too."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def _json_any(value: Any) -> Any:
    """An AnyValue, as `_any_value` gives it from the protobuf message."""
    if not isinstance(value, dict) or not value:
        return None
    (which, inner), *_ = value.items()
    if which in ("stringValue", "string_value"):
        return str(inner)
    if which in ("intValue", "int_value"):
        return _json_int(inner)
    if which in ("boolValue", "bool_value"):
        return bool(inner)
    if which in ("doubleValue", "double_value"):
        return float(inner)
    if which in ("bytesValue", "bytes_value"):
        return base64.b64decode(inner)
    if which in ("arrayValue", "array_value"):
        return [_json_any(v) for v in (inner or {}).get("values", ())]
    if which in ("kvlistValue", "kvlist_value"):
        return {kv["key"]: _json_any(kv.get("value")) for kv in (inner or {}).get("values", ())}
    return None


def _json_span(span: dict[str, Any]) -> SpanRecord:
    attributes = {kv["key"]: _json_any(kv.get("value")) for kv in span.get("attributes", ())}
    name = str(span.get("name", ""))
    parent = _json_id(_field(span, "parentSpanId", "parent_span_id"))
    return SpanRecord(
        name=name,
        kind=classify_span(name, attributes, bool(parent)),
        trace_id=_json_id(_field(span, "traceId", "trace_id")),
        span_id=_json_id(_field(span, "spanId", "span_id")),
        parent_span_id=parent,
        start_ns=_json_int(_field(span, "startTimeUnixNano", "start_time_unix_nano", 0)),
        end_ns=_json_int(_field(span, "endTimeUnixNano", "end_time_unix_nano", 0)),
        events=tuple(
            (str(event.get("name", "")), _json_int(_field(event, "timeUnixNano", "time_unix_nano", 0)))
            for event in span.get("events", ())
        ),
        attributes=attributes,
    )


def spans_of_json(body: bytes) -> list[SpanRecord]:
    """The spans of an OTLP/JSON export, read straight from the parsed JSON.

    The same records as `spans_of(decode_export(body, "application/json"))` (a unit test holds
    the two equal), without building the protobuf message through `json_format.ParseDict`,
    which cost about 100 us a span; malformed input raises ValueError.
    """
    try:
        data = json.loads(body)
        return [
            _json_span(span)
            for resource_spans in _field(data, "resourceSpans", "resource_spans", ())
            for scope_spans in _field(resource_spans, "scopeSpans", "scope_spans", ())
            for span in scope_spans.get("spans", ())
        ]
    except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise ValueError(f"not an OTLP/JSON export: {type(exc).__name__}: {exc}") from exc


def spans_of(request: ExportTraceServiceRequest) -> list[SpanRecord]:
    out = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append(_record(span))
    return out


def _record(span: Span) -> SpanRecord:
    attributes = {kv.key: _any_value(kv.value) for kv in span.attributes}
    parent = span.parent_span_id.hex()
    return SpanRecord(
        name=span.name,
        kind=classify_span(span.name, attributes, bool(parent)),
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=parent,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        events=tuple((event.name, event.time_unix_nano) for event in span.events),
        attributes=attributes,
    )


def spans_to_traces(spans: list[SpanRecord]) -> list[Trace]:
    """Triton-mode-like Trace objects (one per model span) from OpenTelemetry spans.

    A model span's own events, its compute spans' events and, for the top-level model of a
    request, the request span's HTTP/GRPC events make up one Trace, so `summary` works on
    spans too. Timestamps are wall-clock ns here.
    """
    by_id = {span.span_id: span for span in spans}
    children: dict[str, list[SpanRecord]] = collections.defaultdict(list)
    for span in spans:
        if span.parent_span_id:
            children[span.parent_span_id].append(span)
    traces: list[Trace] = []
    for span in spans:
        if span.kind != "model":
            continue
        trace_id = span.attributes.get("triton.trace_id")
        parent_id = span.attributes.get("triton.trace_parent_id")
        version = span.attributes.get("triton.model_version")
        trace = Trace(
            id=int(trace_id) if trace_id is not None else len(traces) + 1,
            model_name=str(span.attributes.get(MODEL_ATTRIBUTE)),
            model_version=int(version) if version is not None else None,
            parent_id=int(parent_id) if parent_id else None,
            source=f"otlp:{span.trace_id}",
        )
        events = list(span.events)
        for child in children.get(span.span_id, ()):
            if child.kind == "compute":
                events.extend(child.events)
        parent = by_id.get(span.parent_span_id)
        if parent is not None and parent.kind == "request":
            events.extend(parent.events)
        for name, ns in events:
            trace.timestamps.setdefault(name, []).append(ns)
        traces.append(trace)
    return traces


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 reset connections under gevent with ~20 at once
    receiver: "OtlpReceiver"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the OTLP exporter expects

    def setup(self) -> None:
        super().setup()
        if not self.server.receiver._track(self.connection):
            self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.receiver._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.server.receiver._handle_post(self)

    def do_GET(self) -> None:
        self.server.receiver._reply(self, 200 if self.path == "/" else 404, b"", "text/plain")


class OtlpReceiver:
    """OTLP/HTTP trace receiver on 127.0.0.1 (see the module doc)."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        path: str = "/v1/traces",
        keep_spans: int = 0,
    ):
        """`port` 0 picks a free one at the first start(); `keep_spans` > 0 keeps that many
        of the latest decoded spans (see `spans()`)."""
        self.host = host
        self.port = port
        self.path = path
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set on stop(): ends slow-mode sleeps early
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._mode = "healthy"
        self._delay_s = 0.0
        self._error_status = 503
        self._spans: collections.deque[SpanRecord] = collections.deque(maxlen=max(keep_spans, 1))
        self._keep = keep_spans > 0
        self._listeners: list[Callable[[list[SpanRecord]], None]] = []
        self._reset_counters()

    # ----- lifecycle -----

    def start(self) -> int:
        """Listen (again) on the port; returns it. Safe to call when already running."""
        with self._lock:
            if self._server is not None:
                return self.port
        server = _Server((self.host, self.port), _Handler, bind_and_activate=False)
        server.receiver = self
        try:
            server.server_bind()
            server.server_activate()
        except OSError:
            server.server_close()
            raise
        self._wake.clear()
        with self._lock:
            self._server = server
            self.port = server.server_address[1]
            self._starts += 1
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"otlp-receiver-{self.port}", daemon=True,
        )
        thread.start()
        self._thread = thread
        return self.port

    def stop(self) -> None:
        """Stop listening and drop every open connection (the collector is down)."""
        with self._lock:
            server, self._server = self._server, None
            connections = list(self._connections)
            self._connections.clear()
        if server is None:
            return
        self._wake.set()
        server.shutdown()
        server.server_close()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            self._stops += 1

    close = stop

    def __enter__(self) -> "OtlpReceiver":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """The `opentelemetry,url=` value for Triton: host:port/path."""
        return f"{self.host}:{self.port}{self.path}"

    # ----- modes -----

    def set_healthy(self) -> None:
        with self._lock:
            self._mode, self._delay_s = "healthy", 0.0

    def set_slow(self, delay_s: float) -> None:
        if delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        with self._lock:
            self._mode, self._delay_s = "slow", float(delay_s)

    def set_error(self, status: int = 503) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"error status must be 4xx or 5xx, got {status}")
        with self._lock:
            self._mode, self._error_status = "error", int(status)

    def set_mode(self, mode: str, delay_s: float = 0.0, status: int = 503) -> None:
        if mode == "healthy":
            self.set_healthy()
        elif mode == "slow":
            self.set_slow(delay_s)
        elif mode == "error":
            self.set_error(status)
        else:
            raise ValueError(f"receiver mode must be one of {', '.join(MODES)}, got {mode!r}")

    @property
    def mode(self) -> str:
        return self._mode

    # ----- results -----

    def add_listener(self, callback: Callable[[list[SpanRecord]], None]) -> None:
        """Call `callback(spans)` for every decoded export (in the handler's thread)."""
        self._listeners.append(callback)

    def spans(self) -> list[SpanRecord]:
        """The latest decoded spans (only with keep_spans > 0)."""
        with self._lock:
            return list(self._spans) if self._keep else []

    def reset(self) -> None:
        with self._lock:
            self._reset_counters()
            self._spans.clear()

    def snapshot(self) -> dict[str, Any]:
        """Counters and state, as plain data."""
        with self._lock:
            return {
                "running": self._server is not None,
                "port": self.port,
                "mode": self._mode,
                "delay_s": self._delay_s if self._mode == "slow" else 0.0,
                "error_status": self._error_status if self._mode == "error" else None,
                "starts": self._starts,
                "stops": self._stops,
                "connections": self._connections_accepted,
                "exports": self._exports,
                "exports_ok": self._exports_ok,
                "exports_rejected": self._exports_rejected,
                "exports_delayed": self._exports_delayed,
                "decode_errors": self._decode_errors,
                "bytes": self._bytes,
                "spans": self._span_total,
                "spans_rejected": self._spans_rejected,
                "spans_by_kind": dict(self._by_kind),
                "spans_by_name": dict(self._by_name),
                "model_spans_by_model": dict(self._by_model),
                "content_types": dict(self._content_types),
                "statuses": {str(k): v for k, v in self._statuses.items()},
                "other_requests": self._other_requests,
                "first_export_wall": self._first_wall,
                "last_export_wall": self._last_wall,
                "last_error": self._last_error,
            }

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """Poll snapshot() until `predicate` holds; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self.snapshot()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # ----- internals -----

    def _reset_counters(self) -> None:
        self._starts = getattr(self, "_starts", 0)
        self._stops = getattr(self, "_stops", 0)
        self._connections_accepted = 0
        self._exports = 0
        self._exports_ok = 0
        self._exports_rejected = 0
        self._exports_delayed = 0
        self._decode_errors = 0
        self._bytes = 0
        self._span_total = 0
        self._spans_rejected = 0
        self._by_kind: collections.Counter[str] = collections.Counter(
            {kind: 0 for kind in SPAN_KINDS}
        )
        self._by_name: collections.Counter[str] = collections.Counter()
        self._by_model: collections.Counter[str] = collections.Counter()
        self._content_types: collections.Counter[str] = collections.Counter()
        self._statuses: collections.Counter[int] = collections.Counter()
        self._other_requests = 0
        self._first_wall: float | None = None
        self._last_wall: float | None = None
        self._last_error: str | None = None

    def _track(self, conn: socket.socket) -> bool:
        """Remember an accepted connection so stop() can cut it; False once stopped."""
        with self._lock:
            if self._server is None:
                return False
            self._connections.add(conn)
            self._connections_accepted += 1
            return True

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _reply(self, handler: _Handler, status: int, body: bytes, content_type: str) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            handler.close_connection = True

    def _handle_post(self, handler: _Handler) -> None:
        if not self.running:
            handler.close_connection = True
            return
        try:
            body = _read_body(handler)
        except (OSError, ValueError):
            self._reply(handler, 400, b"", "text/plain")
            handler.close_connection = True
            return
        if handler.path.split("?", 1)[0] != self.path:
            with self._lock:
                self._other_requests += 1
            self._reply(handler, 404, b"", "text/plain")
            return
        content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip()
        with self._lock:
            mode, delay, status = self._mode, self._delay_s, self._error_status
            self._exports += 1
            self._bytes += len(body)
            self._content_types[content_type or "?"] += 1
            now = time.time()
            self._first_wall = self._first_wall or now
            self._last_wall = now
        if mode == "slow" and delay > 0:
            with self._lock:
                self._exports_delayed += 1
            if self._wake.wait(delay):  # stopped meanwhile: the collector is gone
                handler.close_connection = True
                return
        spans: list[SpanRecord] = []
        try:
            raw = _inflate(body, handler)
            if "json" in content_type.lower():
                spans = spans_of_json(raw)
            else:
                spans = spans_of(decode_export(raw, content_type))
        except (DecodeError, json_format.ParseError, ValueError, OSError, zlib.error) as exc:
            with self._lock:
                self._decode_errors += 1
                self._last_error = f"{type(exc).__name__}: {exc}"[:300]
            if mode != "error":
                with self._lock:
                    self._statuses[400] += 1
                self._reply(handler, 400, b"", "text/plain")
                return
        if mode == "error":
            with self._lock:
                self._exports_rejected += 1
                self._spans_rejected += len(spans)
                self._statuses[status] += 1
            self._reply(handler, status, b'{"code":14,"message":"injected failure"}',
                        "application/json")
            return
        with self._lock:
            self._exports_ok += 1
            self._statuses[200] += 1
            self._span_total += len(spans)
            for span in spans:
                self._by_kind[span.kind] += 1
                self._by_name[span.name] += 1
                if span.kind == "model":
                    self._by_model[str(span.attributes.get(MODEL_ATTRIBUTE))] += 1
            if self._keep:
                self._spans.extend(spans)
        for callback in list(self._listeners):
            try:
                callback(spans)
            except Exception as exc:  # a listener must not break the collector
                with self._lock:
                    self._last_error = f"listener: {type(exc).__name__}: {exc}"[:300]
        if "json" in content_type:
            self._reply(handler, 200, b"{}", "application/json")
        else:
            response = ExportTraceServiceResponse().SerializeToString()
            self._reply(handler, 200, response, "application/x-protobuf")


def _read_body(handler: _Handler) -> bytes:
    """The request body: Content-Length, or chunked transfer encoding."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(handler.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline(64)
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise ValueError("body too large")
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline(64)
    length = int(handler.headers.get("Content-Length") or 0)
    if length < 0 or length > MAX_BODY:
        raise ValueError(f"bad Content-Length {length}")
    return handler.rfile.read(length) if length else b""


def _inflate(body: bytes, handler: _Handler) -> bytes:
    encoding = (handler.headers.get("Content-Encoding") or "").lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body
