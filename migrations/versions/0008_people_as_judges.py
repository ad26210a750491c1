"""People as judges: `annotator` (who may judge, by token sha256), `judging_task` (an
answer waiting for a person, leased while judged) and `judgment.annotator` (who wrote or
approved a judgment)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 03:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = ("judged", "accepted", "edited", "rejected", "expired")


def upgrade() -> None:
    with op.batch_alter_table("judgment") as batch:
        batch.add_column(sa.Column("annotator", sa.String(100), nullable=True))
    op.create_table(
        "annotator",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotator")),
        sa.UniqueConstraint("name", name=op.f("uq_annotator_name")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_annotator_token_sha256")),
    )
    op.create_table(
        "judging_task",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("draft", sa.JSON(), nullable=True),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("skips", sa.Integer(), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                *OUTCOMES, name="taskoutcome", native_enum=False, create_constraint=True, length=16
            ),
            nullable=True,
        ),
        sa.Column("done_by", sa.String(100), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("judgment_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("skips >= 0", name=op.f("ck_judging_task_skips_not_negative")),
        sa.CheckConstraint(
            "(outcome IS NULL) = (done_at IS NULL)", name=op.f("ck_judging_task_done_iff_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["round.id"],
            ondelete="CASCADE",
            name=op.f("fk_judging_task_round_id_round"),
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generation.id"],
            ondelete="CASCADE",
            name=op.f("fk_judging_task_generation_id_generation"),
        ),
        sa.ForeignKeyConstraint(
            ["judgment_id"],
            ["judgment.id"],
            ondelete="SET NULL",
            name=op.f("fk_judging_task_judgment_id_judgment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judging_task")),
        sa.UniqueConstraint("generation_id", name=op.f("uq_judging_task_generation_id")),
    )
    op.create_index("ix_judging_task_round_open", "judging_task", ["round_id", "outcome"])


def downgrade() -> None:
    op.drop_index("ix_judging_task_round_open", table_name="judging_task")
    op.drop_table("judging_task")
    op.drop_table("annotator")
    with op.batch_alter_table("judgment") as batch:
        batch.drop_column("annotator")
