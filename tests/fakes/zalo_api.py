"""A fake Zalo: the OA message API and the OAuth token endpoint, with rotating tokens."""

from __future__ import annotations

from aiohttp import web

from tests.fakes.base import FakeApi

MESSAGE_PATH = "/v3.0/oa/message/cs"
TOKEN_PATH = "/v4/oa/access_token"


class FakeZaloApi(FakeApi):
    def __init__(self, app_id: str, app_secret_key: str, access_token: str, refresh_token: str):
        super().__init__()
        self.app_id = app_id
        self.app_secret_key = app_secret_key
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.refreshes = 0
        self.delivered: list[tuple[str, str]] = []  # (user_id, text) accepted, in order

    def routes(self) -> list[web.RouteDef]:
        return [web.post(MESSAGE_PATH, self.message), web.post(TOKEN_PATH, self.token)]

    def expire_access_token(self) -> None:
        """Zalo invalidates the current access token (what a 25-hour expiry does)."""
        self.access_token = f"{self.access_token}-expired-on-server"

    async def message(self, request: web.Request) -> web.Response:
        recorded, planned = await self.record(request)
        if planned is not None:
            return planned
        if recorded.headers.get("access_token") != self.access_token:
            return web.json_response({"error": -216, "message": "Access token is invalid"})
        body = recorded.json or {}
        if not body.get("recipient", {}).get("user_id") or not body.get("message", {}).get("text"):
            return web.json_response({"error": -201, "message": "Parameters are invalid"})
        self.delivered.append((body["recipient"]["user_id"], body["message"]["text"]))
        return web.json_response(
            {"error": 0, "message": "Success", "data": {"message_id": f"m{len(self.requests)}"}}
        )

    async def token(self, request: web.Request) -> web.Response:
        recorded, planned = await self.record(request)
        if planned is not None:
            return planned
        form = recorded.form
        if (
            recorded.headers.get("secret_key") != self.app_secret_key
            or form.get("app_id") != self.app_id
            or form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") != self.refresh_token
        ):
            return web.json_response({"error": -14014, "error_name": "Invalid refresh token"})
        # Zalo rotates both tokens: the refresh token just used is spent.
        self.refreshes += 1
        self.access_token = f"access-{self.refreshes}"
        self.refresh_token = f"refresh-{self.refreshes}"
        return web.json_response(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_in": "90000",
            }
        )
