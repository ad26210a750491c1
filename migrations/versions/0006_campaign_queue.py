"""campaign: the `queued` status and `queued_at`, for campaigns launched over the API
that wait for room on the cluster; `error`, why a campaign failed outside its rounds

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ("pending", "running", "paused", "cancelled", "failed", "done")
AFTER = ("pending", "queued", *BEFORE[1:])


def _status(values: Sequence[str]) -> sa.Enum:
    return sa.Enum(*values, name="campaignstatus", native_enum=False, create_constraint=True,
                   length=16)  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch.alter_column("status", type_=_status(AFTER), existing_type=_status(BEFORE),
                           existing_nullable=False)  # fmt: skip


def downgrade() -> None:
    op.execute("UPDATE campaign SET status = 'pending' WHERE status = 'queued'")
    with op.batch_alter_table("campaign") as batch:
        batch.alter_column("status", type_=_status(BEFORE), existing_type=_status(AFTER),
                           existing_nullable=False)  # fmt: skip
        batch.drop_column("error")
        batch.drop_column("queued_at")
