"""threads: indexes on last_active_at and container_id (the former schema version 6).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_threads_last_active", "threads", ["last_active_at"])
    op.create_index("ix_threads_container", "threads", ["container_id"])


def downgrade() -> None:
    op.drop_index("ix_threads_container", table_name="threads")
    op.drop_index("ix_threads_last_active", table_name="threads")
