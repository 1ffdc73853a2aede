"""One Rasa process's unloaded REST latency and closed-loop throughput, for one or more trees.

For each tree given (default: this one), start its stack (action server, one Rasa process, web
server) on free ports with a fresh SQLite tracker store, then through the REST channel:
- unloaded: messages one at a time, each a new conversation: p50 / p95 latency;
- closed loop: CITIZENS citizens sending back to back for SECONDS seconds (three messages per
  conversation): messages per second and errors.
Trees are measured one after the other in the same run (issue 9: before and after the resolver).

    python scripts/bench_rasa.py [--tree /path/to/other/checkout ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "tests" / "data" / "e2e_questions.yml"
FOLLOW_UPS = ["còn lệ phí thì sao?", "nộp ở đâu vậy", "mất bao lâu"]
UNLOADED = 60
CITIZENS = 10
SECONDS = 30.0


def texts() -> list[str]:
    rows = yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))["questions"]
    return [r["text"] for r in rows]


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


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(share * len(ordered)) - 1)]


def unloaded(base_url: str, questions: list[str]) -> dict:
    latencies = [send(base_url, uuid.uuid4().hex, q) for q in (questions * 2)[:UNLOADED]]
    return {
        "messages": len(latencies),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * percentile(latencies, 0.95), 1),
    }


def closed_loop(base_url: str, questions: list[str]) -> dict:
    stop = time.monotonic() + SECONDS
    counts, errors, latencies, lock = [0], [0], [], threading.Lock()

    def citizen(k: int) -> None:
        i = k
        while time.monotonic() < stop:
            sender = uuid.uuid4().hex
            for text in (questions[i % len(questions)], FOLLOW_UPS[i % len(FOLLOW_UPS)]):
                try:
                    latency = send(base_url, sender, text)
                    with lock:
                        counts[0] += 1
                        latencies.append(latency)
                except Exception:
                    with lock:
                        errors[0] += 1
            i += CITIZENS

    started = time.monotonic()
    threads = [threading.Thread(target=citizen, args=(k,)) for k in range(CITIZENS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {
        "citizens": CITIZENS,
        "messages_per_s": round(counts[0] / elapsed, 2),
        "p95_ms": round(1000 * percentile(latencies, 0.95), 1) if latencies else None,
        "errors": errors[0],
    }


def measure(tree: Path) -> dict:
    sys.path.insert(0, str(tree))
    # Each tree's own launcher (its Stack starts that tree's code and model).
    prefixes = ("scripts.", "procedures_db")
    for name in [m for m in sys.modules if m == "scripts" or m.startswith(prefixes)]:
        del sys.modules[name]
    stack_module = importlib.import_module("scripts.stack")
    sys.path.remove(str(tree))
    work = Path(tempfile.mkdtemp(prefix="bench-rasa-"))
    free_port = stack_module.free_port
    stack = stack_module.Stack(
        model=tree / "models" / "tthc.tar.gz",
        rasa_port=free_port(),
        action_port=free_port(),
        web_port=free_port(),
        log_dir=work / "logs",
        env={"TRACKER_DB_URL": f"sqlite:///{work / 'tracker.sqlite3'}"},
    )
    questions = texts()
    with stack:
        base_url = stack.rasa_url
        for q in questions[:10]:  # warm-up: caches, first index build
            send(base_url, uuid.uuid4().hex, q)
        return {
            "tree": str(tree),
            "unloaded": unloaded(base_url, questions),
            "load": closed_loop(base_url, questions),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, action="append", default=[])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = [measure(tree.resolve()) for tree in [*args.tree, ROOT]]
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
