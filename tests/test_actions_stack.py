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
        offer = await citizen.say("lý lịch tư pháp mất bao lâu")
        buttons = offer[0]["buttons"]
        assert len(buttons) >= 2 and buttons[0]["payload"].startswith("/choose_procedure{")
        second = buttons[1]["payload"].split('"procedure_code":"')[1].split('"')[0]
        reply = await citizen.say("số 2")
        assert f"Mã TTHC: {second}" in reply[0]["text"]
        assert "Thời gian giải quyết" in reply[0]["text"]
