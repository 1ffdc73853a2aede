"""Live hand-over to hotline staff: state, messages, audit trail, widget conversation tokens.

Revision ID: 0004_handovers
Revises: 0003_method_description
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_handovers"
down_revision = "0003_method_description"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column("sender", sa.String(length=128), primary_key=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=64)),
        sa.Column("waiting_since", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime()),
        sa.Column("ended_at", sa.DateTime()),
        sa.Column("procedure_code", sa.String(length=32)),
        sa.Column("last_citizen_at", sa.DateTime()),
        sa.Column("callback_state", sa.String(length=16)),
        sa.Column("callback_phone", sa.String(length=32)),
    )
    op.create_index("ix_handovers_status", "handovers", ["status"])
    op.create_table(
        "handover_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sender", sa.String(length=128), nullable=False),
        sa.Column("author", sa.String(length=8), nullable=False),
        sa.Column("staff_username", sa.String(length=64)),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("delivery", sa.String(length=16), nullable=False),
        sa.Column("delivery_note", sa.Text()),
        sa.Column("delivery_started_at", sa.DateTime()),
    )
    op.create_index("ix_handover_messages_sender", "handover_messages", ["sender"])
    op.create_index("ix_handover_messages_delivery", "handover_messages", ["delivery"])
    op.create_table(
        "handover_audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sender", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("staff_username", sa.String(length=64)),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_handover_audit_sender", "handover_audit", ["sender"])
    op.create_table(
        "chat_tokens",
        sa.Column("sender", sa.String(length=128), primary_key=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("chat_tokens")
    op.drop_index("ix_handover_audit_sender", table_name="handover_audit")
    op.drop_table("handover_audit")
    op.drop_index("ix_handover_messages_delivery", table_name="handover_messages")
    op.drop_index("ix_handover_messages_sender", table_name="handover_messages")
    op.drop_table("handover_messages")
    op.drop_index("ix_handovers_status", table_name="handovers")
    op.drop_table("handovers")
