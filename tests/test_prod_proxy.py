"""The web server behind a reverse proxy, and staff passwords: client IP from trusted proxies only,
sign-in lockout per account and per client IP, the per-IP chat limit, Secure cookies behind an
https proxy, password rules without silent truncation."""

from __future__ import annotations

import uuid

import pytest
from aiohttp.test_utils import TestClient, TestServer

from procedures_db.db import get_engine
from scripts.stack import free_port
from tests.staff_support import PASSWORD, app_settings, csrf_token, new_staff_account
from webapp import auth, portal
from webapp.api import RateLimiter
from webapp.app import create_app
from webapp.staff import SESSION_COOKIE

PROXY = "127.0.0.1"  # the test client's address: the "nginx" in front of the app
STRANGER, COLLEAGUE = "203.0.113.9", "198.51.100.7"


async def _client(settings) -> TestClient:
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


@pytest.fixture
async def behind_proxy(full_db_url, tmp_path):
    settings = app_settings(full_db_url, tmp_path, trusted_proxies=(PROXY,))
    client = await _client(settings)
    yield client
    await client.close()


@pytest.fixture
async def no_trusted_proxy(full_db_url, tmp_path):
    client = await _client(app_settings(full_db_url, tmp_path, trusted_proxies=()))
    yield client
    await client.close()


async def sign_in_via(client, username: str, password: str = PASSWORD, **headers: str):
    form = await client.get("/staff/login", headers=headers)
    token = csrf_token(await form.text())
    # Sent explicitly: a Secure cookie (behind an https proxy) is never sent back over the test's
    # plain http, as a browser on the https side would.
    cookies = {name: morsel.value for name, morsel in form.cookies.items()}
    return await client.post(
        "/staff/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/staff"},
        headers=headers,
        cookies=cookies,
        allow_redirects=False,
    )


# --- sign-in lockout behind the proxy ---------------------------------------------------------


async def test_a_strangers_failures_do_not_lock_out_a_colleague(behind_proxy, full_db_url):
    stranger = {"X-Forwarded-For": STRANGER, "X-Real-IP": STRANGER}
    for i in range(20):
        reply = await sign_in_via(behind_proxy, f"khong-co-{i}", "sai mật khẩu", **stranger)
        assert reply.status == 401
    locked = await sign_in_via(behind_proxy, new_staff_account(full_db_url), **stranger)
    assert locked.status == 429  # the stranger's address is locked out...
    colleague = await sign_in_via(
        behind_proxy, new_staff_account(full_db_url), **{"X-Forwarded-For": COLLEAGUE}
    )
    assert colleague.status == 303  # ...not everyone behind the same proxy


async def test_an_account_is_locked_whatever_address_the_guesses_come_from(
    behind_proxy, full_db_url
):
    username = new_staff_account(full_db_url)
    for i in range(5):
        address = {"X-Forwarded-For": f"203.0.113.{i + 1}"}
        assert (await sign_in_via(behind_proxy, username, "sai mật khẩu", **address)).status == 401
    owner = await sign_in_via(behind_proxy, username, **{"X-Forwarded-For": COLLEAGUE})
    assert owner.status == 429


async def test_forwarding_headers_from_an_untrusted_peer_are_ignored(no_trusted_proxy, full_db_url):
    # Rotating X-Forwarded-For does not give an attacker fresh attempts.
    for i in range(20):
        spoofed = {"X-Forwarded-For": f"198.51.100.{i + 1}", "X-Real-IP": f"198.51.100.{i + 1}"}
        reply = await sign_in_via(no_trusted_proxy, f"khong-co-{i}", "sai mật khẩu", **spoofed)
        assert reply.status == 401
    reply = await sign_in_via(
        no_trusted_proxy, new_staff_account(full_db_url), **{"X-Forwarded-For": "192.0.2.77"}
    )
    assert reply.status == 429


# --- Secure cookie ----------------------------------------------------------------------------


def _session_cookie_header(response) -> str:
    cookies = [
        v for v in response.headers.getall("Set-Cookie") if v.startswith(f"{SESSION_COOKIE}=")
    ]
    assert cookies, response.headers
    return cookies[0]


async def test_secure_cookie_when_the_trusted_proxy_says_https(behind_proxy, full_db_url):
    https = await sign_in_via(
        behind_proxy, new_staff_account(full_db_url), **{"X-Forwarded-Proto": "https"}
    )
    assert https.status == 303 and "Secure" in _session_cookie_header(https)
    plain = await sign_in_via(behind_proxy, new_staff_account(full_db_url))
    assert plain.status == 303 and "Secure" not in _session_cookie_header(plain)


async def test_no_secure_flag_on_an_untrusted_peers_word(no_trusted_proxy, full_db_url):
    reply = await sign_in_via(
        no_trusted_proxy, new_staff_account(full_db_url), **{"X-Forwarded-Proto": "https"}
    )
    assert reply.status == 303 and "Secure" not in _session_cookie_header(reply)


# --- per-IP limit on /api/chat ----------------------------------------------------------------


async def _chat_client(full_db_url, tmp_path, trusted: tuple[str, ...]) -> TestClient:
    settings = app_settings(
        full_db_url,
        tmp_path,
        trusted_proxies=trusted,
        rasa_url=f"http://127.0.0.1:{free_port()}",  # Rasa down: the chat answers its apology
        chat_messages_per_minute_per_ip=10,
    )
    app = create_app(settings)
    # A frozen clock: the bucket (2 messages of burst) never refills during the test.
    app[portal.CHAT_LIMITER] = RateLimiter(10, clock=lambda: 0.0)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def _chat(client, address: str | None = None) -> int:
    headers = {"X-Forwarded-For": address} if address else {}
    body = {"sender": f"s-{uuid.uuid4().hex[:8]}", "message": "xin chào"}
    response = await client.post("/api/chat", json=body, headers=headers)
    if response.status == 429:
        payload = await response.json()
        assert payload["error"] == "rate_limited" and "quá nhanh" in payload["message"]
        assert int(response.headers["Retry-After"]) >= 1
    return response.status


async def test_chat_is_limited_per_client_ip_behind_the_proxy(full_db_url, tmp_path):
    client = await _chat_client(full_db_url, tmp_path, (PROXY,))
    try:
        # New sender ids every time: the limit follows the address, which the client cannot pick.
        assert [await _chat(client, STRANGER) for _ in range(3)] == [200, 200, 429]
        assert await _chat(client, COLLEAGUE) == 200
    finally:
        await client.close()


async def test_chat_limit_ignores_spoofed_addresses(full_db_url, tmp_path):
    client = await _chat_client(full_db_url, tmp_path, ())
    try:
        statuses = [await _chat(client, f"192.0.2.{i}") for i in range(1, 4)]
        assert statuses == [200, 200, 429]
    finally:
        await client.close()


# --- password rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    [
        "ngắn quá",  # under 12 characters
        " " * 12,
        "1234567890",
        "123456789012",
        "aaaaaaaaaaaa",
        "Password1234!",
        "matkhau123456",
        "Qwerty123456",
        "iloveyou2026",
        "tong.dai-01",  # the username
        "Tong.Dai-01!!",  # the username, padded
        "x" * (auth.MAX_PASSWORD_LENGTH - 1) + "yz",  # longer than the maximum
    ],
)
def test_weak_or_unusable_passwords_are_refused(full_db_url, password):
    with pytest.raises(auth.AccountError):
        auth.create_account("tong.dai-01", password, engine=get_engine(full_db_url))


def test_the_common_password_list_ships_with_the_code():
    assert len(auth.common_passwords()) >= 100
    assert {"password", "matkhau", "qwerty"} <= auth.common_passwords()


async def test_the_longest_accepted_password_signs_in_unchanged(behind_proxy, full_db_url):
    username = f"staff-{uuid.uuid4().hex[:10]}"
    longest = ("mật khẩu rất dài " * 20)[: auth.MAX_PASSWORD_LENGTH]
    auth.create_account(username, longest, engine=get_engine(full_db_url))
    assert (await sign_in_via(behind_proxy, username, longest)).status == 303
    # A cut or extended password is a different password.
    assert (await sign_in_via(behind_proxy, username, longest[:-1])).status == 401
    assert (await sign_in_via(behind_proxy, username, longest + "x" * 44)).status == 401
