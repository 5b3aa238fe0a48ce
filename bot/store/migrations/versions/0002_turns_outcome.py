"""turns: answer, code, model, cost_usd (the former schema version 2).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLUMNS = (("answer", sa.Text), ("code", sa.Text), ("model", sa.Text), ("cost_usd", sa.Float))


def upgrade() -> None:
    for name, kind in _COLUMNS:
        op.add_column("turns", sa.Column(name, kind(), nullable=True))


def downgrade() -> None:
    for name, _kind in reversed(_COLUMNS):
        op.drop_column("turns", name)
