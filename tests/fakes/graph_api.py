"""A fake Facebook Graph API: the Messenger Send API."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.base import FakeApi

API_VERSION = "v19.0"
MESSAGES_PATH = f"/{API_VERSION}/me/messages"


class FakeGraphApi(FakeApi):
    def __init__(self, page_access_token: str) -> None:
        super().__init__()
        self.page_access_token = page_access_token
        self.delivered: list[tuple[str, dict[str, Any]]] = []  # (recipient id, message)

    def routes(self) -> list[web.RouteDef]:
        return [web.post(MESSAGES_PATH, self.messages)]

    async def messages(self, request: web.Request) -> web.Response:
        recorded, planned = await self.record(request)
        if planned is not None:
            return planned
        if recorded.query.get("access_token") != self.page_access_token:
            error = {
                "message": "Invalid OAuth access token.",
                "type": "OAuthException",
                "code": 190,
            }
            return web.json_response({"error": error}, status=400)
        body = recorded.json or {}
        recipient = body.get("recipient", {}).get("id")
        message = body.get("message")
        if not recipient or not isinstance(message, dict):
            error = {"message": "Invalid parameter", "type": "OAuthException", "code": 100}
            return web.json_response({"error": error}, status=400)
        self.delivered.append((recipient, message))
        return web.json_response(
            {"recipient_id": recipient, "message_id": f"m{len(self.delivered)}"}
        )

    def texts_to(self, recipient: str) -> list[str]:
        return [message.get("text", "") for to, message in self.delivered if to == recipient]
