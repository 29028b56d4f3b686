"""gRPC unary calls over one HTTP/2 connection the user owns, on a gevent socket.

With `grpc.experimental.gevent`, every call of a grpc channel is handed to grpc's C-core through a
gevent threadpool and woken up again when it completes; bench/loadgen.py's profile put most of
the gRPC user's CPU per request in those hand-offs. Here a call is written and read by the
user's own greenlet. h2 (python-hyper's HTTP/2 state machine) was measured first and cost more
per call than grpc did (HPACK encoding, header validation and a dozen event objects per call,
~240 us/request in the bench against ~250 for grpc): so the frames are made and read with the
two libraries h2 itself is built on, hyperframe (frames) and hpack (header compression), and
this module keeps only the state a client of unary calls needs. What is made once:

- the request's header block, encoded by hpack as never-indexed literals (or static-table
  indexes), so the same bytes are valid on every stream and leave the server's table alone;
- the HEADERS and DATA frames of a payload, serialized by hyperframe, in which only the stream
  id changes from call to call (`_Template`).

The connection: the preface and our SETTINGS (no push, the largest receive window, so a unary
answer never waits for a WINDOW_UPDATE; the window is given back as it is read), SETTINGS and
PING acknowledged, the server's flow-control windows respected when sending (a payload larger
than them goes out in pieces as the server opens them), GOAWAY honoured.

A failure raises `GrpcError` with the status grpc's own client reports for it (PROTOCOL-HTTP2.md
of the gRPC repository maps HTTP/2 errors and HTTP statuses to gRPC codes; the messages are
grpc's words, measured against a real Triton): UNAVAILABLE when the connection cannot be made or
is lost, DEADLINE_EXCEEDED when the call's timeout runs out (the stream is then cancelled and the
connection kept, as grpc does), the server's grpc-status otherwise. After a lost connection the
next call opens a new one; a call is never retried.
"""

import socket
import struct
import time
from urllib.parse import unquote

import gevent.socket
import hpack
import hyperframe.exceptions
import hyperframe.frame as hf

# gRPC status codes by number (grpc/doc/statuscodes.md); `grpc_<name>` is the user's error kind.
STATUS_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)
# HTTP/2 error codes (RFC 9113 section 7) as gRPC statuses (PROTOCOL-HTTP2.md, "Errors").
CANCEL = 0x8
_RESET_STATUS = {0x7: "UNAVAILABLE", CANCEL: "CANCELLED", 0xB: "RESOURCE_EXHAUSTED",
                 0xC: "PERMISSION_DENIED"}  # REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM, INADEQUATE_SECURITY
# A non-200 HTTP status without a grpc-status (PROTOCOL-HTTP2.md, http-grpc-status-mapping).
_HTTP_STATUS = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "UNIMPLEMENTED", 429: "UNAVAILABLE", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
                504: "UNAVAILABLE"}
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER = 9
DEFAULT_WINDOW = 65_535  # RFC 9113: every window starts here until SETTINGS or WINDOW_UPDATE
DEFAULT_FRAME = 16_384  # the largest frame either side must accept; we accept no larger
WINDOW = 2**31 - 1  # our receive windows (stream and connection)
LAST_STREAM_ID = 2**31 - 1
RECV_BYTES = 64 * 1024
DECODED_BLOCKS = 64  # header blocks remembered per connection (see `_decode`)
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x1, 0x2, 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
_PREFIX = struct.Struct(">?I")  # gRPC message framing: compressed flag, length
_STREAM_ID = struct.Struct(">I")  # the last 4 bytes of a frame header (reserved bit 0)


class GrpcError(Exception):
    """A failed call: its gRPC status name (`UNAVAILABLE`) and the message that goes with it."""

    def __init__(self, status: str, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class _Broken(Exception):
    """The server broke the protocol: the connection is closed, the call fails INTERNAL."""


def grpc_timeout(seconds: float) -> bytes:
    """The grpc-timeout header's value: at most 8 digits, in the finest unit that fits."""
    for unit, per_second in ((b"u", 1_000_000), (b"m", 1_000), (b"S", 1)):
        value = max(1, int(seconds * per_second))
        if value < 100_000_000:
            return str(value).encode() + unit
    return str(min(99_999_999, int(seconds / 3600))).encode() + b"H"


def framed(message: bytes) -> bytes:
    """One uncompressed gRPC message: its 5-byte length prefix, then the message."""
    return _PREFIX.pack(False, len(message)) + message


def header_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    """HPACK for `headers` that is the same, and valid, on every stream of a connection.

    Never-indexed literals (and full static-table matches, which hpack sends as indexes) neither
    read nor change the dynamic table, so no call depends on what an earlier call sent.
    """
    block = hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(n, v) for n, v in headers])
    if len(block) > DEFAULT_FRAME:  # would need CONTINUATION frames; no gRPC request has that
        raise ValueError(f"request headers of {len(block)} bytes do not fit one HEADERS frame")
    return block


class _Template:
    """The HEADERS and DATA frames of one payload (hyperframe's bytes); only the stream id varies."""

    __slots__ = ("payload", "frames", "data_at")

    def __init__(self, block: bytes, payload: bytes):
        self.payload = payload
        heads = hf.HeadersFrame(1, block, flags=["END_HEADERS"]).serialize()
        data = hf.DataFrame(1, payload, flags=["END_STREAM"]).serialize()
        self.frames = heads + data
        self.data_at = len(heads)

    def for_stream(self, stream_id: int) -> bytearray:
        frames = bytearray(self.frames)
        _STREAM_ID.pack_into(frames, 5, stream_id)
        _STREAM_ID.pack_into(frames, self.data_at + 5, stream_id)
        return frames


class _Call:
    """One stream: its send window and what its answer brought so far."""

    __slots__ = ("stream_id", "send_window", "data", "received", "http_status", "status", "message",
                 "ended", "error")

    def __init__(self, stream_id: int, send_window: int):
        self.stream_id = stream_id
        self.send_window = send_window
        self.data = bytearray()
        self.received = 0  # flow-controlled bytes, for our stream window
        self.http_status = b""
        self.status: bytes | None = None  # grpc-status, from the trailers or a trailers-only answer
        self.message = b""
        self.ended = False
        # Set instead of raised while frames are handled, so the rest of a read is handled too
        # (a header block left undecoded would desynchronise the HPACK table).
        self.error: GrpcError | None = None

    def fail(self, status: str, message: str) -> None:
        if self.error is None:
            self.error = GrpcError(status, message)
        self.ended = True


class H2UnaryChannel:
    """Unary calls of one method to host:port over one HTTP/2 connection, opened on first use."""

    def __init__(self, host: str, port: int, path: str, *, timeout: float, user_agent: str = "harness"):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.block = header_block([
            (b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
            (b":authority", f"{_bracketed(host)}:{port}".encode()), (b"content-type", b"application/grpc"),
            (b"te", b"trailers"), (b"grpc-timeout", grpc_timeout(timeout)),
            (b"user-agent", user_agent.encode()),
        ])
        self._template: _Template | None = None
        self._sock: gevent.socket.socket | None = None
        self._buffer = bytearray(RECV_BYTES)
        self._view = memoryview(self._buffer)
        self._reset_connection_state()

    def _reset_connection_state(self) -> None:
        self._decoder = hpack.Decoder()  # the server's header table: one per connection
        self._decoded: dict[bytes, list[tuple[bytes, bytes]]] = {}
        self._pending = bytearray()  # received bytes not yet a whole frame
        self._next_stream = 1
        self._send_window = DEFAULT_WINDOW  # the server's connection window for our DATA
        self._peer_window = DEFAULT_WINDOW  # the server's initial window of a new stream
        self._peer_frame = DEFAULT_FRAME
        self._unacked = 0  # received bytes not yet given back to the connection window
        self._block = bytearray()  # a header block continued in CONTINUATION frames
        self._block_stream = 0
        self._block_ends = False  # the HEADERS frame that began the block ended its stream
        self._going_away = False

    # ------------------------------------------------------------ a call

    def call(self, payload: bytes) -> bytes:
        """Send one framed message (`framed`); the answer's message, or raise GrpcError."""
        deadline = time.monotonic() + self.timeout
        if self._sock is not None:
            self._drain()  # a connection the server closed while we were idle is replaced
        if self._sock is None or self._next_stream > LAST_STREAM_ID:
            self.close()
            self._connect(deadline)
        sock = self._sock
        assert sock is not None
        call = _Call(self._next_stream, self._peer_window)
        self._next_stream += 2
        try:
            self._send_request(sock, call, payload, deadline)
            while not call.ended:
                self._receive(sock, call, deadline)
        except _Broken as exc:
            self.close()
            raise GrpcError("INTERNAL", str(exc)) from None
        if self._going_away:  # GOAWAY: this call was let finish; the next one connects anew
            self.close()
        return answer_of(call)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _send_request(self, sock: gevent.socket.socket, call: _Call, payload: bytes, deadline: float) -> None:
        sock.settimeout(max(0.001, deadline - time.monotonic()))  # `_drain` left it at 0 (no wait)
        template = self._template
        if template is None or template.payload is not payload:
            template = self._template = _Template(self.block, payload)
        size = len(payload)
        if size <= min(self._send_window, call.send_window, self._peer_frame):
            self._send_window -= size
            call.send_window -= size
            self._send(sock, template.for_stream(call.stream_id))  # the usual case: one write
            return
        heads = bytearray(template.frames[:template.data_at])
        _STREAM_ID.pack_into(heads, 5, call.stream_id)
        self._send(sock, heads)
        sent = 0
        while sent < size:  # as much as the server's windows allow, then wait for them to open
            room = min(self._send_window, call.send_window, self._peer_frame, size - sent)
            if room <= 0:
                self._receive(sock, call, deadline)
                if call.ended:
                    return  # the server answered (an error) before taking the whole request
                continue
            last = sent + room == size
            flags = ["END_STREAM"] if last else []
            self._send(sock, hf.DataFrame(call.stream_id, payload[sent:sent + room], flags=flags).serialize())
            self._send_window -= room
            call.send_window -= room
            sent += room

    # ------------------------------------------------------------ the connection

    def _connect(self, deadline: float) -> None:
        family = "ipv6" if ":" in self.host else "ipv4"  # as grpc names the address it tried
        address = f"{family}:{_bracketed(self.host)}:{self.port}"
        try:
            sock = gevent.socket.create_connection((self.host, self.port),
                                                   timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise GrpcError("DEADLINE_EXCEEDED", "Deadline Exceeded") from None
        except OSError as exc:  # grpc's own words, so reports read the same for both transports
            raise GrpcError("UNAVAILABLE", f"failed to connect to all addresses; last error: UNKNOWN: "
                            f"{address}: Failed to connect to remote host: {exc.strerror or exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as grpc: no Nagle delay
        self._sock = sock
        self._reset_connection_state()
        ours = {SETTINGS_ENABLE_PUSH: 0, SETTINGS_INITIAL_WINDOW_SIZE: WINDOW}
        settings = hf.SettingsFrame(0, settings=ours)
        window = hf.WindowUpdateFrame(0, window_increment=WINDOW - DEFAULT_WINDOW)
        self._send(sock, PREFACE + settings.serialize() + window.serialize())

    def _send(self, sock: gevent.socket.socket, data: bytes | bytearray) -> None:
        try:
            # send, not sendall: gevent's sendall asks the kernel for SO_SNDBUF on every call
            sent = sock.send(data)
            while sent < len(data):
                sent += sock.send(data[sent:])
        except TimeoutError:  # the server stopped reading: the deadline ran out mid-frame
            self.close()
            raise GrpcError("DEADLINE_EXCEEDED", "Deadline Exceeded") from None
        except OSError as exc:
            self.close()
            raise GrpcError("UNAVAILABLE", _lost(exc, "sendmsg")) from None

    def _drain(self) -> None:
        """Handle without waiting what the server sent between calls (PING, SETTINGS, GOAWAY, EOF)."""
        sock = self._sock
        assert sock is not None
        sock.settimeout(0.0)  # gevent raises at once instead of waiting for the socket
        try:
            count = sock.recv_into(self._buffer)
            if count == 0:
                raise ConnectionResetError
            self._handle_bytes(sock, count, _Call(0, 0))  # stream 0: no frame is a call's
        except BlockingIOError:
            return  # the usual case: nothing came
        except (OSError, GrpcError, _Broken):
            self.close()  # gone or broken while idle: the call connects anew, as grpc's channel does
            return
        if self._going_away:
            self.close()

    def _receive(self, sock: gevent.socket.socket, call: _Call, deadline: float) -> None:
        """Wait for the next bytes from the server and handle the frames they complete."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            self._cancel(sock, call)
        sock.settimeout(remaining)
        try:
            count = sock.recv_into(self._buffer)
        except TimeoutError:
            self._cancel(sock, call)
        except OSError as exc:
            self.close()
            raise GrpcError("UNAVAILABLE", _lost(exc, "recvmsg")) from None
        if count == 0:
            self.close()
            raise GrpcError("UNAVAILABLE", "Socket closed")
        self._handle_bytes(sock, count, call)

    def _cancel(self, sock: gevent.socket.socket, call: _Call) -> None:
        """The deadline passed: cancel the stream (RST_STREAM CANCEL), keep the connection."""
        try:
            self._send(sock, hf.RstStreamFrame(call.stream_id, error_code=CANCEL).serialize())
        except GrpcError:
            pass  # the connection is gone as well; the next call connects anew
        raise GrpcError("DEADLINE_EXCEEDED", "Deadline Exceeded")

    # ------------------------------------------------------------ frames

    def _handle_bytes(self, sock: gevent.socket.socket, count: int, call: _Call) -> None:
        pending = self._pending
        pending += self._view[:count]
        replies: list[bytes] = []
        at = 0
        with memoryview(pending) as view:
            while len(pending) - at >= FRAME_HEADER:
                frame, length = _parse_header(view[at:at + FRAME_HEADER])
                if length > DEFAULT_FRAME:
                    raise _Broken(f"frame of {length} bytes, over SETTINGS_MAX_FRAME_SIZE")
                end = at + FRAME_HEADER + length
                if len(pending) < end:
                    break
                _parse_body(frame, view[at + FRAME_HEADER:end])
                at = end
                self._handle(frame, call, replies)
        del pending[:at]
        if replies:  # acks and window updates, in one write
            self._send(sock, b"".join(replies))

    def _handle(self, frame: hf.Frame, call: _Call, replies: list[bytes]) -> None:
        if self._block_stream and not isinstance(frame, hf.ContinuationFrame):
            raise _Broken("a header block was interrupted by another frame")
        ours = frame.stream_id == call.stream_id and call.stream_id != 0
        if isinstance(frame, hf.DataFrame):
            self._take_data(frame, call if ours else None, replies)
        elif isinstance(frame, (hf.HeadersFrame, hf.ContinuationFrame)):
            self._take_block(frame, call if ours else None)
        elif isinstance(frame, hf.SettingsFrame):
            self._take_settings(frame, call, replies)
        elif isinstance(frame, hf.PingFrame):
            if "ACK" not in frame.flags:
                replies.append(hf.PingFrame(0, frame.opaque_data, flags=["ACK"]).serialize())
        elif isinstance(frame, hf.WindowUpdateFrame):
            if frame.stream_id == 0:
                self._send_window += frame.window_increment
            elif ours:
                call.send_window += frame.window_increment
        elif isinstance(frame, hf.RstStreamFrame) and ours:
            status = _RESET_STATUS.get(frame.error_code, "INTERNAL")
            call.fail(status, f"Received RST_STREAM with error code {frame.error_code}")
        elif isinstance(frame, hf.GoAwayFrame):
            self._going_away = True  # no new stream here; streams up to last_stream_id may finish
            if call.stream_id > frame.last_stream_id:  # ours was not processed: closed after this read
                call.fail("UNAVAILABLE", f"GOAWAY received; Error code: {frame.error_code}")
        elif isinstance(frame, hf.PushPromiseFrame):
            raise _Broken("PUSH_PROMISE although SETTINGS_ENABLE_PUSH is 0")
        # PRIORITY, ALTSVC and unknown frame types carry nothing for a unary call (RFC 9113 5.5)

    def _take_data(self, frame: hf.DataFrame, call: _Call | None, replies: list[bytes]) -> None:
        # Every DATA frame, ours or a cancelled stream's, uses the connection window: give it back
        # half a window at a time, as h2 and grpc do, so the server never waits on us.
        size = frame.flow_controlled_length
        self._unacked += size
        if self._unacked > WINDOW // 2:
            replies.append(hf.WindowUpdateFrame(0, window_increment=self._unacked).serialize())
            self._unacked = 0
        if call is None:
            return
        call.data += frame.data
        call.received += size
        if call.received > WINDOW // 2:  # an answer over 1 GiB: reopen our stream's window too
            replies.append(hf.WindowUpdateFrame(call.stream_id, window_increment=call.received).serialize())
            call.received = 0
        call.ended = call.ended or "END_STREAM" in frame.flags

    def _take_block(self, frame: hf.HeadersFrame | hf.ContinuationFrame, call: _Call | None) -> None:
        """Decode every header block, a cancelled stream's too: each can change the HPACK table."""
        if isinstance(frame, hf.HeadersFrame):
            self._block_stream = frame.stream_id
            self._block[:] = frame.data
            self._block_ends = "END_STREAM" in frame.flags
        elif frame.stream_id != self._block_stream:
            raise _Broken("CONTINUATION without a header block to continue")
        else:
            self._block += frame.data
        if "END_HEADERS" not in frame.flags:
            return
        self._block_stream = 0
        headers = self._decode(bytes(self._block))
        if call is not None:
            take_headers(call, headers)
            call.ended = call.ended or self._block_ends

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """hpack's decoding of a block, remembered while the server's table stays as it was.

        grpc servers send the same few blocks on every call once their headers are in the
        table (`\x88\xc0`: `:status 200`, `content-type application/grpc`), and hpack's
        decoding was a fifth of the frame work per call. A block that adds to (or resizes) the
        table makes every remembered one mean something else: they are all forgotten then.
        """
        remembered = self._decoded.get(block)
        if remembered is not None:
            return remembered
        entries = self._decoder.header_table.dynamic_entries
        count, first = len(entries), entries[0] if entries else None
        try:
            decoded = [(bytes(name), bytes(value)) for name, value in self._decoder.decode(block, raw=True)]
        except hpack.HPACKError as exc:
            raise _Broken(f"undecodable header block: {exc}") from None
        # An added entry is a new tuple at the front, even when equal to one evicted: identity
        changed = len(entries) != count or (entries and entries[0] is not first)
        if changed or len(self._decoded) >= DECODED_BLOCKS:
            self._decoded.clear()
        else:
            self._decoded[block] = decoded
        return decoded

    def _take_settings(self, frame: hf.SettingsFrame, call: _Call, replies: list[bytes]) -> None:
        if "ACK" in frame.flags:
            return
        for setting, value in frame.settings.items():
            if setting == SETTINGS_INITIAL_WINDOW_SIZE:  # applies to open streams too (RFC 9113 6.9.2)
                call.send_window += value - self._peer_window
                self._peer_window = value
            elif setting == SETTINGS_MAX_FRAME_SIZE:
                self._peer_frame = value
            # SETTINGS_HEADER_TABLE_SIZE bounds the server's decoder table, which our
            # never-indexed block does not use; the rest do not concern a client's unary calls.
        replies.append(hf.SettingsFrame(0, flags=["ACK"]).serialize())


def _parse_header(header: memoryview) -> tuple[hf.Frame, int]:
    try:
        return hf.Frame.parse_frame_header(header)
    except hyperframe.exceptions.HyperframeError as exc:
        raise _Broken(f"bad frame header: {exc}") from None


def _parse_body(frame: hf.Frame, body: memoryview) -> None:
    try:
        frame.parse_body(body)
    except hyperframe.exceptions.HyperframeError as exc:
        raise _Broken(f"bad {type(frame).__name__}: {exc}") from None


def take_headers(call: _Call, headers: list[tuple[bytes, bytes]]) -> None:
    for name, value in headers:
        if name == b":status":
            call.http_status = value
        elif name == b"grpc-status":
            call.status = value
        elif name == b"grpc-message":
            call.message = value


def answer_of(call: _Call) -> bytes:
    """The one message of a finished call, or the GrpcError its status says."""
    if call.error is not None:
        raise call.error
    if call.status is None:
        if call.http_status != b"200":
            code = int(call.http_status) if call.http_status.isdigit() else 0
            raise GrpcError(_HTTP_STATUS.get(code, "UNKNOWN"), f"Received http2 header with status: {code}")
        raise GrpcError("INTERNAL", "Server closed the stream without sending trailers")
    status = status_name(call.status)
    if status != "OK":  # grpc-message is percent-encoded (PROTOCOL-HTTP2.md)
        raise GrpcError(status, unquote(call.message.decode(errors="replace")))
    return message_of(call.data)


def status_name(value: bytes) -> str:
    code = int(value) if value.isdigit() else 2  # not a number: UNKNOWN, as grpc reads it
    return STATUS_NAMES[code] if code < len(STATUS_NAMES) else "UNKNOWN"


def message_of(data: bytearray) -> bytes:
    """The single message of a unary answer's DATA (5-byte prefix, then the message)."""
    if len(data) < _PREFIX.size:
        raise GrpcError("INTERNAL", "No message received for a unary call")
    compressed, length = _PREFIX.unpack_from(data)
    if compressed:  # we offered no grpc-accept-encoding, so the server may not compress
        raise GrpcError("INTERNAL", "Compressed message without a negotiated encoding")
    if len(data) != _PREFIX.size + length:
        raise GrpcError("INTERNAL", f"Unary answer of {len(data)} bytes for a {length}-byte message")
    return bytes(data[_PREFIX.size:])


def _lost(exc: OSError, syscall: str) -> str:
    """grpc's words for a connection lost mid-call: `Stream removed (recvmsg:... (104))`."""
    return f"Stream removed ({syscall}:{exc.strerror or type(exc).__name__} ({exc.errno}))"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
