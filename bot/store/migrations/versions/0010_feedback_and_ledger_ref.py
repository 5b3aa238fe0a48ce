"""People's latest 👍/👎 on each answer (``feedback``), and the ledger looked up by what was posted (the message a
🗑️ reaction lands on tells which answer to remove).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("turn_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("vote", sa.Text(), nullable=False),
        sa.Column("voted_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("turn_id", "user_id", name="pk_feedback"),
        sa.ForeignKeyConstraint(["turn_id"], ["turns.id"], name="fk_feedback_turn", ondelete="CASCADE"),
    )
    op.create_index("ix_ledger_ref", "ledger", ["ref"])


def downgrade() -> None:
    op.drop_index("ix_ledger_ref", table_name="ledger")
    op.drop_table("feedback")
