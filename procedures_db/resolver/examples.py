"""Nearest questions: what citizens asked before, and which procedure served them.

Stories name situations that records rarely word the same way ("vợ tôi mới sinh, tôi được nghỉ
bao lâu" is the maternity benefit); the question sets' dev parts hold many such messages with their
acceptable procedures. BM25 over the analysed terms of those questions (the index's own analysis:
accents, shorthand, typos); a procedure's score is the best score among the questions labelled
with it. The model weighs it like any other list, with a regression of the same questions onto
their procedures (`ridge_scores`) and onto those procedures' fields (`field_scores`: it reaches
procedures nobody asked about yet), and how many remembered questions each procedure has (a
prior: of 2,600 procedures citizens ask about a few hundred).

Training reads every example through an index that holds no question of its own fold (the folds
of the out-of-fold figures), so the model learns how far to trust a neighbour it has not seen;
the final model searches all of them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from procedures_db.resolver.records import Bm25, RecordIndex
from procedures_db.text import fold_accents

# Neighbours read per message: enough for the few procedures a message could be about.
NEIGHBOURS = 30
RIDGE = 1.0  # the ridge penalty, against a kernel whose diagonal is 1


def turn_words(text: str) -> list[str]:
    """A turn's words as typed, accents folded, and their pairs: the asking words ("bao lâu",
    "ở đâu", "ko") that the analysis drops are what a follow-up is made of, and a pair tells
    "có phải" from "ở đâu"."""
    words = re.findall(r"\w+", fold_accents(text).lower())
    return words + [f"{a}_{b}" for a, b in itertools.pairwise(words)]


@dataclass(frozen=True)
class LabelledText:
    """One remembered question: its analysed terms and its acceptable procedure codes."""

    terms: tuple[str, ...]
    codes: tuple[str, ...]
    key: str  # the source page: folds never split one
    # In a conversation: the procedure it was about before this turn, and whether the turn kept
    # it (a follow-up, which names no procedure: not a remembered question, only a `stay` row).
    current: str | None = None
    follow_up: bool = False
    words: tuple[str, ...] = ()  # its own words, asking ones included (`turn_words`)


class ExampleIndex:
    """Per procedure, how close the message is to a remembered question about it."""

    def __init__(self, examples: Sequence[LabelledText], records: RecordIndex) -> None:
        self.size = len(records.records)
        self.field_ids = records.field_ids
        self.fields = int(records.field_ids.max(initial=-1)) + 1
        rows = [
            (e.terms, [records.by_code[c] for c in e.codes if c in records.by_code])
            for e in examples
            if not e.follow_up
        ]
        rows = [(terms, ids) for terms, ids in rows if terms and ids]
        self.bm25 = Bm25([list(terms) for terms, _ in rows]) if rows else None
        self.labels = [np.array(ids, dtype=int) for _, ids in rows]
        # How often citizens asked about each procedure: most of the 2,600 are never asked,
        # and of same-named variants one level is asked far more than the others.
        self.asked = np.bincount(
            np.concatenate(self.labels) if self.labels else np.zeros(0, dtype=int),
            minlength=self.size,
        ).astype(float)
        self._fit_ridge()
        self._fit_stay([e for e in examples if e.current and (e.terms or e.words)])

    def _fit_ridge(self) -> None:
        """Kernel ridge regression from a question's words to its procedures, over the cosine of
        their BM25 weights: unlike the nearest question, it weighs every remembered question
        together, so words that several procedures' questions share count less than the words
        that tell them apart ("nước ngoài" between two birth registrations)."""
        self.ridge = self.field_ridge = None
        if self.bm25 is None:
            return
        classes = np.flatnonzero(self.asked)
        column = {c: j for j, c in enumerate(classes)}
        # The same regression onto the procedures' fields: a field's questions pooled tell a
        # story's domain even for a procedure nobody asked about yet.
        fields = np.unique(self.field_ids[classes])
        field_column = {f: len(classes) + j for j, f in enumerate(fields)}
        targets = np.zeros((len(self.labels), len(classes) + len(fields)))
        for i, ids in enumerate(self.labels):
            targets[i, [column[c] for c in ids]] = 1.0
            targets[i, [field_column[f] for f in set(self.field_ids[ids])]] = 1.0
        by_word = _fit_words(self.bm25, targets).astype(np.float32)
        self.ridge = (by_word[:, : len(classes)], classes)
        self.field_ridge = (by_word[:, len(classes) :], fields)

    def _fit_stay(self, turns: Sequence[LabelledText]) -> None:
        """Whether a turn's words keep the conversation's procedure ("lệ phí bao nhiêu", "có
        cần giấy khám sức khỏe không") or move to another ("còn sổ bhxh mất thì sao", "có phải
        xin phép xây dựng ko"): the same kind of regression over the conversations' turns,
        targets +1 (kept) and -1 (moved), on the analysed words and the words as typed."""
        self.stay = None
        if len({e.follow_up for e in turns}) < 2:
            return
        bm25 = Bm25([[*e.terms, *e.words] for e in turns])
        y = np.array([1.0 if e.follow_up else -1.0 for e in turns])
        mean = float(y.mean())
        self.stay = (bm25, _fit_words(bm25, y - mean), mean)

    def stay_score(self, terms: Sequence[str]) -> float:
        """Above 0: the words of a turn that keeps its procedure; below: of one that moves."""
        if self.stay is None:
            return 0.0
        bm25, by_word, mean = self.stay
        ids, query = _unit_query(bm25, terms)
        return mean + float(by_word[ids] @ query) if ids else mean

    def ridge_scores(self, terms: Sequence[str]) -> np.ndarray:
        return self._regressed(self.ridge, terms)

    def field_scores(self, terms: Sequence[str]) -> np.ndarray:
        """Per procedure, the regression onto its field."""
        return self._regressed(self.field_ridge, terms, self.fields)[self.field_ids]

    def _regressed(self, fitted, terms: Sequence[str], size: int | None = None) -> np.ndarray:
        out = np.zeros(self.size if size is None else size)
        if fitted is None:
            return out
        by_word, classes = fitted
        ids, query = _unit_query(self.bm25, terms)
        if ids:
            # Summed row by row: a BLAS product would wake threads that spin on the other core.
            out[classes] = (by_word[ids] * query[:, None]).sum(axis=0)
        return out

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        out = np.zeros(self.size)
        if self.bm25 is None or not terms:
            return out
        similarity = self.bm25.scores(terms)
        near = np.flatnonzero(similarity > 0)
        if len(near) > NEIGHBOURS:
            near = near[np.argpartition(-similarity[near], NEIGHBOURS)[:NEIGHBOURS]]
        if len(near):
            ids = np.concatenate([self.labels[j] for j in near])
            values = np.repeat(similarity[near], [len(self.labels[j]) for j in near])
            np.maximum.at(out, ids, values)
        return out


def _fit_words(bm25: Bm25, targets: np.ndarray) -> np.ndarray:
    """Kernel ridge regression of `targets` (one row per document) over the cosine of the
    documents' BM25 weights, its weights folded into the words: per word, its share of each
    target, so reading a message sums a few rows instead of a product over every document."""
    x = bm25.matrix.tocsr()
    x = sparse.diags(1.0 / np.sqrt(x.multiply(x).sum(axis=1).A1)) @ x  # rows of length 1
    kernel = (x @ x.T).toarray()
    return x.T @ np.linalg.solve(kernel + RIDGE * np.eye(len(kernel)), targets)


def _unit_query(bm25: Bm25, terms: Sequence[str]) -> tuple[list[int], np.ndarray]:
    """A message's known words and their IDF weights scaled to length 1 (the kernel's cosine)."""
    ids = sorted({bm25.vocab[t] for t in terms if t in bm25.vocab})
    query = bm25.idf[ids]
    return ids, query / np.linalg.norm(query) if ids else query
