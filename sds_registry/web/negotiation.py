"""Content negotiation shared by the HTTP facades (Accept-Encoding). Reads the request; renders nothing."""

from __future__ import annotations

from flask import request


def accepts_gzip() -> bool:
    # request.headers.get, without the KeyError EnvironHeaders raises for a missing header
    for part in request.environ.get("HTTP_ACCEPT_ENCODING", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*") and "q=0" not in params.replace(" ", "").split(
            ","
        ):
            q = params.replace(" ", "")
            if q in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
                continue
            return True
    return False
