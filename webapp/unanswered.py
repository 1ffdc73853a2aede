"""What the bot could not answer, read from Rasa's SQL tracker store (table `events`).

A citizen message counts as unanswered when its intent was `nlu_fallback` or `out_of_scope`, or
when it led to a list of candidate procedures (disambiguation) and the citizen's next message
did not pick one, or the conversation stopped there, or when the citizen rated its answer
"Chưa đúng" (intent `feedback`, entity `rating`); ratings are also counted per procedure.
Message text is shown masked (procedures_db.privacy); sender ids only as a short hash.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import column, create_engine, inspect, select, table
from sqlalchemy.engine import Engine, make_url

from procedures_db.privacy import mask_personal_data
from procedures_db.vocabulary import load_vocabulary

FALLBACK_INTENTS = {"nlu_fallback": "Bot không hiểu", "out_of_scope": "Ngoài phạm vi"}
ABANDONED = "Bỏ dở khi chọn thủ tục"
FEEDBACK_INTENT = "feedback"  # the "Hữu ích" / "Chưa đúng" buttons (actions/formatting.py)
HELPFUL, WRONG = "helpful", "wrong"
MARKED_WRONG = "Người dân báo chưa đúng"
PROCEDURE_SLOT = "procedure_code"
CANDIDATES_SLOT = "procedure_candidates"  # set by actions/disambiguation.py when it offers a list
_CODE = load_vocabulary().code_re  # codes.yml

EVENTS = table(
    "events",
    column("id"),
    column("sender_id"),
    column("type_name"),
    column("timestamp"),
    column("intent_name"),
    column("data"),
)


@dataclass(frozen=True)
class UnansweredMessage:
    timestamp: datetime
    conversation: str  # short hash of the sender id
    text: str  # masked
    reason: str
    detail: str = ""  # masked
    sender: str = ""  # for the link that opens the conversation in the staff inbox


@dataclass
class UnansweredReport:
    messages: list[UnansweredMessage] = field(default_factory=list)
    top_procedures: list[tuple[str, int]] = field(default_factory=list)  # (code, conversations)
    feedback: list[tuple[str, int, int]] = field(default_factory=list)  # (code, helpful, wrong)
    events_read: int = 0
    store_found: bool = True


@dataclass
class _Offer:
    question: dict[str, Any] | None
    candidates: set[str]
    reply: dict[str, Any] | None = None
    chosen: bool = False


def _data(row: Any) -> dict[str, Any]:
    try:
        data = json.loads(row.data or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _conversation(sender_id: str) -> str:
    return hashlib.sha256(sender_id.encode("utf-8")).hexdigest()[:8]


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(event.get("timestamp") or 0, tz=timezone.utc)


def _intent(event: dict[str, Any]) -> str | None:
    return event.get("_intent") or ((event.get("parse_data") or {}).get("intent") or {}).get("name")


def _offered_codes(event: dict[str, Any]) -> set[str]:
    """Candidate codes a bot message or the candidates slot puts in front of the citizen."""
    if event.get("event") == "slot":
        value = event.get("value") if event.get("name") == CANDIDATES_SLOT else None
        return {c["code"] for c in value or [] if isinstance(c, dict) and c.get("code")}
    buttons = (event.get("data") or {}).get("buttons") or []
    codes = {code for b in buttons for code in _CODE.findall(str(b.get("payload", "")))}
    return codes if len(codes) >= 2 else set()


def _mentions(event: dict[str, Any], codes: set[str]) -> bool:
    """The reply names a candidate (a button payload or a typed code)."""
    return bool(set(_CODE.findall(event.get("text") or "")) & codes)


def _entry(event: dict[str, Any] | None, sender: str, reason: str, detail: str = ""):
    if event is None:
        return None
    return UnansweredMessage(
        timestamp=_time(event),
        conversation=_conversation(sender),
        text=mask_personal_data(event.get("text") or ""),
        reason=reason,
        detail=mask_personal_data(detail),
        sender=sender,
    )


def _entity(event: dict[str, Any], name: str) -> str | None:
    entities = (event.get("parse_data") or {}).get("entities") or []
    values = [str(e.get("value")) for e in entities if e.get("entity") == name and e.get("value")]
    return values[0] if values else None


def _feedback(
    event: dict[str, Any], question: dict[str, Any] | None, code: str | None, sender: str, rated
) -> UnansweredMessage | None:
    """Count a rating; a "Chưa đúng" is listed with the question whose answer it rates."""
    rating = _entity(event, "rating")
    code = _entity(event, PROCEDURE_SLOT) or code
    if rating not in (HELPFUL, WRONG) or not code:
        return None
    rated[(code, rating)] += 1
    if rating != WRONG:
        return None
    return _entry(question or event, sender, MARKED_WRONG, f"Thủ tục {code}")


def _abandoned(offer: _Offer, sender: str) -> UnansweredMessage | None:
    if offer.chosen:
        return None
    if offer.reply is None:
        detail = "Người dân không trả lời sau khi bot đưa danh sách."
    else:
        detail = f"Trả lời tiếp: {offer.reply.get('text') or ''}"
    return _entry(offer.question, sender, ABANDONED, detail)


def _conversation_findings(
    sender: str, events: Iterable[dict[str, Any]], asked: Counter, rated: Counter
) -> Iterator[UnansweredMessage]:
    last_user: dict[str, Any] | None = None
    offer: _Offer | None = None
    codes_asked: set[str] = set()
    current: str | None = None
    for event in events:
        kind = event.get("event")
        if kind == "user" and _intent(event) == FEEDBACK_INTENT:
            found = _feedback(event, last_user, current, sender, rated)
            if found:
                yield found
            continue
        if kind == "user":
            if offer and offer.reply is None:
                offer.reply = event
                offer.chosen = _mentions(event, offer.candidates)
            elif offer:
                found = _abandoned(offer, sender)
                if found:
                    yield found
                offer = None
            reason = FALLBACK_INTENTS.get(_intent(event) or "")
            if reason:
                yield _entry(event, sender, f"{reason} ({_intent(event)})")
            last_user = event
        elif kind == "slot" and event.get("name") == PROCEDURE_SLOT and event.get("value"):
            current = str(event["value"])
            codes_asked.add(current)
            if offer and offer.reply is not None and event["value"] in offer.candidates:
                offer.chosen = True
        codes = _offered_codes(event) if kind in ("bot", "slot") else set()
        if not codes:
            continue
        if offer and offer.reply is None and offer.question is last_user:
            offer.candidates |= codes  # the buttons and the slot of the same offer
            continue
        if offer:
            found = _abandoned(offer, sender)
            if found:
                yield found
        offer = _Offer(question=last_user, candidates=codes)
    if offer:
        found = _abandoned(offer, sender)
        if found:
            yield found
    asked.update(codes_asked)


def _feedback_counts(rated: Counter) -> list[tuple[str, int, int]]:
    """(code, helpful, wrong) per rated procedure, the most often wrong first."""
    codes = {code for code, _ in rated}
    counts = [(code, rated[(code, HELPFUL)], rated[(code, WRONG)]) for code in codes]
    return sorted(counts, key=lambda row: (-row[2], -row[1], row[0]))


@lru_cache(maxsize=4)
def tracker_engine(url: str) -> Engine:
    """A plain engine: unlike procedures_db.db.get_engine it sets no SQLite pragmas, since this
    database belongs to Rasa and is only read here."""
    return create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))


def _tracker_missing(url: str) -> bool:
    parsed = make_url(url)
    database = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and (
        not database or database == ":memory:" or not Path(database).exists()
    )


def _recent_events(engine: Engine, scan_limit: int) -> dict[str, list[dict[str, Any]]]:
    """The newest `scan_limit` events, grouped by conversation, oldest first."""
    statement = (
        select(EVENTS)
        .where(EVENTS.c.type_name.in_(("user", "bot", "slot")))
        .order_by(EVENTS.c.id.desc())
        .limit(scan_limit)
    )
    with engine.connect() as connection:
        rows = connection.execute(statement).fetchall()
    conversations: dict[str, list[dict[str, Any]]] = {}
    for row in reversed(rows):
        event = _data(row)
        event.setdefault("event", row.type_name)
        event.setdefault("timestamp", row.timestamp)
        event["_intent"] = row.intent_name
        conversations.setdefault(row.sender_id, []).append(event)
    return conversations


def read_unanswered(
    tracker_url: str, *, limit: int = 100, top: int = 10, scan_limit: int = 20_000
) -> UnansweredReport:
    """Recent unanswered messages (newest first) and the most asked procedure codes."""
    if _tracker_missing(tracker_url):
        return UnansweredReport(store_found=False)
    engine = tracker_engine(tracker_url)
    if not inspect(engine).has_table("events"):
        return UnansweredReport(store_found=False)
    conversations = _recent_events(engine, scan_limit)
    asked: Counter = Counter()
    rated: Counter = Counter()
    messages = [
        found
        for sender, events in conversations.items()
        for found in _conversation_findings(sender, events, asked, rated)
        if found is not None
    ]
    messages.sort(key=lambda message: message.timestamp, reverse=True)
    return UnansweredReport(
        messages=messages[:limit],
        top_procedures=asked.most_common(top),
        feedback=_feedback_counts(rated),
        events_read=sum(len(events) for events in conversations.values()),
    )
