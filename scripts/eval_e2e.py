"""End-to-end evaluation of a running stack through Rasa's REST channel.

Every question is sent as a new conversation (a fresh sender id). A question passes when the
bot's FIRST reply names one of the expected procedure codes and contains the expected fact.
Reports the pass share (target >= 90 %) and per-message latency p50/p95.

    python scripts/eval_e2e.py [--base-url http://localhost:5005] [--questions FILE] [--json OUT]
    python scripts/eval_e2e.py --start-stack   # the project's stack on free ports, then the set
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from procedures_db.settings import get_settings  # noqa: E402
from procedures_db.text import canonical  # noqa: E402

DEFAULT_QUESTIONS = ROOT / "tests" / "data" / "e2e_questions.yml"


@dataclass(frozen=True)
class Question:
    text: str
    codes: tuple[str, ...]
    fact: str


@dataclass
class Outcome:
    text: str
    passed: bool
    code_ok: bool
    fact_ok: bool
    latency_s: float
    first_reply: str


def load_questions(path: Path) -> list[Question]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    questions = []
    for index, item in enumerate(raw.get("questions") or [], start=1):
        try:
            codes = item["codes"] if isinstance(item["codes"], list) else [item["codes"]]
            questions.append(Question(str(item["text"]), tuple(map(str, codes)), str(item["fact"])))
        except (KeyError, TypeError) as error:
            raise SystemExit(f"{path}: question {index}: missing or bad field {error}") from error
    return questions


def ask(
    base_url: str, text: str, timeout_s: float, sender: str | None = None
) -> tuple[list[dict], float]:
    """The bot's replies to one message (a new conversation unless `sender` is given)."""
    sender = sender or f"e2e-{uuid.uuid4().hex}"
    body = json.dumps({"sender": sender, "message": text}).encode()
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/webhooks/rest/webhook",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        replies = json.loads(response.read().decode("utf-8"))
    return replies, time.perf_counter() - started


def evaluate(question: Question, base_url: str, timeout_s: float) -> Outcome:
    try:
        replies, latency = ask(base_url, question.text, timeout_s)
    except (urllib.error.URLError, TimeoutError, ValueError) as error:
        return Outcome(question.text, False, False, False, float("nan"), f"<error: {error}>")
    first = (replies[0].get("text") or "") if replies else ""
    code_ok = any(code in first for code in question.codes)
    fact_ok = canonical(question.fact) in canonical(first)  # NFC, tone placement, case
    return Outcome(question.text, code_ok and fact_ok, code_ok, fact_ok, latency, first)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base-url", default=get_settings().rasa_url, help="Rasa server (default: RASA_URL)"
    )
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per message")
    parser.add_argument("--target", type=float, default=0.90, help="pass share to exit 0")
    parser.add_argument("--json", type=Path, help="write every outcome and the summary here")
    parser.add_argument("--quiet", action="store_true", help="do not list the failures")
    parser.add_argument(
        "--start-stack",
        action="store_true",
        help="start Rasa, actions and web (models/tthc.tar.gz, var/ database) on free ports",
    )
    args = parser.parse_args(argv)
    if args.start_stack:
        from scripts.stack import throwaway_stack

        with throwaway_stack(ROOT / "results" / "e2e-stack") as stack:
            args.base_url = stack.rasa_url
            return run(args)
    return run(args)


def run(args: argparse.Namespace) -> int:
    questions = load_questions(args.questions)
    outcomes = [evaluate(q, args.base_url, args.timeout) for q in questions]
    latencies = [o.latency_s for o in outcomes if not math.isnan(o.latency_s)]
    passed = sum(o.passed for o in outcomes)
    summary = {
        "base_url": args.base_url,
        "questions": len(outcomes),
        "passed": passed,
        "pass_share": passed / len(outcomes) if outcomes else 0.0,
        "code_ok": sum(o.code_ok for o in outcomes),
        "fact_ok": sum(o.fact_ok for o in outcomes),
        "errors": len(outcomes) - len(latencies),
        "latency_p50_s": percentile(latencies, 0.50),
        "latency_p95_s": percentile(latencies, 0.95),
    }
    if not args.quiet:
        for outcome in outcomes:
            if not outcome.passed:
                print(f"FAIL code={outcome.code_ok} fact={outcome.fact_ok}: {outcome.text}")
                print("     " + outcome.first_reply[:300].replace("\n", " | "))
    print(
        f"{passed}/{len(outcomes)} passed ({summary['pass_share']:.1%}); "
        f"code right {summary['code_ok']}, fact right {summary['fact_ok']}, "
        f"errors {summary['errors']}; latency p50 {summary['latency_p50_s'] * 1000:.0f} ms, "
        f"p95 {summary['latency_p95_s'] * 1000:.0f} ms"
    )
    if args.json:
        report = {"summary": summary, "outcomes": [asdict(o) for o in outcomes]}
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0 if summary["pass_share"] >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
