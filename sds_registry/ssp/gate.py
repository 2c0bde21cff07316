"""The SSP's gate in a serving process: ``services.ssp`` checks with the registry's facts kept for a moment.

Checks 1-4 and 10 (headers, interaction, verb, JWT) run on every request; the registry's facts for checks
5-9 (sender, certificate CN, receiver's endpoints, agreement) are looked up once per (sender, receiver,
interaction, CN) and kept for ``SDS_SSP_CACHE_SECONDS`` (default 1 s; 0 looks up on every request), and
all of them are dropped as soon as a write to the directory is committed (services/generation.py, read on
every request: on SQLite a local read on the loop, on PostgreSQL one round trip in the thread pool), so a
registration is seen by the very next request on every process and node. On SQLite
the lookup runs on the event loop (two index probes in this process, no waiting on a network); on a
networked database it goes to a small thread pool so the loop never waits on a round trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine

from sds_registry.config import Settings
from sds_registry.db import unavailable
from sds_registry.services.audit import AuditWriter, writer_for
from sds_registry.services.generation import Generation
from sds_registry.services.ssp import Decision, Facts, SspRequest, judge, lookup_facts, precheck, refuse

log = logging.getLogger("sds.ssp")
#: Keys kept at most; the cache is emptied when it is full (keys are directory pairs, so this is generous).
MAX_KEYS = 50_000
FactsKey = tuple[str, str, str, str]


class Gate:
    """Decisions for one serving process: cached registry facts, the pure checks, the audit writer."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.ttl = max(0.0, settings.ssp_cache_seconds)
        self.inline = engine.dialect.name == "sqlite"
        self.executor = ThreadPoolExecutor(max_workers=max(1, settings.ssp_threads), thread_name_prefix="ssp-db")
        self.audit: AuditWriter = writer_for(engine, batch=settings.ssp_audit_batch)
        self._facts: dict[FactsKey, tuple[float, Facts]] = {}
        self.generation = Generation(engine)  # a committed write drops every kept fact at once
        self._generation: int | None = None

    async def decide(self, request: SspRequest) -> Decision:
        """The SSP's answer; a database that cannot be used is the SSP's 503, any other failure of the lookup
        its 500."""
        checked = precheck(request)
        if isinstance(checked, Decision):
            return checked
        key = (checked.from_asid, checked.to_asid, checked.interaction.id, request.client_cn or "")
        if self.ttl:
            gen = (self.generation.current() if self.inline else
                   await asyncio.get_running_loop().run_in_executor(self.executor, self.generation.current))
            if gen is None or gen != self._generation:
                self._facts.clear()
                self._generation = gen
        now = time.monotonic()
        cached = self._facts.get(key)
        if cached is not None and cached[0] > now:
            facts = cached[1]
        else:
            try:
                if self.inline:
                    facts = self._lookup(key)
                else:
                    facts = await asyncio.get_running_loop().run_in_executor(self.executor, self._lookup, key)
            except Exception as exc:  # noqa: BLE001 - the registry being unreachable must not take the proxy down
                failure = unavailable(exc)
                if failure is not None:  # 503 in the SSP's shape, one log line (no traceback per request)
                    log.warning("SSP registry lookup failed: %s (%s)", failure, type(exc).__name__)
                    return refuse(503, "transient", "SERVICE_UNAVAILABLE", detail=str(failure))
                log.exception("SSP registry lookup failed")
                return refuse(500, "exception", "INTERNAL_SERVER_ERROR")
            if self.ttl:
                if len(self._facts) >= MAX_KEYS:
                    self._facts.clear()
                self._facts[key] = (now + self.ttl, facts)
        return judge(request, checked, facts, now=int(time.time()),
                     jwt_max_future_seconds=self.settings.ssp_jwt_max_future_seconds)

    def _lookup(self, key: FactsKey) -> Facts:
        with self.engine.connect() as conn:
            return lookup_facts(conn, key[0], key[1], key[2], key[3] or None)

    def close(self) -> None:
        self.audit.close()
        self.generation.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
