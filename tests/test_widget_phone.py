"""The widget on a 360 × 740 phone in Debian's headless Chromium: the real answers of the 30
procedures citizens ask most (tests/data/top_procedures.yml) each fit one screen, long answers
are shown from their top, the latest message after a reload, a counter near the length limit,
suggested questions on an empty chat."""

from __future__ import annotations

import asyncio

import pytest
import yaml
from playwright.async_api import Page, expect

from procedures_db.settings import PROJECT_ROOT
from tests.test_actions import Chat
from tests.test_widget_browser import (  # noqa: F401 (fixtures, used as parameters)
    FakeRasa,
    ask,
    bot_messages,
    fake_rasa,
    open_chat,
    user_messages,
    web_server,
)
from webapp import portal

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}
TOP = yaml.safe_load((PROJECT_ROOT / "tests/data/top_procedures.yml").read_text("utf-8"))
# One question per question intent, the way the bot's NLU would route it.
QUESTIONS = {
    "ask_procedure_info": "thủ tục {name}",
    "ask_online_level": "{name} có làm online được không",
    "ask_processing_time": "{name} mất bao lâu",
    "ask_submission_place": "{name} nộp ở đâu",
    "ask_fee": "{name} lệ phí bao nhiêu",
    "ask_documents": "{name} cần giấy tờ gì",
    "ask_steps": "các bước {name}",
    "ask_requirements": "điều kiện {name}",
}


async def phone_page(browser, url: str) -> Page:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await page.goto(url)
    await open_chat(page)
    return page


async def bubble_fits(page: Page, index: int) -> tuple[bool, float, float]:
    """(bubble top visible and whole bubble no taller than the view, its height, the view's)."""
    return (
        await page.locator(".message.bot")
        .nth(index)
        .evaluate(
            """(bubble) => {
            const scroller = bubble.closest('.scroller');
            const view = scroller.getBoundingClientRect();
            const box = bubble.getBoundingClientRect();
            return [box.top >= view.top - 1 && box.height <= view.height, box.height, view.height];
        }"""
        )
    )


async def answers_of_the_top_procedures() -> dict[str, list[dict]]:
    """The bot's real first reply (custom action, full database) to each question: its messages
    as Rasa sends them (the answer, then close alternatives when it offers them)."""
    replies = {}
    for item in TOP["procedures"]:
        for intent, template in QUESTIONS.items():
            question = template.format(name=item["name"].lower())
            chat = Chat()
            await chat.say(question, intent, procedure_code=item["code"])
            replies[question] = [
                {"text": m.get("text") or "", "buttons": m.get("buttons") or []}
                for m in chat.messages
            ]
    return replies


def test_the_list_has_thirty_procedures() -> None:
    codes = [item["code"] for item in TOP["procedures"]]
    assert len(codes) == len(set(codes)) == 30


async def test_every_first_reply_of_the_top_procedures_fits_one_screen(
    browser,
    web_server,  # noqa: F811
    fake_rasa: FakeRasa,  # noqa: F811
    use_full_db: str,
) -> None:
    replies = await answers_of_the_top_procedures()
    fake_rasa.answer = lambda message: replies[message]
    page = await phone_page(browser, web_server.url)
    too_tall = []
    for question, messages in replies.items():
        count = await bot_messages(page).count()
        await ask(page, question)
        await expect(bot_messages(page)).to_have_count(count + len(messages))
        for k in range(len(messages)):  # each bubble, the answer first
            fits, height, view = await bubble_fits(page, count + k)
            if not fits:
                too_tall.append((question, k, round(height), round(view)))
        text = messages[0]["text"]
        if "cần giấy tờ gì" in question and "Thành phần hồ sơ:\n" in text:
            first = text.split("Thành phần hồ sơ:\n", 1)[1].splitlines()[0]
            assert first.startswith(("1. ", "Tùy trường hợp")), (question, first)
    assert not too_tall, f"{len(too_tall)} replies taller than the screen: {too_tall}"


async def test_an_answer_with_alternatives_is_shown_from_the_answer(
    browser,
    web_server,  # noqa: F811
    fake_rasa,  # noqa: F811
) -> None:
    answer = "Thủ tục: Thử (Mã TTHC: 9.999999)\n" + "\n".join(f"dòng {i}" for i in range(24))
    button = {"title": "Thủ tục khác", "payload": "/choose"}
    others = {"text": "Hay bạn hỏi về thủ tục khác:", "buttons": [button]}
    fake_rasa.answer = lambda _message: [{"text": answer}, others]
    page = await phone_page(browser, web_server.url)
    count = await bot_messages(page).count()
    await ask(page, "câu hỏi")
    await expect(bot_messages(page)).to_have_count(count + 2)
    fits, height, view = await bubble_fits(page, count)
    alternatives = await bot_messages(page).nth(count + 1).evaluate("(b) => b.offsetHeight")
    assert height < view < height + alternatives  # the answer fits, not with the alternatives
    assert fits, (height, view)  # the answer's first line is in view, not only the buttons


async def test_a_long_answer_is_shown_from_its_top(
    browser,
    web_server,  # noqa: F811
    fake_rasa,  # noqa: F811
) -> None:
    long_text = "Thủ tục: Thử (Mã TTHC: 9.999999)\n" + "\n".join(f"dòng {i}" for i in range(80))
    fake_rasa.answer = lambda _message: [{"text": long_text}]
    page = await phone_page(browser, web_server.url)
    await ask(page, "câu hỏi dài")
    await expect(bot_messages(page).last).to_contain_text("dòng 79")
    top = await bot_messages(page).last.evaluate(
        "(b) => b.getBoundingClientRect().top - b.closest('.scroller').getBoundingClientRect().top"
    )
    assert 0 <= top < 40  # the answer's first line, not its end, is in view
    await page.reload()
    await expect(bot_messages(page).last).to_be_in_viewport()  # after a reload: the latest


async def test_counter_near_the_limit_instead_of_cutting(
    browser,
    web_server,  # noqa: F811
    fake_rasa,  # noqa: F811
) -> None:
    page = await phone_page(browser, web_server.url)
    box = page.get_by_role("textbox", name="Nhập câu hỏi của bạn")
    counter = page.locator("#tthc-chat-counter")
    await box.fill("a" * 100)
    await expect(counter).to_be_hidden()
    await box.fill("a" * 1900)
    await expect(counter).to_have_text(f"1900/{portal.MAX_MESSAGE_CHARS} ký tự")
    await box.fill("a" * (portal.MAX_MESSAGE_CHARS + 5))
    await expect(counter).to_contain_text("vui lòng rút gọn 5 ký tự")
    await box.press("Enter")
    assert await box.input_value() == "a" * (portal.MAX_MESSAGE_CHARS + 5)  # nothing cut
    assert fake_rasa.received == []
    await box.fill("ngắn thôi")
    await box.press("Enter")
    await expect(user_messages(page).last).to_contain_text("ngắn thôi")
    await expect(counter).to_be_hidden()


async def test_suggested_questions_on_an_empty_chat(
    browser,
    web_server,  # noqa: F811
    fake_rasa,  # noqa: F811
) -> None:
    page = await phone_page(browser, web_server.url)
    suggestions = page.get_by_role("group", name="Các lựa chọn").first.get_by_role("button")
    await expect(suggestions).to_have_count(4)
    first = (await suggestions.first.inner_text()).strip()
    await suggestions.first.tap()
    await expect(user_messages(page).last).to_contain_text(first)
    # The widget shows the message before its request reaches Rasa: wait for the request.
    for _ in range(200):
        if fake_rasa.received:
            break
        await asyncio.sleep(0.05)
    assert fake_rasa.received[-1]["message"] == first
