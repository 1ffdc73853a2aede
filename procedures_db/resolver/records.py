"""The whole-record index: BM25 over every field a citizen's story may touch.

Names alone miss stories ("mất ví, mất luôn bằng lái", "con tôi mới sinh"): the words of a
situation are in a record's subjects, requirements, result, steps and document names. Each
record is indexed twice, as its name and as its whole text, with the tokens procedure names use
(`procedures_db.search` analysis: accents folded, name spellings unified) and word pairs.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from procedures_db.search import doc_tokens

_K1 = 1.2
_B = 0.75


@dataclass(frozen=True)
class RecordText:
    """What the record index reads of one procedure."""

    code: str
    name: str
    field: str | None
    levels: tuple[str, ...]
    online_level: str | None
    text: str  # every other searchable field, joined
    subjects: str = ""  # who may file it (doi_tuong_thuc_hien), as the portal lists them


# Who files a procedure, from the portal's subject list: citizens ask mostly about their own.
SUBJECT_KINDS = {
    "citizen": ("cong dan viet nam",),
    "foreign": ("nguoi nuoc ngoai", "dinh cu o nuoc ngoai", "to chuc nuoc ngoai"),
    "business": ("doanh nghiep", "hop tac xa"),
    "organisation": ("to chuc",),
    "official": ("can bo", "cong chuc", "vien chuc"),
}


def subject_flags(subjects: str) -> list[float]:
    # "Tổ chức (không bao gồm doanh nghiệp, HTX)": the parenthesis excludes.
    text = " ".join(doc_tokens(re.sub(r"\([^)]*\)", " ", subjects)))
    return [float(any(k in text for k in keys)) for keys in SUBJECT_KINDS.values()]


class Bm25:
    """Okapi BM25 over token lists; `scores(terms)` gives one score per document."""

    def __init__(self, documents: Sequence[list[str]]) -> None:
        vocab: dict[str, int] = {}
        rows, cols, counts = [], [], []
        lengths = np.zeros(len(documents))
        for i, tokens in enumerate(documents):
            lengths[i] = len(tokens)
            tf: dict[int, int] = {}
            for token in tokens:
                j = vocab.setdefault(token, len(vocab))
                tf[j] = tf.get(j, 0) + 1
            rows.extend([i] * len(tf))
            cols.extend(tf)
            counts.extend(tf.values())
        n = len(documents)
        tf_matrix = sparse.csr_matrix(
            (np.array(counts, dtype=float), (rows, cols)), shape=(n, max(len(vocab), 1))
        )
        df = np.bincount(tf_matrix.indices, minlength=tf_matrix.shape[1])
        self.idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
        norm = _K1 * (1 - _B + _B * lengths / max(lengths.mean(), 1.0))
        coo = tf_matrix.tocoo()
        weights = coo.data * (_K1 + 1) / (coo.data + norm[coo.row]) * self.idf[coo.col]
        # Columns are terms: scoring a query sums a handful of columns.
        self.matrix = sparse.csc_matrix((weights, (coo.row, coo.col)), shape=tf_matrix.shape)
        self.vocab = vocab
        self.size = n

    def scores(self, terms: Iterable[str]) -> np.ndarray:
        vocab = self.vocab
        ids = sorted({vocab[t] for t in terms if t in vocab})
        if not ids:
            return np.zeros(self.size)
        # The columns' entries gathered straight from the CSC arrays: slicing the matrix built
        # a new one per call and cost most of a message's BM25 time.
        m = self.matrix
        spans = [slice(m.indptr[j], m.indptr[j + 1]) for j in ids]
        rows = np.concatenate([m.indices[s] for s in spans])
        weights = np.concatenate([m.data[s] for s in spans])
        return np.bincount(rows, weights=weights, minlength=self.size)


def with_pairs(tokens: list[str]) -> list[str]:
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


class RecordIndex:
    """BM25 over names and over whole records, aligned with the name index's rows."""

    def __init__(self, records: Sequence[RecordText]) -> None:
        self.records = list(records)
        self.by_code = {r.code: i for i, r in enumerate(self.records)}
        name_tokens = [doc_tokens(r.name) for r in self.records]
        self.name_tokens = [set(tokens) for tokens in name_tokens]
        self.name_df = Counter(word for tokens in self.name_tokens for word in tokens)
        self.names = Bm25([with_pairs(tokens) for tokens in name_tokens])
        whole_tokens = [
            tokens + doc_tokens(f"{r.field or ''} . {r.text}")
            for tokens, r in zip(name_tokens, self.records, strict=True)
        ]
        self.whole = Bm25([with_pairs(tokens) for tokens in whole_tokens])
        # What a record's whole text mentions (its documents above all): a follow-up asking
        # whether a document is needed names words the current record holds.
        self.whole_words = [set(tokens) for tokens in whole_tokens]
        # Field ids ("Đất đai", "Cấp, quản lý căn cước"): a conversation tends to stay in one.
        fields: dict[str, int] = {}
        self.field_ids = np.array(
            [fields.setdefault(r.field or "", len(fields)) for r in self.records]
        )
        levels = [set(r.levels) for r in self.records]
        self.level_flags = np.array(
            [
                [("xa" in ls), ("tinh" in ls), bool(ls) and not ({"xa", "tinh"} & ls)]
                for ls in levels
            ],
            dtype=float,
        )
        self.name_length = np.array([math.log1p(len(t)) for t in name_tokens])
        self.subject_flags = np.array([subject_flags(r.subjects) for r in self.records]).reshape(
            len(self.records), len(SUBJECT_KINDS)
        )
