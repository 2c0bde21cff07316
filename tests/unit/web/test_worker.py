"""When the HTTP worker deems a buffered request complete enough to hand to a thread (sds_registry/web/worker.py)."""

from __future__ import annotations

import pytest

from sds_registry.web.worker import BUFFERED_BODY_BYTES, MAX_HEAD_BYTES, request_complete

HEAD = b"POST /api/providers HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(("buffer", "complete"), [
    (b"", False),
    (b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n", False),  # head not ended
    (b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n", True),  # no body
    (HEAD + b"Content-Length: 5\r\n\r\n{}", False),  # 2 of 5 bytes
    (HEAD + b"content-length:5\r\n\r\n{\"a\"}", True),
    (HEAD + b"Content-Length: 5\r\n\r\n{\"a\"}GET / HTTP/1.1\r\n", True),  # pipelined: the parser splits them
    (HEAD + b"Content-Length: " + str(BUFFERED_BODY_BYTES + 1).encode() + b"\r\n\r\n", True),  # streams instead
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", False),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", True),
    (b"GET /" + b"a" * MAX_HEAD_BYTES, True),  # gunicorn's parser refuses it under its own limits
])
def test_request_complete(buffer: bytes, complete: bool) -> None:
    assert request_complete(buffer) is complete
