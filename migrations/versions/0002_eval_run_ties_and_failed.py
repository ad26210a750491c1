"""eval_run: ties and failed annotations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("eval_run") as batch:
        batch.add_column(sa.Column("ties", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("failed", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("eval_run") as batch:
        batch.drop_column("failed")
        batch.drop_column("ties")
