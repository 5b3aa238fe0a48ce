"""files: refused_reason, refused_turn (the former schema version 4).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("files", sa.Column("refused_reason", sa.Text(), nullable=True))
    op.add_column("files", sa.Column("refused_turn", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("files", "refused_turn")
    op.drop_column("files", "refused_reason")
