"""Optimistic concurrency with real threads: same If-Match twice at once, one wins, one gets 409."""

from __future__ import annotations

import threading

from flask import Flask
from sqlalchemy.engine import Engine


def test_concurrent_puts_with_the_same_if_match(app: Flask, db: Engine, admin_headers: dict[str, str]) -> None:
    setup = app.test_client()
    assert setup.post("/api/organisations", json={"ods_code": "A20047", "name": "v1"},
                      headers=admin_headers).status_code == 201
    for round_number in range(1, 6):
        version = setup.get("/api/organisations/A20047").headers["ETag"]
        barrier = threading.Barrier(2)
        results: dict[str, int] = {}

        def put(name: str, barrier: threading.Barrier = barrier, version: str = version,
                results: dict[str, int] = results) -> None:
            client = app.test_client()
            barrier.wait()
            response = client.put("/api/organisations/A20047", json={"name": name},
                                  headers={**admin_headers, "If-Match": version})
            results[name] = response.status_code

        threads = [threading.Thread(target=put, args=(f"r{round_number}-{who}",)) for who in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results.values()) == [200, 409], results
        winner = next(name for name, status in results.items() if status == 200)
        final = setup.get("/api/organisations/A20047")
        assert final.json["name"] == winner
        assert final.headers["ETag"] == f'W/"{round_number + 1}"'
