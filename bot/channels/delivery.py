"""What the Zalo and Messenger channels share: HTTP sending with retries, replay and duplicate
protection, background processing of webhook events, and the citizen-facing fallback messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.shared.core.constants import USER_INTENT_RESTART, USER_INTENT_SESSION_START
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.gate import process_gate
from bot.channels.handover import held_turn
from bot.channels.memory import SharedMemory
from procedures_db.profile import ProvinceProfile, load_profile_or_default, outage_apology

logger = logging.getLogger(__name__)

TEXT_ONLY_NOTE = (
    "Xin lỗi, hiện tôi chỉ đọc được tin nhắn dạng chữ. "
    "Bạn vui lòng gõ câu hỏi về thủ tục hành chính bằng chữ nhé."
)
PROFILE_TIMEOUT_S = 2.0
# Commands after which Rasa rightly says nothing.
SILENT_COMMANDS = (f"/{USER_INTENT_RESTART}", f"/{USER_INTENT_SESSION_START}")


async def apology_text() -> str:
    """Said when the bot produced nothing: never leave a citizen in silence."""
    try:
        profile = await asyncio.wait_for(
            asyncio.to_thread(load_profile_or_default), PROFILE_TIMEOUT_S
        )
    except asyncio.TimeoutError:  # a slow disk must not also delay the apology
        logger.error("Province profile not read within %.1f s", PROFILE_TIMEOUT_S)
        profile = ProvinceProfile()
    return outage_apology(profile)


# --- credentials ------------------------------------------------------------------------------


def setting(credentials: Mapping[str, Any], key: str, default: Any, cast: Callable = str) -> Any:
    """A value from credentials.yml; empty (an unset `${ENV_VAR}` exported empty) means default."""
    value = credentials.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        return cast(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"credentials.yml: '{key}' has an invalid value: {error}") from None


@dataclass(frozen=True)
class WebhookLimits:
    max_body_bytes: int = 64 * 1024
    replay_window_s: float = 600.0  # older (or future) signed events are ignored
    dedupe_ttl_s: float = 24 * 3600.0
    dedupe_max_items: int = 50_000

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any]) -> WebhookLimits:
        return cls(
            max_body_bytes=setting(credentials, "max_body_bytes", cls.max_body_bytes, int),
            replay_window_s=setting(credentials, "replay_window_s", cls.replay_window_s, float),
            dedupe_ttl_s=setting(credentials, "dedupe_ttl_s", cls.dedupe_ttl_s, float),
            dedupe_max_items=setting(credentials, "dedupe_max_items", cls.dedupe_max_items, int),
        )


# --- sending ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    timeout_s: float = 10.0

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            attempts=max(1, setting(credentials, "send_attempts", cls.attempts, int)),
            base_delay_s=setting(credentials, "retry_base_delay_s", cls.base_delay_s, float),
            max_delay_s=setting(credentials, "retry_max_delay_s", cls.max_delay_s, float),
            timeout_s=setting(credentials, "send_timeout_s", cls.timeout_s, float),
        )

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter before attempt number `attempt + 1`."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class ApiResult:
    status: int | None  # None: no HTTP answer at all (network error, timeout)
    body: Any  # parsed JSON when possible, else the text
    attempts: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class HttpSender:
    """POSTs with a timeout; retries network errors and 5xx with backoff, never 4xx."""

    def __init__(self, policy: RetryPolicy, name: str) -> None:
        self.policy = policy
        self.name = name
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.policy.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def post(self, url: str, *, what: str, **kwargs: Any) -> ApiResult:
        """POST to `url` (kwargs as for aiohttp: json, data, headers, params).
        `what` names the call in logs; URLs are not logged since some carry tokens."""
        result = ApiResult(None, None, 0)
        for attempt in range(1, self.policy.attempts + 1):
            result = await self._post_once(url, attempt, kwargs)
            if result.status is not None and result.status < 500:
                break
            if attempt < self.policy.attempts:
                logger.warning(
                    "%s %s: attempt %d failed (%s), retrying",
                    self.name,
                    what,
                    attempt,
                    result.status or result.body,
                )
                await asyncio.sleep(self.policy.delay(attempt))
        if not result.ok:
            logger.error(
                "%s %s failed after %d attempt(s): HTTP %s %s",
                self.name,
                what,
                result.attempts,
                result.status,
                _brief(result.body),
            )
        return result

    async def _post_once(self, url: str, attempt: int, kwargs: dict) -> ApiResult:
        try:
            async with self._client().post(url, **kwargs) as answer:
                text = await answer.text()
                try:
                    body = json.loads(text)
                except ValueError:
                    body = text
                return ApiResult(answer.status, body, attempt)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            return ApiResult(None, f"{type(error).__name__}: {error}", attempt)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _brief(body: Any) -> str:
    return str(body)[:300]


# --- webhook intake ---------------------------------------------------------------------------


class EventGate:
    """Admits each signed event once, and only while fresh (replay protection)."""

    def __init__(self, limits: WebhookLimits, namespace: str) -> None:
        self.window_s = limits.replay_window_s
        # Remembered at least as long as an event stays fresh, so no replay slips through.
        ttl_s = max(limits.dedupe_ttl_s, self.window_s)
        self.seen = SharedMemory(namespace, limits.dedupe_max_items, ttl_s)

    async def refusal(self, key: str, timestamp_ms: float) -> str | None:
        """None to process the event; else why it is ignored ('stale' or 'duplicate')."""
        if abs(time.time() - timestamp_ms / 1000) > self.window_s:
            return "stale"
        if not await self.seen.add_if_new(key):
            return "duplicate"
        return None


def read_json_object(request: Request, max_bytes: int) -> tuple[dict | None, HTTPResponse | None]:
    """The request body as a JSON object, or the 4xx answer explaining why not."""
    body = request.body or b""
    if len(body) > max_bytes:
        return None, error_response(413, f"body larger than {max_bytes} bytes")
    try:
        payload = json.loads(body)
    except ValueError:
        return None, error_response(400, "body is not valid JSON")
    if not isinstance(payload, dict):
        return None, error_response(400, "body must be a JSON object")
    return payload, None


def error_response(status: int, reason: str) -> HTTPResponse:
    return response.json({"status": "rejected", "reason": reason}, status=status)


def dig(data: Any, *path: str) -> Any:
    """data[path[0]][path[1]]…, or None as soon as a level is missing or not an object."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def scalar_at(data: Any, *path: str) -> str | None:
    """An id or a text at `path` as a non-empty string; None for anything else."""
    value = dig(data, *path)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value) if str(value).strip() else None


def parse_timestamp_ms(value: Any) -> float | None:
    try:
        timestamp = float(value)
    except (TypeError, ValueError):
        return None
    return timestamp if math.isfinite(timestamp) else None  # "nan" would pass any age check


class BackgroundTasks:
    """Webhook events are processed after the HTTP answer: platforms re-deliver (or disable the
    webhook) when the answer is slow, and a bot turn can take seconds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any], what: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, what))

    def _finished(self, task: asyncio.Task, what: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s: processing %s failed", self.name, what, exc_info=task.exception())

    async def wait_idle(self, timeout_s: float | None = None) -> None:
        """Wait for every pending event (tests; graceful shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
            if timeout_s is not None:
                break


# --- answering --------------------------------------------------------------------------------


class CountingOutput(OutputChannel):
    """An output channel that knows whether the bot said anything during a turn."""

    def __init__(self) -> None:
        super().__init__()
        self.produced = 0

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        self.produced += 1
        await super().send_response(recipient_id, message)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self.send_text_message(recipient_id, image)

    async def send_attachment(self, recipient_id: str, attachment: str, **kwargs: Any) -> None:
        await self.send_text_message(recipient_id, attachment)


async def answer_user(
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
    output: CountingOutput,
    message: UserMessage,
) -> None:
    """Run one bot turn; apologise (with the hotline) when it failed or produced nothing.
    While hotline staff hold the conversation the message goes to them and the bot is silent."""
    held = await held_turn(message.sender_id, message.text or "")
    if held is not None:
        if held.reply:
            await output.send_text_message(message.sender_id, held.reply)
        return
    failed = False
    try:
        await process_gate().run(on_new_message(message))
    except Exception:
        failed = True
        logger.exception("%s: the bot failed on a message", message.input_channel)
    silent_by_design = (message.text or "").startswith(SILENT_COMMANDS)
    if output.produced == 0 and (failed or not silent_by_design):
        logger.warning("%s: no bot answer, sending the apology", message.input_channel)
        await output.send_text_message(message.sender_id, await apology_text())
