"""Helpers of the production-profile tests: a TCP proxy that can cut a service, a chat client, and
a look into the PostgreSQL tracker store."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from hypothesis import strategies as st

from scripts.load_test import tracker_turns
from scripts.prod import ensure_postgres_database
from scripts.stack import free_port


class TcpProxy:
    """127.0.0.1:<port> forwarded to a real service. `cut()` closes the listener and every open
    connection (clients get "connection refused", like a stopped server); `restore()` listens
    again. Lets a test take PostgreSQL or Redis away from the app without stopping the machine's
    shared servers."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._connections |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@dataclass
class Reply:
    status: int
    texts: list[str]
    seconds: float
    token: str | None = None  # /api/chat's per-conversation token, on a first message

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


def chat(base_url: str, sender: str, message: str, timeout: float = 60) -> Reply:
    """One message through Rasa's REST webhook (via nginx when base_url is nginx)."""
    body = json.dumps({"sender": sender, "message": message}).encode()
    return post_raw(f"{base_url}/webhooks/rest/webhook", body, timeout=timeout)


def post_raw(url: str, body: bytes, timeout: float = 60, headers: dict | None = None) -> Reply:
    """POST to a Rasa webhook (a list of messages) or /api/chat ({"messages": [...]})."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, body, headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read() or b"[]")
            status = response.status
    except urllib.error.HTTPError as error:
        return Reply(
            error.code, [error.read().decode(errors="replace")], time.monotonic() - started
        )
    token = None
    if isinstance(payload, dict):
        token = payload.get("token")
        payload = payload.get("messages", [])
    texts = [m.get("text", "") for m in payload if isinstance(m, dict)]
    return Reply(status, texts, time.monotonic() - started, token)


def new_sender(prefix: str = "citizen") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class ThrowawayDatabase:
    """A PostgreSQL database on the machine's server, created for one test module and dropped."""

    def __init__(self, port: int = 5432) -> None:
        self.name = f"tthc_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.port = port

    def url(self, port: int | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{self.name}"

    def create(self) -> ThrowawayDatabase:
        ensure_postgres_database(self.url())
        return self

    def drop(self) -> None:
        admin = sa.create_engine(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        admin.dispose()

    def turns(self, sender: str) -> list[tuple[str, str]]:
        """(type_name, text) of the user and bot events of one conversation, in order."""
        return tracker_turns(self.url(), [sender]).get(sender, [])


# Hostile bodies for chat webhooks: bytes, any JSON, JSON objects with hostile fields.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
chat_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"sender": json_values, "message": json_values},
        optional={"input_channel": json_values, "metadata": json_values},
    ).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "sender": st.text(min_size=1, max_size=140),
            "message": st.text(max_size=3000),
        }
    ).map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
)
