"""A scripted loopback server in a thread, for the load users' connection tests."""

import socket
import threading
from typing import Any


class LoopbackServer:
    """Accepts connections on 127.0.0.1 while `scripts` last; `serve(conn)` talks on each."""

    def __init__(self, scripts: list[Any]):
        self.scripts = scripts
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)

    def _accept(self) -> None:
        while self.scripts:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                self.serve(conn)
