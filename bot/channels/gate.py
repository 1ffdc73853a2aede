"""How many turns one Rasa process works on at once, shared by every channel of the process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from functools import lru_cache
from typing import Any

from procedures_db.settings import get_settings


class TurnGate:
    """At most `slots` turns at once, the others admitted in arrival order (0: no limit).

    With many citizens at once, asyncio shares the process among every started turn, so each
    turn's latency grows with the whole crowd; admitted in order, a turn waits its place in the
    queue and then runs among a few.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._loop: asyncio.AbstractEventLoop | None = None
        self._held: asyncio.Semaphore | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        # A semaphore belongs to one loop; tests and restarts run several one after another.
        loop = asyncio.get_running_loop()
        if self._held is None or self._loop is not loop:
            self._loop, self._held = loop, asyncio.Semaphore(self.slots)
        return self._held

    async def run(self, turn: Awaitable[Any]) -> Any:
        if self.slots <= 0:
            return await turn
        async with self._semaphore():
            return await turn


@lru_cache(maxsize=1)
def process_gate() -> TurnGate:
    """The gate of this process (`CONCURRENT_TURNS`): the web chat, Zalo and Messenger share it."""
    return TurnGate(get_settings().concurrent_turns)
