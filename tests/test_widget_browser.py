"""The chat widget in Debian's headless Chromium.

First against the portal app served in-process with a fake Rasa (safe rendering, reconnecting,
embedding on another site, keyboard), then against the real running stack (bot answers, candidate
buttons, reload, 360 px phone screen).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from actions.formatting import FEEDBACK_TITLES, HELPFUL
from procedures_db.settings import get_settings
from scripts.stack import free_port
from webapp import portal

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 640}


# --- helpers shared by both parts ---------------------------------------------------------------


async def open_chat(page: Page) -> None:
    await page.get_by_role("button", name="Mở Trợ lý thủ tục hành chính").click()
    await expect(page.get_by_role("dialog", name="Trợ lý thủ tục hành chính")).to_be_visible()


async def ask(page: Page, question: str) -> None:
    box = page.get_by_role("textbox", name="Nhập câu hỏi của bạn")
    await box.fill(question)
    await box.press("Enter")


def bot_messages(page: Page):
    return page.locator(".message.bot")


def user_messages(page: Page):
    return page.locator(".message.user")


# --- part 1: in-process portal + fake Rasa --------------------------------------------------------


class FakeRasa:
    """Rasa's REST channel answering through a function of the message."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.answer: Callable[[str], list[dict]] = lambda message: [{"text": f"Đã nhận: {message}"}]

    async def webhook(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.received.append(data)
        return web.json_response(self.answer(data["message"]))


class Server:
    """An aiohttp app on a fixed port that a test can stop and start again."""

    def __init__(self, make_app: Callable[[], web.Application]) -> None:
        self.make_app = make_app
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Server:
        self.runner = web.AppRunner(self.make_app())
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def fake_rasa():
    rasa = FakeRasa()

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", rasa.webhook)
        return app

    server = await Server(make_app).start()
    rasa.url = server.url
    yield rasa
    await server.stop()


@pytest.fixture
async def web_server(fake_rasa: FakeRasa):
    """The portal app; CORS allows the `other_site` fixture's origin, known once it started."""
    host_port = free_port()

    def make_app() -> web.Application:
        app = web.Application()
        app["settings"] = dataclasses.replace(
            get_settings(),
            rasa_url=fake_rasa.url,
            chat_allowed_origins=(f"http://127.0.0.1:{host_port}",),
        )
        portal.setup_routes(app)
        return app

    server = await Server(make_app).start()
    server.other_site_port = host_port
    yield server
    await server.stop()


@pytest.fixture
async def other_site(web_server: Server):
    """A municipality's own site on another origin that embeds the widget with the one tag."""
    page = (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<style>button { all: unset; } div { color: lime; }</style></head>"
        f"<body><h1>UBND xã A</h1>{portal.embed_snippet(web_server.url)}</body></html>"
    )

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_get("/", lambda _request: web.Response(text=page, content_type="text/html"))
        return app

    server = Server(make_app)
    server.port = web_server.other_site_port
    await server.start()
    yield server
    await server.stop()


async def test_bot_text_is_never_parsed_as_html_and_links_are_clickable(
    browser, web_server, fake_rasa
):
    fake_rasa.answer = lambda _message: [
        {
            "text": "<img src=x onerror=\"document.title='pwned'\"> Xem dichvucong.gov.vn, "
            "hoặc https://dichvucong.gov.vn/p/home/dvc-tthc.html?ma=1.001193. "
            "Không phải link: javascript:alert(1)"
        }
    ]
    page = await browser.new_page()
    await page.goto(web_server.url)
    await open_chat(page)
    await ask(page, "<b>đậm</b>")
    answer = bot_messages(page).last
    await expect(answer).to_contain_text("<img src=x onerror=")
    await expect(user_messages(page).last).to_contain_text("<b>đậm</b>")
    assert await page.locator(".message img, .message b").count() == 0
    links = answer.get_by_role("link")
    await expect(links).to_have_count(2)
    assert await links.nth(0).get_attribute("href") == "https://dichvucong.gov.vn/"
    assert await links.nth(1).get_attribute("href") == (
        "https://dichvucong.gov.vn/p/home/dvc-tthc.html?ma=1.001193"
    )
    assert await links.nth(1).get_attribute("target") == "_blank"
    assert "noopener" in await links.nth(1).get_attribute("rel")
    assert await page.title() != "pwned"


async def test_buttons_send_payload_and_show_title(browser, web_server, fake_rasa):
    def answer(message: str) -> list[dict]:
        if message.startswith("/"):
            return [{"text": f"Thủ tục đã chọn: {message}"}]
        return [
            {
                "text": "Bạn muốn hỏi thủ tục nào?",
                "buttons": [
                    {"title": "Đăng ký khai sinh", "payload": "/chon_thu_tuc_1"},
                    {"title": "Đăng ký lại khai sinh", "payload": "/chon_thu_tuc_2"},
                ],
            }
        ]

    fake_rasa.answer = answer
    page = await browser.new_page()
    await page.goto(web_server.url)
    await open_chat(page)
    await ask(page, "khai sinh")
    choices = page.get_by_role("group", name="Các lựa chọn").last  # the first: suggestions
    chosen = choices.get_by_role("button", name="Đăng ký lại khai sinh")
    await chosen.click()
    await expect(user_messages(page).last).to_contain_text("Đăng ký lại khai sinh")
    await expect(bot_messages(page).last).to_contain_text("Thủ tục đã chọn: /chon_thu_tuc_2")
    assert fake_rasa.received[-1]["message"] == "/chon_thu_tuc_2"
    await expect(chosen).to_be_focused()
    # Keyboard users can pick from the same list again.
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Enter")
    await expect(bot_messages(page).last).to_contain_text("Thủ tục đã chọn: /chon_thu_tuc_1")
    await expect(user_messages(page).last).to_contain_text("Đăng ký khai sinh")


async def test_keyboard_and_screen_reader_labels(browser, web_server):
    page = await browser.new_page()
    await page.goto(web_server.url)
    launcher = page.get_by_role("button", name="Mở Trợ lý thủ tục hành chính")
    await expect(launcher).to_have_attribute("aria-expanded", "false")
    await launcher.focus()
    await page.keyboard.press("Enter")
    box = page.get_by_role("textbox", name="Nhập câu hỏi của bạn")
    await expect(box).to_be_focused()
    await expect(page.get_by_role("log")).to_have_attribute("aria-live", "polite")
    await expect(bot_messages(page).first).to_contain_text("Xin chào")  # the data-greeting
    await page.keyboard.type("lệ phí hộ chiếu")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("bao nhiêu")
    await page.keyboard.press("Enter")
    await expect(user_messages(page).last).to_contain_text("lệ phí hộ chiếu\nbao nhiêu")
    await expect(box).to_have_value("")
    await expect(box).to_be_focused()
    for name in ("Gửi câu hỏi", "Đóng cửa sổ trò chuyện", "Bắt đầu cuộc trò chuyện mới"):
        await expect(page.get_by_role("button", name=name)).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_be_hidden()
    await expect(launcher).to_be_focused()
    await expect(launcher).to_have_attribute("aria-expanded", "false")


async def test_widget_embedded_on_another_site(browser, web_server, other_site, fake_rasa):
    page = await browser.new_page()
    await page.goto(other_site.url)
    await open_chat(page)
    await ask(page, "cấp hộ chiếu")
    await expect(bot_messages(page).last).to_have_text("Trợ lý: Đã nhận: cấp hộ chiếu")
    # The host page's CSS ("button { all: unset }", green text) does not reach the widget.
    color = await bot_messages(page).last.evaluate("node => getComputedStyle(node).color")
    assert color != "rgb(0, 255, 0)"
    send = page.get_by_role("button", name="Gửi câu hỏi")
    assert await send.evaluate("node => getComputedStyle(node).borderRadius") != "0px"


async def send_while_server_is_down(page: Page, server: Server, question: str):
    """Ask with the web server stopped; the widget must show it is reconnecting."""
    await page.goto(server.url)
    await open_chat(page)
    await server.stop()
    await ask(page, question)
    status = page.get_by_role("status").filter(has_text="đang kết nối lại…")
    await expect(status).to_be_visible()
    await expect(user_messages(page).last).to_contain_text("Đang chờ gửi…")
    return status


async def test_dropped_connection_is_retried_with_backoff(browser, web_server, fake_rasa):
    page = await browser.new_page()
    status = await send_while_server_is_down(page, web_server, "đổi bằng lái mất bao lâu")
    await expect(status).to_contain_text("lần 2", timeout=5_000)  # it keeps trying
    await web_server.start()
    await expect(bot_messages(page).last).to_contain_text(
        "Đã nhận: đổi bằng lái mất bao lâu", timeout=20_000
    )
    await expect(status).to_be_hidden()
    await expect(user_messages(page).last).not_to_contain_text("Đang chờ gửi…")
    assert [r["message"] for r in fake_rasa.received] == ["đổi bằng lái mất bao lâu"]


async def test_message_waiting_to_be_sent_survives_reload(browser, web_server, fake_rasa):
    page = await browser.new_page()
    await send_while_server_is_down(page, web_server, "cấp lại căn cước")
    await web_server.start()
    await page.reload()
    await expect(page.get_by_role("dialog")).to_be_visible()
    await expect(bot_messages(page).last).to_contain_text("Đã nhận: cấp lại căn cước")
    assert [r["message"] for r in fake_rasa.received] == ["cấp lại căn cước"]


async def test_retry_now_button(browser, web_server, fake_rasa):
    page = await browser.new_page()
    status = await send_while_server_is_down(page, web_server, "hộ chiếu")
    await expect(status).to_contain_text("lần 3", timeout=10_000)  # next try in about 4 s
    await web_server.start()
    await page.get_by_role("button", name="Thử lại ngay").click()
    await expect(bot_messages(page).last).to_contain_text("Đã nhận: hộ chiếu", timeout=2_000)


async def test_rejected_message_is_explained(browser, web_server, fake_rasa):
    page = await browser.new_page()
    await page.goto(web_server.url)
    await open_chat(page)
    # The widget refuses an over-long message itself (tests/test_widget_phone.py); a script
    # that bypasses it still gets the server's explanation.
    reply = await page.evaluate(
        """async (n) => {
            const response = await fetch('/api/chat', {method: 'POST',
                headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({sender: 'web-x', message: 'a'.repeat(n)})});
            return [response.status, await response.text()];
        }""",
        portal.MAX_MESSAGE_CHARS + 1,
    )
    assert reply[0] == 400 and "Tin nhắn quá dài" in reply[1]
    assert fake_rasa.received == []


async def test_restart_begins_a_new_conversation(browser, web_server, fake_rasa):
    page = await browser.new_page()
    await page.goto(web_server.url)
    await open_chat(page)
    await ask(page, "xin chào")
    await expect(bot_messages(page).last).to_contain_text("Đã nhận: xin chào")
    await page.get_by_role("button", name="Bắt đầu cuộc trò chuyện mới").click()
    await expect(user_messages(page)).to_have_count(0)
    await ask(page, "tạm biệt")
    await expect(bot_messages(page).last).to_contain_text("Đã nhận: tạm biệt")
    first, second = (r["sender"] for r in fake_rasa.received)
    assert first != second
    assert re.fullmatch(r"web-[0-9a-f]{32}", second)


async def test_conversation_is_forgotten_after_a_day_idle(browser, web_server):
    page = await browser.new_page()
    await page.goto(web_server.url)
    await open_chat(page)
    await ask(page, "số căn cước 012345678901")
    await expect(bot_messages(page).last).to_contain_text("Đã nhận")
    await page.reload()
    await expect(user_messages(page)).to_have_count(1)  # a reload keeps it
    # A poll for staff replies answers meanwhile: polling is not activity (it used to save the
    # state again, so a loaded machine kept the day-old conversation).
    async with page.expect_response(lambda r: "/api/chat/updates" in r.url, timeout=30_000):
        await page.evaluate(
            """() => {
                const key = Object.keys(localStorage).find((k) => k.startsWith("tthc-chat:"));
                const state = JSON.parse(localStorage.getItem(key));
                state.savedAt -= 25 * 60 * 60 * 1000;
                localStorage.setItem(key, JSON.stringify(state));
            }"""
        )
    await page.reload()
    await open_chat(page)
    await expect(user_messages(page)).to_have_count(0)
    await expect(bot_messages(page)).to_have_count(1)  # the greeting only


# --- part 2: the real stack (action server + trained Rasa model + web server) ---------------------


async def wait_for_answer(page: Page, count_before: int) -> None:
    """The bot's replies to the last question are on screen (all of a turn arrive together)."""
    await expect(bot_messages(page)).not_to_have_count(count_before, timeout=60_000)
    await expect(page.locator(".typing")).to_be_hidden(timeout=60_000)


async def ask_real_bot(page: Page, question: str) -> None:
    before = await bot_messages(page).count()
    await ask(page, question)
    await wait_for_answer(page, before)


async def test_real_bot_answers_then_history_survives_reload(browser: Browser, running_stack):
    page = await browser.new_page()
    await page.goto(running_stack.web_url + "/")
    await open_chat(page)
    await ask_real_bot(page, "đổi bằng lái mất bao lâu")
    await expect(bot_messages(page).filter(has_text="5 ngày làm việc")).to_have_count(1)
    header = bot_messages(page).filter(has_text="Mã TTHC")
    procedure = re.search(r"Thủ tục: (.+) \(Mã TTHC", await header.last.inner_text())[1]
    texts = await page.locator(".message").all_inner_texts()

    await page.reload()
    await expect(page.get_by_role("dialog")).to_be_visible()
    assert await page.locator(".message").all_inner_texts() == texts
    # The bot still knows the conversation: a follow-up is about the same procedure.
    await ask_real_bot(page, "lệ phí bao nhiêu")
    await expect(bot_messages(page).last).to_contain_text("Nguồn:")
    await expect(bot_messages(page).filter(has_text="Phí, lệ phí")).to_have_count(1)
    await expect(header).to_have_count(2)
    await expect(header.last).to_contain_text(f"Thủ tục: {procedure}")


async def test_real_bot_candidate_buttons(browser: Browser, running_stack):
    page = await browser.new_page()
    await page.goto(running_stack.web_url + "/")
    await open_chat(page)
    # "giấy phép" alone names many procedures (driving, building, …): the bot asks among them.
    await ask_real_bot(page, "giấy phép")
    choices = page.get_by_role("group", name="Các lựa chọn").last
    await expect(choices.get_by_role("button")).not_to_have_count(0)
    first = choices.get_by_role("button").first
    await expect(first).not_to_have_text(FEEDBACK_TITLES[HELPFUL])  # not an answer's rating
    # Read before the click: once the answer arrives, `.last` is the feedback buttons' group.
    label = (await first.inner_text()).strip()
    title = label.rstrip("…")
    count = await bot_messages(page).count()
    await first.click()
    await expect(user_messages(page).last).to_have_text(f"Bạn: {label}")
    await wait_for_answer(page, count)
    answer = bot_messages(page).filter(has_text="Mã TTHC").last
    await expect(answer).to_contain_text(f"Thủ tục: {title}")


async def test_real_bot_on_a_360px_phone(browser: Browser, running_stack):
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await page.goto(running_stack.web_url + "/")
    launcher = await page.get_by_role("button", name="Mở Trợ lý thủ tục hành chính").bounding_box()
    assert launcher["x"] >= 0 and launcher["x"] + launcher["width"] <= PHONE["width"]
    await open_chat(page)
    await ask_real_bot(page, "giấy phép")  # a list of procedures to choose from
    await expect(page.locator(".quick-reply")).not_to_have_count(0)
    panel = await page.get_by_role("dialog").bounding_box()
    assert panel == {"x": 0, "y": 0, "width": PHONE["width"], "height": PHONE["height"]}
    for name in ("Gửi câu hỏi", "Đóng cửa sổ trò chuyện", "Bắt đầu cuộc trò chuyện mới"):
        box = await page.get_by_role("button", name=name).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], name
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], name
    for item in await page.locator(".message, .quick-reply").all():
        box = await item.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    scroll_width = await page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll_width <= PHONE["width"]
    # Tapping a button on the phone works too.
    count = await bot_messages(page).count()
    await page.get_by_role("group", name="Các lựa chọn").last.locator(".quick-reply").first.tap()
    await wait_for_answer(page, count)
    await expect(bot_messages(page).filter(has_text="Mã TTHC")).to_have_count(1)
    await context.close()
