"""How well the resolver does: accuracy, calibration, risk-coverage, latency, a BM25 baseline.

    python -m procedures_db.resolver eval [--part dev|test] [--json FILE]

The test part is for the end, once every choice is frozen: `--part test` prints its figures and
nothing about individual questions.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from procedures_db.resolver import MAX_LISTED, Context, Indexes, Resolution, resolve_with
from procedures_db.resolver.datasets import Conversation
from procedures_db.resolver.features import earlier_procedures
from procedures_db.resolver.model import (
    Group,
    RankingModel,
    confidence_inputs,
    fit_confidence_map,
)
from procedures_db.resolver.records import with_pairs
from procedures_db.text import tokens

THRESHOLD_GRID = [round(t, 2) for t in np.arange(0.05, 1.0001, 0.01)]


def _top_group_probability(
    group: Group, p: np.ndarray, p_none: float, model: RankingModel | None = None
) -> tuple[int, float]:
    """The best candidate and its confidence: its probability with its same-named variants',
    calibrated by `model` when given."""
    top = int(np.argmax(p))
    q = float(p[top]) if group.family is None else float(p[group.family == group.family[top]].sum())
    return top, model.confidence(q, group.g, p_none) if model else q


def risk_coverage(
    predictions: list[tuple[Group, np.ndarray, float]], model: RankingModel | None = None
) -> list[dict]:
    """Per threshold on the best candidate's group probability: the share of questions answered
    directly (coverage), the share of direct answers that are wrong (risk) and the share of all
    questions that get a wrong direct answer."""
    rows = []
    for group, p, p_none in predictions:
        if not len(p):
            continue
        top, q = _top_group_probability(group, p, p_none, model)
        rows.append((q, bool(group.positive[top])))
    if not rows:
        return []
    total = len(rows)
    curve = []
    for t in THRESHOLD_GRID:
        answered = [right for q, right in rows if q >= t]
        wrong = sum(not r for r in answered)
        curve.append(
            {
                "threshold": t,
                "coverage": round(len(answered) / total, 4),
                "risk": round(wrong / len(answered), 4) if answered else 0.0,
                "wrong_share": round(wrong / total, 4),
            }
        )
    return curve


def _offered_right(group: Group, p: np.ndarray) -> bool:
    """An acceptable procedure is among the first `MAX_LISTED` names (one per same-named family)."""
    seen: set = set()
    for i in np.argsort(-p):
        key = group.family[i] if group.family is not None else i
        if key in seen:
            continue
        seen.add(key)
        if group.positive[i]:
            return True
        if len(seen) == MAX_LISTED:
            return False
    return False


def ask_curve(
    predictions: list[tuple[Group, np.ndarray, float]], model: RankingModel, suggest: float
) -> list[dict]:
    """Per threshold on the chance that some candidate fits (1 - none), among the questions the
    bot does not answer directly: the in-scope ones whose procedure a list would name, and the
    out-of-scope ones that would get a list instead of a polite "not found"."""
    rows = []
    for group, p, p_none in predictions:
        if len(p) and _top_group_probability(group, p, p_none, model)[1] >= suggest:
            continue
        named = bool(len(p)) and _offered_right(group, p)
        rows.append((1.0 - p_none, named, group.none_positive))
    curve = []
    for t in THRESHOLD_GRID:
        listed = [(named, out) for fits, named, out in rows if fits >= t]
        curve.append(
            {
                "threshold": t,
                "named": sum(named for named, out in listed if not out),
                "out_of_scope_listed": sum(out for _, out in listed),
            }
        )
    return curve


def choose_ask(curve: list[dict], floor: float) -> float:
    """The threshold that names the most in-scope procedures less out-of-scope questions listed
    (each costs a citizen one useless list); the highest such, and none above `floor`, so that
    a list is shown only when some candidate is at least that likely."""
    best = max(
        (p for p in curve if p["threshold"] <= floor),
        key=lambda p: (p["named"] - p["out_of_scope_listed"], p["threshold"]),
        default=None,
    )
    return best["threshold"] if best else floor


def fit_confidence(
    predictions: list[tuple[Group, np.ndarray, float]], none_features: tuple[str, ...]
) -> tuple[float, ...]:
    """The confidence map fitted on held-out predictions (see model.fit_confidence_map)."""
    inputs, right = [], []
    for g, p, p_none in predictions:
        if not len(p):
            continue
        top, q = _top_group_probability(g, p, p_none)
        inputs.append(confidence_inputs(q, g.g, p_none, none_features))
        right.append(float(g.positive[top]))
    return fit_confidence_map(np.array(inputs), np.array(right))


def reliability(
    predictions: list[tuple[Group, np.ndarray, float]],
    model: RankingModel | None = None,
    bins: int = 10,
) -> list[dict]:
    """The probability the decision reads (the best candidate's, with its same-named variants
    at other levels) against how often the best candidate is right, in bins."""
    counts = [[0, 0.0, 0] for _ in range(bins)]
    for group, p, p_none in predictions:
        if not len(p):
            continue
        top, q = _top_group_probability(group, p, p_none, model)
        b = min(int(q * bins), bins - 1)
        counts[b][0] += 1
        counts[b][1] += q
        counts[b][2] += int(group.positive[top])
    return [
        {
            "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
            "n": n,
            "mean_probability": round(s / n, 3) if n else None,
            "accuracy": round(k / n, 3) if n else None,
        }
        for b, (n, s, k) in enumerate(counts)
    ]


def ranking_summary(predictions: list[tuple[Group, np.ndarray, float]], missed: int = 0) -> dict:
    """Top-1 / top-3 of held-out predictions over the in-scope examples; `missed` examples (no
    candidate at all) count as wrong, as do groups with no acceptable candidate."""
    in_scope = [(g, p) for g, p, _ in predictions if not g.none_positive and len(p)]
    top1 = sum(bool(g.positive[int(np.argmax(p))]) for g, p in in_scope)
    top3 = sum(bool(g.positive[np.argsort(-p)[:3]].any()) for g, p in in_scope)
    unreachable = sum(1 for g, _ in in_scope if not g.positive.any())
    n = max(len(in_scope) + missed, 1)
    return {
        "examples": len(in_scope) + missed,
        "no_acceptable_candidate": missed + unreachable,
        "top1": round(top1 / n, 4),
        "top3": round(top3 / n, 4),
    }


def bm25_baseline(indexes: Indexes, text: str, k: int = 3) -> list[str]:
    """Plain BM25 over each record's whole text (folded words and pairs of the message)."""
    scores = indexes.records.whole.scores(with_pairs(tokens(text)))
    top = np.argsort(-scores, kind="stable")[:k]
    return [indexes.records.records[i].code for i in top if scores[i] > 0]


def evaluate_questions(indexes: Indexes, model: RankingModel, rows: list[Conversation]) -> dict:
    """Single questions: top-1/top-3 of the resolver and of the BM25 baseline, decisions,
    wrong direct answers (in scope or not), CPU time per question."""
    in_scope = [c for c in rows if c.turns[0].codes]
    stats = {"questions": len(rows), "in_scope": len(in_scope)}
    top1 = top3 = base1 = base3 = wrong_direct = answered = 0
    decisions: dict[str, int] = {}
    cpu = []
    for conversation in rows:
        turn = conversation.turns[0]
        started = time.process_time()
        resolution = resolve_with(indexes, model, turn.text, Context())
        cpu.append(time.process_time() - started)
        decisions[resolution.decision.value] = decisions.get(resolution.decision.value, 0) + 1
        codes = [c.code for c in resolution.candidates]
        direct = resolution.decision.value == "answer"
        answered += direct
        if direct and codes[0] not in turn.codes:
            wrong_direct += 1
        if not turn.codes:
            continue
        top1 += bool(codes[:1]) and codes[0] in turn.codes
        top3 += bool(set(codes[:3]) & turn.codes)
        baseline = bm25_baseline(indexes, turn.text)
        base1 += bool(baseline[:1]) and baseline[0] in turn.codes
        base3 += bool(set(baseline[:3]) & turn.codes)
    n = max(len(in_scope), 1)
    stats.update(
        {
            "top1": round(top1 / n, 4),
            "top3": round(top3 / n, 4),
            "bm25_top1": round(base1 / n, 4),
            "bm25_top3": round(base3 / n, 4),
            "answered_directly": round(answered / max(len(rows), 1), 4),
            "wrong_direct_share": round(wrong_direct / max(len(rows), 1), 4),
            "decisions": decisions,
            "cpu_ms_p50": round(1000 * statistics.median(cpu), 2) if cpu else None,
            "cpu_ms_p95": round(1000 * float(np.percentile(cpu, 95)), 2) if cpu else None,
        }
    )
    return stats


def evaluate_conversations(indexes: Indexes, model: RankingModel, rows: list[Conversation]) -> dict:
    """Turns in context: the current procedure is what the resolver chose before (as the bot
    would remember it); a turn is right when its best candidate is acceptable. Also counts
    turns answered about the previous procedure after a new one was named, and out-of-scope
    turns (no acceptable code) that were not answered directly."""
    turns = ranked = answered = stale = out_of_scope = declined = 0
    for conversation in rows:
        chosen: list[str] = []  # the procedures the conversation was about, in turn
        for turn in conversation.turns:
            current, earlier = earlier_procedures(chosen)
            context = Context(current, earlier=earlier)
            resolution: Resolution = resolve_with(indexes, model, turn.text, context)
            best = resolution.best.code if resolution.best else None
            sure = resolution.decision.value in ("answer", "suggest")
            if not turn.codes:
                out_of_scope += 1
                declined += not sure
                chosen += [best] if sure else []
                continue
            turns += 1
            ranked += best in turn.codes
            answered += sure and best in turn.codes
            if turn.switch and current and best == current and current not in turn.codes:
                stale += 1
            if sure:
                chosen.append(best)
            else:  # the bot asked: the citizen picks the right one when it was offered
                offered = [c.code for c in resolution.candidates[:5] if c.code in turn.codes]
                chosen += offered[:1]
    return {
        "conversations": len(rows),
        "turns": turns,
        "best_right": round(ranked / max(turns, 1), 4),
        "answered_right": round(answered / max(turns, 1), 4),
        "out_of_scope_turns": out_of_scope,
        "out_of_scope_not_answered": declined,
        "stale_after_switch": stale,
    }
