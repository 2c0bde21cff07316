"""gunicorn's gthread worker, with each request read whole on the worker's event loop before a thread takes it.

Why: the stock gthread worker hands every new connection to a pool thread, which waits up to 5 s for a first
byte and then reads the head and body with blocking calls. With 2 workers x 4 threads, eight clients sending a
byte every few seconds (slowloris), or a few hundred idle connections, held every thread: lookups waited
10-15 s (bench/hostile.py). Here the worker's own selector loop reads what a connection sends, without
blocking, until a complete request head and (for a Content-Length body up to BUFFERED_BODY_BYTES, or a
chunked one up to that size) its body are buffered; only then is the connection given to a thread, with the
bytes pushed back into gunicorn's parser. A request that is not complete REQUEST_READ_SECONDS after its first
byte (or after the connection opened, for a new connection) is answered 408 and closed. Kept-alive connections
go through the same path for their next request. TLS and HTTP/2 connections (the facade serves neither) keep
gunicorn's own path. Nothing of the app is imported here.
"""

from __future__ import annotations

import errno
import re
import selectors
import time
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

#: Seconds a request's head and buffered body have to arrive in, from its first byte (new connections: from accept).
REQUEST_READ_SECONDS = 10.0
#: Bodies up to this many bytes are buffered before a thread is taken; larger ones stream to the thread.
BUFFERED_BODY_BYTES = 1 << 20
#: A head longer than this goes to gunicorn's parser as it is (which refuses it under its own limits).
MAX_HEAD_BYTES = 64 * 1024
TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*(\d{1,12})[ \t]*(?=\r\n)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.IGNORECASE)


def request_complete(buffer: bytes | bytearray) -> bool:
    """Whether ``buffer`` holds a whole request head and the body this worker buffers (or more than it would)."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return len(buffer) > MAX_HEAD_BYTES
    head = bytes(buffer[:end + 2])
    body = len(buffer) - end - 4
    if _CHUNKED.search(head):
        return body > BUFFERED_BODY_BYTES or buffer.find(b"0\r\n\r\n", end + 4) >= 0
    match = _CONTENT_LENGTH.search(head)
    if match is None:
        return True
    length = int(match.group(1))
    return length > BUFFERED_BODY_BYTES or body >= length


class BufferingThreadWorker(ThreadWorker):  # type: ignore[misc]
    """The gthread worker reading requests on its event loop; threads only run complete requests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading: dict[int, tuple[Any, bytearray, float]] = {}  # fd -> (conn, bytes so far, deadline)

    def accept(self, listener: Any) -> None:
        if self.cfg.is_ssl:
            super().accept(listener)
            return
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._read_request(TConn(self.cfg, sock, client, listener.getsockname()))  # TConn makes it non-blocking

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection's next request: read it here too."""
        if self.cfg.is_ssl:
            super().on_client_socket_readable(conn, client)
            return
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read_request(conn)

    def _read_request(self, conn: Any) -> None:
        fd = conn.sock.fileno()
        self.reading[fd] = (conn, bytearray(), time.monotonic() + REQUEST_READ_SECONDS)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, fd))

    def _on_readable(self, fd: int, _sock: Any) -> None:
        conn, buffer, deadline = self.reading[fd]
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._forget(fd)
            self.nr_conns -= 1
            conn.close()
            return
        buffer += data
        if not request_complete(buffer):
            return
        self._forget(fd)
        conn.sock.setblocking(True)
        conn.init()
        conn.parser.unreader.unread(bytes(buffer))
        conn.data_ready = True
        self.enqueue_req(conn)

    def _forget(self, fd: int) -> None:
        self.reading.pop(fd, None)
        try:
            self.poller.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        for fd, (conn, buffer, deadline) in list(self.reading.items()):
            if deadline > now and self.alive:
                continue
            self._forget(fd)
            self.nr_conns -= 1
            if buffer:
                try:
                    conn.sock.send(TIMEOUT_ANSWER)
                except OSError:
                    pass
            conn.close()
