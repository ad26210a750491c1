"""campaign: the eval set's sha256, fixed when the campaign starts; eval_run: AlpacaEval's
discrete and length-controlled win rates (or why the latter is missing) and the
annotator's version; eval_item: position in the eval set, source dataset and the
annotator's error

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_COLUMNS = (
    ("discrete_win_rate", sa.Double()),
    ("lc_standard_error", sa.Double()),
    ("lc_glm", sa.String(length=64)),
    ("lc_missing", sa.Text()),
    ("annotator_version", sa.String(length=200)),
)
ITEM_COLUMNS = (
    ("position", sa.Integer()),
    ("dataset", sa.String(length=100)),
    ("annotation_error", sa.Text()),
)


def upgrade() -> None:
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(sa.Column("eval_set_sha256", sa.String(length=64), nullable=True))
    with op.batch_alter_table("eval_run") as batch:
        for name, kind in RUN_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    with op.batch_alter_table("eval_item") as batch:
        for name, kind in ITEM_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("eval_item") as batch:
        for name, _ in reversed(ITEM_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("eval_run") as batch:
        for name, _ in reversed(RUN_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("eval_set_sha256")
