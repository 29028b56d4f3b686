"""The HTTP users' persistent connection: one pre-built request, and failures raised as before.

A loopback server in a thread answers as each test scripts it (a real socket, real bytes); the
error kinds are then read through the Triton HTTP user's own `send`.
"""

import socket
from collections.abc import Callable, Iterator

import pytest
from geventhttpclient._parser import HTTPParseError
from geventhttpclient.response import HTTPConnectionClosed

from harness.load.keepalive import KeepAliveClient
from harness.load.target import Target
from harness.triton.http_user import HEADERS, TritonHttpUser
from tests.unit.loopback import LoopbackServer

PATH = "/v2/models/identity/infer"
BODY = b'{"inputs": []}'
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'

Script = Callable[[socket.socket, bytes], bool]  # answer one request; False: close the connection


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += conn.recv(65536)
    return data


class Server(LoopbackServer):
    """Answers each request with the next script in the list."""

    def __init__(self, scripts: list[Script]):
        super().__init__(scripts)
        self.requests: list[bytes] = []
        self.connections = 0
        self.start()

    def serve(self, conn: socket.socket) -> None:
        self.connections += 1
        while self.scripts:
            request = read_request(conn)
            if not request:
                break
            self.requests.append(request)
            if not self.scripts.pop(0)(conn, request):
                break


def answer(raw: bytes, keep: bool = True) -> Script:
    def script(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(raw)
        return keep
    return script


def silent(conn: socket.socket, request: bytes) -> bool:
    conn.settimeout(5)
    conn.recv(1)  # no answer until the client gives up and closes
    return False


def reset(conn: socket.socket, request: bytes) -> bool:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return False  # closed with linger 0: an RST


Serve = Callable[[list[Script]], Server]


@pytest.fixture()
def serve() -> Iterator[Serve]:
    servers: list[Server] = []

    def make(scripts: list[Script]) -> Server:
        servers.append(Server(scripts))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def client(port: int, timeout: float = 0.3) -> KeepAliveClient:
    c = KeepAliveClient("127.0.0.1", port, connection_timeout=timeout, network_timeout=timeout,
                        headers=HEADERS)
    c.prepare(PATH, BODY)
    return c


def user(c: KeepAliveClient) -> TritonHttpUser:
    """The Triton HTTP user's send path over this client (no Locust run)."""
    u = object.__new__(TritonHttpUser)
    u.target = Target(f"http://127.0.0.1:{c.port}", None, "identity", request_timeout=0.3)  # type: ignore[misc]
    u.client = c  # type: ignore[assignment]
    u.request_path, u.request_body, u.request_name = PATH, BODY, f"POST {PATH}"
    return u


def test_requests_share_one_connection_and_go_out_as_prepared(serve: Serve) -> None:
    server = serve([answer(OK), answer(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"),
                    answer(OK)])
    c = client(server.port)
    first = c.post(PATH, BODY, HEADERS)
    assert (first.status_code, first.status_message, first.read()) == (200, "OK", b"{}")
    second = c.post(PATH, BODY, HEADERS)
    assert (second.status_code, second.status_message, second.read()) == (503, "Service Unavailable", b"busy")
    assert c.post(PATH, BODY, HEADERS).read() == b"{}"
    assert server.connections == 1
    assert server.requests == [c.request_bytes(PATH, BODY)] * 3
    head = server.requests[0].split(b"\r\n\r\n")[0]
    assert head.startswith(b"POST /v2/models/identity/infer HTTP/1.1\r\n")
    assert b"Content-Length: 14" in head and b"Content-Type: application/json" in head
    assert server.requests[0].endswith(BODY)


def test_connection_close_and_interim_answers(serve: Serve) -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    server = serve([answer(closing), answer(interim), answer(OK)])
    c = client(server.port)
    assert c.post(PATH, BODY).read() == b"{}"
    assert c.post(PATH, BODY).status_code == 200  # on a new connection: the server closed the first
    assert c.post(PATH, BODY).status_code == 200
    assert server.connections == 2


def test_other_requests_are_built_when_sent(serve: Serve) -> None:
    server = serve([answer(OK)])
    c = client(server.port)
    c.post("/other", b"xy", {"X-Test": "1"})
    assert server.requests[0].startswith(b"POST /other HTTP/1.1\r\n") and b"X-Test: 1" in server.requests[0]
    assert server.requests[0].endswith(b"\r\n\r\nxy")


@pytest.mark.parametrize("script, error", [
    (answer(b"", keep=False), HTTPConnectionClosed),  # closed before the first byte of an answer
    (reset, HTTPConnectionClosed),
    (answer(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}", keep=False), HTTPParseError),
    (answer(b"HTTP/1.1 200 OK\r\nContent-Le", keep=False), HTTPParseError),
    (answer(b"garbage\r\n\r\n", keep=False), HTTPParseError),
    (silent, TimeoutError),
])
def test_failures_raise_what_geventhttpclient_raised_and_the_next_request_reconnects(
    serve: Serve, script: Script, error: type[BaseException]
) -> None:
    server = serve([script, answer(OK)])
    c = client(server.port)
    with pytest.raises(error):
        c.post(PATH, BODY)
    assert c.post(PATH, BODY).read() == b"{}"
    assert server.connections == 2


@pytest.mark.parametrize("script, kind", [
    (answer(b"", keep=False), "HTTPConnectionClosed"),
    (silent, "timeout"),
    (answer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\nno such"), "http_404"),
    (answer(OK), None),
])
def test_the_triton_users_error_kinds(serve: Serve, script: Script,
                                      kind: str | None) -> None:
    server = serve([script])
    outcome = user(client(server.port)).send()
    assert outcome.error_kind == kind
    if kind == "http_404":
        assert outcome.detail == f"POST {PATH} -> 404 Not Found: no such"


def test_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as spare:
        port = spare.getsockname()[1]
    outcome = user(client(port)).send()
    assert outcome.error_kind == "ConnectionRefusedError"


def slow(seconds: float, raw: bytes = OK) -> Script:
    def script(conn: socket.socket, request: bytes) -> bool:
        import time

        time.sleep(seconds)
        conn.sendall(raw)
        return True
    return script


def test_the_network_timeout_is_each_waits_own_on_a_reused_connection(serve: Serve) -> None:
    # Three answers of 0.2 s each on one connection with a 0.3 s timeout: a timeout that was not
    # cancelled after each wait, or that counted from the connection's start, would fire here.
    server = serve([slow(0.2), slow(0.2), slow(0.2), silent, answer(OK)])
    c = client(server.port)
    for _ in range(3):
        assert c.post(PATH, BODY).read() == b"{}"
    assert server.connections == 1
    with pytest.raises(TimeoutError):
        c.post(PATH, BODY)
    assert c.post(PATH, BODY).read() == b"{}"
    assert server.connections == 2


def test_an_answer_in_many_pieces_is_read_whole(serve: Serve) -> None:
    body = b"x" * 300_000  # several receives of RECV_BYTES, with waits between them

    def pieces(conn: socket.socket, request: bytes) -> bool:
        import time

        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), 100_000):
            conn.sendall(body[start:start + 100_000])
            time.sleep(0.02)
        return True

    server = serve([pieces, answer(OK)])
    c = client(server.port)
    assert c.post(PATH, BODY).read() == body
    assert c.post(PATH, BODY).read() == b"{}"
    assert server.connections == 1
