"""The soak's load: paced lookup streams over LDAP, FHIR, /api and the SSP, and writers changing MHS records
through /api with If-Match. Records what every client saw (bench/soakcheck.py judges it).

Clients are plain blocking ones in threads (http.client keep-alive, ldap3), one connection per stream, the
way a consumer system or a registration script talks to the registry.
"""

from __future__ import annotations

import http.client
import json
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import ldap3

from bench import ssp as sspbench
from bench.soakcheck import Lookup, Write, marker_of

FHIR = "/spine-directory/FHIR/R4"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code|"
SVC_SYSTEM = "https://fhir.nhs.uk/Id/nhsServiceInteractionId|"
ASID_SYSTEM = "https://fhir.nhs.uk/Id/nhsSpineASID"
#: statuses a write may be refused with in this load (stale If-Match, record gone, bad value); others are errors
REFUSALS = {404, 409, 412, 422}


@dataclass
class Target:
    http: int
    ldap: int
    ssp: int
    token: str
    pki: dict[str, Path]
    party_keys: dict[str, str]
    asids: dict[str, str]
    interaction: str


@dataclass
class Stats:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    first_errors: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(what)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else float("nan")


class Http:
    """One keep-alive HTTP(S) connection; an idempotent request is retried once on a connection the server had
    closed meanwhile (as urllib3 does); a write never is, and opens a fresh connection after an idle second."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        self.port, self.context = port, context
        self.conn: http.client.HTTPConnection | None = None
        self.used = 0.0

    def _connect(self) -> http.client.HTTPConnection:
        if self.conn is not None:
            self.conn.close()
        if self.context is not None:
            self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=30)
        else:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             idempotent: bool = True) -> tuple[int, http.client.HTTPResponse, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {**(headers or {}), **({"Content-Type": "application/json"} if data is not None else {})}
        if self.conn is None or (not idempotent and time.monotonic() - self.used > 1.0):
            self._connect()
        for attempt in (0, 1):
            conn = self.conn or self._connect()
            try:
                conn.request(method, path, body=data, headers=hdrs)
                response = conn.getresponse()
                content = response.read()
                self.used = time.monotonic()
                return response.status, response, content
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._connect()
                if attempt or not idempotent:
                    raise
        raise AssertionError("unreachable")


class Load:
    def __init__(self, target: Target, *, writers: int, lookup_rate: float, write_rate: float,
                 settle: float = 5.0) -> None:
        """``settle``: seconds at the start whose latencies are not kept (each worker's first requests load
        code); their errors still count."""
        self.t, self.writers, self.lookup_rate, self.write_rate = target, writers, lookup_rate, write_rate
        self.settle = settle
        self.stats: dict[str, Stats] = {}
        self.writes: list[Write] = []
        self.lookups: list[Lookup] = []
        self.pool = sorted(target.party_keys)
        self._lock = threading.Lock()
        self._closers: list[Callable[[], Any]] = []  # each stream's connections, closed when the run ends
        self.deadline = self.measure_from = 0.0

    # ---- running ------------------------------------------------------------------------------------------

    def run(self, seconds: float) -> None:
        self.measure_from = time.monotonic() + min(self.settle, seconds / 4)
        self.deadline = time.monotonic() + seconds
        streams: list[tuple[str, Callable[[random.Random], Callable[[], None]], float]] = [
            ("ldap", self._ldap, self.lookup_rate), ("fhir", self._fhir, self.lookup_rate),
            ("resolve", self._resolve, self.lookup_rate), ("ssp", self._ssp, self.lookup_rate),
        ]
        streams += [(f"api-write-{w}", self._writer(w), self.write_rate) for w in range(self.writers)]
        threads = [threading.Thread(target=self._paced, args=(name, make, rate, n), name=name, daemon=True)
                   for n, (name, make, rate) in enumerate(streams)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 120)
        for close in self._closers:
            close()

    def _paced(self, name: str, make: Callable[[random.Random], Callable[[], None]], rate: float, seed: int) -> None:
        step = make(random.Random(seed))
        interval, due = 1.0 / rate, time.monotonic()
        while time.monotonic() < self.deadline:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - a failed request is counted, the stream goes on
                self.stat(_facade(name)).error(repr(exc))
            due += interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                due = time.monotonic()  # behind: do not burst to catch up

    def stat(self, facade: str) -> Stats:
        with self._lock:
            return self.stats.setdefault(facade, Stats())

    def _timed(self, facade: str, started: float) -> float:
        now = time.monotonic()
        stats = self.stat(facade)
        stats.requests += 1
        if started >= self.measure_from:
            stats.latencies.append(now - started)
        return now

    def _lookup(self, facade: str, ods: str, sent: float, answered: float, endpoints: list[str]) -> None:
        record = Lookup(facade, ods, sent, answered, tuple(sorted(marker_of(e) for e in endpoints)))
        with self._lock:
            self.lookups.append(record)

    # ---- lookup streams -------------------------------------------------------------------------------------

    def _ldap(self, rng: random.Random) -> Callable[[], None]:
        server = ldap3.Server("127.0.0.1", port=self.t.ldap, get_info=ldap3.NONE)
        conn = ldap3.Connection(server, auto_bind=True, receive_timeout=30)
        self._closers.append(conn.unbind)

        def step() -> None:
            ods = rng.choice(self.pool)
            sent = time.monotonic()
            conn.search("ou=services,o=nhs", f"(&(nhsIDCode={ods})(objectClass=nhsMhs)"
                        f"(nhsMhsSvcIA={self.t.interaction}))", attributes=["nhsMHSEndPoint", "nhsMHSPartyKey"])
            answered = self._timed("ldap", sent)
            entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
            self._lookup("ldap", ods, sent, answered, [_attr(e, "nhsMHSEndPoint") for e in entries])
            sent = time.monotonic()  # the second step: the AS record by party key (never written: one answer)
            conn.search("ou=services,o=nhs", f"(&(nhsIDCode={ods})(objectClass=nhsAs)"
                        f"(nhsMHSPartyKey={self.t.party_keys[ods]}))", attributes=["uniqueIdentifier"])
            self._timed("ldap", sent)
            asids = [_attr(e, "uniqueIdentifier") for e in conn.response or [] if e.get("type") == "searchResEntry"]
            if asids != [self.t.asids[ods]]:
                self.stat("ldap").error(f"AS lookup for {ods} answered {asids}")

        return step

    def _fhir(self, rng: random.Random) -> Callable[[], None]:
        client = Http(self.t.http)
        self._closers.append(client.close)
        headers = {"Accept": "application/fhir+json"}

        def step() -> None:
            ods = rng.choice(self.pool)
            query = f"organization={quote(ODS_SYSTEM + ods)}&identifier={quote(SVC_SYSTEM + self.t.interaction)}"
            sent = time.monotonic()
            status, _, body = client.call("GET", f"{FHIR}/Endpoint?{query}", headers=headers)
            answered = self._timed("fhir", sent)
            if status != 200:
                self.stat("fhir").error(f"/Endpoint {status}")
                return
            entries = json.loads(body).get("entry", [])
            self._lookup("fhir", ods, sent, answered, [e["resource"]["address"] for e in entries])
            sent = time.monotonic()
            status, _, body = client.call("GET", f"{FHIR}/Device?{query}", headers=headers)
            self._timed("fhir", sent)
            asids = [i["value"] for e in json.loads(body).get("entry", []) if status == 200
                     for i in e["resource"].get("identifier", []) if i.get("system") == ASID_SYSTEM]
            if status != 200 or asids != [self.t.asids[ods]]:
                self.stat("fhir").error(f"/Device {ods}: {status} {asids}")

        return step

    def _resolve(self, rng: random.Random) -> Callable[[], None]:
        client = Http(self.t.http)
        self._closers.append(client.close)

        def step() -> None:
            ods = rng.choice(self.pool)
            sent = time.monotonic()
            status, _, body = client.call("GET", f"/api/resolve?ods={ods}&interaction={quote(self.t.interaction)}")
            answered = self._timed("resolve", sent)
            if status not in (200, 404):
                self.stat("resolve").error(f"resolve {status}")
                return
            found = [json.loads(body)["service_root_url"]] if status == 200 else []
            self._lookup("resolve", ods, sent, answered, found)

        return step

    def _ssp(self, rng: random.Random) -> Callable[[], None]:
        context = ssl.create_default_context(cafile=str(self.t.pki["ca"]))
        context.check_hostname = False  # 127.0.0.1; the chain is still verified
        context.load_cert_chain(str(self.t.pki["consumer"]), str(self.t.pki["consumer_key"]))
        client = Http(self.t.ssp, context)
        self._closers.append(client.close)
        jwt, minted = sspbench.jwt_token(), time.monotonic()
        path = f"/{sspbench.ROOT}/metadata"

        def step() -> None:
            nonlocal jwt, minted
            if time.monotonic() - minted > 240:  # audit JWTs live 300 s
                jwt, minted = sspbench.jwt_token(), time.monotonic()
            headers = {"Ssp-TraceID": f"7f2b3c4d-0000-4000-8000-{rng.getrandbits(48):012x}",
                       "Ssp-From": sspbench.CONSUMER_ASID, "Ssp-To": sspbench.PROVIDER_ASID,
                       "Ssp-InteractionID": sspbench.METADATA, "Authorization": f"Bearer {jwt}",
                       "Accept": "application/fhir+json"}
            sent = time.monotonic()
            status, _, body = client.call("GET", path, headers=headers)
            self._timed("ssp", sent)
            if status != 200 or body != sspbench.STUB_BODY:
                self.stat("ssp").error(f"SSP {status} {body[:120]!r}")

        return step

    # ---- writers ----------------------------------------------------------------------------------------------

    def _writer(self, wid: int) -> Callable[[random.Random], Callable[[], None]]:
        def make(rng: random.Random) -> Callable[[], None]:
            client = Http(self.t.http)
            self._closers.append(client.close)
            auth = {"Authorization": f"Bearer {self.t.token}"}
            view: dict[str, tuple[str | None, int]] = {}  # ods -> (MHS unique id or None, version): maybe stale
            seq = 0

            def refresh(ods: str) -> None:
                sent = time.monotonic()
                status, _, body = client.call(
                    "GET", f"/api/mhs?ods_code={ods}&interaction={quote(self.t.interaction)}")
                answered = self._timed("api-read", sent)
                if status != 200:
                    self.stat("api-read").error(f"listing {status}")
                    return
                items = json.loads(body)["items"]
                # a record with no endpoint is a state no write made: the check reports it as inconsistent
                self._lookup("api-read", ods, sent, answered,
                             [(i["endpoints"] or ["https://no-endpoint.invalid"])[0] for i in items])
                view[ods] = (items[0]["unique_identifier"], items[0]["version"]) if items else (None, 0)

            def step() -> None:
                nonlocal seq
                ods = rng.choice(self.pool)
                if ods not in view:
                    refresh(ods)
                    return
                uid, version = view[ods]
                seq += 1
                marker = f"w{wid}-{seq}"
                url = f"https://{marker}.soak.test/{ods}/STU3/1/gpconnect/structured"
                roll = rng.random()
                kind = "create" if uid is None else "patch" if roll < 0.7 else "delete" if roll < 0.85 else "invalid"
                write = Write(kind, ods, marker, uid, version if uid else None, time.monotonic())
                if_match = {"If-Match": f'W/"{version}"'}
                call: tuple[str, str, Any, dict[str, str]]
                if kind == "create":
                    call = ("POST", "/api/mhs", {"ods_code": ods, "party_key": self.t.party_keys[ods],
                                                 "interaction_id": self.t.interaction, "endpoints": [url]}, auth)
                elif kind == "delete":
                    call = ("DELETE", f"/api/mhs/{uid}", None, {**auth, **if_match})
                else:
                    call = ("PATCH", f"/api/mhs/{uid}", {"endpoints": [url + "/" if kind == "invalid" else url]},
                            {**auth, **if_match})
                with self._lock:
                    self.writes.append(write)
                try:
                    method, path, payload, headers = call
                    status, _, body = client.call(method, path, payload, headers, idempotent=False)
                finally:
                    write.answered = self._timed("api-write", write.sent)
                write.status = status
                if kind == "invalid" and status < 400:
                    self.stat("api-write").error(f"a trailing-slash endpoint was accepted ({status})")
                if 200 <= status < 300:
                    if kind == "delete":
                        view[ods] = (None, 0)
                    else:
                        record = json.loads(body)
                        write.uid = record["unique_identifier"]
                        view[ods] = (record["unique_identifier"], record["version"])
                elif status in REFUSALS:
                    refresh(ods)
                else:
                    self.stat("api-write").error(f"{kind} {status} {body[:200]!r}")

            return step

        return make

    # ---- figures ------------------------------------------------------------------------------------------

    def print(self) -> None:
        print(f"{'facade':10} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}")
        for name, s in sorted(self.stats.items()):
            print(f"{name:10} {s.requests:9d} {s.errors:7d} {s.percentile(0.5):8.1f} {s.percentile(0.99):8.1f}")
            for what in s.first_errors:
                print(f"{'':12}{what}")


def _facade(stream: str) -> str:
    return "api-write" if stream.startswith("api-write") else stream


def _attr(entry: dict[str, Any], name: str) -> str:
    """The first value of an attribute of an ldap3 search entry, whatever case the server named it in."""
    for key, values in (entry.get("raw_attributes") or {}).items():
        if key.lower() == name.lower() and values:
            return bytes(values[0]).decode()
    return ""
