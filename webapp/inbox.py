"""Staff inbox (/staff/inbox) and its JSON API under the staff session.

    GET  /staff/api/session                      {"username", "csrf_token"}
    GET  /staff/api/handovers                    {"handovers": [{"sender", "channel", "status",
                                                  "claimed_by", "waiting_since", ...}]}
    GET  /staff/api/handovers/{sender}           the conversation so far (masked) and its state
    POST /staff/api/handovers/{sender}/claim     take it (409 when someone else has it)
    POST /staff/api/handovers/{sender}/messages  {"text": ...} a reply to the citizen
    POST /staff/api/handovers/{sender}/release   hand it back to the bot
    POST /staff/api/handovers/{sender}/close     close it as handled

POSTs need the header X-CSRF-Token with the session's token (403 otherwise); without a session
every call gets 401. The rules themselves live in procedures_db.handover.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from aiohttp import web

from procedures_db import handover
from procedures_db.privacy import mask_personal_data
from webapp import auth, staff
from webapp.api import error_response, json_response
from webapp.citizen_chat import SENDER_PATTERN
from webapp.lookup import LookupUnavailable, call_blocking
from webapp.unanswered import _tracker_missing, tracker_engine

CSRF_HEADER = "X-CSRF-Token"
MAX_BODY_BYTES = 16 * 1024


def _iso(moment: datetime | None) -> str | None:
    return f"{moment.isoformat(timespec='seconds')}Z" if moment else None


def _now() -> datetime:
    return datetime.utcnow()


def _engine(request: web.Request):
    return staff._engine(request)


async def _call(request: web.Request, function, *args, **kwargs):
    """The store call in a worker thread with the configured timeout; a HandoverError (a rule
    said no) reaches the handler, any other failure becomes LookupUnavailable (503)."""
    kwargs.setdefault("engine", _engine(request))
    refusal: list[handover.HandoverError] = []

    def run():
        try:
            return function(*args, **kwargs)
        except handover.HandoverError as error:
            refusal.append(error)
            return None

    result = await call_blocking(request.app["settings"], run)
    if refusal:
        raise refusal[0]
    return result


def _api(handler, *, post: bool = False):
    """Signed-in staff (401 otherwise); POSTs with the session's CSRF token (403 otherwise);
    store errors as JSON, never a stack trace."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        identity: auth.StaffIdentity = request["staff"]
        if post and not auth.tokens_match(identity.csrf_token, request.headers.get(CSRF_HEADER)):
            return error_response(403, "csrf", f"Thiếu hoặc sai {CSRF_HEADER}.")
        try:
            return await handler(request)
        except handover.HandoverError as error:
            return error_response(error.status, error.code, error.message)
        except LookupUnavailable:
            return error_response(503, "unavailable", "Cơ sở dữ liệu chưa trả lời, thử lại.")

    return staff.require_staff(wrapper, as_json=True)


def _summary(state: handover.HandoverState, now: datetime) -> dict[str, Any]:
    return {
        "sender": state.sender,
        "channel": state.channel,
        "status": state.status,
        "claimed_by": state.claimed_by,
        "waiting_since": _iso(state.waiting_since),
        "waiting_seconds": int((now - state.waiting_since).total_seconds()),
        "procedure_code": state.procedure_code,
        "callback": _callback(state, None),
        "reply_window_open": not state.window_closed(now),
    }


def _callback(state: handover.HandoverState, viewer: str | None) -> dict[str, Any] | None:
    if not state.callback_state:
        return None
    shown = {
        "state": state.callback_state,
        "phone_masked": handover.mask_phone(state.callback_phone),
    }
    if viewer and state.status == handover.CLAIMED and state.claimed_by == viewer:
        shown["phone"] = state.callback_phone  # the one who calls back needs the number
    return shown


# --- reading ------------------------------------------------------------------------------------


async def session_json(request: web.Request) -> web.Response:
    identity: auth.StaffIdentity = request["staff"]
    return json_response({"username": identity.username, "csrf_token": identity.csrf_token})


async def list_json(request: web.Request) -> web.Response:
    states = await _call(request, handover.held_conversations)
    latest = await _call(request, handover.latest_citizen_texts, [s.sender for s in states])
    now = _now()
    entries = []
    for state in states:
        entry = _summary(state, now)
        entry["last_message"] = mask_personal_data(latest.get(state.sender, ""))
        entries.append(entry)
    return json_response({"handovers": entries})


def _history(request: web.Request, sender: str) -> handover.History:
    url = request.app["settings"].tracker_db_url
    if _tracker_missing(url):
        return handover.History([], None, None)
    return handover.tracker_history(sender, engine=tracker_engine(url))


def _sender(request: web.Request) -> str:
    sender = request.match_info["sender"]
    if not SENDER_PATTERN.fullmatch(sender):
        raise handover.HandoverError(400, "invalid_sender", "Mã cuộc trò chuyện không hợp lệ.")
    return sender


async def detail_json(request: web.Request) -> web.Response:
    sender = _sender(request)
    identity: auth.StaffIdentity = request["staff"]
    state = await _call(request, handover.get_state, sender)
    stored = await _call(request, handover.messages, sender)
    history = await call_blocking(request.app["settings"], _history, request, sender)
    if state is None and not history.turns:
        raise handover.HandoverError(404, "not_found", "Không có cuộc trò chuyện này.")
    now = _now()
    items = [
        {"from": turn.author, "text": mask_personal_data(turn.text), "at": _iso(turn.at)}
        for turn in history.turns
        if state is None or turn.at < state.waiting_since
    ]
    items += [
        {
            "id": message.id,
            "from": message.author,
            "text": mask_personal_data(message.text),
            "at": _iso(message.created_at),
            "staff": message.staff_username,
            "delivery": message.delivery,
            "delivery_note": message.delivery_note,
        }
        for message in stored
    ]
    body: dict[str, Any] = {
        "sender": sender,
        "status": state.status if state else "none",
        "channel": state.channel if state else history.channel or "widget",
        "messages": items,
    }
    if state is not None:
        body.update(_summary(state, now))
        body["callback"] = _callback(state, identity.username)
        trail = await _call(request, handover.audit_trail, sender)
        body["audit"] = [
            {"action": action, "staff": who, "at": _iso(at)} for action, who, at in trail
        ]
    return json_response(body)


# --- acting -------------------------------------------------------------------------------------


async def claim(request: web.Request) -> web.Response:
    sender = _sender(request)
    history = await call_blocking(request.app["settings"], _history, request, sender)
    state = await _call(
        request,
        handover.claim,
        sender,
        request["staff"].username,
        now=_now(),
        channel=history.channel or "widget",
        last_citizen_at=history.last_citizen_at,
    )
    return json_response(_summary(state, _now()))


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise handover.HandoverError(413, "body_too_large", "Nội dung quá lớn.")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise handover.HandoverError(400, "invalid_json", 'Cần JSON {"text": "..."}.')
    return data


async def reply(request: web.Request) -> web.Response:
    sender = _sender(request)
    text = (await _json_body(request)).get("text")
    if not isinstance(text, str):
        raise handover.HandoverError(400, "missing_text", "Trường 'text' bắt buộc.")
    message = await _call(
        request, handover.add_staff_reply, sender, request["staff"].username, text, now=_now()
    )
    body = {"id": message.id, "delivery": message.delivery, "text": message.text}
    return json_response(body, status=201)


async def _end(request: web.Request, to_bot: bool) -> web.Response:
    sender = _sender(request)
    state = await _call(
        request, handover.end_handover, sender, request["staff"].username, to_bot=to_bot, now=_now()
    )
    return json_response(_summary(state, _now()))


async def release(request: web.Request) -> web.Response:
    return await _end(request, to_bot=True)


async def close(request: web.Request) -> web.Response:
    return await _end(request, to_bot=False)


# --- the page -----------------------------------------------------------------------------------


async def inbox_page(request: web.Request) -> web.Response:
    # No values: inbox.js reads ?sender= itself (a link from the unanswered page).
    content = staff.render("inbox.html")
    return staff.page("Hộp thư cán bộ", content, request["staff"])


def setup_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/staff/inbox", staff.require_staff(inbox_page), name="staff-inbox")
    router.add_get("/staff/api/session", _api(session_json))
    router.add_get("/staff/api/handovers", _api(list_json))
    router.add_get("/staff/api/handovers/{sender}", _api(detail_json))
    router.add_post("/staff/api/handovers/{sender}/claim", _api(claim, post=True))
    router.add_post("/staff/api/handovers/{sender}/messages", _api(reply, post=True))
    router.add_post("/staff/api/handovers/{sender}/release", _api(release, post=True))
    router.add_post("/staff/api/handovers/{sender}/close", _api(close, post=True))
