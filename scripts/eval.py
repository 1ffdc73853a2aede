"""`make eval`: the NLU and end-to-end figures, ours beside Rasa's default pipeline, in one run.

1. scripts/eval_nlu.py: intent accuracy / macro-F1 (also accent-stripped), entity F1.
2. For our config and for the `rasa init` pipeline (with our policies, so the same stories and
   rules apply): train a full model (timed), start the whole stack on free ports over the
   imported procedures database, send tests/data/e2e_questions.yml through the REST channel
   (scripts/eval_e2e.py), and read the resident memory of the Rasa and action servers.

    PYTHONPATH=. .venv/bin/python scripts/eval.py [--out results/eval]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts import eval_e2e  # noqa: E402
from scripts.stack import Stack, free_port  # noqa: E402


def default_pipeline_config(out: Path) -> Path:
    """Rasa's default NLU pipeline with our policies and assistant id."""
    ours = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    default = yaml.safe_load((ROOT / "scripts" / "default_config.yml").read_text(encoding="utf-8"))
    merged = {**ours, "pipeline": default["pipeline"], "language": ours.get("language", "vi")}
    path = out / "default_full_config.yml"
    path.write_text(yaml.safe_dump(merged, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def train(config: Path, out: Path, name: str) -> tuple[Path, float]:
    started = time.perf_counter()
    command = [sys.executable, "-m", "rasa", "train", "--config", str(config), "--domain"]
    command += [str(ROOT / "domain.yml"), "--data", str(ROOT / "data"), "--out", str(out)]
    command += ["--fixed-model-name", name, "--force", "--quiet"]
    subprocess.run(command, cwd=ROOT, check=True)
    return out / f"{name}.tar.gz", time.perf_counter() - started


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def end_to_end(model: Path, out: Path, name: str) -> dict:
    report = out / f"e2e-{name}.json"
    stack = Stack(
        model=model,
        rasa_port=free_port(),
        action_port=free_port(),
        web_port=free_port(),
        log_dir=out / f"logs-{name}",
        env={"TRACKER_DB_URL": f"sqlite:///{out / f'tracker-{name}.sqlite3'}"},
    )
    with stack:
        eval_e2e.main(["--base-url", stack.rasa_url, "--json", str(report), "--target", "0"])
        memory = {
            f"{proc}_rss_mib": resident_mib(stack.processes[proc].pid)
            for proc in ("rasa", "actions")
        }
    return {**json.loads(report.read_text(encoding="utf-8"))["summary"], **memory}


def print_table(results: dict[str, dict]) -> None:
    rows = [
        ("first reply: right code + asked fact", lambda r: f"{r['pass_share']:.1%}"),
        ("latency p50 (ms)", lambda r: f"{r['latency_p50_s'] * 1000:.0f}"),
        ("latency p95 (ms)", lambda r: f"{r['latency_p95_s'] * 1000:.0f}"),
        ("full `rasa train` (s)", lambda r: f"{r['train_s']:.0f}"),
        ("Rasa server RSS (MiB)", lambda r: f"{r['rasa_rss_mib']:.0f}"),
        ("action server RSS (MiB)", lambda r: f"{r['actions_rss_mib']:.0f}"),
    ]
    names = list(results)
    print("\n| end-to-end (REST channel) | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for label, show in rows:
        print(f"| {label} | " + " | ".join(show(results[n]) for n in names) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "eval")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    subprocess.run([sys.executable, str(ROOT / "scripts" / "eval_nlu.py")], cwd=ROOT, check=True)

    configs = {"ours": ROOT / "config.yml", "rasa-default": default_pipeline_config(args.out)}
    results = {}
    for name, config in configs.items():
        model, seconds = train(config, args.out, name)
        results[name] = {**end_to_end(model, args.out, name), "train_s": seconds}
    print_table(results)
    (args.out / "summary.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
