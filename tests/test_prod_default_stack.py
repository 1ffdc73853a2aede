"""The default run (`make run`'s launcher, scripts/stack.py) probed as an attacker on the same
network would: every finding of issue 11 closed, with real processes on free ports.

One stack serves the module (SQLite tracker store, the full procedures database, a token file of
its own); the last test kills the action server and Rasa and sees them come back.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import stat
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prod_support import Reply, new_sender, post_raw

from scripts.stack import DEFAULT_MODEL, Stack, ensure_rasa_api_token, free_port

pytestmark = pytest.mark.rasa

PROCEDURE_QUESTION = "đổi giấy phép lái xe cần giấy tờ gì"
# The spellings the issue found stored raw: the same ID number, and a phone number.
ID_DIGITS, PHONE_DIGITS = "001203004567", "0912345678"
PERSONAL_MESSAGES = [
    f"Số CCCD của tôi là {ID_DIGITS}",
    "CCCD 001 203 004 567",
    "001-203-004-567",
    f"CCCD{ID_DIGITS}",
    f"mã định danh {ID_DIGITS}hoặc",
    "CCCD ００１２０３００４５６７",
    "sđt 0912\u00a0345\u00a0678",
    f"gọi cho tôi {PHONE_DIGITS} nhé",
]


@dataclass
class Default:
    stack: Stack
    work: Path
    tokens: dict[str, str] = field(default_factory=dict)  # /api/chat token per sender

    @property
    def tracker_db(self) -> Path:
        return self.work / "tracker.sqlite3"

    def web_chat(self, sender: str, message: str, **headers: str) -> Reply:
        """A widget message: the conversation's token (issue 12) is kept and sent back."""
        data = {"sender": sender, "message": message}
        if sender in self.tokens:
            data["token"] = self.tokens[sender]
        reply = post_raw(
            f"{self.stack.web_url}/api/chat", json.dumps(data).encode(), headers=headers
        )
        if reply.token:
            self.tokens[sender] = reply.token
        return reply

    def webhook(self, sender: str, message: str) -> Reply:
        body = json.dumps({"sender": sender, "message": message}).encode()
        return post_raw(f"{self.stack.rasa_url}/webhooks/rest/webhook", body)

    def slots(self, sender: str) -> dict:
        url = f"{self.stack.rasa_url}/conversations/{sender}/tracker?token={self.stack.token}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())["slots"]


@pytest.fixture(scope="module")
def default(full_db_url: str, tmp_path_factory: pytest.TempPathFactory):
    if not DEFAULT_MODEL.exists():
        pytest.fail(f"no trained model at {DEFAULT_MODEL}: `make test` trains it first")
    work = tmp_path_factory.mktemp("default")
    environment = pytest.MonkeyPatch()
    environment.delenv("RASA_API_TOKEN", raising=False)  # the launcher generates one
    stack = Stack(
        rasa_port=free_port(),
        action_port=free_port(),
        web_port=free_port(),
        log_dir=work / "logs",
        token_file=work / "secrets" / "rasa_api_token",
        env={
            "PROCEDURES_DB_URL": full_db_url,
            "TRACKER_DB_URL": f"sqlite:///{work / 'tracker.sqlite3'}",
            "CHAT_RATE_LIMIT_PER_MINUTE": "0",  # many messages from one address here
        },
    )
    try:
        stack.start()
        yield Default(stack, work)
    finally:
        stack.stop()
        environment.undo()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _listening_addresses(pids: list[int]) -> list[str]:
    """host:port of every listening TCP socket the processes hold (/proc, no tools needed)."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd) if fd.is_symlink() else ""
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                address, port = local.split(":")
                found.append(f"{_decode_address(address, width)}:{int(port, 16)}")
    return found


def _decode_address(hex_address: str, width: int) -> str:
    raw = bytes.fromhex(hex_address)
    # /proc/net/tcp* print each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if width == 8:
        return ".".join(str(b) for b in words)
    return "::1" if words == bytes(15) + b"\x01" else words.hex()


def test_every_listener_is_on_loopback(default: Default) -> None:
    pids = [process.pid for process in default.stack.processes.values()]
    listeners = _listening_addresses(pids)
    ports = {default.stack.rasa_port, default.stack.action_port, default.stack.web_port}
    assert {int(address.rsplit(":", 1)[1]) for address in listeners} >= ports, listeners
    assert all(address.startswith(("127.", "::1:")) for address in listeners), listeners


def test_rasa_api_needs_the_generated_token(default: Default) -> None:
    token_file = default.stack.token_file
    assert _mode(token_file) == 0o600 and _mode(token_file.parent) == 0o700
    token = token_file.read_text().strip()
    assert len(token) >= 32 and default.stack.token == token
    assert ensure_rasa_api_token(token_file) == token  # created once, reused

    sender = new_sender()
    base = f"{default.stack.rasa_url}/conversations/{sender}"
    event = json.dumps({"event": "slot", "name": "procedure_code", "value": "1.000000"}).encode()
    for url, body in (
        (f"{base}/tracker", None),
        (f"{base}/tracker?token=wrong", None),
        (f"{base}/tracker/events", event),
        (f"{base}/tracker/events?token=wrong", event),
        (f"{base}/execute", b'{"name": "action_restart"}'),
        (f"{default.stack.rasa_url}/model/parse", b'{"text": "xin chao"}'),
    ):
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401, url
    assert "procedure_code" in default.slots(sender)  # the right token opens it


def test_foreign_origin_preflight_refused(default: Default) -> None:
    for url in (
        f"{default.stack.rasa_url}/conversations/x/tracker/events",
        f"{default.stack.rasa_url}/webhooks/rest/webhook",
        f"{default.stack.web_url}/api/chat",
    ):
        request = urllib.request.Request(
            url,
            method="OPTIONS",
            headers={
                "Origin": "http://attacker.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                headers = response.headers
        except urllib.error.HTTPError as error:
            headers = error.headers
        assert "Access-Control-Allow-Origin" not in headers, url
        assert "Access-Control-Allow-Credentials" not in headers, url


def test_oversized_and_nested_bodies_are_refused(default: Default) -> None:
    webhook = f"{default.stack.rasa_url}/webhooks/rest/webhook"
    big = json.dumps({"sender": "x", "message": "a" * 200_000}).encode()
    assert 400 <= post_raw(webhook, big).status < 500
    nested = b"[" * 5_000 + b"]" * 5_000  # 10 kB, under every size limit
    nested_field = b'{"sender": "x", "message": ' + nested + b"}"
    for body in (nested, nested_field, b"[" * 5_000):
        assert post_raw(webhook, body).status == 400
        assert post_raw(f"{default.stack.web_url}/api/chat", body).status == 400
    # The same cut as /api/chat: 2,000 characters; longer gets a polite answer, never NLU.
    long_reply = default.webhook(new_sender(), "thủ tục " * 300)
    assert long_reply.status == 200 and "quá dài" in long_reply.text
    long_chat = default.web_chat(new_sender(), "thủ tục " * 300)
    assert long_chat.status == 400 and "quá dài" in long_chat.text
    assert default.webhook(new_sender(), "xin chào").status == 200  # still serving


def _stored_strings(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT data FROM events").fetchall()

    def strings(value: object) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [s for item in value.values() for s in strings(item)]
        if isinstance(value, list):
            return [s for item in value for s in strings(item)]
        return []

    return [s for (data,) in rows for s in strings(json.loads(data))]


def _digits(text: str) -> str:
    return re.sub(r"\D", "", unicodedata.normalize("NFKC", text))


def test_personal_data_never_reaches_the_tracker_store_or_the_logs(default: Default) -> None:
    web_sender, webhook_sender = new_sender("web"), new_sender("webhook")
    for message in PERSONAL_MESSAGES:
        assert default.web_chat(web_sender, message).status == 200
        assert default.webhook(webhook_sender, message).status == 200
    # The bot still works from the original text within the turn: a procedure, then a fact.
    assert default.web_chat(web_sender, PROCEDURE_QUESTION).status == 200
    assert default.slots(web_sender)["procedure_code"]

    stored = _stored_strings(default.tracker_db)
    assert any("[số CCCD/CMND]" in text for text in stored)  # the conversation was stored
    assert any("[số điện thoại]" in text for text in stored)
    for text in stored:
        assert ID_DIGITS not in _digits(text) and PHONE_DIGITS not in _digits(text), text
    raw = b"".join(path.read_bytes() for path in default.work.glob("tracker.sqlite3*"))
    logs = b"".join(path.read_bytes() for path in default.stack.log_dir.glob("*.log"))
    for spelled in [ID_DIGITS, PHONE_DIGITS, "001 203 004 567", "001-203-004-567"]:
        assert spelled.encode() not in raw and spelled.encode() not in logs, spelled
    assert "００１２".encode() not in raw + logs and b"\\uff10\\uff10" not in raw


def test_files_under_var_are_private(default: Default) -> None:
    assert _mode(default.tracker_db) == 0o600
    assert _mode(default.stack.log_dir) == 0o700
    logs = list(default.stack.log_dir.glob("*.log"))
    assert logs and all(_mode(path) == 0o600 for path in logs)


def test_retention_job_runs_in_the_default_run(default: Default) -> None:
    assert default.stack.processes["retention"].poll() is None
    log = default.stack.log_dir / f"retention-{default.stack.rasa_port}.log"
    assert "idle for more than 180 days" in log.read_text()


def _kill(stack: Stack, name: str):
    process = stack.processes[name]
    os.kill(process.pid, signal.SIGKILL)
    return process


def test_killed_action_server_and_rasa_come_back_conversation_continues(
    default: Default,
) -> None:
    stack, sender = default.stack, new_sender()
    assert default.web_chat(sender, PROCEDURE_QUESTION).status == 200
    code = default.slots(sender)["procedure_code"]
    assert code

    for name in ("actions", "rasa"):
        old = _kill(stack, name)
        stack.wait_restarted(name, old)
        assert stack.restarts[name] >= 1
        reply = default.web_chat(sender, "lệ phí bao nhiêu")
        assert reply.status == 200 and code in reply.text, (name, reply)
        assert default.slots(sender)["procedure_code"] == code

    supervisor_log = (stack.log_dir / f"supervisor-{stack.rasa_port}.log").read_text()
    for name in ("actions", "rasa"):
        assert re.search(rf"{name} \(pid \d+\) exited with -9; restart in \d+ s", supervisor_log)
        assert re.search(rf"{name} restarted \(pid \d+\)", supervisor_log)
