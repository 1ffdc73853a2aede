"""Messages per second of one Rasa process: closed-loop citizens through the REST channel.

Each setup is started in turn on free ports, then loaded by closed-loop citizens (each sends a
message, waits for the reply, sends the next at once: a procedure question and two follow-ups
per conversation, a fresh sender per conversation) for SECONDS seconds per citizen count.
Reported per phase: messages/s, p50/p95/p99/max latency, errors (HTTP errors, timeouts, empty
replies, the apology of a failed turn) and, looked up in the tracker store afterwards, messages
lost, stored twice or left without a bot reply (scripts/load_test.check_tracker). CPU seconds of
each process and the machine's load average are recorded: the load generator, the action server
and Rasa share the machine's cores.

Setups (in this order, all in one run):
- ours: the embedded default (`make run`): one Rasa process, SQLite tracker store, in-memory
  lock store, the guarded REST channel, models/tthc.tar.gz;
- stock: the same stack with the model of `rasa init`'s pipeline and policies
  (scripts/default_config.yml) trained on the same data (models/stock/stock.tar.gz, `make
  bench` trains it once);
- prod: the production profile (scripts/prod.py): two Rasa replicas behind nginx, PostgreSQL
  tracker store and procedures database, Redis lock store; each citizen from its own loopback
  address (nginx limits requests per client address);
- variants given with --variant NAME:KEY=VALUE,...: `ours` with those environment variables,
  e.g. TTHC_RASA_PATCHES=validator+keepalive (the changes of bot/production/rasa_patches.py
  and stores.py switched on one by one; "none": Rasa's own code), to measure each change on its
  own in the same run.
- --tree DIR: another checkout's embedded default (its own code and models), e.g. the commit
  before these changes.

    python scripts/bench_throughput.py [--citizens 1,20,50] [--seconds 20]
        [--setups ours,stock,prod] [--variant rasa:TTHC_RASA_PATCHES=none ...] [--tree DIR ...]
        [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.load_test import check_tracker  # noqa: E402
from scripts.stack import DEFAULT_MODEL, free_port  # noqa: E402

STOCK_MODEL = ROOT / "models" / "stock" / "stock.tar.gz"
QUESTIONS = ROOT / "tests" / "data" / "e2e_questions.yml"
FOLLOW_UPS = [
    ("còn lệ phí thì sao?", "nộp ở đâu vậy"),
    ("mất bao lâu", "cần giấy tờ gì"),
    ("nộp ở đâu vậy", "có làm online được không"),
]
APOLOGY_PREFIX = "Xin lỗi, hệ thống"
TIMEOUT_S = 60.0
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class Phase:
    setup: str
    citizens: int
    seconds: float
    messages: int
    messages_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    lost: int
    duplicated: int
    unanswered: int
    load_average: tuple[float, float]  # 1-minute load average before and after the phase
    # CPU milliseconds per message of each process (loadgen: this script's).
    cpu_ms_per_message: dict[str, float] = field(default_factory=dict)


def conversations() -> list[tuple[str, ...]]:
    rows = yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))["questions"]
    return [(row["text"], *FOLLOW_UPS[i % len(FOLLOW_UPS)]) for i, row in enumerate(rows)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def closed_loop(
    url: str, citizens: int, seconds: float, own_addresses: bool, offset: int
) -> tuple[list[float], list[dict]]:
    """`citizens` closed loops for `seconds`; latencies of answered messages and every message
    sent (sender, message, outcome) for the tracker check."""
    convs = conversations()
    latencies: list[float] = []
    sent: list[dict] = []
    deadline = time.monotonic() + seconds

    async def citizen(k: int) -> None:
        # One keep-alive connection per citizen, as a browser or a platform's webhook client.
        local = (f"127.0.{1 + k // 250}.{1 + k % 250}", 0) if own_addresses else None
        connector = aiohttp.TCPConnector(limit=1, local_addr=local)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            i = offset + k
            while time.monotonic() < deadline:
                sender = f"bench-{uuid.uuid4().hex[:16]}"
                for text in convs[i % len(convs)]:
                    if time.monotonic() >= deadline:
                        break
                    outcome = "error"
                    started = time.perf_counter()
                    try:
                        async with session.post(
                            f"{url}/webhooks/rest/webhook",
                            json={"sender": sender, "message": text},
                        ) as response:
                            replies = await response.json() if response.status == 200 else None
                        latency = time.perf_counter() - started
                        if replies:
                            first = replies[0].get("text") or ""
                            outcome = "apology" if first.startswith(APOLOGY_PREFIX) else "ok"
                            if outcome == "ok":
                                latencies.append(latency)
                    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                        pass
                    sent.append({"sender": sender, "message": text, "outcome": outcome})
                i += citizens

    await asyncio.gather(*(citizen(k) for k in range(citizens)))
    return latencies, sent


def run_phase(
    name: str, url: str, tracker_url: str, pids: dict[str, int], citizens: int, args
) -> Phase:
    own = name.startswith("prod")
    asyncio.run(closed_loop(url, citizens, args.warmup, own, offset=7))  # connections, caches
    before_load = load_average()
    cpu_before = {n: process_cpu_s(pid) for n, pid in pids.items()}
    own_before = own_cpu_s()
    started = time.monotonic()
    latencies, sent = asyncio.run(closed_loop(url, citizens, args.seconds, own, offset=0))
    elapsed = time.monotonic() - started
    cpu = {n: process_cpu_s(pid) - cpu_before[n] for n, pid in pids.items()}
    cpu["loadgen"] = own_cpu_s() - own_before
    tracker = check_tracker(tracker_url, sent)
    answered = max(1, len(latencies))
    ms = [1000 * x for x in latencies] or [float("nan")]
    return Phase(
        setup=name,
        citizens=citizens,
        seconds=round(elapsed, 1),
        messages=len(latencies),
        messages_per_s=round(len(latencies) / elapsed, 1),
        p50_ms=round(statistics.median(ms)),
        p95_ms=round(percentile(ms, 0.95)),
        p99_ms=round(percentile(ms, 0.99)),
        max_ms=round(max(ms)),
        errors=sum(1 for record in sent if record["outcome"] != "ok"),
        load_average=(before_load, load_average()),
        cpu_ms_per_message={n: round(1000 * s / answered, 1) for n, s in cpu.items()},
        **tracker,
    )


def _forget_project_modules() -> None:
    prefixes = ("scripts.", "procedures_db", "bot.")
    for module in [m for m in sys.modules if m in ("scripts", "bot") or m.startswith(prefixes)]:
        del sys.modules[module]


def tree_stack_module(tree: Path):
    """That checkout's own launcher (its Stack starts that tree's code). Its modules are
    forgotten afterwards, and sys.path restored (its stack.py puts its root first)."""
    saved_path = list(sys.path)
    sys.path.insert(0, str(tree))
    _forget_project_modules()
    try:
        module = importlib.import_module("scripts.stack")
        assert Path(module.__file__).resolve().is_relative_to(tree), module.__file__
        return module
    finally:
        sys.path[:] = saved_path
        _forget_project_modules()


def own_stack_module():
    module = importlib.import_module("scripts.stack")
    assert Path(module.__file__).resolve().is_relative_to(ROOT), module.__file__
    return module


def measure_default(
    name: str, model: Path, work: Path, args, env: dict[str, str] | None = None, tree=None
) -> list[Phase]:
    module = tree_stack_module(tree) if tree else own_stack_module()
    tracker_url = f"sqlite:///{work / f'tracker-{name}.sqlite3'}"
    stack = module.Stack(
        model=model,
        rasa_port=free_port(),
        action_port=free_port(),
        web_port=free_port(),
        log_dir=work / f"logs-{name}",
        env={"TRACKER_DB_URL": tracker_url, **(env or {})},
    )
    phases = []
    started = time.monotonic()
    with stack:
        up = time.monotonic() - started
        print(f"{name}: {module.ROOT} up in {up:.0f} s", file=sys.stderr, flush=True)
        pids = {n: stack.processes[n].pid for n in ("rasa", "actions")}
        for citizens in args.citizens:
            phases.append(run_phase(name, stack.rasa_url, tracker_url, pids, citizens, args))
            print(row(phases[-1]), file=sys.stderr, flush=True)
    return phases


def measure_prod(work: Path, args) -> list[Phase]:
    import sqlalchemy as sa

    from scripts.prod import ProdStack, ensure_postgres_database

    ensure_postgres_database(args.procedures_db_url)
    subprocess.run(
        [sys.executable, "-m", "procedures_db", "import"],
        cwd=ROOT,
        env={**os.environ, "PROCEDURES_DB_URL": args.procedures_db_url},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tracker_url = f"postgresql://postgres@127.0.0.1:5432/tthc_bench_{os.getpid()}"
    ensure_postgres_database(tracker_url)
    stack = ProdStack(
        rasa_port=free_port(),
        action_port=free_port(),
        web_port=free_port(),
        public_port=free_port(),
        replicas=2,
        log_dir=work / "logs-prod",
        lock_key_prefix=f"bench{os.getpid()}",
        env={
            "PROCEDURES_DB_URL": args.procedures_db_url,
            "TRACKER_DB_URL": tracker_url,
            "LOCK_STORE_URL": args.redis_url,
            "RASA_API_TOKEN": secrets.token_hex(16),
        },
    )
    phases = []
    try:
        started = time.monotonic()
        with stack:
            print(f"prod: up in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
            names = ("actions", "rasa-0", "rasa-1", "nginx")
            pids = {n: stack.processes[n].pid for n in names}
            for citizens in args.citizens:
                phase = run_phase("prod", stack.public_url, tracker_url, pids, citizens, args)
                phases.append(phase)
                print(row(phase), file=sys.stderr, flush=True)
    finally:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            database = sa.engine.make_url(tracker_url).database
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
    return phases


HEADER = (
    "| setup | citizens | msg/s | p50 ms | p95 ms | p99 ms | max ms | errors | lost | dup. "
    "| unanswered | load avg before → after | CPU ms per message |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def row(p: Phase) -> str:
    cpu = ", ".join(f"{n} {v:g}" for n, v in p.cpu_ms_per_message.items())
    return (
        f"| {p.setup} | {p.citizens} | {p.messages_per_s} | {p.p50_ms} | {p.p95_ms} "
        f"| {p.p99_ms} | {p.max_ms} | {p.errors} | {p.lost} | {p.duplicated} | {p.unanswered} "
        f"| {p.load_average[0]:.1f} → {p.load_average[1]:.1f} | {cpu} |"
    )


def ratios(phases: list[Phase], ours: str = "ours", peer: str = "stock") -> list[str]:
    by = {(p.setup, p.citizens): p for p in phases}
    lines = []
    for (setup, citizens), phase in by.items():
        other = by.get((peer, citizens))
        if setup == ours and other and other.messages_per_s:
            ratio = phase.messages_per_s / other.messages_per_s
            lines.append(
                f"- {citizens} citizens: {ours} {phase.messages_per_s} msg/s, {peer} "
                f"{other.messages_per_s} msg/s: {ratio:.2f}× (p95 {phase.p95_ms} vs "
                f"{other.p95_ms} ms)"
            )
    return lines


def train_stock(out: Path, epochs: int | None) -> Path:
    """`rasa init`'s pipeline and policies (scripts/default_config.yml) trained on our data into
    `out`. `epochs` (every component's, when given) shortens training on a slow machine: the cost
    of a message does not depend on it (same model sizes), its answers may."""
    config = yaml.safe_load((ROOT / "scripts" / "default_config.yml").read_text(encoding="utf-8"))
    if epochs:
        for component in [*config["pipeline"], *config["policies"]]:
            if "epochs" in component:
                component["epochs"] = epochs
    out.parent.mkdir(parents=True, exist_ok=True)
    written = out.parent / "stock_config.yml"
    written.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), "utf-8")
    command = [sys.executable, "-m", "rasa", "train", "--config", str(written)]
    command += ["--domain", str(ROOT / "domain.yml"), "--data", str(ROOT / "data")]
    command += ["--out", str(out.parent), "--fixed-model-name", out.name.split(".")[0]]
    subprocess.run(command, cwd=ROOT, check=True)
    return out


def stock_epochs_note(model: Path) -> str:
    config = model.parent / "stock_config.yml"
    if not config.exists():
        return f"stock: {model}"
    components = yaml.safe_load(config.read_text(encoding="utf-8"))
    epochs = sorted(
        {c["epochs"] for c in [*components["pipeline"], *components["policies"]] if "epochs" in c}
    )
    return f"stock: {model}, trained with epochs {epochs}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", default="1,20,50", help="citizen counts, in order")
    parser.add_argument("--seconds", type=float, default=20.0, help="per citizen count")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before each phase")
    parser.add_argument("--setups", default="ours,stock,prod")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="`ours` with these environment variables (e.g. rasa:TTHC_RASA_PATCHES=none)",
    )
    parser.add_argument("--tree", type=Path, action="append", default=[])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--stock-model", type=Path, default=STOCK_MODEL)
    parser.add_argument("--procedures-db-url", default="postgresql://postgres@127.0.0.1:5432/tthc")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--train-stock",
        action="store_true",
        help="only train the stock model (into --stock-model) and stop",
    )
    parser.add_argument("--stock-epochs", type=int, help="with --train-stock: epochs of each")
    args = parser.parse_args(argv)
    if args.train_stock:
        train_stock(args.stock_model, args.stock_epochs)
        return 0
    args.citizens = [int(n) for n in args.citizens.split(",") if n]
    setups = [s for s in args.setups.split(",") if s]

    work = Path(tempfile.mkdtemp(prefix="tthc-bench-"))
    started = time.monotonic()
    phases: list[Phase] = []
    for tree in args.tree:
        tree = tree.resolve()
        label = f"tree:{tree.name}"
        phases += measure_default(label, tree / "models" / "tthc.tar.gz", work, args, tree=tree)
    for variant in args.variant:
        name, _, assignments = variant.partition(":")
        env = dict(item.split("=", 1) for item in assignments.split(",") if item)
        phases += measure_default(f"ours[{name}]", args.model, work, args, env=env)
    for setup in setups:
        if setup == "ours":
            phases += measure_default("ours", args.model, work, args)
        elif setup == "stock":
            if not args.stock_model.exists():
                raise SystemExit(f"no stock model at {args.stock_model}: `make stock-model`")
            print(stock_epochs_note(args.stock_model), file=sys.stderr)
            phases += measure_default("stock", args.stock_model, work, args)
        elif setup == "prod":
            phases += measure_prod(work, args)
        else:
            raise SystemExit(f"unknown setup {setup!r}")
    minutes = (time.monotonic() - started) / 60
    print(f"\n{os.cpu_count()} CPUs; whole run {minutes:.1f} min; logs in {work}\n")
    print(HEADER)
    for phase in phases:
        print(row(phase))
    lines = ratios(phases)
    if lines:
        print("\nours against the stock `rasa init` pipeline and policies:")
        print("\n".join(lines))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(p) for p in phases], indent=1), encoding="utf-8")
    clean = all(
        p.errors == p.lost == p.duplicated == p.unanswered == 0
        for p in phases
        if not p.setup.startswith(("stock", "tree:"))
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
