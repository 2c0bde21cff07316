"""directory_generation: a one-row write counter, bumped by PostgreSQL triggers on every directory table

Revision ID: 0004_directory_generation
Revises: 0003_web_page_indexes
Create Date: 2026-12-04 05:30:00

Readers that keep answers between requests (the LDAP answer cache, the SSP's registry facts) read this row
on every request and drop what they kept when it moved, so a committed write is seen by the very next
request on every node. On PostgreSQL a statement-level trigger on each directory table bumps it inside the
writing transaction (once per transaction: ``txid`` remembers the last one), so every path that writes,
raw SQL included, counts. No model maps the table (env.py leaves it out of ``alembic check``), so code that
walks the models' tables never empties it. SQLite gets the table too but no triggers: readers there use
``PRAGMA data_version``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004_directory_generation'
down_revision: str | None = '0003_web_page_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: services/generation.py WATCHED_TABLES, as of this revision (a migration keeps its own copy).
_TABLES = ('organisations', 'accredited_systems', 'as_interactions', 'as_clients', 'as_acfs', 'as_category_bags',
           'message_handling_systems', 'mhs_endpoints', 'mhs_actors', 'interactions', 'data_sharing_agreements')
_BUMP = """
CREATE FUNCTION directory_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE directory_generation SET value = value + 1, txid = txid_current()
     WHERE id = 1 AND txid IS DISTINCT FROM txid_current();
    RETURN NULL;
END
$$"""


def upgrade() -> None:
    table = op.create_table('directory_generation',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('txid', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_generation'))
    )
    op.bulk_insert(table, [{'id': 1, 'value': 0, 'txid': None}])
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(_BUMP)
    for name in _TABLES:
        op.execute(f'CREATE TRIGGER directory_generation_{name} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
                   f'ON {name} FOR EACH STATEMENT EXECUTE FUNCTION directory_generation_bump()')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for name in _TABLES:
            op.execute(f'DROP TRIGGER IF EXISTS directory_generation_{name} ON {name}')
        op.execute('DROP FUNCTION IF EXISTS directory_generation_bump()')
    op.drop_table('directory_generation')
