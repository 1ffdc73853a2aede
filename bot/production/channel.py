"""The REST channel (/webhooks/rest/webhook, used by the web chat) with the production guard.

Registered in the production credentials file instead of `rest:` (same name, same URL), see
scripts/prod.py. Malformed requests get 400 instead of Rasa's 500; every accepted message goes
through `guard()`: size and per-sender limits, and an apology whenever the turn fails.
"""

from __future__ import annotations

from typing import Any

from rasa.core.channels.rest import RestInput
from sanic.exceptions import InvalidUsage as BadRequest
from sanic.request import Request

from bot.channels.gate import process_gate
from bot.production import rasa_patches
from bot.production.guard import OnNewMessage, SenderRateLimiter, guard
from procedures_db.settings import get_settings

MAX_SENDER_CHARS = 128


def _json_object(request: Request) -> dict[str, Any]:
    body = request.json  # Sanic answers 400 itself when the body is not JSON
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with 'sender' and 'message'")
    return body


class GuardedRestInput(RestInput):
    def __init__(self) -> None:
        settings = get_settings()
        self.limiter = SenderRateLimiter(
            settings.sender_messages_per_minute, settings.lock_store_url
        )
        self.gate = process_gate()

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> GuardedRestInput:
        return cls()

    async def _extract_sender(self, req: Request) -> str:
        sender = _json_object(req).get("sender")
        if not isinstance(sender, str) or not 0 < len(sender) <= MAX_SENDER_CHARS:
            raise BadRequest(f"'sender' must be text of 1-{MAX_SENDER_CHARS} characters")
        return sender

    def _extract_message(self, req: Request) -> str:
        message = _json_object(req).get("message")
        if not isinstance(message, str):
            raise BadRequest("'message' must be text")
        return message

    def _extract_input_channel(self, req: Request) -> str:
        channel = _json_object(req).get("input_channel")
        return channel if isinstance(channel, str) and channel else self.name()

    def blueprint(self, on_new_message: OnNewMessage) -> Any:
        blueprint = super().blueprint(guard(on_new_message, self.limiter, gate=self.gate))
        # The kept sessions to the action server (bot/production/rasa_patches.py) end with Rasa.
        blueprint.listener("before_server_stop")(rasa_patches.close_sessions)
        return blueprint
