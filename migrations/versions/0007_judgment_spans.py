"""judgment: `spans`, the characters of the answer a judgment faults ([[start, end], ...]),
which CUT's span-grounded flagging trains on; NULL for judgments stored before

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("judgment") as batch:
        batch.add_column(sa.Column("spans", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("judgment") as batch:
        batch.drop_column("spans")
