"""bench/web.py in short: every page of the web pages answers over the seed directory plus a few synthetic
practices and an hour of SSP decisions, and (SQLite, whose planner assumes big tables) no statement a page runs
reads a whole table. The timings themselves are the benchmark's to report, not a test's."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.web import add_decisions, measure, report
from sds_registry.services.synthetic import create_practice


def test_every_page_answers_with_index_reads_only(seeded: Engine, database_url: str) -> None:
    with Session(seeded) as s:
        for n in range(3):
            create_practice(s, n)
        s.commit()
    add_decisions(seeded, 300)
    results = measure(database_url, rounds=1)
    report(results)
    assert len(results) == 15
    if seeded.dialect.name == "sqlite":
        assert [line for r in results for line in r.scans] == []
