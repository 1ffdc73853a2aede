"""Zalo Official Account input channel for Rasa (webhook `/webhooks/zalo/webhook`).

Zalo signs each event: header `X-ZEvent-Signature: mac=<hex>` where
hex = SHA-256(app_id + raw body + timestamp + OA secret key), the timestamp being the body's.
Replies go through the OA API v3 (`/v3.0/oa/message/cs`) with an access token that expires;
it is refreshed with a refresh token that Zalo rotates on every refresh, so both are kept in a
token file written atomically.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.delivery import (
    TEXT_ONLY_NOTE,
    ApiResult,
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
from bot.channels.memory import SharedMemory
from bot.channels.text_split import chosen_number, numbered_choices, split_text
from procedures_db.settings import PROJECT_ROOT, VAR_DIR

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://openapi.zalo.me"
DEFAULT_OAUTH_BASE = "https://oauth.zaloapp.com"
DEFAULT_TOKEN_FILE = VAR_DIR / "zalo_tokens.json"
SIGNATURE_HEADER = "X-ZEvent-Signature"
# Zalo answers HTTP 200 with these codes when the access token is invalid or expired.
TOKEN_ERRORS = frozenset({-216, -124, -220})
REFRESH_MARGIN_S = 120.0  # refresh a little before the announced expiry
LOCK_TIMEOUT_S = 30.0
CHOICES_TTL_S = 3600.0
CHOICES_MAX_USERS = 10_000


@dataclass(frozen=True)
class ZaloConfig:
    app_id: str
    oa_secret_key: str  # signs webhook events
    app_secret_key: str  # authenticates the token refresh
    seed_access_token: str | None
    seed_refresh_token: str | None
    token_file: Path
    api_base: str
    oauth_base: str
    limits: WebhookLimits
    retry: RetryPolicy

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any]) -> ZaloConfig:
        return cls(
            app_id=setting(credentials, "app_id", ""),
            oa_secret_key=setting(credentials, "oa_secret_key", ""),
            app_secret_key=setting(credentials, "app_secret_key", ""),
            seed_access_token=setting(credentials, "access_token", None),
            seed_refresh_token=setting(credentials, "refresh_token", None),
            # Relative to the project, not to wherever Rasa happens to be started from.
            token_file=PROJECT_ROOT / setting(credentials, "token_file", DEFAULT_TOKEN_FILE, Path),
            api_base=setting(credentials, "api_base", DEFAULT_API_BASE).rstrip("/"),
            oauth_base=setting(credentials, "oauth_base", DEFAULT_OAUTH_BASE).rstrip("/"),
            limits=WebhookLimits.from_credentials(credentials),
            retry=RetryPolicy.from_credentials(credentials),
        )

    @property
    def can_verify(self) -> bool:
        return bool(self.app_id and self.oa_secret_key)


def zalo_signature(app_id: str, body: bytes, timestamp: str, oa_secret_key: str) -> str:
    digest = hashlib.sha256(
        app_id.encode() + body + timestamp.encode() + oa_secret_key.encode()
    ).hexdigest()
    return f"mac={digest}"


# --- tokens -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZaloTokens:
    access_token: str
    refresh_token: str | None
    expires_at: float | None = None  # unix time; None when unknown (seeded from credentials)

    def expiring(self) -> bool:
        return self.expires_at is not None and time.time() > self.expires_at - REFRESH_MARGIN_S


class ZaloTokenStore:
    """The token file: it wins over the credentials' seed tokens once it exists, because the
    refresh token in credentials.yml is stale after the first refresh."""

    def __init__(self, path: Path, seed: ZaloTokens | None) -> None:
        self.path = path
        self.seed = seed

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Exclusive across processes sharing the file (Rasa replicas on one host): a refresh
        token is single-use, so two replicas refreshing at once would strand one of them."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{self.path}: token lock held too long") from None
                    await asyncio.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    def load(self) -> ZaloTokens | None:
        if not self.path.exists():
            return self.seed
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return ZaloTokens(raw["access_token"], raw.get("refresh_token"), raw.get("expires_at"))
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.error("Zalo token file %s is unreadable (%s); using the seed", self.path, error)
            return self.seed

    def save(self, tokens: ZaloTokens) -> None:
        """Write to a temporary file then rename: a crash leaves the old file or the new one,
        never a half-written one without a refresh token."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".zalo_tokens.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(asdict(tokens), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o600)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# --- OA API -----------------------------------------------------------------------------------


class ZaloApi:
    """Sends customer-service messages, refreshing the access token when Zalo refuses it."""

    def __init__(self, config: ZaloConfig, sender: HttpSender) -> None:
        self.config = config
        self.sender = sender
        seed = (
            ZaloTokens(config.seed_access_token or "", config.seed_refresh_token)
            if config.seed_access_token or config.seed_refresh_token
            else None
        )
        self.store = ZaloTokenStore(config.token_file, seed)
        self._tokens: ZaloTokens | None = None
        self._loaded = False
        self._refresh_lock = asyncio.Lock()

    async def tokens(self) -> ZaloTokens | None:
        if not self._loaded:
            self._tokens = await asyncio.to_thread(self.store.load)
            self._loaded = True
        return self._tokens

    async def send_text(self, user_id: str, text: str) -> bool:
        """Deliver `text` (split to Zalo's length limit); False if any part failed."""
        for chunk in split_text(text):
            if not await self._send_chunk(user_id, chunk):
                return False
        return True

    async def _send_chunk(self, user_id: str, text: str) -> bool:
        tokens = await self.tokens()
        if tokens is not None and tokens.expiring():
            tokens = await self.refresh(tokens.access_token) or tokens
        if tokens is None or not tokens.access_token:
            logger.error("Zalo: no access token configured; cannot answer user %s", user_id)
            return False
        result = await self._post_message(tokens.access_token, user_id, text)
        if _zalo_error(result) in TOKEN_ERRORS:
            logger.info("Zalo refused the access token (%s); refreshing", _zalo_error(result))
            tokens = await self.refresh(tokens.access_token)
            if tokens is None:
                return False
            result = await self._post_message(tokens.access_token, user_id, text)
        if result.ok and _zalo_error(result) == 0:
            return True
        if result.ok:  # HTTP 200 carrying a logical error: retrying would not help
            logger.error("Zalo refused a message to user %s: %s", user_id, result.body)
        return False

    async def _post_message(self, access_token: str, user_id: str, text: str) -> ApiResult:
        return await self.sender.post(
            f"{self.config.api_base}/v3.0/oa/message/cs",
            what="send message",
            headers={"access_token": access_token},
            json={"recipient": {"user_id": user_id}, "message": {"text": text}},
        )

    async def refresh(self, failed_access_token: str) -> ZaloTokens | None:
        """Exchange the refresh token for new tokens and persist both before using them."""
        async with self._refresh_lock, self.store.locked():
            # Re-read: another message or another replica may have refreshed meanwhile.
            current = await asyncio.to_thread(self.store.load)
            self._tokens, self._loaded = current, True
            if current is not None and current.access_token != failed_access_token:
                return current
            if current is None or not current.refresh_token:
                logger.error("Zalo: the access token expired and no refresh token is stored")
                return None
            result = await self.sender.post(
                f"{self.config.oauth_base}/v4/oa/access_token",
                what="refresh access token",
                headers={"secret_key": self.config.app_secret_key},
                data={
                    "refresh_token": current.refresh_token,
                    "app_id": self.config.app_id,
                    "grant_type": "refresh_token",
                },
            )
            fresh = _tokens_from(result)
            if fresh is None:
                logger.error(
                    "Zalo token refresh failed: HTTP %s %s", result.status, _error_of(result)
                )
                return None
            await asyncio.to_thread(self.store.save, fresh)
            self._tokens = fresh
            return fresh


def _zalo_error(result: ApiResult) -> int | None:
    """Zalo's logical error code (0 = success); None when the answer has none."""
    if not isinstance(result.body, dict):
        return None
    try:
        return int(result.body.get("error", 0))
    except (TypeError, ValueError):
        return None


def _error_of(result: ApiResult) -> Any:
    """The error part of an answer, for logs: never the tokens of a half-successful one."""
    if isinstance(result.body, dict):
        return {key: value for key, value in result.body.items() if "token" not in key}
    return result.body


def _tokens_from(result: ApiResult) -> ZaloTokens | None:
    body = result.body
    if not result.ok or not isinstance(body, dict) or not body.get("access_token"):
        return None
    if not body.get("refresh_token"):
        return None  # the old refresh token is spent; storing none would strand us
    try:
        expires_at = time.time() + float(body.get("expires_in"))
    except (TypeError, ValueError):
        expires_at = None
    return ZaloTokens(str(body["access_token"]), str(body["refresh_token"]), expires_at)


# --- output -----------------------------------------------------------------------------------


class ZaloOutput(CountingOutput):
    """Zalo OA text messages; buttons become a numbered list answered with a number."""

    @classmethod
    def name(cls) -> str:
        return "zalo"

    def __init__(self, api: ZaloApi, choices: SharedMemory) -> None:
        super().__init__()
        self.api = api
        self.choices = choices

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.api.send_text(recipient_id, text)

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        titles = [str(button.get("title", "")) for button in buttons]
        # A button without payload answers with its title, as a click would in the web widget.
        payloads = [str(button.get("payload") or button.get("title", "")) for button in buttons]
        await self.choices.put(recipient_id, payloads)
        await self.send_text_message(recipient_id, numbered_choices(text, titles))

    async def send_custom_json(
        self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any
    ) -> None:
        logger.warning("Zalo: custom payloads are not supported; skipped one")


# --- input ------------------------------------------------------------------------------------


class ZaloInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return "zalo"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        if credentials is None:
            cls.raise_missing_credentials_exception()
        return cls(ZaloConfig.from_credentials(credentials))

    def __init__(self, config: ZaloConfig) -> None:
        self.config = config
        self.sender = HttpSender(config.retry, "Zalo")
        self.api = ZaloApi(config, self.sender)
        self.gate = EventGate(config.limits, "tthc:zalo:seen")
        self.choices = SharedMemory("tthc:zalo:choices", CHOICES_MAX_USERS, CHOICES_TTL_S)
        self.tasks = BackgroundTasks("Zalo")
        # Staff replies from the hand-over inbox go out through the same API client.
        self.outbox = StaffOutbox("zalo", self.api.send_text)

    def get_output_channel(self) -> OutputChannel:
        return ZaloOutput(self.api, self.choices)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        zalo_webhook = Blueprint("zalo_webhook", __name__)
        if not self.config.can_verify:
            logger.warning("Zalo channel: app_id or oa_secret_key missing; webhook refuses all")

        @zalo_webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @zalo_webhook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            return await self.receive(request, on_new_message)

        @zalo_webhook.listener("after_server_start")
        async def start_outbox(app: Any, loop: Any) -> None:
            if self.config.can_verify:
                self.outbox.start()

        @zalo_webhook.listener("before_server_stop")
        async def finish_pending(app: Any, loop: Any) -> None:
            await self.outbox.stop()
            await self.tasks.wait_idle(timeout_s=10)

        @zalo_webhook.listener("after_server_stop")
        async def close_clients(app: Any, loop: Any) -> None:
            await self.close()

        return zalo_webhook

    async def close(self) -> None:
        await self.sender.close()
        await self.gate.seen.close()
        await self.choices.close()

    async def receive(
        self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> HTTPResponse:
        """Check, then accept the event for background processing; never waits for the bot."""
        if not self.config.can_verify:
            return error_response(503, "zalo channel is not configured")
        signature = request.headers.get(SIGNATURE_HEADER, "").strip()
        if not signature:
            return error_response(401, f"missing {SIGNATURE_HEADER}")
        event, refusal = read_json_object(request, self.config.limits.max_body_bytes)
        if refusal is not None:
            return refusal
        timestamp = str(event.get("timestamp", ""))
        expected = zalo_signature(
            self.config.app_id, request.body, timestamp, self.config.oa_secret_key
        )
        if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
            logger.warning("Zalo webhook: wrong signature, event refused")
            return error_response(403, "invalid signature")
        return await self._admit(event, signature, on_new_message)

    async def _admit(
        self,
        event: dict[str, Any],
        signature: str,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> HTTPResponse:
        name = event.get("event_name")
        if not isinstance(name, str) or not name:
            return error_response(400, "missing event_name")
        if not name.startswith("user_send_"):
            # Our own messages echoed back (oa_send_*), follows, "seen" receipts, ...
            return _ignored(name)
        user_id = scalar_at(event, "sender", "id")
        text = dig(event, "message", "text")
        if not user_id:
            return error_response(400, "missing sender.id")
        if name == "user_send_text" and not (isinstance(text, str) and text.strip()):
            return error_response(400, "missing message.text")
        msg_id = scalar_at(event, "message", "msg_id")
        timestamp_ms = parse_timestamp_ms(event.get("timestamp"))
        if timestamp_ms is None:
            return error_response(400, "missing or invalid timestamp")
        reason = await self.gate.refusal(str(msg_id or signature), timestamp_ms)
        if reason is not None:
            logger.info("Zalo webhook: %s event %s ignored", reason, msg_id)
            return _ignored(reason)
        if name == "user_send_text":
            coroutine = self._answer(on_new_message, user_id, text, msg_id)
        else:
            coroutine = self.get_output_channel().send_text_message(user_id, TEXT_ONLY_NOTE)
        self.tasks.spawn(coroutine, f"{name} {msg_id}")
        return response.json({"status": "accepted"})

    async def _answer(
        self,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        user_id: str,
        text: str,
        msg_id: str | None,
    ) -> None:
        output = ZaloOutput(self.api, self.choices)
        message = UserMessage(
            await self._resolve_choice(user_id, text),
            output,
            user_id,
            input_channel=self.name(),
            message_id=msg_id,
        )
        await answer_user(on_new_message, output, message)

    async def _resolve_choice(self, user_id: str, text: str) -> str:
        """'2' after a numbered list means the second button's payload."""
        payloads = await self.choices.pop(user_id) or []
        index = chosen_number(text, len(payloads))
        return payloads[index] if index is not None else text


def _ignored(reason: str) -> HTTPResponse:
    return response.json({"status": "ignored", "reason": reason})
