"""A recording aiohttp server that can fail on demand."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

DISCONNECT = 0  # a planned "status" that drops the connection instead of answering


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)


@dataclass
class PlannedAnswer:
    status: int
    body: dict[str, Any]


class FakeApi(ABC):
    """Subclasses add routes in `routes()`; every request is recorded before it is answered."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._planned: dict[str, deque[PlannedAnswer]] = {}
        self._server: TestServer | None = None

    @abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The fake API's endpoints."""

    def fail_next(self, path: str, status: int, body: dict | None = None, times: int = 1) -> None:
        """The next `times` requests to `path` get this answer instead of the normal one."""
        queue = self._planned.setdefault(path, deque())
        queue.extend(
            PlannedAnswer(status, body or {"error": "planned failure"}) for _ in range(times)
        )

    async def record(self, request: web.Request) -> tuple[Recorded, web.Response | None]:
        raw = await request.read()
        recorded = Recorded(request.path, dict(request.headers), dict(request.query))
        if request.content_type == "application/json":
            recorded.json = json.loads(raw)
        elif request.content_type == "application/x-www-form-urlencoded":
            recorded.form = dict(await request.post())
        self.requests.append(recorded)
        planned = self._planned.get(request.path)
        if planned:
            answer = planned.popleft()
            if answer.status == DISCONNECT:
                request.transport.close()  # the client sees a network error, no HTTP answer
            return recorded, web.json_response(answer.body, status=answer.status or 500)
        return recorded, None

    def to(self, path: str) -> list[Recorded]:
        return [request for request in self.requests if request.path == path]

    async def start(self) -> str:
        app = web.Application()
        app.add_routes(self.routes())
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return str(self._server.make_url("")).rstrip("/")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()
