"""The shapes bench/ssp_fuzz.py sends the SSP: each builds one connection's bytes around a valid, allowed
request, with a whole valid request (target ``?smuggled=1``) hidden where only a mis-framing parser would read
it as a request of its own. Pure: bytes out, no I/O."""

from __future__ import annotations

import random
from collections.abc import Callable

from bench.ssp import CONSUMER_ASID, METADATA, PROVIDER_ASID, ROOT

SMUGGLED = b"smuggled=1"
TRACE = "7f2b3c4d-0000-4000-8000-ffffffffffff"  # a case puts its number in the last 12 digits


# ---- cases -----------------------------------------------------------------------------------------------


def head(method: str = "GET", query: str = "", extra: list[str] | None = None, target: str | None = None,
         token: str = "") -> bytes:
    """A valid SSP request head (allowed by the seeded directory), with ``extra`` header lines."""
    lines = [f"{method} {target or f'/{ROOT}/metadata{query}'} HTTP/1.1", "Host: ssp.fuzz",
             f"Ssp-TraceID: {TRACE}", f"Ssp-From: {CONSUMER_ASID}",
             f"Ssp-To: {PROVIDER_ASID}", f"Ssp-InteractionID: {METADATA}", f"Authorization: Bearer {token}",
             *(extra or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _hidden(token: str) -> bytes:
    """A whole valid request that, forwarded on its own, would be a smuggled one."""
    return head(query="?" + SMUGGLED.decode(), token=token)


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


Shape = Callable[[random.Random, str], bytes]


def _cl_te(rng: random.Random, t: str) -> bytes:
    """CL.TE / TE.CL: Content-Length covers the hidden request, chunked framing ends before it."""
    body = b"0\r\n\r\n" + _hidden(t)
    lines = [f"Content-Length: {len(body)}", "Transfer-Encoding: chunked"]
    rng.shuffle(lines)
    return head(extra=lines, token=t) + body


def _duplicate_cl(rng: random.Random, t: str) -> bytes:
    """Two lengths: the short one leaves the hidden request after the body, the long one takes it in."""
    hidden = _hidden(t)
    a, b = rng.choice([(2, len(hidden) + 2), (0, len(hidden) + 2), (len(hidden) + 2, 2)])
    lines = [f"Content-Length: {a}", f"Content-Length: {b}"] if rng.random() < 0.7 else [f"Content-Length: {a}, {b}"]
    return head(extra=lines, token=t) + b"xx" + hidden


def _obs_fold(rng: random.Random, t: str) -> bytes:
    """A folded Transfer-Encoding beside a Content-Length covering the hidden request."""
    fold = rng.choice(["Transfer-Encoding:\r\n chunked", "Transfer-Encoding: x\r\n\tchunked",
                       "X-Folded: a\r\n Transfer-Encoding: chunked"])
    body = b"0\r\n\r\n" + _hidden(t)
    return head(extra=[fold, f"Content-Length: {len(body)}"], token=t) + body


def _te_variant(rng: random.Random, t: str) -> bytes:
    """An odd Transfer-Encoding and the hidden request as the chunked body: read as anything but chunked
    (no body), the hidden request would follow."""
    te = rng.choice(["xchunked", "chunked, gzip", "gzip, chunked", "chunked\x0b", "Chunked ", " chunked", "identity",
                     "chunked;q=1", "chunked\r\nTransfer-Encoding: chunked", "\"chunked\"", "chunked, chunked"])
    return head(extra=[f"Transfer-Encoding: {te}"], token=t) + _chunked(_hidden(t))


def _huge_chunk(rng: random.Random, t: str) -> bytes:
    """A chunk size that overflows, is negative or malformed, with the hidden request as its data."""
    size = rng.choice([b"f" * 17, b"f" * 30, b"1" + b"0" * 16, b"-1", b"0x10", b"7fffffffffffffff", b"ffffffff",
                       b" 5", b"5 ", b"+5"])
    return head(extra=["Transfer-Encoding: chunked"], token=t) + size + b"\r\n" + _hidden(t) + b"\r\n0\r\n\r\n"


def _chunk_extension(rng: random.Random, t: str) -> bytes:
    """An odd chunk extension on a chunk carrying the hidden request."""
    hidden = _hidden(t)
    ext = rng.choice([b";\x00", b';a="open', b"; a", b";a=b\nc", b";" + b"a" * 100_000, b";a=\x7f", b";=b",
                      b";a=b\r\n0", b"\n"])
    return (head(extra=["Transfer-Encoding: chunked"], token=t) + b"%x" % len(hidden) + ext + b"\r\n" + hidden
            + b"\r\n0\r\n\r\n")


def _pipelined_garbage(rng: random.Random, t: str) -> bytes:
    garbage = rng.choice([bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))), b"\r\n\r\n\r\n",
                          b"GARBAGE / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
                          b"\x00" * 64, b"0\r\n\r\n"])
    return head(token=t) + garbage


def _line_endings(rng: random.Random, t: str) -> bytes:
    valid = head(token=t)
    lines = valid.split(b"\r\n")
    at = rng.randrange(len(lines) - 2)
    joiner = rng.choice([b"\n", b"\r", b"\n\r"])
    if rng.random() < 0.5:
        return valid.replace(b"\r\n", joiner)
    return b"\r\n".join(lines[:at]) + (b"\r\n" if at else b"") + lines[at] + joiner + b"\r\n".join(lines[at + 1:])


def _nul(rng: random.Random, t: str) -> bytes:
    where = rng.choice(["name", "value", "target", "method"])
    if where == "target":
        return head(target=f"/{ROOT}/meta\x00data", token=t)
    if where == "method":
        return b"G\x00ET" + head(token=t)[3:]
    line = "X-N\x00ul: a" if where == "name" else "X-Nul: a\x00b"
    return head(extra=[line], token=t)


def _long(rng: random.Random, t: str) -> bytes:
    kind = rng.choice(["target", "value", "many"])
    if kind == "target":
        return head(query="?q=" + "a" * rng.choice([70_000, 200_000]), token=t)
    if kind == "value":
        return head(extra=["X-Big: " + "b" * 70_000], token=t)
    return head(extra=[f"X-H{n}: {'v' * 80}" for n in range(1000)], token=t)


def _bad_length(rng: random.Random, t: str) -> bytes:
    value = rng.choice(["-1", "+2", "0x2", "2 2", "99999999999999999999", "2\x0b", "", "abc"])
    return head(extra=[f"Content-Length: {value}"], token=t) + b"xx" + _hidden(t)


def _legit_body(rng: random.Random, t: str) -> bytes:
    """A hidden request inside a properly framed body: forwarded once, with it as the body."""
    hidden = _hidden(t)
    if rng.random() < 0.5:
        return head(extra=[f"Content-Length: {len(hidden)}"], token=t) + hidden
    return head(extra=["Transfer-Encoding: chunked"], token=t) + _chunked(hidden)


def _mutation(rng: random.Random, t: str) -> bytes:
    data = bytearray(head(extra=["Transfer-Encoding: chunked"], token=t) + _chunked(_hidden(t)))
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data))
        choice = rng.random()
        if choice < 0.4:
            data[at] = rng.getrandbits(8)
        elif choice < 0.7:
            data[at:at] = rng.choice([b"\r\n", b"\n", b"\x00", b" ", b":", b"0", b"f", b";", b"\t"])
        else:
            del data[at:at + rng.randint(1, 8)]
    return bytes(data)


SHAPES: dict[str, Shape] = {
    "cl+te": _cl_te, "duplicate-cl": _duplicate_cl, "obs-fold": _obs_fold, "te-variant": _te_variant,
    "huge-chunk": _huge_chunk, "chunk-extension": _chunk_extension, "pipelined-garbage": _pipelined_garbage,
    "line-endings": _line_endings, "nul": _nul, "long": _long, "bad-length": _bad_length,
    "legit-body": _legit_body, "mutation": _mutation,
}
