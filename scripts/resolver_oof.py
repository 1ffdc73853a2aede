"""The resolver's out-of-fold rankings on the dev parts, one row per example, by tree seed.

The same training set, folds and trees as `make train` (procedures_db.resolver.training), but
each dev example keeps its text, context and ranking, and the turns are counted by kind: a real
question, a conversation's first turn, a follow-up (the current procedure stays) or a switch
(a new procedure named). A change to the resolver is compared over several seeds
(`--seeds 42 1 2`): one seed's tree randomness moves a kind by a few examples.

    PYTHONPATH=. .venv/bin/python scripts/resolver_oof.py [--seeds 42 1 2] [--json OUT] [--folded]

`--folded` scores the held-out examples typed without accents (what a citizen on Zalo often
sends); the model still learns from the text as written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from procedures_db.db import get_engine
from procedures_db.resolver import build_indexes, load_records, model, training
from procedures_db.resolver.features import view
from procedures_db.text import fold_accents


def dev_examples(indexes, folded: bool = False) -> tuple[training.TrainingSet, dict[int, tuple]]:
    """The training set, and for each group built the example, its candidates' codes and the
    group to score it by (with `folded`: a dev example's text without accents, as many citizens
    type; the model still learns from the text as written)."""
    built: dict[int, tuple] = {}
    to_group = training.to_group

    def codes_of(indexes_, example, examples):
        v = view(indexes_.names, indexes_.records, example.text, example.context, examples=examples)
        return [indexes_.records.records[i].code for i in v.candidates]

    def keeping(indexes_, example, examples=None):
        group = to_group(indexes_, example, examples)
        if group is not None:
            scored_as, shown = group, example
            if folded and example.source in ("real", "multiturn"):
                shown = replace(example, text=fold_accents(example.text))
                scored_as = to_group(indexes_, shown, examples)
            codes = codes_of(indexes_, shown, examples) if scored_as is not None else []
            built[id(group)] = (example, codes, scored_as)
        return group

    training.to_group = keeping
    try:
        return training.training_set(indexes), built
    finally:
        training.to_group = to_group


def kind_of(example, part: str) -> str:
    current = example.context.current
    if part == "real":
        return "real"
    if current is None:
        return "first"
    if not example.codes:
        return "out_of_scope"
    return "follow_up" if current in example.codes else "switch"


def rows_for_seed(data, built, seed: int) -> list[dict]:
    model.TREE_PARAMS["seed"] = seed
    rows = []
    for fold in range(training.FOLDS):
        train = [g for key, g, _ in data.groups if training._fold_of(key) != fold]
        held = [(g, p) for key, g, p in data.groups if training._fold_of(key) == fold and p]
        trees = model.fit_trees(train)
        for group, part in held:
            example, codes, scored_as = built[id(group)]
            if scored_as is None:
                ranking = []
            else:
                scored = model.scored([scored_as], trees)[0]
                ranking = [codes[i] for i in np.argsort(-scored.x[:, 0])[:5]]
            rows.append(
                {
                    "kind": kind_of(example, part),
                    "text": example.text,
                    "codes": sorted(example.codes),
                    "current": example.context.current,
                    "ranking": ranking,
                    "right": bool(ranking and ranking[0] in example.codes),
                    "stale": bool(ranking and ranking[0] == example.context.current),
                    "source": example.key,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--json", type=Path, help="write every row, by seed")
    parser.add_argument(
        "--folded", action="store_true", help="score the dev examples with their accents removed"
    )
    args = parser.parse_args()
    indexes = build_indexes(load_records(get_engine()))
    data, built = dev_examples(indexes, args.folded)
    out = {}
    for seed in args.seeds:
        rows = out[seed] = rows_for_seed(data, built, seed)
        total, right = (
            Counter(r["kind"] for r in rows),
            Counter(r["kind"] for r in rows if r["right"]),
        )
        stale = sum(r["stale"] for r in rows if r["kind"] == "switch")
        counts = ", ".join(f"{k} {right[k]}/{total[k]}" for k in sorted(total))
        print(f"seed {seed}: {counts}; switches answered as the current: {stale}")
    if args.json:
        args.json.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
