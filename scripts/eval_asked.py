"""Which fact a conversation's later turns ask: the NLU's intent (as the bot read it before
`procedures_db.asked`) against the asked-fact model, on the same dev turns.

The model's figure is its out-of-fold one (`make train` writes it into models/asked.json: each
conversation file held out whole). The NLU never learned the dev conversations' later turns, so
its figure on them is held out too; on real questions and first turns it is not (the dev real
questions are NLU examples, `story_questions.yml`) and is printed for reference only.

    python scripts/eval_asked.py [--model models/tthc.tar.gz] [--json results/asked.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actions.questions import facts_asked  # noqa: E402
from procedures_db.asked import examples, load_fact_model  # noqa: E402


async def nlu_intents(model_path: Path, texts: set[str]) -> dict[str, str]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model_path))
    out = {}
    for text in sorted(texts):
        out[text] = (await agent.parse_message(text))["intent"]["name"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "tthc.tar.gz")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = [row for row in examples() if row.kind != "nlu"]
    intents = asyncio.run(nlu_intents(args.model, {row.text for row in rows}))
    report: dict[str, dict] = {
        "nlu": {},
        "model_out_of_fold": load_fact_model().meta["out_of_fold"],
    }
    for kind in ("later", "first", "real"):
        chosen = [row for row in rows if row.kind == kind]
        right = sum(
            row.answered(facts_asked(intents[row.text], row.text)[0].value) == row.fact
            for row in chosen
        )
        report["nlu"][kind] = {
            "right": right,
            "of": len(chosen),
            "share": round(right / len(chosen), 4),
        }
    for kind in ("later", "first", "real"):
        nlu, model = report["nlu"][kind], report["model_out_of_fold"][kind]
        note = "" if kind == "later" else "  (NLU trained on these)"
        figures = [
            f"{name} {f['share']:.3f} ({f['right']}/{f['of']})"
            for name, f in (("NLU", nlu), ("model", model))
        ]
        print(f"{kind:6s} {'   '.join(figures)}{note}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
