"""Simulated citizens for Locust: each holds multi-turn conversations through the public entrance
(nginx -> web server /api/chat -> nginx -> Rasa replicas), a fresh sender id per conversation.

Every message sent is appended to the JSON-lines file named by TTHC_LOAD_LOG so that
scripts/load_test.py can check afterwards, in the tracker store, that each got a bot reply.
Run by scripts/load_test.py (`make bench`); by hand:

    TTHC_LOAD_LOG=/tmp/sent.jsonl locust -f tests/load/locustfile.py --headless -u 100 -r 25 \\
        -t 60s --host http://127.0.0.1:8000
"""

from __future__ import annotations

import json
import os
import random
import uuid

from locust import FastHttpUser, between, task

# Typical conversations: a procedure question, follow-ups on the same procedure, small talk.
CONVERSATIONS = (
    ("xin chào", "đổi giấy phép lái xe cần giấy tờ gì", "lệ phí bao nhiêu", "nộp ở đâu", "cảm ơn"),
    ("đăng ký khai sinh cần những gì", "mất bao lâu", "có làm online được không", "cảm ơn bạn"),
    ("thủ tục cấp hộ chiếu phổ thông", "lệ phí", "tạm biệt"),
    ("chào bạn", "đăng ký thường trú", "cần giấy tờ gì", "làm ở đâu"),
    ("cấp giấy phép xây dựng nhà ở riêng lẻ mất bao lâu", "phí bao nhiêu", "ok cảm ơn"),
    ("bạn là ai", "tôi muốn đăng ký kết hôn", "hồ sơ gồm những gì"),
)
APOLOGY_PREFIX = "Xin lỗi, hệ thống"
_LOG = open(os.environ.get("TTHC_LOAD_LOG", os.devnull), "a", encoding="utf-8")  # noqa: SIM115


# Seconds between a reply and the next message ("min,max"): 1-3 s is a stress pace; citizens
# typing on a phone take 5-20 s.
THINK_S = [float(x) for x in os.environ.get("TTHC_LOAD_THINK_S", "1,3").split(",")]


class Citizen(FastHttpUser):
    wait_time = between(*THINK_S)
    network_timeout = 60.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.sender = ""
        self.pending: list[str] = []

    @task
    def send_next_message(self) -> None:
        if not self.pending:
            self.sender = f"load-{uuid.uuid4().hex[:12]}"
            self.pending = list(random.choice(CONVERSATIONS))
        message = self.pending.pop(0)
        outcome = "error"
        with self.client.post(
            "/api/chat",
            json={"sender": self.sender, "message": message},
            name="/api/chat",
            catch_response=True,
        ) as response:
            texts = []
            if response.status_code == 200:
                texts = [m.get("text", "") for m in (response.json() or {}).get("messages", [])]
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            elif not texts or not all(texts):
                response.failure("empty reply")
            elif any(text.startswith(APOLOGY_PREFIX) for text in texts):
                outcome = "apology"
                response.failure("apology")
            else:
                outcome = "ok"
        record = {"sender": self.sender, "message": message, "outcome": outcome}
        _LOG.write(json.dumps(record, ensure_ascii=False) + "\n")
        _LOG.flush()
