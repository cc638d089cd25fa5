"""A --console-socket receiver: accepts one connection and takes the pty master fd (SCM_RIGHTS)."""

from __future__ import annotations

import array
import os
import socket
import threading


class ConsoleSocket:
    def __init__(self, path: str):
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.master_fd: int | None = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            fds = array.array("i")
            _, ancdata, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
            self.master_fd = fds[0] if fds else None

    def read_all(self, timeout: float = 10) -> str:
        self.thread.join(timeout)
        assert self.master_fd is not None, "no pty master received"
        chunks = []
        while True:
            try:
                data = os.read(self.master_fd, 4096)
            except OSError:      # EIO once the slave side is closed
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def close(self) -> None:
        if self.master_fd is not None:
            os.close(self.master_fd)
        self.server.close()
