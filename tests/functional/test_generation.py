"""services/generation.py: the freshness token moves with every committed directory write, on any connection."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from sds_registry.services.generation import Generation

_INSERT = text("INSERT INTO interactions (id, capability, builtin) VALUES (:id, 'other', :no)")


def test_a_commit_on_another_connection_moves_the_token_and_a_read_does_not(db: Engine) -> None:
    gen = Generation(db)
    try:
        before = gen.current()
        assert before is not None
        with db.connect() as conn:
            conn.execute(text("SELECT count(*) FROM organisations")).all()
        assert gen.current() == before
        with db.begin() as conn:
            conn.execute(_INSERT, {"id": "urn:test:generation-1", "no": False})
        after = gen.current()
        assert after is not None and after != before
        assert gen.current() == after
    finally:
        gen.close()


def test_an_uncommitted_write_does_not_move_it_and_a_rolled_back_one_never_does(db: Engine) -> None:
    gen = Generation(db)
    try:
        before = gen.current()
        with db.connect() as conn:
            trans = conn.begin()
            conn.execute(_INSERT, {"id": "urn:test:generation-2", "no": False})
            assert gen.current() == before
            trans.rollback()
        assert gen.current() == before
    finally:
        gen.close()


def test_one_bump_per_transaction_and_audit_rows_count_only_on_sqlite(db: Engine) -> None:
    """PostgreSQL's triggers watch the directory tables only, once per transaction; SQLite's data_version moves
    on any commit (eager: an audit row also empties kept answers)."""
    gen = Generation(db)
    audit = text("INSERT INTO audit_events (at, actor, action, record_type, record_key) "
                 "VALUES (CURRENT_TIMESTAMP, 'test', 'create', 'Organisation', 'X')")
    try:
        if db.dialect.name == "postgresql":
            start = gen.current()
            assert start is not None
            with db.begin() as conn:
                for n in range(3):
                    conn.execute(_INSERT, {"id": f"urn:test:generation-many-{n}", "no": False})
                conn.execute(text("UPDATE interactions SET description = 'x' WHERE id LIKE 'urn:test:generation-%'"))
            assert gen.current() == start + 1
            with db.begin() as conn:
                conn.execute(audit)
            assert gen.current() == start + 1
        else:
            start = gen.current()
            with db.begin() as conn:
                conn.execute(audit)
            assert gen.current() != start
    finally:
        gen.close()
