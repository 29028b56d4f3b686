"""The gRPC user's own HTTP/2 transport: the frames it sends, the answers it reads, its error kinds.

A loopback HTTP/2 server in a thread reads the client's frames (hyperframe, hpack) and answers
as each test scripts it, on a real socket; error kinds are also read through the user's `send`.
"""

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote

import gevent
import hpack
import hyperframe.frame as hf
import pytest

from harness.load.h2_unary import (
    PREFACE,
    GrpcError,
    H2UnaryChannel,
    framed,
    grpc_timeout,
    message_of,
    status_name,
)
from harness.load.target import Target
from harness.triton.grpc_user import MODEL_INFER, TritonGrpcUser
from tests.unit.loopback import LoopbackServer

MESSAGE = b"\x0a\x08identity"  # any bytes: the transport does not parse messages
ANSWER = b"answer-bytes"
OK_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
F = TypeVar("F", bound=hf.Frame)


@dataclass
class Conn:
    """One accepted connection as the server sees it."""

    sock: socket.socket
    encoder: hpack.Encoder = field(default_factory=hpack.Encoder)
    decoder: hpack.Decoder = field(default_factory=hpack.Decoder)
    frames: list[hf.Frame] = field(default_factory=list)
    headers: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    bodies: dict[int, bytes] = field(default_factory=dict)

    def send(self, *frames: hf.Frame) -> None:
        self.sock.sendall(b"".join(f.serialize() for f in frames))

    def block(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        return self.encoder.encode(headers)  # stateful: indexes what it sent before, as grpc does

    def answer(self, stream: int, message: bytes = ANSWER, status: int = 0, text: str = "") -> None:
        trailers = [(b"grpc-status", str(status).encode())]
        if text:
            trailers.append((b"grpc-message", quote(text).encode()))
        self.send(
            hf.HeadersFrame(stream, self.block(OK_HEADERS), flags=["END_HEADERS"]),
            hf.DataFrame(stream, framed(message)),
            hf.HeadersFrame(stream, self.block(trailers), flags=["END_HEADERS", "END_STREAM"]),
        )


# Called with each request once its DATA ended; False closes the connection.
Script = Callable[[Conn, int], bool]


def answers(conn: Conn, stream: int) -> bool:
    conn.answer(stream)
    return True


class Server(LoopbackServer):
    """Answers the n-th request with the n-th script."""

    def __init__(self, scripts: list[Script], settings: dict[int, int] | None = None):
        super().__init__(scripts)
        self.settings = settings or {}
        self.conns: list[Conn] = []
        self.on_data: Callable[[Conn, hf.DataFrame], None] = lambda conn, frame: None
        self.start()

    def serve(self, sock: socket.socket) -> None:
        conn = Conn(sock)
        self.conns.append(conn)
        conn.send(hf.SettingsFrame(0, settings=self.settings))
        self._talk(conn)

    def _talk(self, conn: Conn) -> None:
        data = b""
        while len(data) < len(PREFACE):
            chunk = conn.sock.recv(65536)
            if not chunk:
                return
            data += chunk
        assert data.startswith(PREFACE)
        data = data[len(PREFACE):]
        while self.scripts:
            while len(data) < 9 or len(data) < 9 + int.from_bytes(data[:3], "big"):
                chunk = conn.sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            frame, length = hf.Frame.parse_frame_header(memoryview(data[:9]))
            frame.parse_body(memoryview(data[9:9 + length]))
            data = data[9 + length:]
            conn.frames.append(frame)
            if isinstance(frame, hf.HeadersFrame):
                conn.headers[frame.stream_id] = dict(conn.decoder.decode(frame.data, raw=True))
            elif isinstance(frame, hf.DataFrame):
                conn.bodies[frame.stream_id] = conn.bodies.get(frame.stream_id, b"") + frame.data
                self.on_data(conn, frame)
                if "END_STREAM" in frame.flags and not self.scripts.pop(0)(conn, frame.stream_id):
                    return

    def frames(self, kind: type[F], conn: int = 0) -> list[F]:
        return [f for f in self.conns[conn].frames if isinstance(f, kind)]


Serve = Callable[..., Server]


@pytest.fixture()
def serve() -> Iterator[Serve]:
    servers: list[Server] = []

    def make(scripts: list[Script], settings: dict[int, int] | None = None) -> Server:
        servers.append(Server(scripts, settings))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def channel(port: int, timeout: float = 0.5) -> H2UnaryChannel:
    return H2UnaryChannel("127.0.0.1", port, MODEL_INFER, timeout=timeout, user_agent="test")


def failure(c: H2UnaryChannel, payload: bytes = framed(MESSAGE)) -> tuple[str, str]:
    with pytest.raises(GrpcError) as raised:
        c.call(payload)
    return raised.value.status, raised.value.message


def test_calls_share_one_connection_with_the_request_made_once(serve: Serve) -> None:
    server = serve([answers, answers, answers])
    c = channel(server.port)
    payload = framed(MESSAGE)
    assert [c.call(payload) for _ in range(3)] == [ANSWER] * 3
    assert len(server.conns) == 1
    conn = server.conns[0]
    assert sorted(conn.headers) == [1, 3, 5]  # a new stream per call
    assert conn.headers[1] == conn.headers[5] == {
        b":method": b"POST", b":scheme": b"http", b":path": MODEL_INFER.encode(),
        b":authority": f"127.0.0.1:{server.port}".encode(), b"content-type": b"application/grpc",
        b"te": b"trailers", b"grpc-timeout": b"500000u", b"user-agent": b"test",
    }
    assert conn.bodies == {1: payload, 3: payload, 5: payload}
    assert payload == b"\x00\x00\x00\x00\x0a" + MESSAGE


def test_settings_and_pings_are_acknowledged(serve: Serve) -> None:
    def ping_first(conn: Conn, stream: int) -> bool:
        conn.send(hf.PingFrame(0, b"12345678"), hf.SettingsFrame(0, settings={0x3: 100}))
        conn.answer(stream)
        return True

    server = serve([ping_first, answers])
    c = channel(server.port)
    assert c.call(framed(MESSAGE)) == ANSWER
    assert c.call(framed(MESSAGE)) == ANSWER  # the acks went out before or with this request
    pings = server.frames(hf.PingFrame)
    assert [(p.opaque_data, "ACK" in p.flags) for p in pings] == [(b"12345678", True)]
    acks = [s for s in server.frames(hf.SettingsFrame) if "ACK" in s.flags]
    assert len(acks) == 2  # the server's first SETTINGS and the one mid-call


def test_a_payload_larger_than_the_servers_window_waits_for_it_to_open(serve: Serve) -> None:
    server = serve([answers, answers], settings={0x4: 100})  # SETTINGS_INITIAL_WINDOW_SIZE 100
    # the server's half: each DATA read gives its size back to the stream's window
    server.on_data = lambda conn, frame: conn.send(
        hf.WindowUpdateFrame(frame.stream_id, window_increment=len(frame.data)))
    c = channel(server.port)
    assert c.call(framed(MESSAGE)) == ANSWER  # the server's SETTINGS are read by now
    big = framed(b"x" * 300)
    assert c.call(big) == ANSWER
    assert [len(f.data) for f in server.frames(hf.DataFrame) if f.stream_id == 3] == [100, 100, 100, 5]
    assert server.conns[0].bodies[3] == big


@pytest.mark.parametrize("status, text, expected", [
    (5, "unknown model: 'm' is not found", ("NOT_FOUND", "unknown model: 'm' is not found")),
    (3, "100% wrong\n", ("INVALID_ARGUMENT", "100% wrong\n")),  # percent-encoded on the wire
    (13, "", ("INTERNAL", "")),
    (99, "odd", ("UNKNOWN", "odd")),
])
def test_grpc_status_of_the_trailers(serve: Serve, status: int, text: str, expected: tuple[str, str]) -> None:
    def fails(conn: Conn, stream: int) -> bool:
        conn.answer(stream, b"", status, text)
        return True

    server = serve([fails, answers])
    c = channel(server.port)
    assert failure(c) == expected
    assert c.call(framed(MESSAGE)) == ANSWER and len(server.conns) == 1  # the connection stays


def test_a_trailers_only_answer(serve: Serve) -> None:
    def trailers_only(conn: Conn, stream: int) -> bool:
        block = conn.block([*OK_HEADERS, (b"grpc-status", b"14"), (b"grpc-message", b"shutting down")])
        conn.send(hf.HeadersFrame(stream, block, flags=["END_HEADERS", "END_STREAM"]))
        return True

    server = serve([trailers_only])
    assert failure(channel(server.port)) == ("UNAVAILABLE", "shutting down")


@pytest.mark.parametrize("code, status", [(0x7, "UNAVAILABLE"), (0x8, "CANCELLED"), (0x2, "INTERNAL"),
                                          (0xB, "RESOURCE_EXHAUSTED")])
def test_a_reset_stream(serve: Serve, code: int, status: str) -> None:
    def resets(conn: Conn, stream: int) -> bool:
        conn.send(hf.RstStreamFrame(stream, error_code=code))
        return True

    server = serve([resets, answers])
    c = channel(server.port)
    assert failure(c) == (status, f"Received RST_STREAM with error code {code}")
    assert c.call(framed(MESSAGE)) == ANSWER and len(server.conns) == 1


def test_a_non_200_answer_without_grpc_status(serve: Serve) -> None:
    def http_503(conn: Conn, stream: int) -> bool:
        block = conn.block([(b":status", b"503")])
        conn.send(hf.HeadersFrame(stream, block, flags=["END_HEADERS", "END_STREAM"]))
        return True

    server = serve([http_503])
    assert failure(channel(server.port)) == ("UNAVAILABLE", "Received http2 header with status: 503")


def test_a_lost_connection_is_unavailable_and_the_next_call_reconnects(serve: Serve) -> None:
    def closes(conn: Conn, stream: int) -> bool:
        return False

    def resets(conn: Conn, stream: int) -> bool:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        return False  # closed with linger 0: an RST

    server = serve([closes, resets, answers])
    c = channel(server.port)
    assert failure(c) == ("UNAVAILABLE", "Socket closed")
    status, message = failure(c)  # seen reading the answer, or writing the SETTINGS ack before it
    assert status == "UNAVAILABLE"
    assert message in ("Stream removed (recvmsg:Connection reset by peer (104))",
                       "Stream removed (sendmsg:Connection reset by peer (104))")
    assert c.call(framed(MESSAGE)) == ANSWER
    assert len(server.conns) == 3


def test_a_connection_the_server_closed_between_calls_is_replaced_silently(serve: Serve) -> None:
    def answers_and_closes(conn: Conn, stream: int) -> bool:
        conn.answer(stream)
        return False

    server = serve([answers_and_closes, answers])
    c = channel(server.port)
    assert c.call(framed(MESSAGE)) == ANSWER
    gevent.sleep(0.05)  # the close arrives while the channel is idle
    assert c.call(framed(MESSAGE)) == ANSWER  # as grpc's channel: no failed call for it
    assert len(server.conns) == 2


def test_goaway(serve: Serve) -> None:
    def goaway_before(conn: Conn, stream: int) -> bool:  # our stream was not processed
        conn.send(hf.GoAwayFrame(0, last_stream_id=0, error_code=0))
        return False

    def goaway_after(conn: Conn, stream: int) -> bool:  # processed: it still finishes
        conn.send(hf.GoAwayFrame(0, last_stream_id=stream, error_code=0))
        conn.answer(stream)
        return False

    server = serve([goaway_before, goaway_after, answers])
    c = channel(server.port)
    assert failure(c) == ("UNAVAILABLE", "GOAWAY received; Error code: 0")
    assert c.call(framed(MESSAGE)) == ANSWER
    assert c.call(framed(MESSAGE)) == ANSWER
    assert len(server.conns) == 3


def test_the_deadline_cancels_the_stream_and_keeps_the_connection(serve: Serve) -> None:
    def silent(conn: Conn, stream: int) -> bool:
        return True

    def late_then_answers(conn: Conn, stream: int) -> bool:
        conn.answer(stream - 2)  # the cancelled call's answer comes late, then this one's
        conn.answer(stream)
        return True

    server = serve([silent, late_then_answers])
    c = channel(server.port, timeout=0.2)
    assert failure(c) == ("DEADLINE_EXCEEDED", "Deadline Exceeded")
    assert c.call(framed(MESSAGE)) == ANSWER
    assert len(server.conns) == 1
    resets = server.frames(hf.RstStreamFrame)
    assert [(r.stream_id, r.error_code) for r in resets] == [(1, 0x8)]  # CANCEL


def test_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as spare:
        port = spare.getsockname()[1]
    status, message = failure(channel(port))
    assert status == "UNAVAILABLE"
    assert message == ("failed to connect to all addresses; last error: UNKNOWN: "
                       f"ipv4:127.0.0.1:{port}: Failed to connect to remote host: Connection refused")


def test_header_blocks_decode_right_while_the_servers_table_changes(serve: Serve) -> None:
    texts = ["first", "first", "second", "first", "a" * 5000, "first"]

    def fails_with(text: str) -> Script:
        def script(conn: Conn, stream: int) -> bool:
            conn.answer(stream, b"", 5, text)  # grpc-message indexed: the table changes
            return True
        return script

    server = serve([fails_with(t) for t in texts])
    c = channel(server.port)
    assert [failure(c) for _ in texts] == [("NOT_FOUND", t) for t in texts]


@pytest.mark.parametrize("data, expected", [
    (bytearray(framed(b"abc")), b"abc"),
    (bytearray(framed(b"")), b""),
])
def test_message_of(data: bytearray, expected: bytes) -> None:
    assert message_of(data) == expected


@pytest.mark.parametrize("data", [bytearray(b"\x00\x00"), bytearray(b"\x01\x00\x00\x00\x01x"),
                                  bytearray(framed(b"abc") + b"extra")])
def test_message_of_a_bad_answer_is_internal(data: bytearray) -> None:
    with pytest.raises(GrpcError) as raised:
        message_of(data)
    assert raised.value.status == "INTERNAL"


def test_grpc_timeout_and_status_names() -> None:
    assert grpc_timeout(10.0) == b"10000000u"
    assert grpc_timeout(1000.0) == b"1000000m"
    assert grpc_timeout(10**6) == b"1000000S"
    assert [status_name(v) for v in (b"0", b"4", b"14", b"16", b"17", b"x")] == [
        "OK", "DEADLINE_EXCEEDED", "UNAVAILABLE", "UNAUTHENTICATED", "UNKNOWN", "UNKNOWN"]


def user(port: int, timeout: float = 0.3) -> TritonGrpcUser:
    """The user's send path over a channel to this port (no Locust run)."""
    u = object.__new__(TritonGrpcUser)
    u.target = Target(None, f"127.0.0.1:{port}", "identity", request_timeout=timeout)  # type: ignore[misc]
    u.h2 = channel(port, timeout)
    u.payload = framed(MESSAGE)
    u.call_name = "gRPC ModelInfer identity"
    return u


def test_the_users_outcomes(serve: Serve) -> None:
    def not_found(conn: Conn, stream: int) -> bool:
        conn.answer(stream, b"", 5, "no such model")
        return True

    def silent(conn: Conn, stream: int) -> bool:
        return True

    server = serve([answers, not_found, silent, answers])  # the last keeps the connection open
    u = user(server.port)
    ok = u.send()
    assert (ok.error_kind, ok.length) == (None, len(ANSWER))
    assert u.send().error_kind == "grpc_NOT_FOUND"
    assert u.send().detail == "no response within 0.3s to gRPC ModelInfer identity (load.request_timeout)"
    u.on_stop()
    gone = user(server.port)
    server.close()
    refused = gone.send()
    assert refused.error_kind == "grpc_UNAVAILABLE"
    assert refused.detail.startswith("gRPC ModelInfer identity -> UNAVAILABLE: failed to connect to all")
