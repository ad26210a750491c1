"""eval_item: finish reason and constraints met; eval_run: IFEval accuracies, cut-off
share, decisive win rate and the McNemar test against round 0

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ITEM_COUNTS = ("constraints", "strict_met", "loose_met")
ITEM_COLUMNS = ("finish_reason", *ITEM_COUNTS)
RUN_FLOATS = ("decisive_win_rate", "prompt_strict", "prompt_loose", "instruction_strict",
              "instruction_loose", "truncated")  # fmt: skip
RUN_COLUMNS = (*RUN_FLOATS, "mcnemar_b", "mcnemar_c", "mcnemar_p")


def upgrade() -> None:
    with op.batch_alter_table("eval_item") as batch:
        batch.add_column(sa.Column("finish_reason", sa.String(length=32), nullable=True))
        for name in ITEM_COUNTS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
    with op.batch_alter_table("eval_run") as batch:
        for name in RUN_FLOATS:
            batch.add_column(sa.Column(name, sa.Double(), nullable=True))
        batch.add_column(sa.Column("mcnemar_b", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("mcnemar_c", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("mcnemar_p", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("eval_run") as batch:
        for name in reversed(RUN_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("eval_item") as batch:
        for name in reversed(ITEM_COLUMNS):
            batch.drop_column(name)
