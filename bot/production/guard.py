"""Where a citizen's message enters Rasa: size and rate limits, and an apology rather than silence.

Rasa swallows most failures while handling a message: a custom action whose server is down is
logged and skipped, a tracker store error makes Rasa carry on with an empty conversation. The
citizen then gets no answer, or one without context. `guard()` wraps a channel's
`on_new_message`: every failure during the turn (noted through `record_failure`, which the stores
and a log hook call) or a turn that produced no reply ends with a polite apology naming the
hotline from the province profile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.shared.core.constants import USER_INTENT_RESTART, USER_INTENT_SESSION_START

from bot.channels.gate import TurnGate
from bot.channels.handover import held_turn
from procedures_db.profile import load_profile_or_default, outage_apology

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
STORE_FAILURE = "store"
ACTION_FAILURE = "action"

RATE_LIMITED_REPLY = (
    "Bạn đang gửi tin nhắn hơi nhanh. Vui lòng đợi khoảng một phút rồi gửi tiếp, "
    "chúng tôi vẫn sẵn sàng hỗ trợ bạn."
)
TOO_LONG_REPLY = (
    f"Tin nhắn của bạn quá dài (tối đa {MAX_MESSAGE_CHARS} ký tự). "
    "Bạn vui lòng viết câu hỏi ngắn gọn hơn."
)

# Reasons the current turn failed; None outside a guarded turn. A ContextVar because the stores
# are called inside the same asyncio task as the channel handler, many turns running at once.
_FAILURES: ContextVar[list[str] | None] = ContextVar("tthc_turn_failures", default=None)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


def turn_failed(reason: str) -> bool:
    """Whether the turn being handled already failed for `reason` (then fail fast, no retries)."""
    return reason in (_FAILURES.get() or ())


def record_failure(reason: str) -> None:
    """Mark the turn being handled as failed (no-op outside a guarded turn)."""
    failures = _FAILURES.get()
    if failures is not None:
        failures.append(reason)


@lru_cache(maxsize=1)
def apology_text() -> str:
    return outage_apology(load_profile_or_default())


class ActionFailureHook(logging.Filter):
    """Rasa logs a failed custom action and continues without its events: note it for the turn."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Encountered an exception while running action"):
            record_failure(ACTION_FAILURE)
        return True


def install_action_failure_hook() -> None:
    processor_logger = logging.getLogger("rasa.core.processor")
    if not any(isinstance(f, ActionFailureHook) for f in processor_logger.filters):
        processor_logger.addFilter(ActionFailureHook())


class SenderRateLimiter:
    """At most `per_minute` messages per sender and clock minute.

    With a Redis URL the count is shared by every Rasa replica; if Redis fails the count falls
    back to this process (the limit then applies per replica) rather than refusing citizens.
    """

    def __init__(self, per_minute: int, redis_url: str | None = None) -> None:
        self.per_minute = per_minute
        self._redis = None
        if redis_url and per_minute > 0:
            import redis.asyncio

            # Generous timeouts: under load the event loop itself delays the answer.
            self._redis = redis.asyncio.Redis.from_url(
                redis_url, socket_timeout=2, socket_connect_timeout=2
            )
        self._redis_failing = False
        self._window = 0
        self._counts: dict[str, int] = {}

    async def allow(self, sender_id: str) -> bool:
        if self.per_minute <= 0:
            return True
        window = int(time.time() // 60)
        if self._redis is not None:
            try:
                count = await self._count_in_redis(sender_id, window)
            except Exception as error:  # any Redis failure: count locally instead
                if not self._redis_failing:
                    logger.warning("Rate limit counted per replica until Redis answers: %s", error)
                self._redis_failing = True
            else:
                if self._redis_failing:
                    logger.warning("Rate limit shared through Redis again")
                self._redis_failing = False
                return count <= self.per_minute
        return self._count_locally(sender_id, window) <= self.per_minute

    async def _count_in_redis(self, sender_id: str, window: int) -> int:
        key = f"tthc:rate:{window}:{sender_id}"
        async with self._redis.pipeline(transaction=True) as pipe:
            count, _ = await pipe.incr(key).expire(key, 120).execute()
        return int(count)

    def _count_locally(self, sender_id: str, window: int) -> int:
        if window != self._window:  # a new minute: forget the old counts (bounded memory)
            self._window, self._counts = window, {}
        self._counts[sender_id] = self._counts.get(sender_id, 0) + 1
        return self._counts[sender_id]


class BufferedOutput:
    """Holds the bot's replies of one turn so a failed turn can be answered with the apology."""

    def __init__(self, inner: OutputChannel) -> None:
        self.inner = inner
        self.pending: list[tuple[str, dict[str, Any]]] = []

    def name(self) -> str:
        return self.inner.name()

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        self.pending.append((recipient_id, message))

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)

    async def flush(self, recipient_id: str, failures: list[str]) -> None:
        if STORE_FAILURE in failures:
            # Replies computed without the conversation's history would mislead.
            self.pending.clear()
        for recipient, message in self.pending:
            await self.inner.send_response(recipient, message)
        if failures or not self.pending:
            logger.warning(
                "Turn of %s answered with the apology (%s)",
                recipient_id,
                ", ".join(sorted(set(failures))) or "no reply",
            )
            await self.inner.send_text_message(recipient_id, apology_text())


def _expects_reply(text: str | None) -> bool:
    return not (text or "").startswith((f"/{USER_INTENT_RESTART}", f"/{USER_INTENT_SESSION_START}"))


def guard(
    on_new_message: OnNewMessage,
    limiter: SenderRateLimiter,
    max_chars: int = MAX_MESSAGE_CHARS,
    gate: TurnGate | None = None,
) -> OnNewMessage:
    """`on_new_message` with limits, and an apology whenever the turn fails or stays silent."""
    install_action_failure_hook()
    gate = gate or TurnGate(0)

    async def handle(message: UserMessage) -> None:
        output, sender = message.output_channel, message.sender_id
        if len(message.text or "") > max_chars:
            await output.send_text_message(sender, TOO_LONG_REPLY)
            return
        if not await limiter.allow(sender):
            logger.info("Sender %s over %d messages/minute", sender, limiter.per_minute)
            await output.send_text_message(sender, RATE_LIMITED_REPLY)
            return
        # Hotline staff hold the conversation: the message is theirs, the bot stays silent.
        held = await held_turn(sender, message.text or "")
        if held is not None:
            if held.reply:
                await output.send_text_message(sender, held.reply)
            return
        buffered = BufferedOutput(output)
        message.output_channel = buffered
        failures: list[str] = []
        token = _FAILURES.set(failures)
        try:
            await gate.run(on_new_message(message))
        except Exception:  # logged with its traceback; the citizen still gets an answer
            logger.exception("Message of %s not handled", sender)
            failures.append("exception")
        finally:
            _FAILURES.reset(token)
        if failures or buffered.pending or _expects_reply(message.text):
            await buffered.flush(sender, failures)

    return handle
