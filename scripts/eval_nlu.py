"""Compare our NLU pipeline with Rasa's default pipeline on the dev and blind test sets.

Trains (or reuses, when config, data and component code are unchanged) two NLU models on
data/nlu/ — ours (config.yml) and what `rasa init` writes (scripts/default_config.yml) — then
parses each evaluation set and an accent-stripped copy of it and prints, side by side:
intent accuracy and macro-F1, entity F1, training time, and a fallback-threshold sweep.

- dev   tests/nlu/nlu_dev.yml: looked at while tuning (its errors are printed);
- blind tests/nlu/nlu_test_blind.yml: written without reading the training data, the honest
  final measurement. Tune with `--sets dev`; run the blind set once, at the end (its errors are
  only written to the JSON file, so that it stays blind).

    PYTHONPATH=. .venv/bin/python scripts/eval_nlu.py [--sets dev blind] [--retrain] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NLU_DATA = ROOT / "data" / "nlu"
EVAL_SETS = {
    "dev": ROOT / "tests" / "nlu" / "nlu_dev.yml",
    "blind": ROOT / "tests" / "nlu" / "nlu_test_blind.yml",
}
PRINTED_ERRORS = {"dev"}  # the blind set's sentences never reach the terminal
PIPELINES = {"ours": ROOT / "config.yml", "rasa-default": ROOT / "scripts" / "default_config.yml"}
# Inputs whose change makes a trained model stale.
CODE_INPUTS = [*sorted((ROOT / "bot" / "nlu").glob("*.py")), ROOT / "procedures_db" / "text.py"]
FALLBACK = "nlu_fallback"
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
AMBIGUITY = 0.1


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    entities: frozenset[tuple[str, int, int]]  # (entity, start, end)


@dataclass(frozen=True)
class Prediction:
    intent: str  # as deployed: nlu_fallback when the FallbackClassifier fires
    raw_intent: str  # best real intent
    confidence: float
    margin: float  # confidence gap to the second real intent
    entities: frozenset[tuple[str, int, int]]


def fingerprint(config: Path) -> str:
    digest = hashlib.sha256()
    code = CODE_INPUTS if "bot.nlu." in config.read_text() else []
    for path in [config, *sorted(NLU_DATA.glob("*.yml")), *code]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def train(name: str, config: Path, out: Path, retrain: bool) -> tuple[Path, float, bool]:
    """Model path, training seconds (measured when it was trained) and whether it was reused."""
    model = out / "models" / f"{name}.tar.gz"
    meta_path = out / "models" / f"{name}.json"
    key = fingerprint(config)
    if not retrain and model.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") == key:
            return model, meta["train_seconds"], True
    rasa = Path(sys.executable).with_name("rasa")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false"}
    # A fresh cache directory: the time measured is a cold training, not a cache hit.
    with tempfile.TemporaryDirectory(prefix="rasa-cache-") as cache:
        env["RASA_CACHE_DIRECTORY"] = cache
        command = [str(rasa), "train", "nlu", "--config", str(config), "--nlu", str(NLU_DATA)]
        command += ["--out", str(model.parent), "--fixed-model-name", name]
        started = time.monotonic()
        subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        seconds = time.monotonic() - started
    meta_path.write_text(json.dumps({"fingerprint": key, "train_seconds": seconds}))
    return model, seconds, False


def load_examples(path: Path) -> list[Example]:
    from rasa.shared.nlu.training_data.loading import load_data

    examples = []
    for message in load_data(str(path)).intent_examples:
        entities = frozenset(
            (e["entity"], e["start"], e["end"]) for e in message.get("entities") or []
        )
        examples.append(Example(message.get("text"), message.get("intent"), entities))
    return examples


def strip_accents(examples: list[Example], path: Path) -> list[Example]:
    """Accent-free copy; NFC folding keeps every offset (one character stays one character)."""
    from procedures_db.text import fold_accents, nfc

    stripped = []
    for example in examples:
        text = fold_accents(nfc(example.text))
        if len(text) != len(example.text):
            raise ValueError(f"{path}: folding changed offsets in {example.text!r}")
        stripped.append(Example(text, example.intent, example.entities))
    return stripped


def to_prediction(result: dict) -> Prediction:
    ranking = [r for r in result.get("intent_ranking") or [] if r["name"] != FALLBACK]
    best = ranking[0] if ranking else {"name": FALLBACK, "confidence": 0.0}
    second = ranking[1]["confidence"] if len(ranking) > 1 else 0.0
    entities = frozenset((e["entity"], e["start"], e["end"]) for e in result.get("entities", []))
    return Prediction(
        # No intent at all (a pipeline without a classifier, e.g. an entity-only probe) = a miss.
        intent=(result.get("intent") or {}).get("name") or FALLBACK,
        raw_intent=best["name"],
        confidence=best["confidence"],
        margin=best["confidence"] - second,
        entities=entities,
    )


async def predict_all(model: Path, sets: dict[str, list[Example]]) -> dict[str, list[Prediction]]:
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # no debug line per parsed message
    agent = Agent.load(str(model))
    predictions: dict[str, list[Prediction]] = {}
    for name, examples in sets.items():
        predictions[name] = [to_prediction(await agent.parse_message(e.text)) for e in examples]
    return predictions


def intent_scores(gold: list[str], predicted: list[str]) -> dict[str, float]:
    from sklearn.metrics import f1_score

    labels = sorted(set(gold))  # a fallback prediction is a miss, not an extra class
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    macro = f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)
    return {"accuracy": accuracy, "macro_f1": float(macro)}


def entity_f1(examples: list[Example], predictions: list[Prediction], entity: str, exact: bool):
    """Span F1 for one entity type; exact=False counts any overlapping span as a hit."""

    def matches(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
        if exact:
            return a == b
        return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]

    def hit(span: tuple[str, int, int], others: frozenset) -> bool:
        return any(matches(span, other) for other in others)

    pairs = [(ex.entities, p.entities) for ex, p in zip(examples, predictions, strict=True)]
    n_gold = sum(1 for g, _ in pairs for s in g if s[0] == entity)
    n_pred = sum(1 for _, p in pairs for s in p if s[0] == entity)
    recall_hits = sum(1 for g, p in pairs for s in g if s[0] == entity and hit(s, p))
    precision_hits = sum(1 for g, p in pairs for s in p if s[0] == entity and hit(s, g))
    precision = precision_hits / n_pred if n_pred else 0.0
    recall = recall_hits / n_gold if n_gold else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def threshold_sweep(examples: list[Example], predictions: list[Prediction]) -> list[dict]:
    rows = []
    for threshold in THRESHOLDS:
        kept = [
            (ex, p)
            for ex, p in zip(examples, predictions, strict=True)
            if p.confidence >= threshold and p.margin >= AMBIGUITY
        ]
        correct = sum(ex.intent == p.raw_intent for ex, p in kept)
        rows.append(
            {
                "threshold": threshold,
                "fallback_rate": 1 - len(kept) / len(examples),
                "accuracy_answered": correct / len(kept) if kept else 0.0,
                "accuracy_overall": correct / len(examples),
            }
        )
    return rows


def evaluate(examples: list[Example], predictions: list[Prediction]) -> dict:
    scores = intent_scores([e.intent for e in examples], [p.intent for p in predictions])
    scores["procedure_f1"] = entity_f1(examples, predictions, "procedure", exact=True)
    scores["procedure_f1_overlap"] = entity_f1(examples, predictions, "procedure", exact=False)
    scores["procedure_code_f1"] = entity_f1(examples, predictions, "procedure_code", exact=True)
    return scores


def span_texts(text: str, spans: frozenset) -> list[str]:
    return sorted(f"{entity}={text[start:end]!r}" for entity, start, end in spans)


def evaluate_set(examples: list[Example], stripped: list[Example], predictions: dict) -> dict:
    """Scores of one evaluation set (accented and stripped), sweep, intent and span errors."""
    pairs = list(zip(examples, predictions["accented"], strict=True))
    return {
        "n_examples": len(examples),
        "accented": evaluate(examples, predictions["accented"]),
        "stripped": evaluate(stripped, predictions["stripped"]),
        "sweep": threshold_sweep(examples, predictions["accented"]),
        "errors": [
            f"{e.intent} -> {p.intent} ({p.confidence:.2f}): {e.text}"
            for e, p in pairs
            if e.intent != p.intent
        ],
        "entity_errors": [
            f"{e.text} | gold {span_texts(e.text, e.entities)}"
            f" | got {span_texts(e.text, p.entities)}"
            for e, p in pairs
            if e.entities != p.entities
        ],
    }


METRIC_ROWS = [
    ("intent accuracy", "accented", "accuracy"),
    ("intent macro-F1", "accented", "macro_f1"),
    ("intent accuracy, accents stripped", "stripped", "accuracy"),
    ("intent macro-F1, accents stripped", "stripped", "macro_f1"),
    ("procedure F1 (exact span)", "accented", "procedure_f1"),
    ("procedure F1 (overlap)", "accented", "procedure_f1_overlap"),
    ("procedure F1 exact, stripped", "stripped", "procedure_f1"),
    ("procedure_code F1", "accented", "procedure_code_f1"),
]


def print_report(results: dict, set_names: list[str]) -> None:
    columns = [(name, set_name) for name in results for set_name in set_names]
    for set_name in set_names:
        n = next(iter(results.values()))["sets"][set_name]["n_examples"]
        print(f"\n{set_name}: {EVAL_SETS[set_name].relative_to(ROOT)} ({n} examples)")
    print(f"\n{'metric':36}" + "".join(f"{f'{n}/{s}':>20}" for n, s in columns))
    print(
        f"{'training time (s)':36}"
        + "".join(f"{results[n]['train_seconds']:>20.0f}" for n, _ in columns)
    )
    for label, variant, key in METRIC_ROWS:
        cells = (results[n]["sets"][s][variant][key] for n, s in columns)
        print(f"{label:36}" + "".join(f"{value:>20.3f}" for value in cells))
    for name, set_name in columns:
        result = results[name]["sets"][set_name]
        print(f"\nFallback sweep ({name}/{set_name}, raw DIET confidence, ambiguity {AMBIGUITY}):")
        print(f"{'threshold':>10}{'fallback rate':>16}{'acc. answered':>16}{'acc. overall':>16}")
        for row in result["sweep"]:
            print(
                f"{row['threshold']:>10.2f}{row['fallback_rate']:>16.3f}"
                f"{row['accuracy_answered']:>16.3f}{row['accuracy_overall']:>16.3f}"
            )
        if set_name in PRINTED_ERRORS and result["errors"]:
            print(f"Intent errors ({name}/{set_name}):")
            for line in result["errors"]:
                print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "nlu-eval")
    parser.add_argument("--retrain", action="store_true", help="train even if a model is fresh")
    parser.add_argument("--only", choices=sorted(PIPELINES), help="evaluate one pipeline")
    parser.add_argument(
        "--config", type=Path, action="append", help="evaluate this config instead (repeatable)"
    )
    parser.add_argument(
        "--sets",
        nargs="+",
        choices=sorted(EVAL_SETS),
        default=list(EVAL_SETS),
        help="evaluation sets (default: dev and blind)",
    )
    args = parser.parse_args(argv)
    pipelines = {c.stem: c.resolve() for c in args.config} if args.config else PIPELINES
    missing = [str(EVAL_SETS[s]) for s in args.sets if not EVAL_SETS[s].exists()]
    if missing:
        parser.error(f"evaluation set not found: {', '.join(missing)}")
    (args.out / "models").mkdir(parents=True, exist_ok=True)

    sets = {}
    for set_name in args.sets:
        accented = load_examples(EVAL_SETS[set_name])
        sets[set_name] = {
            "accented": accented,
            "stripped": strip_accents(accented, EVAL_SETS[set_name]),
        }
    flat = {
        f"{s}/{variant}": examples for s, by in sets.items() for variant, examples in by.items()
    }
    results = {}
    for name, config in pipelines.items():
        if args.only and name != args.only:
            continue
        model, seconds, reused = train(name, config, args.out, args.retrain)
        print(f"{name}: {'reused' if reused else 'trained'} {model} ({seconds:.0f} s)")
        predictions = asyncio.run(predict_all(model, flat))
        results[name] = {
            "train_seconds": seconds,
            "sets": {
                s: evaluate_set(
                    by["accented"],
                    by["stripped"],
                    {v: predictions[f"{s}/{v}"] for v in by},
                )
                for s, by in sets.items()
            },
        }
    print_report(results, args.sets)
    (args.out / "nlu_eval.json").write_text(json.dumps(results, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
