"""Facebook Messenger channel: Rasa's connector hardened (webhook `/webhooks/facebook/webhook`).

Differences from `rasa.core.channels.facebook.FacebookInput`:
- verifies `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app secret, constant-time
  compare) and answers 403 when it is missing or wrong (Rasa checks only the SHA-1 header and
  answers 200 "not validated");
- answers at once and runs the bot in the background, for every event of a batch (Rasa handles
  the first event only);
- de-duplicates re-delivered events by message id and ignores stale ones;
- sends through its own aiohttp client with retries, to a configurable Graph API base URL;
- splits long texts, sends buttons as quick replies (at most 13, titles of at most 20
  characters), and apologises with the hotline when the bot says nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.facebook import FacebookInput as RasaFacebookInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.delivery import (
    TEXT_ONLY_NOTE,
    BackgroundTasks,
    CountingOutput,
    EventGate,
    HttpSender,
    RetryPolicy,
    WebhookLimits,
    answer_user,
    dig,
    error_response,
    parse_timestamp_ms,
    read_json_object,
    scalar_at,
    setting,
)
from bot.channels.handover import StaffOutbox
from bot.channels.text_split import shorten, split_text

logger = logging.getLogger(__name__)

DEFAULT_GRAPH_BASE = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v19.0"
SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY_TITLE = 20


def hub_signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class GraphApi:
    """The Send API: POST {graph_base}/{version}/me/messages."""

    def __init__(
        self, graph_base: str, api_version: str, page_access_token: str, sender: HttpSender
    ) -> None:
        self.url = f"{graph_base.rstrip('/')}/{api_version}/me/messages"
        self.page_access_token = page_access_token
        self.sender = sender

    async def send_message(self, recipient_id: str, message: dict[str, Any]) -> bool:
        result = await self.sender.post(
            self.url,
            what="send message",
            params={"access_token": self.page_access_token},
            json={
                "recipient": {"id": recipient_id},
                "messaging_type": "RESPONSE",
                "message": message,
            },
        )
        return result.ok

    async def send_text(
        self, recipient_id: str, text: str, quick_replies: list[dict[str, str]] | None = None
    ) -> bool:
        """Long texts go in several messages; quick replies ride on the last one."""
        chunks = split_text(text) or ([" "] if quick_replies else [])
        for number, chunk in enumerate(chunks, start=1):
            message: dict[str, Any] = {"text": chunk}
            if quick_replies and number == len(chunks):
                message["quick_replies"] = quick_replies
            if not await self.send_message(recipient_id, message):
                return False
        return True


def quick_replies_from(buttons: list[dict[str, Any]]) -> tuple[list[dict[str, str]], list[str]]:
    """Rasa buttons as Messenger quick replies, plus text lines for link buttons (a quick
    reply cannot open a URL)."""
    replies: list[dict[str, str]] = []
    link_lines: list[str] = []
    for button in buttons:
        title = str(button.get("title") or "").strip()
        if button.get("url") and not button.get("payload"):
            link_lines.append(f"{title}: {button['url']}" if title else str(button["url"]))
        elif title:
            payload = str(button.get("payload") or title)
            replies.append(
                {
                    "content_type": "text",
                    "title": shorten(title, MAX_QUICK_REPLY_TITLE),
                    "payload": payload,
                }
            )
    if len(replies) > MAX_QUICK_REPLIES:
        logger.warning(
            "Messenger allows %d quick replies; %d dropped",
            MAX_QUICK_REPLIES,
            len(replies) - MAX_QUICK_REPLIES,
        )
    return replies[:MAX_QUICK_REPLIES], link_lines


class FacebookOutput(CountingOutput):
    @classmethod
    def name(cls) -> str:
        return "facebook"

    def __init__(self, api: GraphApi) -> None:
        super().__init__()
        self.api = api

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.api.send_text(recipient_id, text)

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        replies, link_lines = quick_replies_from(buttons)
        full_text = "\n".join([text, *link_lines]) if link_lines else text
        await self.api.send_text(recipient_id, full_text, replies or None)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        attachment = {"type": "image", "payload": {"url": image, "is_reusable": True}}
        await self.api.send_message(recipient_id, {"attachment": attachment})

    async def send_custom_json(
        self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any
    ) -> None:
        # As in Rasa's connector: a custom payload is a ready Messenger message object.
        await self.api.send_message(recipient_id, json_message)


class FacebookInput(RasaFacebookInput):
    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> FacebookInput:
        if credentials is None:
            cls.raise_missing_credentials_exception()
        return cls(
            setting(credentials, "verify", ""),
            setting(credentials, "secret", ""),
            setting(credentials, "page-access-token", ""),
            graph_base=setting(credentials, "graph_base", DEFAULT_GRAPH_BASE),
            api_version=setting(credentials, "api_version", DEFAULT_API_VERSION),
            limits=WebhookLimits.from_credentials(credentials),
            retry=RetryPolicy.from_credentials(credentials),
        )

    def __init__(
        self,
        fb_verify: str,
        fb_secret: str,
        fb_access_token: str,
        *,
        graph_base: str = DEFAULT_GRAPH_BASE,
        api_version: str = DEFAULT_API_VERSION,
        limits: WebhookLimits | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(fb_verify, fb_secret, fb_access_token)
        self.limits = limits or WebhookLimits()
        self.sender = HttpSender(retry or RetryPolicy(), "Messenger")
        self.api = GraphApi(graph_base, api_version, fb_access_token, self.sender)
        self.gate = EventGate(self.limits, "tthc:facebook:seen")
        self.tasks = BackgroundTasks("Messenger")
        # Staff replies from the hand-over inbox go out through the same Send API client.
        self.outbox = StaffOutbox("facebook", self.api.send_text)

    def get_output_channel(self) -> OutputChannel:
        return FacebookOutput(self.api)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        fb_webhook = Blueprint("fb_webhook", __name__)
        if not self.fb_secret:
            logger.warning("Facebook channel: no app secret configured; webhook refuses all")

        @fb_webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @fb_webhook.route("/webhook", methods=["GET"])
        async def token_verification(request: Request) -> HTTPResponse:
            token = request.args.get("hub.verify_token") or ""
            if (
                self.fb_verify
                and request.args.get("hub.mode") == "subscribe"
                and hmac.compare_digest(token.encode(), self.fb_verify.encode())
            ):
                return response.text(request.args.get("hub.challenge") or "")
            logger.warning("Facebook webhook verification with a wrong verify token")
            return error_response(403, "invalid verify token")

        @fb_webhook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            return await self.receive(request, on_new_message)

        @fb_webhook.listener("after_server_start")
        async def start_outbox(app: Any, loop: Any) -> None:
            if self.fb_secret:
                self.outbox.start()

        @fb_webhook.listener("before_server_stop")
        async def finish_pending(app: Any, loop: Any) -> None:
            await self.outbox.stop()
            await self.tasks.wait_idle(timeout_s=10)

        @fb_webhook.listener("after_server_stop")
        async def close_clients(app: Any, loop: Any) -> None:
            await self.close()

        return fb_webhook

    async def close(self) -> None:
        await self.sender.close()
        await self.gate.seen.close()

    async def receive(
        self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> HTTPResponse:
        if not self.fb_secret:
            return error_response(503, "facebook channel is not configured")
        signature = request.headers.get(SIGNATURE_HEADER, "").strip()
        if not signature:
            return error_response(403, f"missing {SIGNATURE_HEADER}")
        if len(request.body or b"") > self.limits.max_body_bytes:
            return error_response(413, f"body larger than {self.limits.max_body_bytes} bytes")
        expected = hub_signature(self.fb_secret, request.body or b"")
        if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
            logger.warning("Facebook webhook: wrong signature, event refused")
            return error_response(403, "invalid signature")
        payload, refusal = read_json_object(request, self.limits.max_body_bytes)
        if refusal is not None:
            return refusal
        entries = payload.get("entry")
        if payload.get("object") != "page" or not isinstance(entries, list):
            return error_response(400, "expected object 'page' with a list 'entry'")
        counts = {"accepted": 0, "ignored": 0, "malformed": 0}
        events = [
            event
            for entry in entries
            if isinstance(entry, dict)
            for event in _list(entry.get("messaging"))
        ]
        for index, event in enumerate(events):
            counts[await self._admit(event, f"{signature}:{index}", on_new_message)] += 1
        return response.json({"status": "ok", **counts})

    async def _admit(
        self,
        event: Any,
        fallback_key: str,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> str:
        """Start processing one messaging event; returns how it was counted."""
        if not isinstance(event, dict):
            return "malformed"
        kind, text, mid = _classify(event)
        if kind == "ignore":
            return "ignored"
        sender_id = scalar_at(event, "sender", "id")
        timestamp_ms = parse_timestamp_ms(event.get("timestamp"))
        if not sender_id or timestamp_ms is None:
            logger.warning("Facebook webhook: event without sender.id or timestamp skipped")
            return "malformed"
        reason = await self.gate.refusal(str(mid or fallback_key), timestamp_ms)
        if reason is not None:
            logger.info("Facebook webhook: %s event %s ignored", reason, mid)
            return "ignored"
        if kind == "text":
            output = FacebookOutput(self.api)
            message = UserMessage(
                text, output, sender_id, input_channel=self.name(), message_id=mid
            )
            coroutine = answer_user(on_new_message, output, message)
        else:
            coroutine = self.api.send_text(sender_id, TEXT_ONLY_NOTE)
        self.tasks.spawn(coroutine, f"event {mid}")
        return "accepted"


def _classify(event: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """('text', text, mid), ('other_media', None, mid) or ('ignore', None, None)."""
    message = event.get("message")
    if isinstance(message, dict) and not message.get("is_echo"):
        mid = scalar_at(message, "mid")
        text = dig(message, "quick_reply", "payload") or message.get("text")
        if isinstance(text, str) and text.strip():
            return "text", text, mid
        if message.get("attachments"):
            return "other_media", None, mid
    payload = dig(event, "postback", "payload")
    if isinstance(payload, str) and payload.strip():
        return "text", payload, scalar_at(event, "postback", "mid")
    return "ignore", None, None  # echoes, delivery and read receipts, reactions, ...


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []
