"""In-process cost of one SDS FHIR request: µs per /Endpoint and /Device through the WSGI app, no server, no socket.

    .venv/bin/python bench/fhir_paths.py [--practices 8000] [--requests 2000] [--rounds 5]

Uses the 8,000-practice database bench/fhir.py builds (cached under instance/bench/). Each figure is the median
over rounds of the CPU time per request (process time: the load of other programs on the machine counts less).
Besides the whole request, it prints the parts that have a second way of doing the same work, so that keeping
that second way stays justified by a figure: the directory lookup on a pooled DBAPI connection
(db.ReadConnection) against one on a Session, and the JSON text written by render_json (fragments) against
json_text.dumps of render's dicts.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fhir import build_database, request_paths  # noqa: E402

from sds_registry import create_app  # noqa: E402
from sds_registry.db import ReadPool, make_engine, make_sessionmaker  # noqa: E402
from sds_registry.fhir import json_text, render, render_json, search  # noqa: E402
from sds_registry.services import directory  # noqa: E402


def per_call_us(fn: Callable[[int], Any], count: int, rounds: int) -> float:
    """Median over rounds of the process CPU time per call, in µs."""
    figures = []
    for _ in range(rounds):
        started = time.process_time()
        for i in range(count):
            fn(i)
        figures.append((time.process_time() - started) / count * 1e6)
    return statistics.median(figures)


def wsgi_caller(app: Any, paths: list[str], accept_encoding: str = "") -> Callable[[int], Any]:
    environs = []
    for path in paths:
        route, _, query = path.partition("?")
        environs.append({
            "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": route, "QUERY_STRING": query,
            "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "HTTP_HOST": "localhost", "HTTP_ACCEPT": "application/fhir+json", "HTTP_ACCEPT_ENCODING": accept_encoding,
            "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False, "wsgi.version": (1, 0),
        })

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        if not status.startswith("200"):
            raise AssertionError(status)

    def call(i: int) -> None:
        body = app(dict(environs[i % len(environs)]), start_response)
        for _ in body:
            pass
        getattr(body, "close", lambda: None)()

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--practices", type=int, default=8000)
    parser.add_argument("--requests", type=int, default=2000, help="per figure and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db-dir", type=Path, default=ROOT / "instance" / "bench")
    args = parser.parse_args()
    database = build_database(args.practices, args.db_dir)
    url = f"sqlite:///{database}"
    app = create_app({"database_url": url})
    paths = request_paths(args.practices)
    n, rounds = args.requests, args.rounds

    print(f"{args.practices} practices, {n} requests a figure, median of {rounds} rounds (CPU µs per request)")
    for route in ("/Endpoint", "/Device"):
        us = per_call_us(wsgi_caller(app, paths[route]), n, rounds)
        gz = per_call_us(wsgi_caller(app, paths[route], "gzip, deflate"), n, rounds)
        print(f"  {route:10} whole request: {us:7.1f} µs   (Accept-Encoding: gzip, deflate: {gz:7.1f} µs)")

    engine = make_engine(url)
    pool, sessions = ReadPool(engine), make_sessionmaker(engine)
    queries = [search.parse_device(list(_params(p))) for p in paths["/Device"]]
    endpoint_queries = [search.parse_endpoint(list(_params(p))) for p in paths["/Endpoint"]]

    def on_read_connection(i: int) -> None:
        q = queries[i % len(queries)]
        with pool.connect() as reader:
            directory.find_accredited_system_views(reader, ods_code=q.ods_code, interaction_id=q.interaction_id,
                                                   party_key=q.party_key)

    def on_session(i: int) -> None:
        q = queries[i % len(queries)]
        with sessions() as session:
            directory.find_accredited_system_views(session, ods_code=q.ods_code, interaction_id=q.interaction_id,
                                                   party_key=q.party_key)

    pooled, session = per_call_us(on_read_connection, n, rounds), per_call_us(on_session, n, rounds)
    print(f"  Device lookup, ReadConnection vs Session: {pooled:6.1f} µs vs {session:6.1f} µs per request")

    with pool.connect() as reader:
        devices = [directory.find_accredited_system_views(reader, ods_code=q.ods_code,
                                                          interaction_id=q.interaction_id, party_key=q.party_key)
                   for q in queries]
        endpoints = [directory.find_mhs_views(reader, ods_code=q.ods_code, interaction_id=q.interaction_id)
                     for q in endpoint_queries]

    def device_fragments(i: int) -> None:
        rows = devices[i % len(devices)]
        render_json.bundle("B", "self", "base", [("R", render_json.device(r, "R")) for r in rows])

    def device_dicts(i: int) -> None:
        rows = devices[i % len(devices)]
        head = render.bundle_head("B", len(rows), "self")
        head["entry"] = [render.entry("base", render.device(r, "R")) for r in rows]
        json_text.dumps(head)

    def endpoint_fragments(i: int) -> None:
        render_json.bundle("B", "self", "base", render_json.endpoints(endpoints[i % len(endpoints)][0],
                                                                      lambda: "R", None))

    def endpoint_dicts(i: int) -> None:
        resources = render.endpoints(endpoints[i % len(endpoints)][0], lambda: "R", None)
        head = render.bundle_head("B", len(resources), "self")
        head["entry"] = [render.entry("base", r) for r in resources]
        json_text.dumps(head)

    for what, fragments, dicts in (("Device", device_fragments, device_dicts),
                                   ("Endpoint", endpoint_fragments, endpoint_dicts)):
        a, b = per_call_us(fragments, n, rounds), per_call_us(dicts, n, rounds)
        print(f"  {what} JSON, render_json vs render+json_text: {a:6.1f} µs vs {b:6.1f} µs per request")
    pool.dispose()
    engine.dispose()


def _params(path: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(path.partition("?")[2])


if __name__ == "__main__":
    main()
