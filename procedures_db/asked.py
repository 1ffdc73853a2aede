"""Which fact a citizen asks about a procedure (its fee, its documents, where to submit ...):
a logistic regression over the message's words and word pairs, learned from the dev question
sets and the NLU examples.

Later turns of a conversation are short and ask in many ways ("thế còn tiền thì sao", "mang
theo gì", "bao giờ có"); the NLU's intent names their fact less often than this model does
(BENCHMARKS.md, "The asked fact in a conversation"), so the bot reads this model for the turns
after a procedure is under way. The NLU's intent still decides a conversation's first message.

    python -m procedures_db.asked train   # models/asked.json (`make train`)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np

from procedures_db.model_files import modified, write_json
from procedures_db.resolver.datasets import conversations, intent_examples, real_questions
from procedures_db.settings import get_settings
from procedures_db.text import normalize_message, tokens
from procedures_db.vocabulary import load_vocabulary

# The facts the bot answers; the question sets also say "eligibility" (answered by the
# requirements), "result" and "form" (no answer of their own: not learned).
FACTS = ("overview", "place", "time", "fee", "documents", "steps", "requirements", "online")
SET_FACTS = {"eligibility": "requirements"}
INTENT_FACTS = {
    "ask_procedure_info": "overview",
    "ask_submission_place": "place",
    "ask_processing_time": "time",
    "ask_fee": "fee",
    "ask_documents": "documents",
    "ask_steps": "steps",
    "ask_requirements": "requirements",
    "ask_online_level": "online",
}
# Inverse regularisation strength, chosen out of fold (leave one conversation file out: 4, 8,
# 16 and 32 within 0.2 points).
C = 16.0
FOLDS = 16
FORMAT = 1


class FactModelMissing(RuntimeError):
    pass


def terms(text: str) -> list[str]:
    """The message's accent-folded words (chat abbreviations expanded) and their pairs."""
    words = tokens(normalize_message(text))
    return words + [f"{a} {b}" for a, b in pairwise(words)]


@lru_cache(maxsize=1)
def _follow_up_phrases() -> tuple[list[list[str]], list[list[str]]]:
    vocabulary = load_vocabulary()
    openings = [tokens(p) for p in vocabulary.follow_up_openings if tokens(p)]
    return openings, [tokens(p) for p in vocabulary.follow_up_endings if tokens(p)]


def asks_same_again(text: str) -> bool:
    """ "còn X thì sao?", "thế còn X?": the previous question, about something else."""
    words = tokens(normalize_message(text))
    openings, endings = _follow_up_phrases()
    return any(words[: len(start)] == start for start in openings) or any(
        words[-len(end) :] == end for end in endings
    )


@dataclass(frozen=True)
class Example:
    text: str
    fact: str  # the fact asked
    group: str  # a source the out-of-fold measurement never splits
    kind: str  # "real", "first" (a conversation's first turn), "later", "nlu"
    previous: str | None = None  # the fact the turn before asked

    @property
    def again(self) -> bool:
        """ "còn X thì sao?" asking the previous question again: learned as asking no fact of
        its own ("overview"), which the bot answers with the last question's facts."""
        return self.previous == self.fact and asks_same_again(self.text)

    @property
    def label(self) -> str:
        return "overview" if self.again else self.fact

    def answered(self, predicted: str) -> str:
        """The fact the bot answers for a prediction (the last question's on "còn X?")."""
        if predicted == "overview" and self.previous and asks_same_again(self.text):
            return self.previous
        return predicted


@dataclass
class FactModel:
    classes: tuple[str, ...]
    vocabulary: dict[str, int]
    idf: np.ndarray
    coef: np.ndarray  # classes x terms
    intercept: np.ndarray
    meta: dict = field(default_factory=dict)

    def _vector(self, message_terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        counts: dict[int, int] = {}
        for term in message_terms:
            j = self.vocabulary.get(term)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        index = np.fromiter(counts, dtype=int, count=len(counts))
        # tf-idf with sublinear counts, length-normalised: as the model was trained
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=float))) * self.idf[index]
        norm = float(np.sqrt((values**2).sum()))
        return index, values / norm if norm else values

    def probabilities(self, text: str) -> dict[str, float]:
        index, values = self._vector(terms(text))
        scores = self.coef[:, index] @ values + self.intercept
        exp = np.exp(scores - scores.max())
        return dict(zip(self.classes, (exp / exp.sum()).tolist(), strict=True))

    def best(self, text: str) -> tuple[str, float]:
        p = self.probabilities(text)
        fact = max(p, key=p.__getitem__)
        return fact, p[fact]

    def save(self, path: Path) -> None:
        terms_by_index = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        document = {
            "format": FORMAT,
            "classes": list(self.classes),
            "terms": terms_by_index,
            "idf": np.round(self.idf, 5).tolist(),
            "coef": np.round(self.coef, 5).tolist(),
            "intercept": np.round(self.intercept, 5).tolist(),
            "meta": self.meta,
        }
        write_json(path, document)

    @classmethod
    def load(cls, path: Path) -> FactModel:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != FORMAT:
            raise FactModelMissing(f"{path} is of another format: run `make train` again")
        return cls(
            classes=tuple(document["classes"]),
            vocabulary={term: j for j, term in enumerate(document["terms"])},
            idf=np.array(document["idf"], dtype=float),
            coef=np.array(document["coef"], dtype=float),
            intercept=np.array(document["intercept"], dtype=float),
            meta=document.get("meta") or {},
        )


@lru_cache(maxsize=2)
def _load(path: str, mtime: float) -> FactModel:
    return FactModel.load(Path(path))


def load_fact_model(path: Path | None = None) -> FactModel:
    path = path or get_settings().asked_model
    missing = FactModelMissing(f"no asked-fact model at {path}: run `make train`")
    return _load(str(path), modified(path, missing))


# ---------------------------------------------------------------------------------------------
# Training


def set_fact(fact: str | None) -> str | None:
    """A question set's fact as the bot's (None: a fact the bot has no answer of its own for)."""
    fact = SET_FACTS.get(fact or "", fact)
    return fact if fact in FACTS else None


def examples() -> list[Example]:
    """Dev real questions, dev conversation turns and the NLU's ask_* examples. A conversation
    file is one helper's or one session's writing (its ids' prefix): the out-of-fold figures
    hold each file out whole, with the real questions that open its conversations."""
    file_of_url: dict[str, str] = {}
    out = []
    for conversation in conversations("dev"):
        group = "file:" + re.sub(r"\d+$", "", conversation.id)
        if conversation.url:
            file_of_url.setdefault(conversation.url, group)
        previous = None
        for i, turn in enumerate(conversation.turns):
            if fact := set_fact(turn.fact):
                kind = "later" if i else "first"
                out.append(Example(turn.text, fact, group, kind, previous))
            previous = fact or previous
    for question in real_questions("dev"):
        turn = question.turns[0]
        if fact := set_fact(turn.fact):
            key = question.url or question.id
            out.append(Example(turn.text, fact, file_of_url.get(key, key), "real"))
    for example in intent_examples():
        if example.intent in INTENT_FACTS:
            out.append(Example(example.text, INTENT_FACTS[example.intent], "nlu", "nlu"))
    return out


def fit(rows: list[Example], c: float = C, cache: dict[str, list[str]] | None = None) -> FactModel:
    from sklearn.linear_model import LogisticRegression  # training only

    cache = {} if cache is None else cache
    documents = [cache.get(row.text) or cache.setdefault(row.text, terms(row.text)) for row in rows]
    vocabulary: dict[str, int] = {}
    for document in documents:
        for term in document:
            vocabulary.setdefault(term, len(vocabulary))
    frequency = np.zeros(len(vocabulary))
    for document in documents:
        frequency[[vocabulary[t] for t in set(document)]] += 1
    idf = np.log((1 + len(documents)) / (1 + frequency)) + 1.0
    model = FactModel((), vocabulary, idf, np.zeros((0, 0)), np.zeros(0))
    matrix = _matrix(model, documents)
    # newton-cg: the lbfgs optimum (coefficients within 0.003) in a fifth of the time
    regression = LogisticRegression(C=c, solver="newton-cg", tol=1e-3, max_iter=1000)
    regression.fit(matrix, [row.label for row in rows])
    model.classes = tuple(str(c) for c in regression.classes_)
    model.coef, model.intercept = regression.coef_, regression.intercept_
    return model


def _matrix(model: FactModel, documents: list[list[str]]):
    from scipy.sparse import csr_matrix  # training only

    data, rows, cols = [], [], []
    for i, document in enumerate(documents):
        index, values = model._vector(document)
        rows += [i] * len(index)
        cols += index.tolist()
        data += values.tolist()
    return csr_matrix((data, (rows, cols)), shape=(len(documents), len(model.vocabulary)))


def out_of_fold(rows: list[Example], folds: int = FOLDS) -> dict[str, dict[str, float]]:
    """Accuracy per kind of example, each group held out once (the NLU examples always
    train)."""
    groups = sorted({row.group for row in rows if row.kind != "nlu"})
    right: dict[str, list[int]] = {}
    cache: dict[str, list[str]] = {}
    for k in range(folds):
        held = {g for i, g in enumerate(groups) if i % folds == k}
        model = fit([row for row in rows if row.group not in held], cache=cache)
        held_rows = [row for row in rows if row.group in held]
        documents = [cache.setdefault(row.text, terms(row.text)) for row in held_rows]
        scores = np.asarray(_matrix(model, documents) @ model.coef.T) + model.intercept
        for row, best in zip(held_rows, scores.argmax(axis=1), strict=True):
            counts = right.setdefault(row.kind, [0, 0])
            counts[0] += row.answered(model.classes[int(best)]) == row.fact
            counts[1] += 1
    return {kind: {"right": r, "of": n, "share": round(r / n, 4)} for kind, (r, n) in right.items()}


def train(out: Path, measure: bool = True, hold_out: tuple[str, ...] = ()) -> FactModel:
    """`hold_out`: conversation files (their ids' prefix, e.g. "mtd-o") left out, to measure
    the bot on them with a model that never saw them (scripts/eval_bot.py --ids)."""
    started = time.monotonic()
    held = {f"file:{prefix}" for prefix in hold_out}
    rows = [row for row in examples() if row.group not in held]
    oof = out_of_fold(rows) if measure else {}
    model = fit(rows)
    model.meta = {
        "examples": len(rows),
        "terms": len(model.vocabulary),
        "c": C,
        "held_out": list(hold_out),
        "out_of_fold": oof,
        "seconds": round(time.monotonic() - started, 1),
    }
    model.save(out)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m procedures_db.asked")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("train", help="build the asked-fact model")
    command.add_argument("--out", type=Path, default=None)
    command.add_argument("--no-measure", action="store_true", help="skip the out-of-fold run")
    command.add_argument(
        "--hold-out", action="append", default=[], help="leave out a conversation file (id prefix)"
    )
    args = parser.parse_args(argv)
    out = args.out or get_settings().asked_model
    model = train(out, measure=not args.no_measure, hold_out=tuple(args.hold_out))
    print(f"asked-fact model: {out}; {json.dumps(model.meta, ensure_ascii=False)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
