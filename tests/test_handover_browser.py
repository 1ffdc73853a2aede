"""The hand-over in Debian's headless Chromium, two browser contexts on the real running stack
(action server + trained Rasa model + web server): a citizen in the widget and a staff member
in the inbox."""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import Browser, Page, expect

from procedures_db import handover
from tests.staff_support import PASSWORD, new_staff_account
from tests.test_widget_browser import ask, ask_real_bot, bot_messages, open_chat, user_messages

pytestmark = pytest.mark.browser

SLOW = 60_000  # a Rasa turn on two busy cores


async def widget_sender(page: Page) -> str:
    raw = await page.evaluate(
        """() => {
            const key = Object.keys(localStorage).find((k) => k.startsWith("tthc-chat:"));
            return localStorage.getItem(key);
        }"""
    )
    return json.loads(raw)["sender"]


async def staff_inbox(browser: Browser, web_url: str, username: str) -> Page:
    context = await browser.new_context(base_url=web_url)
    page = await context.new_page()
    await page.goto("/staff/inbox")
    await page.get_by_label("Tên đăng nhập").fill(username)
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await expect(page.get_by_role("heading", name="Hộp thư cán bộ")).to_be_visible()
    return page


async def test_citizen_asks_for_a_person_staff_answer_then_hand_back(
    browser: Browser, running_stack, full_db_url
):
    staff = await staff_inbox(browser, running_stack.web_url, new_staff_account(full_db_url))
    citizen_context = await browser.new_context()
    citizen = await citizen_context.new_page()
    await citizen.goto(running_stack.web_url + "/")
    await open_chat(citizen)

    await ask_real_bot(citizen, "đổi bằng lái mất bao lâu")
    first_answer = await bot_messages(citizen).filter(has_text="Mã TTHC").last.inner_text()
    code = re.search(r"\d{1,2}\.\d{6}", first_answer)[0]
    await ask_real_bot(citizen, "cho tôi gặp cán bộ")
    await expect(bot_messages(citizen).last).to_contain_text("chuyển cuộc trò chuyện tới cán bộ")
    sender = await widget_sender(citizen)

    # The staff page, open all along, shows the conversation without a reload.
    entry = staff.locator(f'#handover-list button[data-sender="{sender}"]')
    await expect(entry).to_contain_text("Đang chờ", timeout=SLOW)
    await entry.click()
    await expect(staff.locator("#conversation-messages")).to_contain_text("cho tôi gặp cán bộ")
    await staff.get_by_role("button", name="Nhận cuộc trò chuyện").click()
    await staff.get_by_label("Trả lời người dân").fill("Chào bạn, tôi là cán bộ tổng đài.")
    await staff.get_by_role("button", name="Gửi trả lời").click()

    reply = citizen.locator(".message.staff")
    await expect(reply).to_contain_text("Cán bộ: Chào bạn, tôi là cán bộ tổng đài.", timeout=SLOW)
    await expect(bot_messages(citizen).last).to_have_text(
        re.compile(re.escape(handover.CLAIMED_NOTICE))
    )
    bot_count = await bot_messages(citizen).count()

    # Held: the next message goes to the inbox and the bot does not answer it.
    await ask(citizen, "tôi đã nộp hồ sơ hôm qua, bao giờ có kết quả?")
    await expect(user_messages(citizen).last.locator(".message-status")).to_have_text("")
    await expect(staff.locator("#conversation-messages li.citizen").last).to_contain_text(
        "tôi đã nộp hồ sơ hôm qua", timeout=SLOW
    )
    await expect(citizen.locator(".typing")).to_be_hidden()
    await expect(bot_messages(citizen)).to_have_count(bot_count)

    # Handed back: the bot answers again, about the procedure of the conversation.
    await staff.get_by_role("button", name="Chuyển lại cho trợ lý ảo").click()
    await expect(bot_messages(citizen).last).to_contain_text(
        "chuyển cuộc trò chuyện lại cho trợ lý ảo", timeout=SLOW
    )
    await ask_real_bot(citizen, "lệ phí bao nhiêu")
    await expect(bot_messages(citizen).last).to_contain_text(code, timeout=SLOW)
    await expect(entry).to_have_count(0)
    # A link such as the unanswered page's opens the conversation directly.
    await staff.goto(f"/staff/inbox?sender={sender}")
    await expect(staff.locator("#conversation-state")).to_contain_text("chuyển lại cho trợ lý ảo")
    await expect(staff.get_by_role("button", name="Nhận cuộc trò chuyện")).to_be_visible()
