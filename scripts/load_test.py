"""Load test of the production profile: Locust citizens through nginx, 1 then 2 Rasa replicas.

Starts the production stack (scripts/prod.py) on free ports with a throwaway PostgreSQL tracker
database, then for each replica count routes nginx to that many replicas and runs Locust
(tests/load/locustfile.py) headless. Afterwards every message Locust sent is looked up in the
tracker store: a message missing there is lost, one stored twice is duplicated, a stored one
without a bot event after it is unanswered. Prints a Markdown table (BENCHMARKS.md) and writes
JSON.

    python scripts/load_test.py [--users 100] [--duration 60] [--replicas 1,2] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.prod import ProdStack, ensure_postgres_database  # noqa: E402
from scripts.stack import DEFAULT_MODEL, free_port  # noqa: E402

LOCUSTFILE = ROOT / "tests" / "load" / "locustfile.py"
LOCUST = Path(sys.executable).parent / "locust"


@dataclass
class PhaseResult:
    replicas: int
    users: int
    think_s: str
    duration_s: int
    messages: int
    messages_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    apologies: int
    lost: int
    duplicated: int
    unanswered: int
    # CPU seconds each process used during the phase, and its resident memory after it.
    cpu_s: dict[str, float]
    rss_mb: dict[str, int]


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def _python_processes(stack: ProdStack) -> dict[str, int]:
    return {name: p.pid for name, p in stack.processes.items() if name != "nginx"}


def tracker_turns(url: str, senders: list[str]) -> dict[str, list[tuple[str, str]]]:
    """(type_name, text) of the user and bot events of each sender's conversation, in order."""
    engine = sa.create_engine(url, future=True)
    turns: dict[str, list[tuple[str, str]]] = defaultdict(list)
    query = sa.text(
        "SELECT sender_id, type_name, data FROM events WHERE sender_id IN :senders "
        "AND type_name IN ('user', 'bot') ORDER BY id"
    ).bindparams(sa.bindparam("senders", expanding=True))
    try:
        with engine.connect() as connection:
            for start in range(0, len(senders), 500):
                rows = connection.execute(query, {"senders": senders[start : start + 500]})
                for sender, kind, data in rows:
                    turns[sender].append((kind, json.loads(data).get("text") or ""))
    finally:
        engine.dispose()
    return turns


def check_tracker(url: str, sent: list[dict]) -> dict[str, int]:
    """Messages Locust sent that are lost (answered but not stored), duplicated (stored more often
    than sent) or unanswered (stored without a bot event after them) in the tracker store."""
    sent_by_sender: dict[str, list[dict]] = defaultdict(list)
    for record in sent:
        sent_by_sender[record["sender"]].append(record)
    turns = tracker_turns(url, list(sent_by_sender))
    counts = Counter()
    for sender, records in sent_by_sender.items():
        events = turns.get(sender, [])
        stored = Counter(text for kind, text in events if kind == "user")
        answered = Counter(r["message"] for r in records if r["outcome"] == "ok")
        counts["lost"] += sum((answered - stored).values())
        counts["duplicated"] += sum((stored - Counter(r["message"] for r in records)).values())
        counts["unanswered"] += sum(
            1
            for i, (kind, _) in enumerate(events)
            if kind == "user" and (i + 1 == len(events) or events[i + 1][0] != "bot")
        )
    return {key: counts[key] for key in ("lost", "duplicated", "unanswered")}


def run_locust(
    host: str, users: int, duration_s: int, work: Path, name: str, think_s: str = "1,3"
) -> tuple[dict, list]:
    log, prefix = work / f"{name}-sent.jsonl", work / name
    command = [str(LOCUST), "-f", str(LOCUSTFILE), "--headless", "--host", host]
    command += ["-u", str(users), "-r", str(max(1, users // 4)), "-t", f"{duration_s}s"]
    command += ["--stop-timeout", "60", "--csv", str(prefix), "--only-summary"]
    command += ["--loglevel", "WARNING"]
    env = {**os.environ, "TTHC_LOAD_LOG": str(log), "TTHC_LOAD_THINK_S": think_s}
    subprocess.run(command, cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)
    with open(f"{prefix}_stats.csv", encoding="utf-8") as handle:
        aggregated = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    sent = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    return aggregated, sent


def run_phase(stack: ProdStack, tracker_url: str, replicas: int, args, work: Path) -> PhaseResult:
    stack.route_to_replicas(replicas)
    run_locust(stack.public_url, 10, 10, work, f"warmup-{replicas}")
    pids = _python_processes(stack)
    cpu_before = {name: _proc_cpu_s(pid) for name, pid in pids.items()}
    stats, sent = run_locust(
        stack.public_url, args.users, args.duration, work, f"r{replicas}", args.think
    )
    cpu = {name: round(_proc_cpu_s(pid) - cpu_before[name], 1) for name, pid in pids.items()}
    outcomes = Counter(record["outcome"] for record in sent)
    tracker = check_tracker(tracker_url, sent)
    return PhaseResult(
        replicas=replicas,
        users=args.users,
        think_s=args.think,
        duration_s=args.duration,
        messages=len(sent),
        messages_per_s=round(len(sent) / args.duration, 1),
        p50_ms=float(stats["50%"]),
        p95_ms=float(stats["95%"]),
        p99_ms=float(stats["99%"]),
        max_ms=round(float(stats["Max Response Time"])),
        errors=outcomes["error"],
        apologies=outcomes["apology"],
        **tracker,
        cpu_s=cpu,
        rss_mb={name: _proc_rss_mb(pid) for name, pid in pids.items()},
    )


def markdown(results: list[PhaseResult]) -> str:
    lines = [
        "| Rasa replicas | citizens | think s | messages | msg/s | p50 ms | p95 ms | p99 ms "
        "| max ms | errors | apologies | lost | duplicated | unanswered |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.replicas} | {r.users} | {r.think_s.replace(',', '–')} | {r.messages} "
            f"| {r.messages_per_s} | {r.p50_ms:g} "
            f"| {r.p95_ms:g} | {r.p99_ms:g} | {r.max_ms} | {r.errors} | {r.apologies} "
            f"| {r.lost} | {r.duplicated} | {r.unanswered} |"
        )
    for r in results:
        usage = ", ".join(f"{name} {r.cpu_s[name]} s / {r.rss_mb[name]} MB" for name in r.cpu_s)
        lines.append(f"\n{r.replicas} replica(s), CPU seconds / memory per process: {usage}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Load test of the production profile")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--duration", type=int, default=60, help="seconds per phase")
    parser.add_argument(
        "--think", default="1,3", help="seconds between a reply and the next message: min,max"
    )
    parser.add_argument("--replicas", default="1,2", help="replica counts, in order")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument(
        "--procedures-db-url",
        default="postgresql://postgres@127.0.0.1:5432/tthc",
        help="imported (idempotently) before the run, as `make run-prod` does",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]

    work = Path(tempfile.mkdtemp(prefix="tthc-load-"))
    ensure_postgres_database(args.procedures_db_url)
    subprocess.run(
        [sys.executable, "-m", "procedures_db", "import"],
        cwd=ROOT,
        env={**os.environ, "PROCEDURES_DB_URL": args.procedures_db_url},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tracker_url = f"postgresql://postgres@127.0.0.1:5432/tthc_load_{os.getpid()}"
    ensure_postgres_database(tracker_url)
    stack = ProdStack(
        model=args.model,
        rasa_port=free_port(),
        action_port=free_port(),
        web_port=free_port(),
        public_port=free_port(),
        replicas=max(counts),
        log_dir=work / "logs",
        lock_key_prefix=f"load{os.getpid()}",
        env={
            "PROCEDURES_DB_URL": args.procedures_db_url,
            "TRACKER_DB_URL": tracker_url,
            "LOCK_STORE_URL": args.redis_url,
            "RASA_API_TOKEN": secrets.token_hex(16),
            # Every simulated citizen comes from 127.0.0.1: the per-IP API limit would cap them.
            "API_RATE_LIMIT_PER_MINUTE": "0",
        },
    )
    results = []
    try:
        started = time.monotonic()
        stack.start()
        print(f"Stack up in {time.monotonic() - started:.0f} s; logs in {work}", flush=True)
        for count in counts:
            results.append(run_phase(stack, tracker_url, count, args, work))
            print(markdown(results[-1:]).splitlines()[2], flush=True)
    finally:
        stack.stop()
        admin = sa.create_engine(
            "postgresql://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            name = sa.engine.make_url(tracker_url).database
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print(markdown(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    clean = all(
        r.errors == r.apologies == r.lost == r.duplicated == r.unanswered == 0 for r in results
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
