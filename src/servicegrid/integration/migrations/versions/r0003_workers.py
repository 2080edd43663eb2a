"""Create the integration_workers table: the heartbeats of workers sharing one database.

Revision ID: 0003_workers
Revises: 0002_workflows
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_workers"
down_revision: str | None = "0002_workflows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "integration_workers",
        sa.Column("executor_id", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("executor_id", name=op.f("pk_integration_workers")),
    )
    op.create_index(
        op.f("ix_integration_workers_heartbeat_at"), "integration_workers", ["heartbeat_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_integration_workers_heartbeat_at"), table_name="integration_workers")
    op.drop_table("integration_workers")
