"""Hostile requests to the web server's public endpoints (the chat webhook of the widget and the
JSON API): never a 5xx, always a JSON answer, a citizen always gets a message.

Rasa is unreachable here (a closed port): /api/chat must still answer with the apology. The
Rasa-side webhook is fuzzed against the running production stack in tests/test_prod_stack.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import urllib.parse

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prod_support import chat_bodies

from procedures_db.settings import get_settings
from scripts.stack import free_port

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def web_client(use_full_db: str):
    """The whole web app; Rasa is a closed port; no per-IP limit (every request is local)."""
    from webapp.app import create_app

    app_settings = dataclasses.replace(
        get_settings(),
        rasa_url=f"http://127.0.0.1:{free_port()}",
        api_rate_limit_per_minute=0,
        chat_messages_per_minute_per_ip=0,  # hundreds of requests from one address here
    )
    loop = asyncio.new_event_loop()
    client = TestClient(TestServer(create_app(app_settings)), loop=loop)
    loop.run_until_complete(client.start_server())
    yield client, loop
    loop.run_until_complete(client.close())
    loop.close()


def _request(web_client, method: str, path: str, **kwargs) -> tuple[int, object]:
    client, loop = web_client

    async def call() -> tuple[int, object]:
        response = await client.request(method, path, **kwargs)
        text = await response.text()
        assert response.status < 500, (path, kwargs, response.status, text[:300])
        assert response.content_type == "application/json", (path, response.status, text[:200])
        return response.status, json.loads(text)

    return loop.run_until_complete(call())


def test_chat_webhook_never_fails(web_client) -> None:
    @fuzz
    @given(chat_bodies)
    def check(body: bytes) -> None:
        status, answer = _request(
            web_client,
            "POST",
            "/api/chat",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        assert status in (200, 400, 403, 413), (status, answer)
        if status == 403:  # a sender seen before, without its conversation token
            assert answer["error"] == "wrong_token", answer
        if status == 200:
            assert answer["messages"] and all(m.get("text") for m in answer["messages"])

    check()


def test_search_api_never_fails(web_client) -> None:
    @fuzz
    @given(
        st.dictionaries(
            st.sampled_from(["q", "limit", "field", "level", "online_level", "x"]),
            st.text(max_size=60),
            max_size=4,
        )
    )
    def check(query: dict[str, str]) -> None:
        status, answer = _request(
            web_client, "GET", "/api/procedures?" + urllib.parse.urlencode(query)
        )
        assert status in (200, 400), (status, answer)

    check()


def test_detail_api_never_fails(web_client) -> None:
    @fuzz
    # "." and ".." are path navigation, resolved by the client before any request.
    @given(st.text(min_size=1, max_size=80).filter(lambda code: code not in (".", "..")))
    def check(code: str) -> None:
        path = "/api/procedures/" + urllib.parse.quote(code, safe="")
        status, answer = _request(web_client, "GET", path)
        assert status in (200, 400, 404), (status, answer)

    check()
