"""Stands in for Rasa's agent: `on_new_message` answering through the message's output channel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rasa.core.channels.channel import UserMessage

Reply = Callable[[str], list[dict[str, Any]]]


class FakeBot:
    def __init__(self, reply: Reply | None = None) -> None:
        self.reply: Reply = reply or (lambda text: [{"text": f"Bạn hỏi: {text}"}])
        self.received: list[UserMessage] = []
        self.fail_with: Exception | None = None
        self.gate: asyncio.Event | None = None  # when set, each turn waits for it

    @property
    def texts(self) -> list[str]:
        return [message.text for message in self.received]

    async def __call__(self, message: UserMessage) -> None:
        self.received.append(message)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        for response in self.reply(message.text):
            await message.output_channel.send_response(message.sender_id, dict(response))
