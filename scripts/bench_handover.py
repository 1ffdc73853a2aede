"""Latency from a staff reply (POST /staff/api/handovers/{sender}/messages) to its appearance in
the real chat widget, in Debian's headless Chromium.

The web app runs in this process on a temporary SQLite database (schema only); no Rasa is
needed: the widget's first message gets the conversation token (and the apology, Rasa being
absent), the conversation is handed over and claimed, then staff replies are posted at random
moments (so they fall anywhere in the widget's polling cycle) and a MutationObserver in the page
notes when each one is on screen. Both clocks are the machine's wall clock.

    .venv/bin/python scripts/bench_handover.py [--replies 40]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from procedures_db import handover
from procedures_db.db import create_schema, get_engine
from procedures_db.settings import load_settings
from scripts.stack import free_port
from webapp.app import create_app
from webapp.auth import create_account

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "mật khẩu đo độ trễ 2026"
WATCH = """() => {
  window.__arrivals = {};
  const host = document.querySelector("tthc-chat-widget").shadowRoot;
  new MutationObserver(() => {
    for (const node of host.querySelectorAll(".message.staff .text")) {
      const text = node.textContent;
      if (!(text in window.__arrivals)) window.__arrivals[text] = Date.now();
    }
  }).observe(host, { childList: true, subtree: true });
}"""


async def staff_session(base: str, username: str) -> tuple[aiohttp.ClientSession, str]:
    # unsafe=True: the jar otherwise ignores cookies from an IP address such as 127.0.0.1
    session = aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True))
    form = await (await session.get("/staff/login")).text()
    csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
    data = {"username": username, "password": PASSWORD, "csrf_token": csrf, "next": "/staff"}
    async with session.post("/staff/login", data=data, allow_redirects=False) as answer:
        assert answer.status == 303, answer.status
    token = (await (await session.get("/staff/api/session")).json())["csrf_token"]
    return session, token


async def run(replies: int) -> list[float]:
    from playwright.async_api import async_playwright

    folder = Path(tempfile.mkdtemp(prefix="bench_handover_"))
    url = f"sqlite:///{folder / 'procedures.sqlite3'}"
    engine = get_engine(url)
    create_schema(engine)
    username = create_account("bench.staff", PASSWORD, engine=engine)
    settings = dataclasses.replace(
        load_settings(),
        database_url=url,
        tracker_db_url=f"sqlite:///{folder / 'tracker.sqlite3'}",
        rasa_url=f"http://127.0.0.1:{free_port()}",  # nobody listens: the apology answers
    )
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        await page.goto(base + "/")
        await page.get_by_role("button", name="Mở Trợ lý thủ tục hành chính").click()
        box = page.get_by_role("textbox", name="Nhập câu hỏi của bạn")
        await box.fill("cho tôi gặp cán bộ")
        await box.press("Enter")
        await page.locator(".message.bot").nth(1).wait_for()
        state = await page.evaluate(
            "() => localStorage.getItem(Object.keys(localStorage).find("
            "(k) => k.startsWith('tthc-chat:')))"
        )
        sender = json.loads(state)["sender"]
        handover.request_handover(
            sender,
            "widget",
            procedure_code=None,
            offer_callback=False,
            now=datetime.utcnow(),
            engine=engine,
        )
        session, csrf = await staff_session(base, username)
        headers = {"X-CSRF-Token": csrf}
        async with session.post(f"/staff/api/handovers/{sender}/claim", headers=headers) as answer:
            assert answer.status == 200, answer.status
        await page.evaluate(WATCH)
        await page.locator(".message.bot", has_text=handover.CLAIMED_NOTICE).wait_for()
        for number in range(replies):
            await asyncio.sleep(random.uniform(0.2, 1.8))
            text = f"Trả lời số {number}"
            sent_ms = time.time() * 1000
            async with session.post(
                f"/staff/api/handovers/{sender}/messages", json={"text": text}, headers=headers
            ) as answer:
                assert answer.status == 201, answer.status
            await page.locator(".message.staff", has_text=text).wait_for(timeout=30_000)
            arrived = await page.evaluate("(text) => window.__arrivals[text]", text)
            latencies.append((arrived - sent_ms) / 1000)
        await session.close()
        await browser.close()
    await runner.cleanup()
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=40)
    args = parser.parse_args(argv)
    latencies = sorted(asyncio.run(run(args.replies)))
    p95 = latencies[min(len(latencies) - 1, round(0.95 * len(latencies)) - 1)]
    median = statistics.median(latencies)
    print(
        f"staff reply -> widget, {len(latencies)} replies: p50 {median:.2f} s,"
        f" p95 {p95:.2f} s, max {latencies[-1]:.2f} s (target p95 <= 2 s)"
    )
    return 0 if p95 <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
