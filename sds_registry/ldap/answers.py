"""Answers kept per serving process: a search repeated byte for byte is answered with the bytes of the last one.

The key is the request as received minus its message ID (the SearchRequest and its controls, so base,
scope, deref, limits, typesOnly, filter, attributes and controls all count); the value is the encoded
response messages without their message IDs, so a hit costs a dict lookup, a freshness check and one write
with the new ID patched in. Nothing is decoded, planned, queried or encoded.

Never stale: every lookup first reads the database's write counter (services/generation.py: SQLite's
``PRAGMA data_version``, PostgreSQL's trigger-bumped row); when it moved, everything kept is dropped, so a
write committed through ``/api``, ``sds import``, ``sds mirror`` or plain SQL is seen by the very next
search on every worker and node. An answer is kept only under the counter value read *before* its search
ran, and only while the cache still holds that value.

On SQLite the check is a local read, done on the event loop before the request is even decoded. On a
networked database it is a round trip, so it runs with the search in the thread pool (``Ticket.recall``).
Bounded by ``SDS_LDAP_CACHE_BYTES`` (least recently used answers go first; 0 turns the cache off); paged
searches (stateful), failures and time-outs are never kept, nor one answer larger than an eighth of it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from sds_registry import metrics
from sds_registry.ldap import access, filterstr
from sds_registry.ldap.ast import SearchRequest
from sds_registry.ldap.ber import encode_int, encode_length, header

#: Result codes whose answers are a function of the request and the data: success, sizeLimitExceeded
#: (the limits are in the key and the server's are fixed), noSuchObject.
KEPT_CODES = frozenset({0, 4, 32})
_SEARCH = 0x63
_OVERHEAD = 320  # bytes a kept answer costs besides its key and messages (dict slot, objects)
_MSGID = [encode_int(i) for i in range(1024)]


class _Answer:
    __slots__ = ("ops", "base", "filter", "code", "entries", "size")

    def __init__(self, ops: tuple[bytes, ...], request: SearchRequest, code: int, entries: int, size: int) -> None:
        self.ops = ops  # each response message's protocolOp (and controls), without the envelope and ID
        self.base: str = request.base
        self.filter: str = filterstr.format_filter(request.filter)  # for the access line
        self.code = code
        self.entries = entries
        self.size = size

    def render(self, mid: int) -> bytes:
        m = _MSGID[mid] if mid < 1024 else encode_int(mid)
        n = len(m)
        return b"".join([b"\x30" + encode_length(n + len(op)) + m + op for op in self.ops])


class Ticket:
    """A search that missed (or, off the loop, has not looked yet): where to keep its answer."""

    __slots__ = ("cache", "key", "gen", "mid")

    def __init__(self, cache: AnswerCache, key: bytes, gen: int | None, mid: int) -> None:
        self.cache = cache
        self.key = key
        self.gen = gen  # the counter read before the search; None = not read yet
        self.mid = mid

    def recall(self, conn_id: str, started: float) -> bytes | None:
        """Off the loop: read the counter now and answer from the cache if it can (else remember the counter)."""
        if self.gen is not None:
            return None
        found = self.cache.lookup(self.key, self.mid, conn_id, started)
        if isinstance(found, Ticket):
            self.gen = found.gen
            return None
        return found

    def keep(self, data: bytes, request: SearchRequest, code: int, entries: int) -> None:
        """Keep the encoded answer ``data`` (every message of it, as sent) if it may be kept."""
        if self.gen is not None and code in KEPT_CODES:
            self.cache.store(self, data, request, code, entries)


class AnswerCache:
    """One per serving process, shared by its connections (thread-safe)."""

    def __init__(self, generation: Callable[[], int | None], max_bytes: int, on_loop: bool) -> None:
        self.generation = generation
        self.max_bytes = max_bytes
        self.on_loop = on_loop  # the counter is a cheap local read: look up before decoding
        self.bytes = 0
        self._hit, self._miss, self._clear = (metrics.LDAP_ANSWERS.labels(o) for o in ("hit", "miss", "cleared"))
        self._gen: int | None = None
        self._answers: OrderedDict[bytes, _Answer] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, raw: bytes, conn_id: str, started: float) -> bytes | Ticket | None:
        """For one framed LDAPMessage: the answer's bytes (a hit, counted and logged), a Ticket (a search to run
        and maybe keep) or None (not a search, or not cacheable now)."""
        try:
            i = 2 if raw[1] < 0x80 else 2 + (raw[1] & 0x7F)
            n = raw[i + 1]
            op = i + 2 + n
            if raw[i] != 0x02 or not 1 <= n <= 4 or raw[i + 2] >= 0x80 or raw[op] != _SEARCH:
                return None
        except IndexError:
            return None  # malformed: the decoder says how
        mid = int.from_bytes(raw[i + 2 : op], "big")
        key = raw[op:]
        if not self.on_loop:
            return Ticket(self, key, None, mid)
        return self.lookup(key, mid, conn_id, started)

    def lookup(self, key: bytes, mid: int, conn_id: str, started: float) -> bytes | Ticket | None:
        gen = self.generation()
        if gen is None:
            return None
        with self._lock:
            if gen != self._gen:
                if self._answers:
                    self._answers.clear()
                    self._clear.inc()
                self.bytes = 0
                self._gen = gen
                answer = None
            else:
                answer = self._answers.get(key)
                if answer is not None:
                    self._answers.move_to_end(key)
        if answer is None:
            self._miss.inc()
            return Ticket(self, key, gen, mid)
        self._hit.inc()
        access.answered(conn_id, mid, "search", answer.base, answer.filter, answer.code, answer.entries, started,
                        time.perf_counter() - started)  # a hit's latency is the freshness check and the lookup
        return answer.render(mid)

    def store(self, ticket: Ticket, data: bytes, request: SearchRequest, code: int, entries: int) -> None:
        ops = []
        p, end = 0, len(data)
        while p < end:
            _, s, e = header(data, p, end)  # an LDAPMessage
            _, _, after_id = header(data, s, e)  # its messageID
            ops.append(data[after_id:e])
            p = e
        size = len(ticket.key) + sum(len(op) for op in ops) + _OVERHEAD
        if size > self.max_bytes // 8:
            return
        answer = _Answer(tuple(ops), request, code, entries, size)
        with self._lock:
            if ticket.gen != self._gen:
                return  # something was committed since this search began: its answer may be old already
            old = self._answers.pop(ticket.key, None)
            if old is not None:
                self.bytes -= old.size
            self._answers[ticket.key] = answer
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, dropped = self._answers.popitem(last=False)
                self.bytes -= dropped.size

    def __len__(self) -> int:
        return len(self._answers)
