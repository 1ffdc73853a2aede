"""Portal page, widget files and POST /api/chat, against a fake Rasa REST channel."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import re
import tempfile
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from procedures_db.settings import get_settings
from webapp import portal

ALLOWED_ORIGIN = "https://tinh.example.gov.vn"
HOTLINE_PROFILE = """
province_name: Tỉnh Thử Nghiệm
public_administration_centre:
  hotline: "0200 3 999 999"
"""


class FakeRasa:
    """Rasa's REST channel: records what it receives, answers what the test sets."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.replies: object = []
        self.status = 200
        self.raw_body: str | None = None
        self.delay_s = 0.0

    async def webhook(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        await asyncio.sleep(self.delay_s)
        if self.raw_body is not None:
            return web.Response(text=self.raw_body, status=self.status)
        return web.json_response(self.replies, status=self.status)


@pytest.fixture
async def fake_rasa():
    rasa = FakeRasa()
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", rasa.webhook)
    server = TestServer(app)
    await server.start_server()
    rasa.url = str(server.make_url("")).rstrip("/")
    yield rasa
    await server.close()


@pytest.fixture
def profile_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty profile (no hotline) unless a test writes one."""
    path = tmp_path / "province.yml"
    path.write_text("province_name: null\n", encoding="utf-8")
    monkeypatch.setenv("PROVINCE_PROFILE", str(path))
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


async def portal_client(rasa_url: str, origins: tuple[str, ...] = (ALLOWED_ORIGIN,)) -> TestClient:
    """The portal alone: its procedures database does not exist, so no hand-over store and no
    conversation tokens (tests/test_handover.py covers those)."""
    app = web.Application()
    missing_db = Path(tempfile.mkdtemp()) / "none.sqlite3"
    app["settings"] = dataclasses.replace(
        get_settings(),
        rasa_url=rasa_url,
        chat_allowed_origins=origins,
        database_url=f"sqlite:///{missing_db}",
    )
    portal.setup_routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(fake_rasa: FakeRasa, profile_path: Path):
    client = await portal_client(fake_rasa.url)
    yield client
    await client.close()


async def post_chat(client: TestClient, body: object, **kwargs) -> tuple[int, dict]:
    response = await client.post("/api/chat", json=body, **kwargs)
    return response.status, await response.json()


# --- forwarding -----------------------------------------------------------------------------------


async def test_chat_forwards_message_and_returns_clean_bot_messages(client, fake_rasa):
    fake_rasa.replies = [
        {"recipient_id": "web-1", "text": "Thời gian giải quyết: 5 ngày làm việc"},
        {
            "recipient_id": "web-1",
            "text": "Bạn hỏi thủ tục nào?",
            "buttons": [
                {"title": "Đăng ký khai sinh", "payload": '/ask_procedure_info{"code":"1.001193"}'},
                {"title": "thiếu payload"},
                "not a button",
            ],
            "custom": {"ignored": True},
        },
        {"recipient_id": "web-1", "image": "javascript:alert(1)"},
        {"recipient_id": "web-1", "image": "https://example.gov.vn/so-do.png"},
    ]
    status, body = await post_chat(client, {"sender": "web-1", "message": "  đổi bằng lái  "})
    assert status == 200
    assert fake_rasa.received == [{"sender": "web-1", "message": "đổi bằng lái"}]
    assert body == {
        "sender": "web-1",
        "messages": [
            {"text": "Thời gian giải quyết: 5 ngày làm việc"},
            {
                "text": "Bạn hỏi thủ tục nào?",
                "buttons": [
                    {
                        "title": "Đăng ký khai sinh",
                        "payload": '/ask_procedure_info{"code":"1.001193"}',
                    }
                ],
            },
            {"image": "https://example.gov.vn/so-do.png"},
        ],
    }


async def test_message_of_exactly_the_limit_is_accepted(client, fake_rasa):
    fake_rasa.replies = [{"text": "ok"}]
    message = "a" * portal.MAX_MESSAGE_CHARS
    status, body = await post_chat(client, {"sender": "s1", "message": message})
    assert (status, body["messages"]) == (200, [{"text": "ok"}])
    assert fake_rasa.received[0]["message"] == message


# --- the citizen never gets silence ---------------------------------------------------------------


def assert_national_portal_apology(body: dict) -> None:
    [message] = body["messages"]
    assert message["text"].startswith("Xin lỗi")
    assert "https://dichvucong.gov.vn" in message["text"]


async def test_empty_reply_gives_apology_with_national_portal(client, fake_rasa):
    fake_rasa.replies = []
    status, body = await post_chat(client, {"sender": "s1", "message": "xin chào"})
    assert status == 200
    assert_national_portal_apology(body)


async def test_empty_reply_gives_apology_with_the_province_hotline(client, fake_rasa, profile_path):
    profile_path.write_text(HOTLINE_PROFILE, encoding="utf-8")
    fake_rasa.replies = [{"recipient_id": "s1", "text": "   "}]
    status, body = await post_chat(client, {"sender": "s1", "message": "xin chào"})
    assert status == 200
    [message] = body["messages"]
    assert "0200 3 999 999" in message["text"]
    assert "Xin lỗi" in message["text"]


@pytest.mark.parametrize(
    ("status", "raw_body"),
    [(500, "Internal Server Error"), (200, "not json"), (200, '{"a": 1}'), (404, "[]")],
)
async def test_broken_rasa_answer_gives_apology(client, fake_rasa, status, raw_body):
    fake_rasa.status, fake_rasa.raw_body = status, raw_body
    response_status, body = await post_chat(client, {"sender": "s1", "message": "hỏi"})
    assert response_status == 200
    assert_national_portal_apology(body)


async def test_rasa_unreachable_gives_apology(profile_path):
    with socket_closed_port() as port:
        client = await portal_client(f"http://127.0.0.1:{port}")
        try:
            status, body = await post_chat(client, {"sender": "s1", "message": "hỏi"})
        finally:
            await client.close()
    assert status == 200
    assert_national_portal_apology(body)


async def test_slow_rasa_times_out_into_apology(fake_rasa, profile_path, monkeypatch):
    monkeypatch.setattr(portal, "RASA_TIMEOUT", aiohttp.ClientTimeout(total=0.3))
    fake_rasa.delay_s = 2
    fake_rasa.replies = [{"text": "too late"}]
    client = await portal_client(fake_rasa.url)
    try:
        status, body = await post_chat(client, {"sender": "s1", "message": "hỏi"})
    finally:
        await client.close()
    assert status == 200
    assert_national_portal_apology(body)


class socket_closed_port:
    """A local port nothing listens on."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *_exc: object) -> None:
        return None


# --- bad input: clear 4xx JSON, Rasa never called -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (["sender", "message"], "invalid_json"),
        ("just a string", "invalid_json"),
        ({"message": "hỏi"}, "invalid_sender"),
        ({"sender": "", "message": "hỏi"}, "invalid_sender"),
        ({"sender": "a b<script>", "message": "hỏi"}, "invalid_sender"),
        ({"sender": "x" * 129, "message": "hỏi"}, "invalid_sender"),
        ({"sender": 42, "message": "hỏi"}, "invalid_sender"),
        ({"sender": "s1"}, "missing_message"),
        ({"sender": "s1", "message": "   \n "}, "missing_message"),
        ({"sender": "s1", "message": ["hỏi"]}, "missing_message"),
        ({"sender": "s1", "message": "a" * (portal.MAX_MESSAGE_CHARS + 1)}, "message_too_long"),
    ],
)
async def test_invalid_fields_are_refused(client, fake_rasa, body, error):
    status, answer = await post_chat(client, body)
    assert (status, answer["error"]) == (400, error)
    assert answer["message"]  # a sentence a person can read
    assert fake_rasa.received == []


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe{}", b'{"sender": "s1", "message": '])
async def test_malformed_json_is_refused(client, fake_rasa, raw):
    response = await client.post(
        "/api/chat", data=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_json"
    assert fake_rasa.received == []


async def test_oversized_body_is_refused(client, fake_rasa):
    body = json.dumps({"sender": "s1", "message": "hỏi", "pad": "x" * portal.MAX_BODY_BYTES})
    response = await client.post("/api/chat", data=body.encode())
    assert response.status == 413
    assert (await response.json())["error"] == "body_too_large"
    assert fake_rasa.received == []


async def test_oversized_chunked_body_is_refused(client, fake_rasa):
    async def chunks():
        for _ in range(10):
            yield b"x" * (portal.MAX_BODY_BYTES // 4)

    response = await client.post("/api/chat", data=chunks())
    assert response.status == 413
    assert (await response.json())["error"] == "body_too_large"


# --- CORS for the sites that embed the widget -----------------------------------------------------


async def test_cors_allows_configured_origin_only(client, fake_rasa):
    fake_rasa.replies = [{"text": "ok"}]
    allowed = await client.post(
        "/api/chat", json={"sender": "s1", "message": "hỏi"}, headers={"Origin": ALLOWED_ORIGIN}
    )
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    other = await client.post(
        "/api/chat",
        json={"sender": "s1", "message": "hỏi"},
        headers={"Origin": "https://evil.example"},
    )
    assert "Access-Control-Allow-Origin" not in other.headers
    refused = await client.post("/api/chat", data=b"{", headers={"Origin": ALLOWED_ORIGIN})
    assert refused.status == 400
    assert refused.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN  # widget can read why


async def test_cors_preflight(client):
    headers = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    ok = await client.options("/api/chat", headers={"Origin": ALLOWED_ORIGIN, **headers})
    assert ok.status == 204
    assert ok.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "POST" in ok.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in ok.headers["Access-Control-Allow-Headers"]
    denied = await client.options(
        "/api/chat", headers={"Origin": "https://evil.example", **headers}
    )
    assert denied.status == 403
    assert "Access-Control-Allow-Origin" not in denied.headers


async def test_cors_wildcard_setting_allows_any_site(fake_rasa, profile_path):
    client = await portal_client(fake_rasa.url, origins=("*",))
    try:
        response = await client.options("/api/chat", headers={"Origin": "https://xa-a.example.vn"})
    finally:
        await client.close()
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://xa-a.example.vn"


def test_allowed_origins_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("CHAT_ALLOWED_ORIGINS", " https://a.gov.vn/ ,https://b.gov.vn,, ")
    get_settings.cache_clear()
    try:
        assert get_settings().chat_allowed_origins == ("https://a.gov.vn", "https://b.gov.vn")
    finally:
        monkeypatch.delenv("CHAT_ALLOWED_ORIGINS")
        get_settings.cache_clear()


# --- page, static files, lifecycle ----------------------------------------------------------------


async def test_portal_page_embeds_the_widget_with_one_script_tag(client):
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert '<html lang="vi">' in page
    assert portal.DEMO_PORTAL_NAME in page  # the profile names no province
    [tag] = re.findall(r"<script[^>]*></script>", page)
    assert tag == portal.embed_snippet("")
    assert 'src="/static/widget/widget.js"' in tag  # same origin, whatever proxy is in front
    assert 'data-title="Trợ lý thủ tục hành chính"' in tag
    # The snippet to copy onto other sites is shown with this server's absolute address.
    base = str(client.make_url("")).rstrip("/")
    shown = html.escape(portal.embed_snippet(base))
    assert shown in page
    assert html.escape(f'data-server="{base}"') in shown


async def test_portal_page_uses_the_province_name(client, profile_path):
    profile_path.write_text(HOTLINE_PROFILE, encoding="utf-8")
    page = await (await client.get("/")).text()
    assert "Cổng thông tin điện tử Tỉnh Thử Nghiệm" in page


def test_embed_snippet_escapes_attribute_values():
    tag = portal.embed_snippet('https://x.example/"><img src=x onerror=alert(1)>')
    assert "<img" not in tag
    assert "&quot;&gt;&lt;img" in tag


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/widget/widget.js", "application/javascript"),
        ("/static/widget/widget.css", "text/css"),
    ],
)
async def test_widget_files_are_served(client, path, content_type):
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type in (content_type, "text/javascript")
    assert len(await response.read()) > 1000


async def test_http_session_is_opened_on_startup_and_closed_on_cleanup(fake_rasa, profile_path):
    client = await portal_client(fake_rasa.url)
    session = client.app[portal.HTTP_SESSION]
    assert not session.closed
    await client.close()
    assert session.closed
