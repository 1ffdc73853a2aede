"""Each change of issue 13 on its own, in one process: Rasa's code against ours, interleaved.

On a shared machine whole-stack figures drift with the neighbours' load; here the two versions
of one step run in alternating rounds (A, B, A, B, ...) on the same data, so drift hits both
alike. Per step: median wall milliseconds per call (per turn for the stores), Rasa's and ours.

- validator: checking an action server answer (RemoteAction._validate_action_result);
- graph: a message's NLU and two predictions of the next action on the trained model, dask's
  scheduler against the sequential runner;
- keepalive: one request to an action-server-like endpoint (EndpointConfig.request), new
  session per call (Rasa) against the kept session;
- sqlite: a two-turn conversation through the tracker store (create, retrieve, save, twice), on
  SQLAlchemy 1.4's default SQLite engine (a new connection per session, pre-ping, rollback
  journal) against ours (one kept connection, write-ahead log);
- save: the same turns, Rasa's save (count query, masked events rebuilt, ORM inserts) against
  ours (count from the retrieve, one masking, one insert statement), both on our engine;
- procedures-db: the hand-over check each message makes (procedures database), new SQLite
  connection per call against a kept one;
- profile: the province profile the action server reads for every answer, parsed each time
  against parsed once per change of the file.

    python scripts/bench_rasa_changes.py [--rounds 30] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def interleaved(
    a: Callable[[], Awaitable[float]],
    b: Callable[[], Awaitable[float]],
    rounds: int,
    cleanup: Callable[[], Awaitable[Any]] | None = None,
) -> dict[str, float]:
    """Median of per-round means (ms), A and B alternating; each call returns seconds/unit."""

    async def run() -> tuple[list[float], list[float]]:
        first, second = [], []
        await a()  # warm up both
        await b()
        for _ in range(rounds):
            first.append(await a())
            second.append(await b())
        if cleanup is not None:
            await cleanup()
        return first, second

    first, second = asyncio.run(run())
    rasa, ours = 1000 * statistics.median(first), 1000 * statistics.median(second)
    return {"rasa_ms": round(rasa, 3), "ours_ms": round(ours, 3), "saved_ms": round(rasa - ours, 3)}


def per_call(function: Callable[[], Any], repeat: int) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        started = time.perf_counter()
        for _ in range(repeat):
            result = function()
            if asyncio.iscoroutine(result):
                await result
        return (time.perf_counter() - started) / repeat

    return measure


ACTION_RESPONSE = {
    "events": [
        {"event": "slot", "timestamp": None, "name": "procedure_code", "value": "1.001193"},
        {"event": "slot", "timestamp": None, "name": "last_facts", "value": ["fee"]},
        {"event": "slot", "timestamp": None, "name": "fallback_count", "value": 0.0},
    ],
    "responses": [
        {
            "text": "Thủ tục cấp đổi giấy phép lái xe: lệ phí 135.000 đồng. " * 4,
            "buttons": [{"title": "Giấy tờ cần nộp", "payload": "/ask_documents"}],
        }
    ],
}


def bench_validator(rounds: int) -> dict[str, float]:
    from rasa.core.actions.action import RemoteAction

    from bot.production import rasa_patches

    action = RemoteAction("action_answer_procedure", None)
    original = rasa_patches._ORIGINAL_VALIDATE
    return interleaved(
        per_call(lambda: original(action, ACTION_RESPONSE), 20),
        per_call(lambda: rasa_patches._validate_action_result(action, ACTION_RESPONSE), 20),
        rounds,
    )


def bench_keepalive(rounds: int) -> dict[str, float]:
    """Against a small aiohttp server in another process (as the action server is)."""
    import subprocess

    from rasa.utils.endpoints import EndpointConfig

    from bot.production import rasa_patches
    from scripts.stack import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(port=port, body=json.dumps(ACTION_RESPONSE))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        fresh = EndpointConfig(url=f"http://127.0.0.1:{port}/webhook")
        kept = EndpointConfig(url=f"http://127.0.0.1:{port}/webhook")
        body = {"next_action": "x", "tracker": {"events": [{"event": "action"}] * 40}}

        def with_rasa_session() -> Any:
            fresh.session = lambda: rasa_patches._ORIGINAL_SESSION(fresh)
            return fresh.request(json=body, method="post")

        def with_kept_session() -> Any:
            kept.session = lambda: rasa_patches._session(kept)
            return kept.request(json=body, method="post")

        return interleaved(per_call(with_rasa_session, 10), per_call(with_kept_session, 10), rounds)
    finally:
        server.terminate()
        server.wait()


SERVER = """
from aiohttp import web
body = {body!r}
async def webhook(request):
    await request.json()
    return web.Response(text=body, content_type="application/json")
async def health(request):
    return web.Response(text="ok")
app = web.Application()
app.add_routes([web.post("/webhook", webhook), web.get("/health", health)])
web.run_app(app, host="127.0.0.1", port={port}, print=None)
"""


def conversation_events(sender: str) -> list[list[Any]]:
    """The events two turns add (as in a real conversation, personal data included)."""
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

    def turn(text: str, intent: str, answer: str) -> list[Any]:
        parse = {
            "intent": {"name": intent, "confidence": 0.97},
            "entities": [],
            "text": text,
            "intent_ranking": [{"name": intent, "confidence": 0.97}] * 10,
        }
        return [
            UserUttered(text, parse["intent"], [], parse, input_channel="rest"),
            ActionExecuted("action_answer_procedure", policy="RulePolicy", confidence=1.0),
            BotUttered(answer, {"buttons": [{"title": "Phí", "payload": "/ask_fee"}]}),
            SlotSet("procedure_code", "1.001193"),
            SlotSet("last_facts", ["fee"]),
            ActionExecuted("action_listen", policy="RulePolicy", confidence=1.0),
        ]

    return [
        turn("đổi bằng lái xe cần gì, sđt tôi 0912345678", "ask_documents", "Cần: ... " * 30),
        turn("còn lệ phí thì sao?", "ask_fee", "Lệ phí 135.000 đồng. " * 10),
    ]


def store_turns(store: Any, senders: list[str]) -> Callable[[], Awaitable[float]]:
    """Per turn: retrieve (or create), add the turn's events, save; two turns per sender."""

    async def measure() -> float:
        sender = f"s{len(senders)}"
        senders.append(sender)
        started = time.perf_counter()
        for events in conversation_events(sender):
            tracker = await store.get_or_create_tracker(sender, append_action_listen=False)
            for event in events:
                tracker.update(event)
            await store.save(tracker)
        return (time.perf_counter() - started) / 2

    return measure


def bench_stores(rounds: int) -> dict[str, dict[str, float]]:
    from rasa.shared.core.domain import Domain

    from bot.production import stores

    domain = Domain.load(str(ROOT / "domain.yml"))
    folder = Path(tempfile.mkdtemp(prefix="tthc-stores-"))

    def store(name: str, patches: str) -> Any:
        os.environ["TTHC_RASA_PATCHES"] = patches
        return stores.ResilientSQLTrackerStore(
            domain=domain, dialect="sqlite", db=str(folder / f"{name}.sqlite3")
        )

    def switched(patches: str, measure: Callable[[], Awaitable[float]]):
        async def run() -> float:
            os.environ["TTHC_RASA_PATCHES"] = patches
            return await measure()

        return run

    rasa_engine = store("rasa", "validator+keepalive")
    our_engine_rasa_save = store("engine", "validator+keepalive+sqlite")
    ours = store("ours", "all")
    try:
        return {
            "sqlite": interleaved(
                switched("none", store_turns(rasa_engine, [])),
                switched("sqlite", store_turns(our_engine_rasa_save, [])),
                rounds,
            ),
            "save": interleaved(
                switched("sqlite", store_turns(our_engine_rasa_save, [])),
                switched("all", store_turns(ours, [])),
                rounds,
            ),
        }
    finally:
        os.environ.pop("TTHC_RASA_PATCHES", None)


def bench_procedures_db(rounds: int) -> dict[str, float]:
    from datetime import datetime

    import sqlalchemy as sa

    from procedures_db import handover
    from procedures_db.settings import get_settings

    url = get_settings().database_url
    fresh = sa.create_engine(url, future=True)
    kept = sa.create_engine(
        url,
        future=True,
        poolclass=sa.pool.QueuePool,
        connect_args={"check_same_thread": False},
    )
    for engine in (fresh, kept):
        sa.event.listen(engine, "connect", _wal)

    def check(engine: Any) -> Callable[[], Any]:
        return lambda: handover.record_citizen_message(
            "bench-nobody", "xin chào", now=datetime.utcnow(), engine=engine
        )

    return interleaved(per_call(check(fresh), 20), per_call(check(kept), 20), rounds)


def bench_graph(rounds: int) -> dict[str, float]:
    """NLU and two predictions of the next action (a message's three graph runs)."""
    from rasa.core.agent import Agent
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.production import rasa_patches
    from scripts.stack import DEFAULT_MODEL

    agent = Agent.load(str(DEFAULT_MODEL))
    quiet()  # as a Rasa server runs: no debug lines (loading the model turned them on)

    def message(run: Callable) -> Callable[[], Any]:
        async def one() -> None:
            DaskGraphRunner.run = run
            parse = await agent.parse_message("đổi bằng lái xe cần giấy tờ gì")
            tracker = DialogueStateTracker.from_events("t", [ActionExecuted("action_listen")])
            tracker.update(UserUttered(parse["text"], parse["intent"], [], parse))
            agent.processor.predict_next_with_tracker(tracker)
            tracker.update(ActionExecuted("action_answer_procedure"))
            agent.processor.predict_next_with_tracker(tracker)

        return one

    try:
        return interleaved(
            per_call(message(rasa_patches._ORIGINAL_RUN), 10),
            per_call(message(rasa_patches._run), 10),
            rounds,
        )
    finally:
        DaskGraphRunner.run = rasa_patches._ORIGINAL_RUN


def quiet() -> None:
    import logging

    from rasa.utils.log_utils import configure_structlog

    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("rasa").setLevel(logging.WARNING)
    configure_structlog(logging.WARNING)


def bench_profile(rounds: int) -> dict[str, float]:
    from procedures_db import profile
    from procedures_db.settings import get_settings

    path = get_settings().province_profile
    return interleaved(
        per_call(lambda: path.exists() and profile._read_profile(path), 20),
        per_call(lambda: profile.load_profile(path), 20),
        rounds,
    )


def _wal(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = {
        "validator": bench_validator(args.rounds),
        "graph": bench_graph(args.rounds),
        "keepalive": bench_keepalive(args.rounds),
        **bench_stores(args.rounds),
        "procedures-db": bench_procedures_db(args.rounds),
        "profile": bench_profile(args.rounds),
    }
    print(f"load average {Path('/proc/loadavg').read_text().split()[0]}")
    print("| change | Rasa's ms | ours ms | saved ms |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['rasa_ms']} | {r['ours_ms']} | {r['saved_ms']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
