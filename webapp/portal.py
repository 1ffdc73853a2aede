"""Demo provincial portal page, the chat widget's static files and the chat endpoint.

`POST /api/chat` {sender, message} forwards the citizen's message to Rasa's REST channel and
returns the bot's messages. The widget talks only to this endpoint (same origin on the portal,
CORS for the sites listed in CHAT_ALLOWED_ORIGINS), so Rasa itself never faces the internet.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
from collections.abc import AsyncIterator
from functools import lru_cache, partial
from pathlib import Path
from string import Template
from typing import Any

import aiohttp
from aiohttp import web

from procedures_db.profile import load_profile_or_default, outage_apology
from webapp import citizen_chat
from webapp.api import RateLimiter
from webapp.clientip import client_ip

log = logging.getLogger(__name__)

WEBAPP_DIR = Path(__file__).resolve().parent
WIDGET_DIR = WEBAPP_DIR / "static" / "widget"
PORTAL_TEMPLATE = WEBAPP_DIR / "templates" / "portal" / "index.html"

MAX_MESSAGE_CHARS = 2000
MAX_BODY_BYTES = 16 * 1024
SENDER_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# Rasa waits for the action server; give it time, but answer the citizen before the widget gives up.
RASA_TIMEOUT = aiohttp.ClientTimeout(total=25, connect=3)
WIDGET_TITLE = "Trợ lý thủ tục hành chính"
DEMO_PORTAL_NAME = "Cổng thông tin điện tử tỉnh (bản trình diễn)"
WIDGET_GREETING = (
    "Xin chào! Tôi có thể giúp bạn tra cứu thủ tục hành chính: hồ sơ cần chuẩn bị, "
    "nơi nộp, thời gian giải quyết, lệ phí. Bạn cần hỏi về thủ tục nào?"
)

HTTP_SESSION = web.AppKey("portal_http_session", aiohttp.ClientSession)
# Per client IP (the sender id is chosen by the client, so it cannot be the key here).
CHAT_LIMITER = web.AppKey("chat_rate_limiter", RateLimiter)
CHAT_RATE_LIMITED = "Bạn gửi tin nhắn quá nhanh. Vui lòng đợi một chút rồi gửi tiếp."


class ChatInputError(Exception):
    """A chat request the endpoint refuses; carries the HTTP status and a message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", portal_page)
    app.router.add_static("/static/widget", WIDGET_DIR)
    app.router.add_post("/api/chat", chat)
    app.router.add_route("OPTIONS", "/api/chat", chat_preflight)
    app.router.add_get("/api/chat/updates", chat_updates)
    app.cleanup_ctx.append(_http_session)
    per_minute = app["settings"].chat_messages_per_minute_per_ip
    if per_minute > 0:
        app[CHAT_LIMITER] = RateLimiter(per_minute)


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    """One client session for all calls to Rasa, opened with the app and closed with it."""
    app[HTTP_SESSION] = aiohttp.ClientSession(timeout=RASA_TIMEOUT)
    yield
    await app[HTTP_SESSION].close()


# --- portal page -------------------------------------------------------------------------------


async def portal_page(request: web.Request) -> web.Response:
    profile = await asyncio.to_thread(load_profile_or_default)
    province = profile.province_name
    # The page's own tag is relative: behind a TLS proxy request.scheme says http, and an
    # http:// script on an https page would be blocked. The snippet shown to copy is absolute.
    snippet = embed_snippet(f"{request.scheme}://{request.host}")
    page = _portal_template().substitute(
        portal_name=html.escape(
            f"Cổng thông tin điện tử {province}" if province else DEMO_PORTAL_NAME
        ),
        online_portal=html.escape(profile.online_portal_url),
        own_tag=embed_snippet(""),
        snippet_text=html.escape(snippet),
    )
    return web.Response(text=page, content_type="text/html", charset="utf-8")


def embed_snippet(server: str) -> str:
    """The one tag a site adds to get the widget; server "" gives the same-origin form."""
    attributes = {
        "src": f"{server}/static/widget/widget.js",
        "data-server": server,
        "data-title": WIDGET_TITLE,
        "data-greeting": WIDGET_GREETING,
    }
    rendered = " ".join(
        f'{name}="{html.escape(value)}"' for name, value in attributes.items() if value
    )
    return f"<script {rendered}></script>"


@lru_cache(maxsize=1)
def _portal_template() -> Template:
    return Template(PORTAL_TEMPLATE.read_text(encoding="utf-8"))


# --- chat endpoint -----------------------------------------------------------------------------


async def chat(request: web.Request) -> web.Response:
    cors = _cors_headers(request)
    limiter = request.app.get(CHAT_LIMITER)
    wait_s = limiter.allow(client_ip(request)) if limiter else 0.0
    if wait_s:
        headers = {**cors, "Retry-After": str(int(wait_s) + 1)}
        body = {"error": "rate_limited", "message": CHAT_RATE_LIMITED}
        return _json_response(body, status=429, headers=headers)
    try:
        raw = await _read_body(request)
        sender, message = _parse_chat_request(raw)
        # The per-conversation token (webapp/citizen_chat.py): 403 when wrong.
        conversation = await citizen_chat.open_conversation(request.app["settings"], sender, raw)
    except (ChatInputError, citizen_chat.ChatAccessError) as error:
        body = {"error": error.code, "message": error.message}
        return _json_response(body, status=error.status, headers=cors)
    # While hotline staff hold the conversation the message goes to them, not to the bot.
    messages = await conversation.hold(message)
    if messages is None:
        messages = await _ask_rasa(request.app, sender, message)
        if not messages:
            messages = [{"text": await apology_text()}]
    body = {"sender": sender, "messages": messages, **conversation.extra()}
    return _json_response(body, headers=cors)


async def chat_updates(request: web.Request) -> web.Response:
    """GET /api/chat/updates: staff replies the widget did not ask for (citizen_chat)."""
    return await citizen_chat.chat_updates(request, _cors_headers(request))


def _json_response(body: dict[str, Any], **kwargs: Any) -> web.Response:
    # Vietnamese stays readable (no \u escapes) for whoever inspects the traffic.
    return web.json_response(body, dumps=partial(json.dumps, ensure_ascii=False), **kwargs)


async def chat_preflight(request: web.Request) -> web.Response:
    cors = _cors_headers(request)
    if not cors:
        return web.Response(status=403, text="origin not allowed")
    cors["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    cors["Access-Control-Allow-Headers"] = "Content-Type"
    cors["Access-Control-Max-Age"] = "600"
    return web.Response(status=204, headers=cors)


def _cors_headers(request: web.Request) -> dict[str, str]:
    origin = request.headers.get("Origin")
    allowed = request.app["settings"].chat_allowed_origins
    if not origin or not ("*" in allowed or origin.rstrip("/") in allowed):
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


async def _read_body(request: web.Request) -> bytes:
    too_large = ChatInputError(
        413, "body_too_large", f"Nội dung gửi lên quá lớn (tối đa {MAX_BODY_BYTES} byte)."
    )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


def _parse_chat_request(body: bytes) -> tuple[str, str]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        # RecursionError: thousands of nested arrays, which no chat request contains.
        raise ChatInputError(400, "invalid_json", "Yêu cầu không phải JSON hợp lệ.") from error
    if not isinstance(data, dict):
        raise ChatInputError(
            400, "invalid_json", 'Yêu cầu phải là đối tượng JSON {"sender", "message"}.'
        )
    sender, message = data.get("sender"), data.get("message")
    if not isinstance(sender, str) or not SENDER_PATTERN.fullmatch(sender):
        raise ChatInputError(
            400,
            "invalid_sender",
            "Trường 'sender' bắt buộc: 1–128 ký tự chữ, số, '_', '-', '.', ':'.",
        )
    if not isinstance(message, str) or not message.strip():
        raise ChatInputError(
            400, "missing_message", "Trường 'message' bắt buộc và không được để trống."
        )
    if len(message) > MAX_MESSAGE_CHARS:
        raise ChatInputError(
            400,
            "message_too_long",
            f"Tin nhắn quá dài (tối đa {MAX_MESSAGE_CHARS} ký tự). Bạn vui lòng rút gọn câu hỏi.",
        )
    return sender, message.strip()


async def _ask_rasa(app: web.Application, sender: str, message: str) -> list[dict[str, Any]]:
    """The bot's displayable messages; an empty list when Rasa fails or says nothing."""
    url = f"{app['settings'].rasa_url.rstrip('/')}/webhooks/rest/webhook"
    try:
        async with app[HTTP_SESSION].post(
            url, json={"sender": sender, "message": message}
        ) as response:
            if response.status != 200:
                log.warning("Rasa answered HTTP %s for sender %s", response.status, sender)
                return []
            replies = await response.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
        log.warning("Rasa unreachable at %s: %r", url, error)
        return []
    if not isinstance(replies, list):
        log.warning("Rasa answered a %s instead of a list", type(replies).__name__)
        return []
    return [clean for reply in replies if (clean := _clean_reply(reply))]


def _clean_reply(reply: object) -> dict[str, Any] | None:
    """Only what the widget shows: text, buttons {title, payload}, an http(s) image."""
    if not isinstance(reply, dict):
        return None
    clean: dict[str, Any] = {}
    if isinstance(reply.get("text"), str) and reply["text"].strip():
        clean["text"] = reply["text"]
    buttons = [
        {"title": button["title"], "payload": button["payload"]}
        for button in reply.get("buttons") or []
        if isinstance(button, dict)
        and isinstance(button.get("title"), str)
        and isinstance(button.get("payload"), str)
    ]
    if buttons:
        clean["buttons"] = buttons
    image = reply.get("image")
    if isinstance(image, str) and image.startswith(("https://", "http://")):
        clean["image"] = image
    return clean or None


async def apology_text() -> str:
    """What the citizen reads when the bot cannot answer: never silence, always a next step."""
    return outage_apology(await asyncio.to_thread(load_profile_or_default))
