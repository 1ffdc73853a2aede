"""Whole conversations through the running stack (NLU, policies, action server, database)."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

pytestmark = pytest.mark.rasa


class Citizen:
    def __init__(self, rasa_url: str, http: aiohttp.ClientSession) -> None:
        self.url = f"{rasa_url}/webhooks/rest/webhook"
        self.http = http
        self.sender = f"test-{uuid.uuid4().hex}"

    async def say(self, text: str) -> list[dict]:
        body = {"sender": self.sender, "message": text}
        async with self.http.post(self.url, json=body) as response:
            assert response.status == 200
            return await response.json()


async def test_follow_up_and_switch(running_stack) -> None:
    async with aiohttp.ClientSession() as http:
        citizen = Citizen(running_stack.rasa_url, http)
        first = await citizen.say("đổi giấy phép lái xe mất bao lâu?")
        assert "Mã TTHC: 3.000347" in first[0]["text"]
        assert "5 ngày làm việc" in first[0]["text"]
        fee = await citizen.say("còn lệ phí thì sao?")
        assert "Mã TTHC: 3.000347" in fee[0]["text"] and "135.000" in fee[0]["text"]
        other = await citizen.say("thế còn đăng ký kết hôn cần giấy tờ gì")
        assert "Mã TTHC: 1.000894" in other[0]["text"]


async def test_disambiguation_then_typed_number(running_stack) -> None:
    async with aiohttp.ClientSession() as http:
        citizen = Citizen(running_stack.rasa_url, http)
        offer = await citizen.say("giấy phép mất bao lâu")  # many procedures: the bot asks
        buttons = offer[0]["buttons"]
        assert len(buttons) >= 2 and buttons[0]["payload"].startswith("/choose_procedure{")
        second = buttons[1]["payload"].split('"procedure_code":"')[1].split('"')[0]
        reply = await citizen.say("số 2")
        assert f"Mã TTHC: {second}" in reply[0]["text"]
        assert "Thời gian giải quyết" in reply[0]["text"]


def named_codes(replies: list[dict]) -> set[str]:
    """Codes the bot answered ("Mã TTHC") or offered (list and buttons)."""
    import re

    found = set()
    for reply in replies:
        found.update(re.findall(r"\d{1,2}\.\d{6}", reply.get("text") or ""))
        for button in reply.get("buttons") or []:
            found.update(re.findall(r"\d{1,2}\.\d{6}", button.get("payload") or ""))
    return found


async def test_a_new_procedure_named_briefly_switches(running_stack) -> None:
    """Issue 9's conversations: the new procedure, never the previous one."""
    birth, card = "1.001193", {"1.014061", "2.000200", "1.001247", "1.014062"}
    licence, land = "3.000347", {"1.012783", "1.012786", "1.013978", "1.012753", "1.013831"}
    async with aiohttp.ClientSession() as http:
        citizen = Citizen(running_stack.rasa_url, http)
        assert (
            f"Mã TTHC: {birth}"
            in (await citizen.say("dang ky khai sinh can giay to gi"))[0]["text"]
        )
        reply = await citizen.say("lam cccd o dau")
        assert f"Mã TTHC: {birth}" not in reply[0]["text"] and named_codes(reply) & card
        other = Citizen(running_stack.rasa_url, http)
        assert f"Mã TTHC: {licence}" in (await other.say("doi gplx"))[0]["text"]
        reply = await other.say("sổ đỏ thì sao")
        assert f"Mã TTHC: {licence}" not in reply[0]["text"] and named_codes(reply) & land


async def test_a_story_reaches_the_resolver(running_stack) -> None:
    async with aiohttp.ClientSession() as http:
        citizen = Citizen(running_stack.rasa_url, http)
        reply = await citizen.say("mất ví, mất luôn bằng lái, giờ làm lại có phải thi không?")
        assert "3.000348" in named_codes(reply)
