"""The durable queue: turns get a lease (owner, expiry) and an attempt counter; the ledger of posted answer parts;
named leases (the leader of the periodic jobs).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("turns", sa.Column("lease_owner", sa.Text(), nullable=True))
    op.add_column("turns", sa.Column("lease_expires_at", sa.Float(), nullable=True))
    op.add_column("turns", sa.Column("attempts", sa.Integer(), nullable=True))
    op.create_table(
        "ledger",
        sa.Column("turn_id", sa.Text(), nullable=False),
        sa.Column("part", sa.Text(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("posted_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("turn_id", "part", name="pk_ledger"),
        sa.ForeignKeyConstraint(["turn_id"], ["turns.id"], name="fk_ledger_turn", ondelete="CASCADE"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("ledger")
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("attempts")
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
