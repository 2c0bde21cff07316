"""Accept-Encoding for the HTTP facades, read with werkzeug's Accept parser. Reads the request; renders nothing."""

from __future__ import annotations

from flask import request
from werkzeug.http import parse_accept_header

GZIP_CODINGS = ("gzip", "x-gzip")  # RFC 9110 §8.4.1.3: a recipient treats x-gzip as gzip
#: gzip_accepted's answers by header (a pure function of it; bounded: clients send a handful of distinct ones).
_GZIP: dict[str, bool] = {}
_MEMO_MAX = 256


def gzip_accepted(header: str) -> bool:
    """Whether an Accept-Encoding value lets us answer in gzip (RFC 9110 §12.5.3).

    An explicit gzip (or x-gzip) entry decides, whatever ``*`` says (``gzip;q=0, *`` refuses gzip); without
    one, ``*`` decides; q is case-insensitive (``gzip;Q=0``) and q=0 means "not acceptable"."""
    try:
        return _GZIP[header]
    except KeyError:
        pass
    explicit: float | None = None
    star: float | None = None
    for coding, quality in parse_accept_header(header):
        name = coding.lower()
        if name in GZIP_CODINGS:
            explicit = quality if explicit is None else max(explicit, quality)
        elif name == "*":
            star = quality
    chosen = explicit if explicit is not None else star
    answer = chosen is not None and chosen > 0
    if len(_GZIP) < _MEMO_MAX:
        _GZIP[header] = answer
    return answer


def accepts_gzip() -> bool:
    """Whether the current request accepts a gzip answer."""
    # request.headers.get, without the KeyError EnvironHeaders raises for a missing header
    return gzip_accepted(request.environ.get("HTTP_ACCEPT_ENCODING", ""))
