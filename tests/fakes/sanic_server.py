"""Serve a Sanic app on a free local port inside the test's event loop (no sanic_testing)."""

from __future__ import annotations

import itertools
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sanic import Blueprint, Sanic

_names = itertools.count()
# As sanic_testing does: in test mode Sanic's start-up code rewriting ("touchup") starts from the
# original methods each time; without it a second server in the same process fails to start.
Sanic.test_mode = True


@asynccontextmanager
async def serve_blueprint(blueprint: Blueprint, url_prefix: str) -> AsyncIterator[str]:
    """Mount `blueprint` as Rasa does (`/webhooks/<channel name>`) and yield the base URL."""
    app = Sanic(f"channel_test_{next(_names)}")
    app.blueprint(blueprint, url_prefix=url_prefix)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()
        sock.close()
