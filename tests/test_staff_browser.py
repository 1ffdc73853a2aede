"""The staff lookup in Debian's headless Chromium.

First against the app served in-process (full procedures database, a temporary tracker store
filled by the test), then against the real running stack: a message the bot cannot answer is
sent through Rasa and must show up, masked, on the unanswered-questions page.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from procedures_db.privacy import PHONE_MASK
from tests.staff_support import (
    PASSWORD,
    app_settings,
    new_staff_account,
    save_conversation,
    user,
)
from webapp.app import create_app

pytestmark = pytest.mark.browser

LICENCE_EXCHANGE = "Đổi giấy phép lái xe"


@pytest.fixture
async def settings(full_db_url, tmp_path):
    return app_settings(full_db_url, tmp_path)


@pytest.fixture
async def web_url(settings):
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def new_page(browser: Browser, origin: str) -> Page:
    context = await browser.new_context(
        permissions=["clipboard-read", "clipboard-write"], base_url=origin
    )
    return await context.new_page()


def results(page: Page):
    return page.get_by_role("listbox", name="Kết quả").get_by_role("option")


async def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    await page.goto("/staff")
    await expect(page).to_have_url(re.compile(r"/staff/login"))
    await page.get_by_label("Tên đăng nhập").fill(username)
    await page.get_by_label("Mật khẩu").fill(password)
    await page.get_by_role("button", name="Đăng nhập").click()


async def test_search_open_and_copy_summary_with_the_keyboard(browser, web_url, full_db_url):
    page = await new_page(browser, web_url)
    await sign_in(page, new_staff_account(full_db_url))
    await expect(page).to_have_url(f"{web_url}/staff")

    await page.locator("body").click()  # focus away from the box: "/" must bring it back
    await page.keyboard.press("/")
    await expect(page.locator("#q")).to_be_focused()
    await page.keyboard.type("doi gplx", delay=30)  # as you type: debounced requests
    options = results(page)
    await expect(options.first).to_contain_text(LICENCE_EXCHANGE)
    await expect(options.first.locator(".name")).to_have_text(LICENCE_EXCHANGE)
    await expect(options.first).to_contain_text("3.000347")
    await expect(options.first).to_contain_text("Trực tuyến: 5 ngày làm việc · 135.000 đồng")

    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowDown")
    await expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    await page.keyboard.press("ArrowUp")
    await expect(options.first).to_have_attribute("aria-selected", "true")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{web_url}/staff/procedures/3.000347")
    await expect(page.get_by_role("heading", level=1)).to_have_text(LICENCE_EXCHANGE)

    await page.get_by_role("button", name="Sao chép tóm tắt").click()
    await expect(page.locator("#copy-status")).to_have_text("Đã sao chép tóm tắt.")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == await page.locator("#summary-script").inner_text()
    assert copied.startswith("Thủ tục: Đổi giấy phép lái xe (mã 3.000347")
    for part in (
        "Nơi nộp:",
        "5 ngày làm việc",
        "135.000 đồng",
        "Mức độ trực tuyến: Có nộp trực tuyến",
    ):
        assert part in copied

    # Going back keeps the query, "/" from the procedure page returns to the search.
    await page.keyboard.press("/")
    await expect(page).to_have_url(f"{web_url}/staff")


async def test_filters_narrow_the_results(browser, web_url, full_db_url):
    page = await new_page(browser, web_url)
    await sign_in(page, new_staff_account(full_db_url))
    await page.locator("#q").fill("giấy phép lái xe")
    await expect(results(page).first).to_be_visible()
    await page.get_by_label("Mức độ trực tuyến").select_option("truc_tiep")
    await expect(page).to_have_url(re.compile(r"online=truc_tiep"))
    await expect(results(page).first).to_contain_text("Không nộp trực tuyến")
    labels = await page.locator("[role=option] .meta").all_inner_texts()
    assert labels and all("Không nộp trực tuyến" in label for label in labels)


async def test_wrong_password_is_rejected(browser, web_url, full_db_url):
    username = new_staff_account(full_db_url)
    page = await new_page(browser, web_url)
    await page.goto("/staff/unanswered")
    await expect(page).to_have_url(re.compile(r"/staff/login"))
    await page.get_by_label("Tên đăng nhập").fill(username)
    await page.get_by_label("Mật khẩu").fill("không phải mật khẩu")
    await page.get_by_role("button", name="Đăng nhập").click()
    await expect(page.get_by_role("alert")).to_have_text("Sai tên đăng nhập hoặc mật khẩu.")
    await expect(page).to_have_url(re.compile(r"/staff/login"))
    await expect(page.get_by_role("heading", name="Câu hỏi bot chưa trả lời được")).to_have_count(0)
    # The name stays filled in and the password box has the focus: retype, then the page
    # first asked for opens.
    await expect(page.get_by_label("Mật khẩu")).to_be_focused()
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{web_url}/staff/unanswered")


async def test_procedure_page_prints_without_controls(browser, web_url, full_db_url):
    page = await new_page(browser, web_url)
    await sign_in(page, new_staff_account(full_db_url))
    await page.goto("/staff/procedures/3.000347")
    await page.emulate_media(media="print")
    await expect(page.get_by_role("button", name="Sao chép tóm tắt")).to_be_hidden()
    await expect(page.locator("header.topbar")).to_be_hidden()
    await expect(page.locator("#summary-script")).to_be_visible()
    await expect(page.locator("#documents")).to_be_visible()


async def test_unanswered_page_from_tracker_events(browser, web_url, full_db_url, settings):
    await save_conversation(
        settings.tracker_db_url,
        "browser-test",
        [user("gọi lại cho em số 0912345678 nhé", "nlu_fallback", time.time())],
    )
    page = await new_page(browser, web_url)
    await sign_in(page, new_staff_account(full_db_url))
    await page.get_by_role("link", name="Câu hỏi bot chưa trả lời được").click()
    row = page.locator("#unanswered tbody tr").first
    await expect(row).to_contain_text(f"gọi lại cho em số {PHONE_MASK} nhé")
    await expect(row).to_contain_text("nlu_fallback")
    assert "0912345678" not in await page.content()


# ---- the real stack: Rasa writes the tracker store the page reads ------------------------------

UNANSWERABLE = [
    "zxqv blorp ktt 0987654321",
    "con mèo nhà tôi thích ăn gì 0987654321",
    "hôm nay thời tiết thế nào 0987654321",
]


async def _unanswerable_message(session: aiohttp.ClientSession, rasa_url: str, token: str) -> str:
    """The first of a few unrelated messages that the trained NLU does not map to a question."""
    for text in UNANSWERABLE:
        parse = f"{rasa_url}/model/parse?token={token}"  # Rasa's HTTP API needs its token
        async with session.post(parse, json={"text": text}) as response:
            intent = (await response.json())["intent"]["name"]
        if intent in ("nlu_fallback", "out_of_scope"):
            return text
    raise AssertionError(f"the bot classified every one of {UNANSWERABLE} as a question")


async def test_unanswered_page_lists_a_message_sent_through_the_bot(
    browser, running_stack, full_db_url
):
    sender = f"staff-browser-{uuid.uuid4().hex}"
    async with aiohttp.ClientSession() as session:
        text = await _unanswerable_message(session, running_stack.rasa_url, running_stack.token)
        webhook = f"{running_stack.rasa_url}/webhooks/rest/webhook"
        async with session.post(webhook, json={"sender": sender, "message": text}) as response:
            assert response.status == 200
            assert await response.json()  # the bot answered something (an apology)

    page = await new_page(browser, running_stack.web_url)
    await sign_in(page, new_staff_account(full_db_url))
    await page.goto("/staff/unanswered")
    conversation = hashlib.sha256(sender.encode()).hexdigest()[:8]
    row = page.locator("#unanswered tbody tr", has_text=conversation)
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(text.replace("0987654321", PHONE_MASK))
    assert "0987654321" not in await page.content()
