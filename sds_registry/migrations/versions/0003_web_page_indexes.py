"""web pages: indexes for paged MHS searches by interaction and by FQDN

Revision ID: 0003_web_page_indexes
Revises: 0002_client_lifecycle
Create Date: 2026-12-04 05:50:00

The web pages' search lists MHS records of one interaction or one FQDN in id order, a page at a time: at
100,000 practices one interaction has about 100,000 records and one supplier FQDN thousands, so each page must
be an index range read, not a sort of every match.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003_web_page_indexes'
down_revision: str | None = '0002_client_lifecycle'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_message_handling_systems_interaction_id_id', 'message_handling_systems',
                    ['interaction_id', 'id'], unique=False)
    op.create_index('ix_message_handling_systems_fqdn_lower_id', 'message_handling_systems',
                    [sa.text('lower(fqdn)'), 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_message_handling_systems_fqdn_lower_id', table_name='message_handling_systems')
    op.drop_index('ix_message_handling_systems_interaction_id_id', table_name='message_handling_systems')
