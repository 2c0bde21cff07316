"""api clients: revoked_at and last_used_at; names unique among live clients only

Revision ID: 0002_client_lifecycle
Revises: 0001
Create Date: 2026-12-03 23:55:00

A revoked client keeps its row (the write audit names it), so its name may be taken again by a new client:
the unique constraint on ``name`` becomes a unique index over the rows whose ``revoked_at`` is NULL.
The ``revoked`` flag becomes ``revoked_at`` (clients revoked before this revision get the upgrade's time).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002_client_lifecycle'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = sa.text('revoked_at IS NULL')
_clients = sa.table(
    'api_clients', sa.column('revoked', sa.Boolean()), sa.column('revoked_at', sa.DateTime(timezone=True))
)


def upgrade() -> None:
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(_clients.update().where(_clients.c.revoked == sa.true())
               .values(revoked_at=sa.func.current_timestamp()))
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.drop_constraint('uq_api_clients_name', type_='unique')
        batch_op.drop_column('revoked')
    op.create_index('uq_api_clients_live_name', 'api_clients', ['name'], unique=True,
                    sqlite_where=_LIVE, postgresql_where=_LIVE)


def downgrade() -> None:
    op.drop_index('uq_api_clients_live_name', table_name='api_clients', sqlite_where=_LIVE, postgresql_where=_LIVE)
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revoked', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(_clients.update().where(_clients.c.revoked_at.is_not(None)).values(revoked=True))
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('last_used_at')
        batch_op.create_unique_constraint('uq_api_clients_name', ['name'])
