"""The widget's side of the hand-over: the per-conversation token, the hold, and the updates.

The first `POST /api/chat` of a sender answers with a `token`; later messages of that sender
must carry it, and `GET /api/chat/updates?sender=...&token=...[&after=id]` returns what staff
(and the hand-over notices) sent that the widget did not ask for. A wrong or missing token for a
sender that has one gets 403: nobody reads or writes into another person's conversation by
guessing its sender id. While staff hold the conversation, `/api/chat` stores the message for
them and does not ask the bot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from procedures_db import handover
from procedures_db.db import get_engine
from procedures_db.settings import Settings

log = logging.getLogger(__name__)

SENDER_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
STORE_TIMEOUT_S = 3.0
FORBIDDEN_MESSAGE = (
    "Mã cuộc trò chuyện không hợp lệ. Bạn vui lòng bấm nút bắt đầu cuộc trò chuyện mới."
)


class ChatAccessError(Exception):
    """Refused: same attributes as portal.ChatInputError, so /api/chat answers it alike."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def store_available(settings: Settings) -> bool:
    return handover.store_available(settings.database_url)


async def _store(settings: Settings, function, *args, **kwargs):
    kwargs.setdefault("engine", get_engine(settings.database_url))
    return await asyncio.wait_for(
        asyncio.to_thread(function, *args, **kwargs),
        max(STORE_TIMEOUT_S, settings.action_timeout_s),
    )


def _utcnow() -> datetime:
    return datetime.utcnow()


@dataclass
class Conversation:
    """One accepted /api/chat request: the token to hand out (first message only)."""

    settings: Settings
    sender: str
    new_token: str | None = None
    store_ok: bool = True

    def extra(self) -> dict[str, str]:
        return {"token": self.new_token} if self.new_token else {}

    async def hold(self, message: str) -> list[dict] | None:
        """The replies when staff hold the conversation (the message is kept for them); None
        when the bot should answer. A failing store lets the bot answer (logged)."""
        if not self.store_ok:
            return None
        try:
            turn = await _store(
                self.settings,
                handover.record_citizen_message,
                self.sender,
                message,
                now=_utcnow(),
            )
        except Exception:
            log.exception("Hand-over store unavailable; the bot answers %s", self.sender)
            return None
        if turn is None:
            return None
        # Automatic replies are stored as messages too: the widget gets them by polling.
        return []


def _token_of(body: bytes) -> str | None:
    try:
        token = json.loads(body.decode("utf-8")).get("token")
    except (ValueError, AttributeError):
        return None
    return token if isinstance(token, str) else None


async def open_conversation(settings: Settings, sender: str, body: bytes) -> Conversation:
    """Check (or issue) the sender's token; raises ChatAccessError 403 when it is wrong."""
    if not store_available(settings):
        return Conversation(settings, sender, store_ok=False)
    try:
        outcome, token = await _store(
            settings, handover.check_chat_token, sender, _token_of(body), now=_utcnow()
        )
    except Exception:
        log.exception("Hand-over store unavailable; chat of %s without token check", sender)
        return Conversation(settings, sender, store_ok=False)
    if outcome == "wrong":
        raise ChatAccessError(403, "wrong_token", FORBIDDEN_MESSAGE)
    return Conversation(settings, sender, new_token=token)


# --- GET /api/chat/updates ----------------------------------------------------------------------


def _bad_request(message: str, cors: dict[str, str]) -> web.Response:
    return web.json_response(
        {"error": "invalid_request", "message": message}, status=400, headers=cors
    )


async def chat_updates(request: web.Request, cors: dict[str, str]) -> web.Response:
    settings: Settings = request.app["settings"]
    sender = request.query.get("sender", "")
    token = request.query.get("token")
    if not SENDER_PATTERN.fullmatch(sender):
        return _bad_request("Tham số 'sender' không hợp lệ.", cors)
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        return _bad_request("Tham số 'after' phải là số nguyên.", cors)
    if not store_available(settings):
        return web.json_response(
            {"error": "wrong_token", "message": FORBIDDEN_MESSAGE}, status=403, headers=cors
        )
    try:
        allowed = await _store(settings, handover.token_matches, sender, token)
        if not allowed:
            return web.json_response(
                {"error": "wrong_token", "message": FORBIDDEN_MESSAGE}, status=403, headers=cors
            )
        found = await _store(
            settings, handover.messages, sender, after=after, authors=(handover.STAFF, handover.BOT)
        )
        state = await _store(settings, handover.get_state, sender)
    except Exception:
        log.exception("Hand-over store unavailable for updates of %s", sender)
        return web.json_response(
            {"error": "unavailable", "message": "Tạm thời chưa lấy được tin mới."},
            status=503,
            headers=cors,
        )
    body = {
        "messages": [{"id": m.id, "from": m.author, "text": m.text} for m in found],
        "held": bool(state and state.held),
    }
    return web.json_response(
        body, headers=cors, dumps=lambda data: json.dumps(data, ensure_ascii=False)
    )
