"""Submission methods keep the portal's "Mô tả" (description) column apart from the fee note.

Revision ID: 0003_method_description
Revises: 0002_staff_accounts
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_method_description"
down_revision = "0002_staff_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submission_methods") as batch:
        batch.add_column(sa.Column("description", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submission_methods") as batch:
        batch.drop_column("description")
