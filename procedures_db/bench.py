"""`make bench` (`python -m procedures_db.bench`): search quality and speed, import time.

One run prints, on the citizen question set tests/data/search_queries.yml:
- top-1 / top-3 accuracy of `procedures_db.search.search` (the resolver without a conversation;
  on the whole set, which it is trained on, and on its held-out part), of the name index alone
  (`name_search`, one of the resolver's feature sources) and of two comparisons: a plain BM25
  baseline (rank-bm25 BM25Okapi over accent-folded name tokens) and SQLite FTS5 (its bm25()
  ranking) fed the same analysed query words as our search, so only the ranking differs;
- latency p50 / p95 of each, in-process, over the full database (our search: through the public
  `search()` with its cached index, several passes after the index is built), as wall time and,
  because the machine is shared, as the calling thread's CPU time;
- the full import time on SQLite: a fresh temporary database, `run_import` of the data folder.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from rank_bm25 import BM25Okapi

from procedures_db import search as search_module
from procedures_db.db import create_schema, get_engine
from procedures_db.settings import PROJECT_ROOT, get_settings
from procedures_db.text import tokens

QUERIES_FILE = PROJECT_ROOT / "tests" / "data" / "search_queries.yml"
LATENCY_PASSES = 5

Ranker = Callable[[str], list[str]]


@dataclass(frozen=True)
class Result:
    name: str
    top1: float
    top3: float
    p50_ms: float
    p95_ms: float
    p95_cpu_ms: float  # thread CPU time: what the search costs, whatever else the machine runs


def load_queries(path: Path = QUERIES_FILE) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def evaluate(name: str, rank: Ranker, queries: list[dict], passes: int = 1) -> Result:
    top1 = top3 = 0
    timings: list[float] = []
    cpu_timings: list[float] = []
    for query in queries:
        codes = rank(query["q"])
        top1 += bool(codes) and codes[0] in query["codes"]
        top3 += any(code in query["codes"] for code in codes[:3])
    for _ in range(passes):
        for query in queries:
            start, cpu_start = time.perf_counter(), time.thread_time()
            rank(query["q"])
            timings.append(time.perf_counter() - start)
            cpu_timings.append(time.thread_time() - cpu_start)
    return Result(
        name,
        top1 / len(queries),
        top3 / len(queries),
        statistics.median(timings) * 1000,
        percentile(timings, 0.95) * 1000,
        percentile(cpu_timings, 0.95) * 1000,
    )


def bm25_baseline(rows: list[search_module.IndexRow]) -> Ranker:
    """Plain BM25 over accent-folded name tokens, the query folded the same way."""
    bm25 = BM25Okapi([tokens(row.name) for row in rows])
    codes = [row.code for row in rows]

    def rank(query: str) -> list[str]:
        scores = bm25.get_scores(tokens(query))
        return [codes[i] for i in np.argsort(-scores, kind="stable")[:3] if scores[i] > 0]

    return rank


def fts5_ranker(rows: list[search_module.IndexRow], index: search_module._Index) -> Ranker:
    """SQLite FTS5 bm25() over the index's name tokens, queried with our analysed words."""
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE VIRTUAL TABLE names USING fts5(code UNINDEXED, body)")
    db.executemany(
        "INSERT INTO names (code, body) VALUES (?, ?)",
        [
            (row.code, " ".join(search_module._name_tokens(search_module._words(row.name))))
            for row in rows
        ],
    )

    def rank(query: str) -> list[str]:
        words = {
            word
            for term in index.analyze(query)
            for alternative in term.alternatives
            for word in alternative.split()
        }
        if not words:
            return []
        match = " OR ".join(f'"{word}"' for word in sorted(words))
        found = db.execute(
            "SELECT code FROM names WHERE names MATCH ? ORDER BY bm25(names) LIMIT 3", (match,)
        )
        return [code for (code,) in found]

    return rank


def machine() -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load}"
    )


def main() -> int:
    from procedures_db.importers import run_import

    queries = load_queries()
    data_dir = get_settings().data_dir
    print(f"machine: {machine()}")
    print(f"question set: {QUERIES_FILE.relative_to(PROJECT_ROOT)} ({len(queries)} queries)")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        engine = get_engine(f"sqlite:///{tmp}/procedures.sqlite3")
        create_schema(engine)
        start = time.perf_counter()
        report = run_import([data_dir], overlay=None, engine=engine)
        import_seconds = time.perf_counter() - start
        start = time.perf_counter()
        search_module.search("khai sinh", engine=engine)
        build_seconds = time.perf_counter() - start
        rows = search_module._load_rows(engine)
        index = search_module._index_for(engine)

        def ours(query: str) -> list[str]:
            return [hit.code for hit in search_module.search(query, 3, engine=engine)]

        def names_only(query: str) -> list[str]:
            return [hit.code for hit in search_module.name_search(query, 3, engine=engine)]

        held_out = [query for query in queries if query.get("held_out")]
        results = [
            evaluate("procedures_db.search (the resolver)", ours, queries, LATENCY_PASSES),
            evaluate(f"the resolver, held-out part ({len(held_out)})", ours, held_out),
            evaluate("name index alone (name_search)", names_only, queries, LATENCY_PASSES),
            evaluate("SQLite FTS5 bm25() + our query analysis", fts5_ranker(rows, index), queries),
            evaluate("baseline: BM25Okapi, folded name tokens", bm25_baseline(rows), queries),
        ]
        engine.dispose()
    print(
        f"import (SQLite, fresh database, {data_dir}): {import_seconds:.1f} s "
        f"({report.inserted} inserted, {len(report.rejected)} rejected, "
        f"{len(report.files_read)} files)"
    )
    print(
        f"index build (first call: name and record indexes, {len(rows)} procedures): "
        f"{build_seconds * 1000:.0f} ms"
    )
    print()
    print("| ranker | top-1 | top-3 | p50 ms | p95 ms | p95 CPU ms |")
    print("|---|---|---|---|---|---|")
    for result in results:
        print(
            f"| {result.name} | {result.top1:.1%} | {result.top3:.1%} | "
            f"{result.p50_ms:.2f} | {result.p95_ms:.2f} | {result.p95_cpu_ms:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
