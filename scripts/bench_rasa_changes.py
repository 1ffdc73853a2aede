"""Each change of issue 13 on its own, in one process: Rasa's code against ours, interleaved.

On a shared machine whole-stack figures drift with the neighbours' load; here the two versions
of one step run in alternating rounds (A, B, A, B, ...) on the same data, so drift hits both
alike. Per step: median milliseconds per call (per turn for the stores), Rasa's and ours; CPU
time of this process (all its threads) by default, wall time with `--clock wall`.

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
  against parsed once per change of the file;
- events: an action answer (three slot events) checked with the validator built once (the
  "validator" row's "ours") against each event checked against its own branch first;
- statements: a tracker retrieve (a two-turn conversation among 50), Rasa's `_event_query`
  against the statements built once;
- privacy: masking a turn's events before they are stored, the rules on every string against
  the shortcut for strings that cannot hold personal data;
- holds: the hand-over check of a message nobody holds (the procedures database), a query in a
  worker thread each time against the cache checked with PRAGMA data_version;
- eventclasses: a turn's events rebuilt from their stored form (Event.from_parameters, as each
  tracker load does), Rasa's walk over Event's subclasses against the kept classes.

    python scripts/bench_rasa_changes.py [--rounds 30] [--clock cpu|wall]
        [--only NAME[,NAME...]] [--json OUT]
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


# The clock of every measurement: this process's CPU time (set by --clock).
clock: Callable[[], float] = time.process_time
# Every change's name (TTHC_RASA_PATCHES), to switch one off and keep the others.
CHANGES = (
    "validator",
    "graph",
    "keepalive",
    "sqlite",
    "save",
    "events",
    "statements",
    "holds",
    "eventclasses",
)


def all_but(name: str) -> str:
    return "+".join(change for change in CHANGES if change != name)


def per_call(
    function: Callable[[], Any], repeat: int, units: int = 1
) -> Callable[[], Awaitable[float]]:
    """Seconds per unit: `function` does `units` units of work (default one call)."""

    async def measure() -> float:
        started = clock()
        for _ in range(repeat):
            result = function()
            if asyncio.iscoroutine(result):
                await result
        return (clock() - started) / (repeat * units)

    return measure


def with_and_without(name: str, call: Callable[[], Any], rounds: int) -> dict[str, float]:
    """`call` with every change but `name` against with all of them, interleaved."""

    def under(patches: str) -> Callable[[], Any]:
        def one() -> Any:
            os.environ["TTHC_RASA_PATCHES"] = patches
            return call()

        return one

    try:
        return interleaved(per_call(under(all_but(name)), 20), per_call(under("all"), 20), rounds)
    finally:
        os.environ.pop("TTHC_RASA_PATCHES", None)


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
        started = clock()
        for events in conversation_events(sender):
            tracker = await store.get_or_create_tracker(sender, append_action_listen=False)
            for event in events:
                tracker.update(event)
            await store.save(tracker)
        return (clock() - started) / 2

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
                # The save alone: the statements change has its own row.
                switched("sqlite+save", store_turns(ours, [])),
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


def bench_events(rounds: int) -> dict[str, float]:
    from rasa.core.actions.action import RemoteAction

    from bot.production import rasa_patches

    action = RemoteAction("action_answer_procedure", None)

    return with_and_without(
        "events", lambda: rasa_patches._validate_action_result(action, ACTION_RESPONSE), rounds
    )


def bench_statements(rounds: int) -> dict[str, float]:
    from rasa.shared.core.domain import Domain

    from bot.production import stores

    domain = Domain.load(str(ROOT / "domain.yml"))
    folder = Path(tempfile.mkdtemp(prefix="tthc-statements-"))
    os.environ["TTHC_RASA_PATCHES"] = "all"
    store = stores.ResilientSQLTrackerStore(
        domain=domain, dialect="sqlite", db=str(folder / "statements.sqlite3")
    )

    async def fill() -> None:
        senders: list[str] = []
        for _ in range(50):
            await store_turns(store, senders)()

    asyncio.run(fill())

    try:
        return with_and_without("statements", lambda: store.retrieve("s7"), rounds)
    finally:
        store.engine.dispose()


def bench_privacy(rounds: int) -> dict[str, float]:
    from procedures_db import privacy

    shortcut = privacy.mask_personal_data
    events = [event.as_dict() for turn in conversation_events("s") for event in turn]

    def mask(function: Callable[[str], str]) -> Callable[[], Any]:
        def two_turns() -> None:
            privacy.mask_personal_data = function  # what mask_value calls
            for event in events:
                privacy.mask_value(event)

        return two_turns

    try:
        return interleaved(
            per_call(mask(privacy._mask_all), 10, units=2),
            per_call(mask(shortcut), 10, units=2),
            rounds,
        )
    finally:
        privacy.mask_personal_data = shortcut


def bench_holds(rounds: int) -> dict[str, float]:
    from bot.channels import handover

    return with_and_without("holds", lambda: handover.held_turn("bench-nobody", "xin chào"), rounds)


def bench_eventclasses(rounds: int) -> dict[str, float]:
    from rasa.shared.core.events import Event

    from bot.production import rasa_patches

    stored = [event.as_dict() for turn in conversation_events("s") for event in turn]
    # A tracker load: the session start and three turns (Rasa rebuilds each stored event).
    stored = stored[:1] * 3 + stored + stored[:6]

    def load(resolve: Callable) -> Callable[[], None]:
        def one() -> None:
            Event.resolve_by_type = staticmethod(resolve)
            for data in stored:
                Event.from_parameters(data)

        return one

    try:
        return interleaved(
            per_call(load(rasa_patches._ORIGINAL_RESOLVE), 20),
            per_call(load(rasa_patches._resolve_by_type), 20),
            rounds,
        )
    finally:
        rasa_patches._INSTALLED = False
        rasa_patches.install()


def _wal(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


ROWS: dict[str, Callable[[int], dict[str, Any]]] = {
    "validator": bench_validator,
    "graph": bench_graph,
    "keepalive": bench_keepalive,
    "sqlite": lambda rounds: bench_stores(rounds)["sqlite"],
    "save": lambda rounds: bench_stores(rounds)["save"],
    "procedures-db": bench_procedures_db,
    "profile": bench_profile,
    "events": bench_events,
    "statements": bench_statements,
    "privacy": bench_privacy,
    "holds": bench_holds,
    "eventclasses": bench_eventclasses,
}


def main(argv: list[str] | None = None) -> int:
    global clock
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--only", help=f"rows to run, comma-separated: {', '.join(ROWS)}")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    names = args.only.split(",") if args.only else list(ROWS)
    unknown = sorted(set(names) - set(ROWS))
    if unknown:
        parser.error(f"unknown rows: {', '.join(unknown)}")
    started = Path("/proc/loadavg").read_text().split()[0]
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in results:
            continue
        if name in ("sqlite", "save"):
            stores_rows = bench_stores(args.rounds)  # both rows come from one run
            results.update({row: stores_rows[row] for row in ("sqlite", "save") if row in names})
        else:
            results[name] = ROWS[name](args.rounds)
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"clock {args.clock}; load average {started} -> {load}")
    print(f"| change ({args.clock} ms) | Rasa's ms | ours ms | saved ms |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['rasa_ms']} | {r['ours_ms']} | {r['saved_ms']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
