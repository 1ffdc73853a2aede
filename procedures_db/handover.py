"""Hand-over of a conversation from the bot to hotline staff: the one place its rules live.

A conversation is *held* while its status is `waiting` (a citizen asked for a person) or
`claimed` (a staff member answers). While held, the citizen's messages are stored here instead of
reaching the bot; the channels and the web server ask `record_citizen_message` first. State is in
the procedures database, so every process (web server, action server, each Rasa replica) sees the
same hold, and it survives restarts. Claims are one conditional UPDATE: two staff members claiming
at once, exactly one wins.

Functions are synchronous (callers run them in a worker thread) and take the engine explicitly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    and_,
    column,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError

from procedures_db.handover_models import ChatToken, Handover, HandoverAudit, HandoverMessage
from procedures_db.text import folded

WAITING, CLAIMED, RETURNED, CLOSED = "waiting", "claimed", "returned", "closed"
HELD = (WAITING, CLAIMED)
CITIZEN, STAFF, BOT = "citizen", "staff", "bot"
# Delivery of a message to the citizen. Widget messages are read by the widget's polling.
DONE, PENDING, SENDING, SENT, FAILED, WINDOW_CLOSED = (
    "done",
    "pending",
    "sending",
    "sent",
    "failed",
    "window_closed",
)
PUSH_CHANNELS = ("zalo", "facebook")
# How long after the citizen's last message a platform accepts messages from the page.
REPLY_WINDOWS = {"zalo": timedelta(hours=48), "facebook": timedelta(hours=24)}
PLATFORM_NAMES = {"zalo": "Zalo", "facebook": "Messenger", "widget": "khung chat"}
# A replica that died while sending leaves messages "sending": another replica retries them.
STALE_SENDING = timedelta(seconds=60)
MAX_STAFF_MESSAGE_CHARS = 2000

CLAIMED_NOTICE = "Cán bộ tổng đài đã tiếp nhận và sẽ trả lời bạn ngay tại đây."
RETURNED_NOTICE = (
    "Cán bộ đã chuyển cuộc trò chuyện lại cho trợ lý ảo. Bạn cứ tiếp tục hỏi về thủ tục nhé."
)
CLOSED_NOTICE = (
    "Cán bộ đã hoàn tất hỗ trợ. Nếu cần hỏi thêm, bạn cứ nhắn: trợ lý ảo sẽ trả lời bạn."
)
CALLBACK_YES = "Đồng ý để lại số điện thoại"
CALLBACK_NO = "Không cần gọi lại"
ASK_PHONE = (
    "Bạn vui lòng nhập số điện thoại để cán bộ gọi lại (ví dụ 0912 345 678). Số chỉ dùng để "
    "gọi lại và được xoá sau khi hết thời hạn lưu."
)
PHONE_INVALID = "Số điện thoại chưa đúng. Bạn nhập lại giúp tôi (ví dụ 0912 345 678) nhé."
CALLBACK_DECLINED = "Vâng. Cán bộ sẽ trả lời bạn tại đây khi bộ phận hỗ trợ làm việc."
_YES = {"co", "ok", "vang", "u", "uh", "yes"}
_NO = {"khong", "thoi", "ko", "k", "no"}
_PHONE = re.compile(r"(?:\+?84|0)(?:[ .\-]?\d){8,10}")


class HandoverError(Exception):
    """A staff action that cannot be done now; `status` is the HTTP status, `message` Vietnamese."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class HandoverState:
    sender: str
    channel: str
    status: str
    claimed_by: str | None
    waiting_since: datetime
    claimed_at: datetime | None
    procedure_code: str | None
    last_citizen_at: datetime | None
    callback_state: str | None
    callback_phone: str | None

    @property
    def held(self) -> bool:
        return self.status in HELD

    def window_closed(self, now: datetime) -> bool:
        window = REPLY_WINDOWS.get(self.channel)
        seen = self.last_citizen_at or self.waiting_since
        return window is not None and now - seen > window


@dataclass(frozen=True)
class Message:
    id: int
    sender: str
    author: str
    staff_username: str | None
    text: str
    created_at: datetime
    channel: str
    delivery: str
    delivery_note: str | None


@dataclass(frozen=True)
class CitizenTurn:
    """A citizen message taken by the hold; `reply` is an automatic answer to send, if any."""

    reply: str | None = None


def store_available(database_url: str) -> bool:
    """False when the database is a SQLite file never created (nothing imported yet): chat then
    works without hand-over instead of creating an empty database file."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return True
    return Path(url.database).exists()


def channel_of(input_channel: str | None) -> str:
    """Rasa's input channel name as staff see it: the REST channel is the web widget."""
    return {"rest": "widget", None: "widget", "": "widget"}.get(input_channel, input_channel)


def mask_phone(phone: str | None) -> str | None:
    """A call-back number as staff lists show it: only the last three digits."""
    if not phone:
        return None
    return "•" * max(0, len(phone) - 3) + phone[-3:]


def find_phone(text: str) -> str | None:
    match = _PHONE.search(text or "")
    if not match:
        return None
    digits = re.sub(r"\D", "", match.group(0))
    return "0" + digits[2:] if digits.startswith("84") else digits


def _state(row: Any) -> HandoverState:
    return HandoverState(
        sender=row.sender,
        channel=row.channel,
        status=row.status,
        claimed_by=row.claimed_by,
        waiting_since=row.waiting_since,
        claimed_at=row.claimed_at,
        procedure_code=row.procedure_code,
        last_citizen_at=row.last_citizen_at,
        callback_state=row.callback_state,
        callback_phone=row.callback_phone,
    )


def _message(row: Any) -> Message:
    return Message(
        id=row.id,
        sender=row.sender,
        author=row.author,
        staff_username=row.staff_username,
        text=row.text,
        created_at=row.created_at,
        channel=row.channel,
        delivery=row.delivery,
        delivery_note=row.delivery_note,
    )


def _read(connection: Any, sender: str) -> HandoverState | None:
    row = connection.execute(select(Handover).where(Handover.sender == sender)).first()
    return _state(row) if row else None


def _audit(connection: Any, sender: str, action: str, username: str | None, now: datetime) -> None:
    connection.execute(
        insert(HandoverAudit).values(sender=sender, action=action, staff_username=username, at=now)
    )


def _add_message(
    connection: Any,
    state: HandoverState,
    author: str,
    text: str,
    now: datetime,
    username: str | None = None,
    *,
    push: bool = True,
) -> int:
    """Store a message; one for the citizen on Zalo/Messenger waits for a replica to send it
    (`push=False`: the caller answers it at once)."""
    delivery, note = DONE, None
    if push and author != CITIZEN and state.channel in PUSH_CHANNELS:
        delivery = PENDING
        if state.window_closed(now):
            delivery, note = WINDOW_CLOSED, window_note(state.channel)
    result = connection.execute(
        insert(HandoverMessage).values(
            sender=state.sender,
            author=author,
            staff_username=username,
            text=text,
            created_at=now,
            channel=state.channel,
            delivery=delivery,
            delivery_note=note,
        )
    )
    return int(result.inserted_primary_key[0])


def window_note(channel: str) -> str:
    hours = int(REPLY_WINDOWS[channel].total_seconds() // 3600)
    return (
        f"{PLATFORM_NAMES[channel]} chỉ cho gửi tin trong {hours} giờ sau tin nhắn cuối của người "
        "dân: tin này không gửi được. Hãy gọi lại người dân (nếu có số) hoặc chờ họ nhắn tiếp."
    )


# --- requests and the hold --------------------------------------------------------------------


def request_handover(
    sender: str,
    channel: str,
    *,
    procedure_code: str | None,
    offer_callback: bool,
    now: datetime,
    engine: Engine,
) -> HandoverState:
    """The citizen asked for a person. Asking again while held changes nothing."""
    with engine.begin() as connection:
        current = _read(connection, sender)
        if current is not None and current.held:
            return current
        values = {
            "channel": channel,
            "status": WAITING,
            "claimed_by": None,
            "waiting_since": now,
            "claimed_at": None,
            "ended_at": None,
            "procedure_code": procedure_code,
            "last_citizen_at": now,
            "callback_state": "offered" if offer_callback else None,
            "callback_phone": None,
        }
        if current is None:
            connection.execute(insert(Handover).values(sender=sender, **values))
        else:
            connection.execute(update(Handover).where(Handover.sender == sender).values(**values))
        _audit(connection, sender, "request", None, now)
        return _read(connection, sender)


def get_state(sender: str, *, engine: Engine) -> HandoverState | None:
    with engine.connect() as connection:
        return _read(connection, sender)


def held_conversations(*, engine: Engine) -> list[HandoverState]:
    """Waiting conversations first, the longest wait first; then the claimed ones."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(Handover)
            .where(Handover.status.in_(HELD))
            .order_by(Handover.status.desc(), Handover.waiting_since)
        )
        return [_state(row) for row in rows]


def record_citizen_message(
    sender: str, text: str, *, now: datetime, engine: Engine
) -> CitizenTurn | None:
    """Keep the message for staff when the conversation is held; None when the bot answers."""
    with engine.begin() as connection:
        state = _read(connection, sender)
        if state is None or not state.held:
            return None
        _add_message(connection, state, CITIZEN, text, now)
        changes: dict[str, Any] = {"last_citizen_at": now}
        turn = _callback_step(state, text, changes)
        connection.execute(update(Handover).where(Handover.sender == sender).values(**changes))
        if turn.reply:
            _add_message(connection, state, BOT, turn.reply, now, push=False)
        return turn


def _callback_step(state: HandoverState, text: str, changes: dict[str, Any]) -> CitizenTurn:
    """Outside office hours: consent first, then the number."""
    words = folded(text)
    first = words.split()[0] if words else ""
    if state.callback_state == "offered":
        if words.startswith("dong y") or first in _YES:
            changes["callback_state"] = "consented"
            return CitizenTurn(ASK_PHONE)
        if first in _NO:
            changes["callback_state"] = "declined"
            return CitizenTurn(CALLBACK_DECLINED)
    elif state.callback_state == "consented":
        phone = find_phone(text)
        if phone is None:
            return CitizenTurn(PHONE_INVALID)
        changes.update(callback_state="given", callback_phone=phone)
        return CitizenTurn(
            f"Đã ghi nhận số điện thoại {mask_phone(phone)}. Cán bộ sẽ gọi lại cho bạn khi bộ "
            "phận hỗ trợ làm việc. Bạn cũng có thể nhắn tiếp tại đây."
        )
    return CitizenTurn()


# --- staff actions ----------------------------------------------------------------------------


def claim(
    sender: str,
    username: str,
    *,
    now: datetime,
    engine: Engine,
    channel: str = "widget",
    last_citizen_at: datetime | None = None,
) -> HandoverState:
    """Take the conversation. A conversation nobody asked to hand over (picked from the
    unanswered list) is held from now on, with `channel` and `last_citizen_at` from its history.
    Raises HandoverError 409 when another staff member holds it."""
    with engine.begin() as connection:
        won = connection.execute(
            update(Handover)
            .where(
                Handover.sender == sender,
                Handover.status.in_((WAITING, RETURNED, CLOSED)),
            )
            .values(status=CLAIMED, claimed_by=username, claimed_at=now, ended_at=None)
        ).rowcount
        if not won:
            current = _read(connection, sender)
            if current is None:
                won = _insert_claimed(connection, sender, username, now, channel, last_citizen_at)
            elif current.status == CLAIMED and current.claimed_by == username:
                return current
        if not won:
            holder = _read(connection, sender)
            raise HandoverError(
                409,
                "already_claimed",
                f"Cán bộ {holder.claimed_by if holder else 'khác'} đã nhận cuộc trò chuyện này.",
            )
        state = _read(connection, sender)
        _audit(connection, sender, "claim", username, now)
        _add_message(connection, state, BOT, CLAIMED_NOTICE, now)
        return state


def _insert_claimed(connection, sender, username, now, channel, last_citizen_at) -> bool:
    try:
        with connection.begin_nested():
            connection.execute(
                insert(Handover).values(
                    sender=sender,
                    channel=channel,
                    status=CLAIMED,
                    claimed_by=username,
                    waiting_since=now,
                    claimed_at=now,
                    last_citizen_at=last_citizen_at,
                )
            )
    except IntegrityError:  # someone else inserted it a moment ago: they won
        return False
    return True


def _held_by(connection: Any, sender: str, username: str) -> HandoverState:
    state = _read(connection, sender)
    if state is None or not state.held:
        raise HandoverError(409, "not_held", "Cuộc trò chuyện này không còn chờ cán bộ.")
    if state.status != CLAIMED or state.claimed_by != username:
        holder = state.claimed_by or "chưa ai"
        raise HandoverError(
            409, "not_yours", f"Hãy nhận cuộc trò chuyện trước (đang do {holder} giữ)."
        )
    return state


def add_staff_reply(sender: str, username: str, text: str, *, now: datetime, engine: Engine):
    """A reply to the citizen; on Zalo/Messenger refused (409) once the reply window closed."""
    text = (text or "").strip()
    if not text:
        raise HandoverError(400, "empty_text", "Nội dung trả lời trống.")
    if len(text) > MAX_STAFF_MESSAGE_CHARS:
        raise HandoverError(
            400, "text_too_long", f"Tối đa {MAX_STAFF_MESSAGE_CHARS} ký tự mỗi tin nhắn."
        )
    with engine.begin() as connection:
        state = _held_by(connection, sender, username)
        if state.window_closed(now):
            raise HandoverError(409, "reply_window_closed", window_note(state.channel))
        message_id = _add_message(connection, state, STAFF, text, now, username)
        _audit(connection, sender, "reply", username, now)
        row = connection.execute(select(HandoverMessage).where(HandoverMessage.id == message_id))
        return _message(row.one())


def end_handover(
    sender: str, username: str, *, to_bot: bool, now: datetime, engine: Engine
) -> HandoverState:
    """Hand the conversation back to the bot, or close it as handled; either way the bot
    answers the citizen's next message."""
    status, notice = (RETURNED, RETURNED_NOTICE) if to_bot else (CLOSED, CLOSED_NOTICE)
    with engine.begin() as connection:
        state = _held_by(connection, sender, username)
        connection.execute(
            update(Handover).where(Handover.sender == sender).values(status=status, ended_at=now)
        )
        _audit(connection, sender, "return" if to_bot else "close", username, now)
        _add_message(connection, state, BOT, notice, now)
        return _read(connection, sender)


# --- messages ---------------------------------------------------------------------------------


def messages(
    sender: str, *, engine: Engine, after: int = 0, authors: tuple[str, ...] | None = None
) -> list[Message]:
    statement = select(HandoverMessage).where(
        HandoverMessage.sender == sender, HandoverMessage.id > after
    )
    if authors:
        statement = statement.where(HandoverMessage.author.in_(authors))
    with engine.connect() as connection:
        rows = connection.execute(statement.order_by(HandoverMessage.id).limit(500))
        return [_message(row) for row in rows]


def latest_citizen_texts(senders: list[str], *, engine: Engine) -> dict[str, str]:
    """Each conversation's last message from the citizen since the hand-over (for the queue)."""
    if not senders:
        return {}
    newest = (
        select(func.max(HandoverMessage.id))
        .where(HandoverMessage.sender.in_(senders), HandoverMessage.author == CITIZEN)
        .group_by(HandoverMessage.sender)
    )
    with engine.connect() as connection:
        rows = connection.execute(
            select(HandoverMessage.sender, HandoverMessage.text).where(
                HandoverMessage.id.in_(newest)
            )
        )
        return {row.sender: row.text for row in rows}


def take_outgoing(channel: str, *, now: datetime, engine: Engine, limit: int = 20) -> list[Message]:
    """Messages for `channel` to send, marked as being sent by this caller (one replica each)."""
    with engine.begin() as connection:
        ids = list(
            connection.execute(
                select(HandoverMessage.id)
                .where(
                    HandoverMessage.channel == channel,
                    or_(
                        HandoverMessage.delivery == PENDING,
                        and_(
                            HandoverMessage.delivery == SENDING,
                            HandoverMessage.delivery_started_at < now - STALE_SENDING,
                        ),
                    ),
                )
                .order_by(HandoverMessage.id)
                .limit(limit)
            ).scalars()
        )
    taken = []
    for message_id in ids:
        with engine.begin() as connection:
            # Conditional: of two replicas selecting the same row, one updates it.
            got = connection.execute(
                update(HandoverMessage)
                .where(
                    HandoverMessage.id == message_id,
                    or_(
                        HandoverMessage.delivery == PENDING,
                        HandoverMessage.delivery_started_at < now - STALE_SENDING,
                    ),
                )
                .values(delivery=SENDING, delivery_started_at=now)
            ).rowcount
            if got:
                row = connection.execute(
                    select(HandoverMessage).where(HandoverMessage.id == message_id)
                ).one()
                taken.append(_message(row))
    return taken


def window_still_open(sender: str, *, now: datetime, engine: Engine) -> bool:
    state = get_state(sender, engine=engine)
    return state is None or not state.window_closed(now)


def mark_delivery(message_id: int, outcome: str, note: str | None, *, engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(HandoverMessage)
            .where(HandoverMessage.id == message_id)
            .values(delivery=outcome, delivery_note=note)
        )


def audit_trail(sender: str, *, engine: Engine) -> list[tuple[str, str | None, datetime]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(HandoverAudit.action, HandoverAudit.staff_username, HandoverAudit.at)
            .where(HandoverAudit.sender == sender)
            .order_by(HandoverAudit.id)
        )
        return [(row.action, row.staff_username, row.at) for row in rows]


# --- the widget's conversation token -----------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def check_chat_token(sender: str, token: str | None, *, now: datetime, engine: Engine):
    """('ok', None) for the right token, ('new', token) when the sender had none (one is
    issued now), ('wrong', None) otherwise."""
    with engine.begin() as connection:
        stored = connection.execute(
            select(ChatToken.token_hash).where(ChatToken.sender == sender)
        ).scalar_one_or_none()
        if stored is None:
            fresh = secrets.token_urlsafe(24)
            try:
                with connection.begin_nested():
                    connection.execute(
                        insert(ChatToken).values(
                            sender=sender, token_hash=_token_hash(fresh), created_at=now
                        )
                    )
            except IntegrityError:  # a simultaneous first message got the token
                return "wrong", None
            return "new", fresh
    if isinstance(token, str) and hmac.compare_digest(stored, _token_hash(token)):
        return "ok", None
    return "wrong", None


def token_matches(sender: str, token: str | None, *, engine: Engine) -> bool:
    """For reading updates: only the holder of the sender's token (never issues one)."""
    with engine.connect() as connection:
        stored = connection.execute(
            select(ChatToken.token_hash).where(ChatToken.sender == sender)
        ).scalar_one_or_none()
    return (
        stored is not None
        and isinstance(token, str)
        and hmac.compare_digest(stored, _token_hash(token))
    )


# --- retention --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeReport:
    callback_numbers: int
    messages: int
    handovers: int


def purge(*, now: datetime, days: float, callback_days: float, engine: Engine) -> PurgeReport:
    """Delete call-back numbers `callback_days` after the request, and ended hand-overs with
    their messages, audit trail and widget tokens `days` after their last activity."""
    number_cutoff = now - timedelta(days=callback_days)
    cutoff = now - timedelta(days=days)
    with engine.begin() as connection:
        numbers = connection.execute(
            update(Handover)
            .where(Handover.callback_phone.is_not(None), Handover.waiting_since < number_cutoff)
            .values(callback_phone=None, callback_state="deleted")
        ).rowcount
        old = list(
            connection.execute(
                select(Handover.sender).where(
                    Handover.status.not_in(HELD),
                    or_(Handover.ended_at < cutoff, Handover.ended_at.is_(None)),
                    Handover.waiting_since < cutoff,
                )
            ).scalars()
        )
        removed = 0
        if old:
            removed = connection.execute(
                delete(HandoverMessage).where(HandoverMessage.sender.in_(old))
            ).rowcount
            connection.execute(delete(HandoverAudit).where(HandoverAudit.sender.in_(old)))
            connection.execute(delete(Handover).where(Handover.sender.in_(old)))
        connection.execute(delete(ChatToken).where(ChatToken.created_at < cutoff))
    return PurgeReport(numbers, removed, len(old))


# --- the conversation before the hand-over (Rasa's tracker store, read only) ---------------------

EVENTS = table(
    "events",
    column("id"),
    column("sender_id"),
    column("type_name"),
    column("timestamp"),
    column("data"),
)


@dataclass(frozen=True)
class Turn:
    at: datetime
    author: str  # citizen | bot
    text: str


@dataclass(frozen=True)
class History:
    turns: list[Turn]
    channel: str | None  # where the citizen last wrote from
    last_citizen_at: datetime | None


def tracker_history(sender: str, *, engine: Engine, limit: int = 200) -> History:
    """The citizen's and the bot's texts of one conversation in Rasa's `events` table."""
    if not inspect(engine).has_table("events"):
        return History([], None, None)
    statement = (
        select(EVENTS)
        .where(EVENTS.c.sender_id == sender, EVENTS.c.type_name.in_(("user", "bot")))
        .order_by(EVENTS.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = list(reversed(connection.execute(statement).fetchall()))
    turns, channel, last_citizen_at = [], None, None
    for row in rows:
        try:
            data = json.loads(row.data or "{}")
        except ValueError:
            continue
        at = datetime.utcfromtimestamp(row.timestamp or 0)
        if row.type_name == "user":
            channel, last_citizen_at = channel_of(data.get("input_channel")), at
        text = data.get("text")
        if isinstance(text, str) and text.strip():
            turns.append(Turn(at, CITIZEN if row.type_name == "user" else BOT, text))
    return History(turns, channel, last_citizen_at)
