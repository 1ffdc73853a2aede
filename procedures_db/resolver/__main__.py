"""`python -m procedures_db.resolver train|eval` (see training.py and evaluation.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from procedures_db.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m procedures_db.resolver")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="build the ranking model")
    train.add_argument("--out", type=Path, default=None)
    evaluate = commands.add_parser("eval", help="measure the resolver on the question sets")
    evaluate.add_argument("--part", choices=("dev", "test"), default="dev")
    evaluate.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args.out or get_settings().resolver_model)
    return _eval(args.part, args.json)


# Python salts string hashes per process, and the order of a set of words reaches the float
# sums of some features: two builds of the same inputs gave different trees and thresholds.
# With one salt they are identical (two builds compared, 2026-12-06).
HASH_SEED = "0"


def _hash_salted() -> bool:
    """This process was not started with PYTHONHASHSEED=0."""
    return bool(sys.flags.hash_randomization)


def _train(out: Path) -> int:
    if _hash_salted():
        argv = [sys.executable, "-m", "procedures_db.resolver", "train", "--out", str(out)]
        os.execve(sys.executable, argv, {**os.environ, "PYTHONHASHSEED": HASH_SEED})
    from procedures_db.resolver.training import main_train

    started = time.perf_counter()
    model = main_train(out)
    meta = model.meta
    print(
        f"resolver model: {out} in {time.perf_counter() - started:.1f} s; "
        f"{meta['groups']} examples, {meta['dev_groups']} of them from the dev parts "
        f"(dev examples with no acceptable candidate: {meta['dev_missed']}); "
        f"temperature {model.temperature:.2f}; thresholds {model.thresholds}"
    )
    return 0


def _eval(part: str, out: Path | None) -> int:
    from procedures_db.db import get_engine
    from procedures_db.resolver import indexes_for, load_model
    from procedures_db.resolver.datasets import (
        conversations,
        e2e_questions,
        real_questions,
        search_queries,
    )
    from procedures_db.resolver.evaluation import evaluate_conversations, evaluate_questions

    indexes = indexes_for(get_engine())
    model = load_model()
    report = {
        "part": part,
        f"real_questions_{part}": evaluate_questions(indexes, model, real_questions(part)),
        f"conversations_{part}": evaluate_conversations(indexes, model, conversations(part)),
        "search_232": evaluate_questions(indexes, model, search_queries()),
        "e2e_questions": evaluate_questions(indexes, model, e2e_questions()),
        "model": {"temperature": model.temperature, "thresholds": model.thresholds},
    }
    if part == "dev":
        # The dev parts are training data: their honest figures are the out-of-fold ones.
        report["note"] = "dev parts are trained on; see dev_out_of_fold for held-out figures"
        report["dev_out_of_fold"] = model.meta.get("out_of_fold")
        report["risk_coverage"] = model.meta.get("risk_coverage")
        report["reliability"] = model.meta.get("reliability")
    text = json.dumps(report, ensure_ascii=False, indent=1)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
