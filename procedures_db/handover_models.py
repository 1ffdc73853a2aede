"""Tables of the live hand-over from the bot to hotline staff (Alembic revision 0004_handovers).

They live in the procedures database because every process needs them: the web server (staff
inbox, widget), the action server (a citizen asks for a person) and each Rasa replica (Zalo and
Messenger messages while staff hold the conversation; delivery of staff replies).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, String, Text

from procedures_db.models import Base


class Handover(Base):
    """The hand-over state of one conversation (one row per sender, reused by later requests)."""

    __tablename__ = "handovers"

    sender = Column(String(128), primary_key=True)
    channel = Column(String(16), nullable=False)  # widget | zalo | facebook
    status = Column(String(16), nullable=False, index=True)  # waiting | claimed | returned | closed
    claimed_by = Column(String(64))
    waiting_since = Column(DateTime, nullable=False)
    claimed_at = Column(DateTime)
    ended_at = Column(DateTime)
    procedure_code = Column(String(32))
    last_citizen_at = Column(DateTime)  # opens the platforms' reply windows
    callback_state = Column(String(16))  # offered | consented | given | declined
    callback_phone = Column(String(32))  # deleted by scripts/retention.py


class HandoverMessage(Base):
    """What was said while a person held the conversation, and the delivery of staff replies."""

    __tablename__ = "handover_messages"

    id = Column(Integer, primary_key=True)
    sender = Column(String(128), nullable=False, index=True)
    author = Column(String(8), nullable=False)  # citizen | staff | bot
    staff_username = Column(String(64))
    text = Column(Text, nullable=False)
    created_at = Column(DateTime, nullable=False)
    channel = Column(String(16), nullable=False)
    # Zalo/Messenger: pending | sending | sent | failed | window_closed; widget and citizen: done
    delivery = Column(String(16), nullable=False, index=True)
    delivery_note = Column(Text)
    delivery_started_at = Column(DateTime)


class HandoverAudit(Base):
    """Who did what and when: requests, claims, replies, hand-backs, closes."""

    __tablename__ = "handover_audit"

    id = Column(Integer, primary_key=True)
    sender = Column(String(128), nullable=False, index=True)
    action = Column(String(16), nullable=False)
    staff_username = Column(String(64))
    at = Column(DateTime, nullable=False)


class ChatToken(Base):
    """The widget's per-conversation secret: only its SHA-256 is stored."""

    __tablename__ = "chat_tokens"

    sender = Column(String(128), primary_key=True)
    token_hash = Column(String(64), nullable=False)
    created_at = Column(DateTime, nullable=False)
