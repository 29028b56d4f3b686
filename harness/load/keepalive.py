"""One persistent HTTP/1.1 connection sending one pre-built request: a load user's send path.

geventhttpclient's `HTTPClient.post` merges header dicts, formats the request line, takes its
socket from a gevent queue (checking it with a `select` each time) and builds a response object
that calls back into Python for every header, on every request: bench/loadgen.py's profile put
most of the harness's per-request CPU there. Here the request's bytes are made once, the socket
belongs to the user, and the answer goes through the same llhttp parser geventhttpclient uses
(`geventhttpclient._parser`), keeping only the status, the reason and the body.

Failures raise what geventhttpclient's POST raises in the same place, so the error kinds users
derive from them are unchanged: the connect's own error (`ConnectionRefusedError`, a
`TimeoutError` after `connection_timeout`), `TimeoutError` when a send or receive waits longer
than `network_timeout`, `HTTPConnectionClosed` when the server closes (or resets) a kept-alive
connection before the first byte of its answer, `HTTPParseError` for a broken or cut answer.
Like geventhttpclient, a POST is never retried: the server may have processed it. After any
failure the connection is closed and the next request opens a new one.

Once connected, the socket is used as the C-level `_socket.socket` beneath gevent's, with two
readiness watchers and one timeout made per connection and reused by every request: gevent's
socket wrapper made a new Timeout for each wait and asked for the answer once before waiting
for it (a receive that can only fail: the server needs far longer than the send's return).
"""

import _socket
import errno

import gevent.socket
from gevent.hub import get_hub
from geventhttpclient._parser import HTTPParseError, HTTPResponseParser
from geventhttpclient.response import HTTPConnectionClosed
from greenlet import getcurrent
from greenlet import greenlet as Greenlet

RECV_BYTES = 64 * 1024
_SEND_RESETS = (errno.ECONNRESET, errno.EPIPE)
_READ, _WRITE = 1, 2  # libev's readiness events


class _Parser(HTTPResponseParser):
    """llhttp callbacks that keep what a load user reads; header fields are not collected."""

    def __init__(self) -> None:
        super().__init__()
        self.body = bytearray()
        self.reason: list[str] = []
        self.headers_complete = False
        self.complete = False

    def _on_message_begin(self) -> None:  # also the final answer after an interim 1xx
        self.body.clear()
        self.reason.clear()
        self.headers_complete = self.complete = False

    def _on_status(self, text: str) -> None:
        self.reason.append(text)  # llhttp may hand the reason over in pieces

    def _on_header_field(self, text: str) -> None:
        pass

    def _on_header_value(self, text: str) -> None:
        pass

    def _on_headers_complete(self) -> bool:
        self.headers_complete = True
        return False  # a POST's answer has a body (True would mean: skip it, as for HEAD)

    def _on_body(self, data: bytearray) -> None:
        self.body += data

    def _on_message_complete(self) -> None:
        self.complete = True


class Answer:
    """The last answer of a `KeepAliveClient`: reused, so a request allocates only its body."""

    __slots__ = ("status_code", "status_message", "payload")

    def __init__(self) -> None:
        self.status_code = 0
        self.status_message = ""
        self.payload = b""

    def read(self) -> bytes:
        return self.payload


class KeepAliveClient:
    """POSTs to one host:port over one connection, opened on first use and after a failure."""

    def __init__(
        self, host: str, port: int, *, connection_timeout: float, network_timeout: float,
        headers: dict[str, str] | None = None,
    ):
        self.host = host
        self.port = port
        self.connection_timeout = connection_timeout
        self.network_timeout = network_timeout
        self.headers = dict(headers or {})
        self.answer = Answer()
        self._sock: _Connection | None = None
        self._parser = _Parser()
        self._buffer = bytearray(RECV_BYTES)
        self._view = memoryview(self._buffer)
        self._prepared: tuple[str, bytes, bytes] | None = None  # path, body, the request's bytes

    def prepare(self, path: str, body: bytes) -> None:
        """Build the request for (path, body) now; `post` with the same two sends it as is."""
        self._prepared = (path, body, self.request_bytes(path, body))

    def request_bytes(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        merged = {**self.headers, **(headers or {})}
        lines += [f"{name}: {value}" for name, value in merged.items() if name.lower() != "content-length"]
        lines.append(f"Content-Length: {len(body)}")
        # latin-1, as geventhttpclient and http.client write a request head
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Answer:
        prepared = self._prepared
        if prepared is not None and prepared[1] is body and prepared[0] == path and (
            headers is None or headers == self.headers
        ):
            request = prepared[2]
        else:
            request = self.request_bytes(path, body, headers)
        sock = self._sock if self._sock is not None else self._connect()
        try:
            sock.send_all(request)
        except OSError as exc:
            if exc.errno not in _SEND_RESETS:
                self.close()
                raise
            # The server closed while we sent: it may have answered first (geventhttpclient
            # reads that answer too), else reading raises why.
        try:
            return self._read(sock)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _connect(self) -> "_Connection":
        connected = gevent.socket.create_connection((self.host, self.port), timeout=self.connection_timeout)
        sock = self._sock = _Connection(connected, self.network_timeout)
        self._parser = _Parser()  # a new connection is a new byte stream
        return sock

    def _read(self, sock: "_Connection") -> Answer:
        parser, view = self._parser, self._view
        parser.headers_complete = parser.complete = False  # still set by the previous answer
        first = True
        sock.wait_readable()  # the answer is not there yet: wait for it before asking
        while not parser.complete or parser.get_code() < 200:  # interim 1xx answers come first
            try:
                count = sock.recv_into(self._buffer)
            except OSError as exc:
                if first and exc.errno == errno.ECONNRESET:
                    raise HTTPConnectionClosed("connection closed.") from None
                raise
            if count == 0:
                if first:
                    raise HTTPConnectionClosed("connection closed.")
                if not parser.headers_complete:
                    raise HTTPParseError("connection closed before end of the headers")
                parser.feed(b"")  # the end of a body read to the close, or `Incomplete response.`
                if not parser.complete:
                    raise HTTPParseError("connection closed before the end of the answer")
                break
            first = False
            parser.feed(view[:count].tobytes())  # the parser takes read-only bytes only
        answer = self.answer
        answer.status_code = parser.get_code()
        answer.status_message = "".join(parser.reason)
        answer.payload = bytes(parser.body)
        if not parser.should_keep_alive():
            self.close()
        return answer


class _Connection:
    """A connected non-blocking socket whose waits go through the gevent hub, each no longer than
    `network_timeout` (then TimeoutError, as a gevent socket with that timeout raises)."""

    def __init__(self, connected: gevent.socket.socket, network_timeout: float):
        self._sock = _socket.socket(fileno=connected.detach())  # the same fd, without the wrapper
        self._sock.setblocking(False)
        loop = get_hub().loop
        self._readable = loop.io(self._sock.fileno(), _READ)
        self._writable = loop.io(self._sock.fileno(), _WRITE)
        # repeat = after, so that `again` restarts it from the whole timeout: libev keeps only
        # the time left when a plain timer is stopped, and a plain restart would wait that.
        self._timer = loop.timer(network_timeout, network_timeout)

    def send_all(self, data: bytes) -> None:
        # send, not sendall: a request this small almost always goes in one send
        sent = 0
        while sent < len(data):
            try:
                sent += self._sock.send(data[sent:] if sent else data)
            except BlockingIOError:
                self._wait(self._writable)

    def recv_into(self, buffer: bytearray) -> int:
        while True:
            try:
                return self._sock.recv_into(buffer)
            except BlockingIOError:
                self._wait(self._readable)

    def wait_readable(self) -> None:
        self._wait(self._readable)

    def close(self) -> None:
        self._timer.close()
        self._readable.close()
        self._writable.close()
        self._sock.close()

    def _wait(self, watcher: object) -> None:
        self._timer.again(_time_out, getcurrent(), update=True)
        try:
            get_hub().wait(watcher)
        finally:
            self._timer.stop()


def _time_out(waiting: Greenlet) -> None:
    waiting.throw(TimeoutError("timed out"))  # what a gevent socket raises when its timeout ends
