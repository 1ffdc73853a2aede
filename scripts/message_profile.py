"""Where the milliseconds of one message go: Rasa and the action server with timing wrappers.

Starts a stack whose Rasa and action server run under this module (`--serve`), which wraps the
steps of a turn with wall-clock timers before handing over to the usual log masker
(bot/production/logmask.py). Every message then writes one line of step timings; the driver
sends conversations one at a time (a question, then a follow-up: no load, so wall time is
mostly CPU time) and prints per-step medians and means, the client's latency and the CPU time
each process used per message.

    python scripts/message_profile.py [--profile default|prod|both] [--conversations 40]
        [--json OUT]

- default: the embedded default (SQLite tracker store, in-memory lock store), the REST channel
  directly;
- prod: the production profile (PostgreSQL tracker store and procedures database, Redis lock
  store, one Rasa replica behind nginx), through nginx; the same messages also directly to the
  replica, to price nginx.

Steps (Rasa): limiter, handover (the hand-over store is asked whether staff hold the
conversation), lock (lock store around the turn), tracker_load, tracker_create (a new
conversation's first save), session (session start), nlu, extract_slots, policies (each
prediction of the next action), action_format (the action server's request body: tracker and
domain), action_http (the request to the action server, its answer included), run_action_rest
(the rest of running actions: responses, events on the tracker), tracker_save, other (the rest
of the turn). Action server: server (request in to response out, in the handler), action (the
action itself). rest_in_out: the client's latency less the channel's handler (HTTP, Sanic,
reply JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import functools
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROFILE_DIR_ENV = "TTHC_PROFILE_DIR"
SERVE = ["-m", "scripts.message_profile", "--serve"]

# --- inside Rasa and the action server ----------------------------------------------------------

_TURN: contextvars.ContextVar[dict[str, list[float]] | None] = contextvars.ContextVar(
    "tthc_profile_turn", default=None
)


def _note(stage: str, seconds: float) -> None:
    turn = _TURN.get()
    if turn is not None:
        turn.setdefault(stage, []).append(seconds)


def _timed(owner: Any, name: str, stage: str) -> None:
    original = getattr(owner, name)
    if asyncio.iscoroutinefunction(original):

        @functools.wraps(original)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                _note(stage, time.perf_counter() - started)

    else:

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                _note(stage, time.perf_counter() - started)

    setattr(owner, name, wrapper)


def _writer(role: str):
    folder = Path(os.environ[PROFILE_DIR_ENV])
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / f"{role}-{os.getpid()}.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def write(record: dict) -> None:
        handle.write(json.dumps(record) + "\n")
        handle.flush()

    return write


def _instrument_rasa() -> None:
    from rasa.core.actions.action import RemoteAction
    from rasa.core.agent import Agent
    from rasa.core.processor import MessageProcessor
    from rasa.utils.endpoints import EndpointConfig

    from bot.production import channel, guard, stores

    write = _writer("rasa")
    original_guard = channel.guard

    def timed_guard(on_new_message: Any, *args: Any, **kwargs: Any) -> Any:
        handle = original_guard(on_new_message, *args, **kwargs)

        async def profiled(message: Any) -> None:
            turn: dict[str, list[float]] = {}
            token = _TURN.set(turn)
            started = time.perf_counter()
            try:
                await handle(message)
            finally:
                total = time.perf_counter() - started
                _TURN.reset(token)
                write({"sender": message.sender_id, "total": total, "steps": turn})

        return profiled

    channel.guard = timed_guard
    _timed(guard.SenderRateLimiter, "allow", "limiter")
    _timed(guard, "held_turn", "handover")
    _timed(Agent, "handle_message", "agent")
    _timed(MessageProcessor, "handle_message", "processor")
    _timed(MessageProcessor, "_update_tracker_session", "session")
    _timed(MessageProcessor, "parse_message", "nlu")
    _timed(MessageProcessor, "run_action_extract_slots", "extract_slots")
    _timed(MessageProcessor, "_predict_next_with_tracker", "policies")
    _timed(MessageProcessor, "_run_action", "run_action")
    _timed(MessageProcessor, "save_tracker", "tracker_save")
    _timed(RemoteAction, "_action_call_format", "action_format")
    _timed(EndpointConfig, "request", "action_http")
    _timed(stores.ResilientSQLTrackerStore, "retrieve", "tracker_load")
    _timed(stores.ResilientSQLTrackerStore, "create_tracker", "tracker_create")


def _instrument_action_server() -> None:
    from rasa_sdk import endpoint
    from rasa_sdk.executor import ActionExecutor

    write = _writer("actions")
    original_create_app = endpoint.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = original_create_app(*args, **kwargs)

        @app.middleware("request")
        async def start(request: Any) -> None:
            request.ctx.profile_turn = {}
            request.ctx.profile_token = _TURN.set(request.ctx.profile_turn)
            request.ctx.profile_started = time.perf_counter()

        @app.middleware("response")
        async def finish(request: Any, response: Any) -> None:
            if request.path != "/webhook":
                return
            turn = request.ctx.profile_turn
            turn["server"] = [time.perf_counter() - request.ctx.profile_started]
            write({"action_call": True, "steps": turn})

        return app

    endpoint.create_app = create_app
    _timed(ActionExecutor, "run", "action")


def serve(argv: list[str]) -> None:
    """`--serve rasa run ...` or `--serve rasa_sdk ...`: instrument, then run as the log
    masker would."""
    from bot.production import logmask

    if argv[0] == "rasa":
        _instrument_rasa()
    elif argv[0] == "rasa_sdk":
        _instrument_action_server()
    sys.argv = ["logmask", *argv]
    logmask.main()


# --- the driver -----------------------------------------------------------------------------------

FOLLOW_UPS = ["còn lệ phí thì sao?", "nộp ở đâu vậy", "mất bao lâu"]
WARM_UP = 10


def _profiled(base: type) -> type:
    class Profiled(base):  # type: ignore[misc, valid-type]
        def commands(self) -> dict[str, list[str]]:
            commands = super().commands()
            for name, command in commands.items():
                if name == "actions" or name.startswith("rasa"):
                    at = command.index("bot.production.logmask")
                    commands[name] = [command[0], *SERVE, *command[at + 1 :]]
            return commands

    return Profiled


def questions() -> list[str]:
    import yaml

    path = ROOT / "tests" / "data" / "e2e_questions.yml"
    return [row["text"] for row in yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]]


def send(base_url: str, sender: str, text: str) -> float:
    body = json.dumps({"sender": sender, "message": text}).encode()
    request = urllib.request.Request(
        f"{base_url}/webhooks/rest/webhook", data=body, headers={"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        if not json.loads(response.read()):
            raise RuntimeError(f"no reply to {text!r}")
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_records(folder: Path, role: str) -> list[dict]:
    records = []
    for path in sorted(folder.glob(f"{role}-*.jsonl")):
        records += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return records


def exclusive_steps(record: dict) -> dict[str, float]:
    """Milliseconds per step of one turn, each counted once (nested steps taken out)."""
    steps = {k: 1000 * sum(v) for k, v in record["steps"].items()}
    get = steps.get
    out = {
        "limiter": get("limiter", 0.0),
        "handover": get("handover", 0.0),
        "lock": get("agent", 0.0) - get("processor", 0.0),
        "tracker_load": get("tracker_load", 0.0),
        # create_tracker saves the new, empty conversation through save() (not save_tracker).
        "tracker_create": get("tracker_create", 0.0),
        "session": get("session", 0.0),
        "nlu": get("nlu", 0.0),
        "extract_slots": get("extract_slots", 0.0),
        "policies": get("policies", 0.0),
        "action_format": get("action_format", 0.0),
        "action_http": get("action_http", 0.0),
        "run_action_rest": get("run_action", 0.0)
        - get("action_format", 0.0)
        - get("action_http", 0.0),
        "tracker_save": get("tracker_save", 0.0),
    }
    inside_processor = sum(
        out[k]
        for k in (
            "tracker_load",
            "tracker_create",
            "session",
            "nlu",
            "extract_slots",
            "policies",
            "action_format",
            "action_http",
            "run_action_rest",
            "tracker_save",
        )
    )
    out["other_processor"] = get("processor", 0.0) - inside_processor
    out["other_channel"] = (
        1000 * record["total"] - get("agent", 0.0) - out["limiter"] - out["handover"]
    )
    out["handler_total"] = 1000 * record["total"]
    out["policy_predictions"] = float(len(record["steps"].get("policies", [])))
    out["action_calls"] = float(len(record["steps"].get("action_http", [])))
    return out


def summarise(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 2),
        "mean": round(statistics.fmean(values), 2),
    }


def run_profile(stack: Any, url: str, work: Path, conversations: int, direct: str | None) -> dict:
    texts = questions()
    with stack:
        for q in texts[:WARM_UP]:
            send(url, uuid.uuid4().hex, q)
        pids = {name: p.pid for name, p in stack.processes.items() if name != "retention"}
        for path in (work / "profile").glob("*.jsonl"):
            path.write_text("")
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        latencies, sent = {}, 0
        started = time.monotonic()
        for i in range(conversations):
            sender = uuid.uuid4().hex
            for turn, text in enumerate((texts[i % len(texts)], FOLLOW_UPS[i % len(FOLLOW_UPS)])):
                latencies[(sender, turn)] = send(url, sender, text)
                sent += 1
        elapsed = time.monotonic() - started
        cpu = {
            name: round(1000 * (cpu_seconds(pid) - cpu_before[name]) / sent, 2)
            for name, pid in pids.items()
        }
        direct_latencies = []
        if direct:
            for i in range(conversations):
                sender = uuid.uuid4().hex
                for text in (texts[i % len(texts)], FOLLOW_UPS[i % len(FOLLOW_UPS)]):
                    direct_latencies.append(send(direct, sender, text))
    rasa = read_records(work / "profile", "rasa")
    actions = read_records(work / "profile", "actions")
    turns: dict[str, int] = defaultdict(int)
    rows: list[dict[str, float]] = []
    for record in rasa[: 2 * conversations]:
        steps = exclusive_steps(record)
        key = (record["sender"], turns[record["sender"]])
        turns[record["sender"]] += 1
        if key in latencies:
            client = 1000 * latencies[key]
            steps["client_latency"] = client
            steps["rest_in_out"] = client - steps["handler_total"]
        rows.append(steps)
    table = {key: summarise([r[key] for r in rows if key in r]) for key in rows[0]}
    action_rows = [
        {k: 1000 * sum(v) for k, v in a["steps"].items()} for a in actions[: 2 * conversations]
    ]
    for key in ("server", "action"):
        values = [r[key] for r in action_rows if key in r]
        if values:
            table[f"actions.{key}"] = summarise(values)
    if action_rows:
        table["actions.server_minus_action"] = summarise(
            [r["server"] - r.get("action", 0.0) for r in action_rows if "server" in r]
        )
    result = {
        "messages": sent,
        "wall_ms_per_message": round(1000 * elapsed / sent, 1),
        "cpu_ms_per_message": cpu,
        "steps_ms": table,
    }
    if direct_latencies:
        result["direct_to_replica_ms"] = summarise([1000 * x for x in direct_latencies])
    return result


def default_profile(work: Path, conversations: int) -> dict:
    from scripts.stack import Stack, free_port

    stack = _profiled(Stack)(
        rasa_port=free_port(),
        action_port=free_port(),
        web_port=free_port(),
        log_dir=work / "logs",
        env={
            "TRACKER_DB_URL": f"sqlite:///{work / 'tracker.sqlite3'}",
            PROFILE_DIR_ENV: str(work / "profile"),
        },
    )
    return run_profile(stack, stack.rasa_url, work, conversations, None)


def prod_profile(work: Path, conversations: int, procedures_url: str, redis_url: str) -> dict:
    import subprocess

    import sqlalchemy as sa

    from scripts.prod import ProdStack, ensure_postgres_database
    from scripts.stack import free_port

    ensure_postgres_database(procedures_url)
    subprocess.run(
        [sys.executable, "-m", "procedures_db", "import"],
        cwd=ROOT,
        env={**os.environ, "PROCEDURES_DB_URL": procedures_url},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tracker_url = f"postgresql://postgres@127.0.0.1:5432/tthc_profile_{os.getpid()}"
    ensure_postgres_database(tracker_url)
    stack = _profiled(ProdStack)(
        rasa_port=free_port(),
        action_port=free_port(),
        web_port=free_port(),
        public_port=free_port(),
        replicas=1,
        log_dir=work / "logs",
        lock_key_prefix=f"profile{os.getpid()}",
        env={
            "PROCEDURES_DB_URL": procedures_url,
            "TRACKER_DB_URL": tracker_url,
            "LOCK_STORE_URL": redis_url,
            "RASA_API_TOKEN": secrets.token_hex(16),
            PROFILE_DIR_ENV: str(work / "profile"),
        },
    )
    direct = f"http://127.0.0.1:{stack.replica_ports[0]}"
    try:
        return run_profile(stack, stack.public_url, work, conversations, direct)
    finally:
        admin = sa.create_engine(
            "postgresql://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            name = sa.engine.make_url(tracker_url).database
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def markdown(results: dict[str, dict]) -> str:
    names = list(results)
    keys: list[str] = []
    for result in results.values():
        keys += [k for k in result["steps_ms"] if k not in keys]
    lines = [
        "| step (ms per message, p50 / mean) | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key in keys:
        cells = []
        for name in names:
            value = results[name]["steps_ms"].get(key)
            cells.append(f"{value['p50']:g} / {value['mean']:g}" if value else "")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    for name in names:
        cpu = results[name]["cpu_ms_per_message"]
        usage = ", ".join(f"{k} {v:g}" for k, v in cpu.items())
        lines.append(f"\n{name}: CPU ms per message: {usage}")
        if "direct_to_replica_ms" in results[name]:
            direct = results[name]["direct_to_replica_ms"]
            lines.append(f"{name}: the same messages directly to the replica: {direct}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--serve":
        serve(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("default", "prod", "both"), default="both")
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--procedures-db-url", default="postgresql://postgres@127.0.0.1:5432/tthc")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = {}
    if args.profile in ("default", "both"):
        work = Path(tempfile.mkdtemp(prefix="tthc-profile-default-"))
        results["default"] = default_profile(work, args.conversations)
    if args.profile in ("prod", "both"):
        work = Path(tempfile.mkdtemp(prefix="tthc-profile-prod-"))
        results["prod"] = prod_profile(
            work, args.conversations, args.procedures_db_url, args.redis_url
        )
    print(markdown(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
