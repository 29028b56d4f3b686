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
"""

import errno

import gevent.socket
from geventhttpclient._parser import HTTPParseError, HTTPResponseParser
from geventhttpclient.response import HTTPConnectionClosed

RECV_BYTES = 64 * 1024
_SEND_RESETS = (errno.ECONNRESET, errno.EPIPE)


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
        self._sock: gevent.socket.socket | None = None
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
            # send, not sendall: gevent's sendall asks the kernel for SO_SNDBUF on every call to
            # size its chunks; a request this small almost always goes in one send.
            sent = sock.send(request)
            while sent < len(request):
                sent += sock.send(request[sent:])
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

    def _connect(self) -> gevent.socket.socket:
        sock = gevent.socket.create_connection((self.host, self.port), timeout=self.connection_timeout)
        sock.settimeout(self.network_timeout)  # each send and receive, as geventhttpclient
        self._sock = sock
        self._parser = _Parser()  # a new connection is a new byte stream
        return sock

    def _read(self, sock: gevent.socket.socket) -> Answer:
        parser, view = self._parser, self._view
        parser.headers_complete = parser.complete = False  # still set by the previous answer
        first = True
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
