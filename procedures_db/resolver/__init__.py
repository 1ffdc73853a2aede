"""Which procedure does this person need? The one resolver every caller uses.

`resolve(message, context)` reads a whole message (a short query or a story that ends in a
question) with the conversation's context (current procedure, last offered candidates, intent,
the NLU's procedure span) and returns the candidate procedures, best first, each with a
calibrated probability that it is what the citizen needs, the probability that none is, and what
the dialogue should do: answer, answer and offer the close alternatives, ask which one, or say
nothing fits. The bot, the actions, the staff page, the API and the CLI all call it (the staff
page and the API through `procedures_db.search.search`, which is this ranking without context).

The ranking is learned (`procedures_db.resolver.model`, built by `python -m procedures_db.resolver
train` from the repository's question sets and the records) over features of the name index, of
a BM25 index of whole records, of the nearest remembered questions and of how often citizens
asked about each procedure (`features`, `examples`).
Follow-up or switch is not a rule: the current procedure is one more candidate, with features
saying it is current and how much new the message names, and wins or loses on probability.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import lru_cache
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine

from procedures_db.model_files import modified
from procedures_db.resolver.features import (
    CANDIDATE_FEATURES,
    NONE_FEATURES,
    Context,
    QueryView,
    candidate_matrix,
    none_vector,
    view,
)
from procedures_db.resolver.model import RankingModel
from procedures_db.resolver.records import RecordIndex, RecordText
from procedures_db.search import (
    EngineCache,
    IndexRow,
    _Index,
    _title_parts,
    build_index,
)
from procedures_db.settings import get_settings
from procedures_db.text import folded

# What each long field contributes to the record index: its start says what it is about, and
# the rest would only slow the index down (steps average ~400 words).
_FIELD_WORDS = {"target_subjects": 80, "requirements": 200, "result": 60, "steps": 150}
_DOCUMENT_WORDS = 40
_MAX_DOCUMENTS = 40


# The thresholds of the turns after a conversation's first message carry this suffix.
IN_CONVERSATION = "_in_conversation"
# Asking which one lists at most this many: three fit a phone screen with the asked fact beside
# each (tests/test_widget_phone.py); the resolver's fourth is rarely the right one.
MAX_LISTED = 3


class Decision(str, enum.Enum):
    ANSWER = "answer"  # sure: answer this procedure
    SUGGEST = "suggest"  # likely: answer the best, offer the close alternatives
    ASK = "ask"  # several are plausible: ask which one
    NOT_FOUND = "not_found"  # nothing is likely


@dataclass(frozen=True)
class Candidate:
    code: str
    name: str
    probability: float
    levels: tuple[str, ...] = ()
    field: str | None = None
    online_level: str | None = None
    # The name without its level suffix, folded: same-named variants at other levels share it.
    family: str = dataclass_field(default="", compare=False, repr=False)

    @property
    def score(self) -> float:  # the name the hit lists of the staff page and CLI use
        return self.probability


@dataclass(frozen=True)
class Resolution:
    candidates: list[Candidate]
    none_probability: float
    # How likely the best candidate (or a same-named variant at another level) is right,
    # calibrated out of fold: what the decision reads.
    confidence: float
    decision: Decision

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def alternatives(self, share: float = 0.25, limit: int = 4) -> list[Candidate]:
        """The candidates after the best that are at least `share` as likely, one per name: a
        same-named variant at another level would be a second button reading the same (and
        would push a different procedure out of the few a phone screen shows)."""
        if not self.candidates:
            return []
        floor = share * self.candidates[0].probability
        seen = {self.candidates[0].family or self.candidates[0].code}
        out = []
        for c in self.candidates[1:]:
            key = c.family or c.code
            if c.probability >= floor and key not in seen:
                seen.add(key)
                out.append(c)
        return out[:limit]


class ModelMissing(RuntimeError):
    """No trained resolver model: `make train` builds it."""


# ---------------------------------------------------------------------------------------------
# Indexes per engine


@dataclass
class Indexes:
    names: _Index
    records: RecordIndex
    family: list[str]  # per procedure: its name without level suffix, folded


def _clip(text: str | None, words: int) -> str:
    return " ".join((text or "").split()[:words])


def load_records(engine: Engine) -> list[RecordText]:
    from procedures_db.models import Document, Procedure

    columns = [Procedure.id, Procedure.code, Procedure.name, Procedure.field, Procedure.levels]
    columns += [Procedure.online_level] + [getattr(Procedure, f) for f in _FIELD_WORDS]
    with engine.connect() as connection:
        documents: dict[int, list[str]] = {}
        statement = select(Document.procedure_id, Document.name).order_by(
            Document.procedure_id, Document.position
        )
        for procedure_id, name in connection.execute(statement):
            names = documents.setdefault(procedure_id, [])
            if len(names) < _MAX_DOCUMENTS:
                names.append(_clip(name, _DOCUMENT_WORDS))
        records = []
        for row in connection.execute(select(*columns).order_by(Procedure.code)):
            parts = [_clip(getattr(row, f), n) for f, n in _FIELD_WORDS.items()]
            parts += documents.get(row.id, [])
            records.append(
                RecordText(
                    code=row.code,
                    name=row.name,
                    field=row.field,
                    levels=tuple(row.levels or ()),
                    online_level=row.online_level,
                    text=" . ".join(p for p in parts if p),
                    subjects=row.target_subjects or "",
                )
            )
    return records


def build_indexes(records: list[RecordText]) -> Indexes:
    rows = [IndexRow(r.code, r.name, r.field, r.levels, r.online_level) for r in records]
    return Indexes(
        names=build_index(rows),
        records=RecordIndex(records),
        family=[folded(_title_parts(r.name)[0]) for r in records],
    )


_indexes: EngineCache[Indexes] = EngineCache(lambda engine: build_indexes(load_records(engine)))


def indexes_for(engine: Engine) -> Indexes:
    """The name and record indexes of a database, cached like the name index."""
    return _indexes.get(engine)


def invalidate(engine: Engine | None = None) -> None:
    _indexes.invalidate(engine)


# ---------------------------------------------------------------------------------------------
# The model


@lru_cache(maxsize=4)
def _load_model(path: str, mtime: float) -> RankingModel:
    model = RankingModel.load(Path(path))
    if model.candidate_features != CANDIDATE_FEATURES or model.none_features != NONE_FEATURES:
        raise ModelMissing(f"{path} was trained on other features: run `make train` again")
    return model


def load_model(path: Path | None = None) -> RankingModel:
    path = path or get_settings().resolver_model
    missing = ModelMissing(f"no resolver model at {path}: run `make train`")
    return _load_model(str(path), modified(path, missing))


# ---------------------------------------------------------------------------------------------
# Resolving


def decide(
    thresholds: dict[str, float],
    candidates: list[Candidate],
    confidence: float,
    code_typed: bool,
    none_probability: float = 0.0,
    in_conversation: bool = False,
) -> Decision:
    """What to do with a ranking; the answer and suggest thresholds come from the risk-coverage
    curves (BENCHMARKS.md), one pair for a conversation's first message and one for the turns
    after it; asking needs some candidate to be likelier than none."""
    if not candidates:
        return Decision.NOT_FOUND
    t = thresholds
    suffix = IN_CONVERSATION if in_conversation and f"answer{IN_CONVERSATION}" in t else ""
    if code_typed or confidence >= t[f"answer{suffix}"]:
        return Decision.ANSWER
    if confidence >= t[f"suggest{suffix}"]:
        return Decision.SUGGEST
    if 1.0 - none_probability >= t["ask"]:
        return Decision.ASK
    return Decision.NOT_FOUND


def score_view(
    indexes: Indexes, model: RankingModel, v: QueryView
) -> tuple[np.ndarray, np.ndarray, float]:
    """Candidate ids, their probabilities and the probability of none."""
    x = candidate_matrix(v, indexes.records)
    p, p_none = model.probabilities(x, none_vector(v))
    return v.candidates, p, p_none


def resolve(
    message: str,
    context: Context | None = None,
    *,
    limit: int = 10,
    engine: Engine | None = None,
    model: RankingModel | None = None,
    allowed: np.ndarray | None = None,
) -> Resolution:
    """Candidate procedures for a message in its conversation, best first (see module doc)."""
    context = context or Context()
    if engine is None:
        from procedures_db.db import get_engine

        engine = get_engine()
    indexes = indexes_for(engine)
    model = model or load_model()
    return resolve_with(indexes, model, message, context, limit=limit, allowed=allowed)


def _without(indexes: Indexes, allowed: np.ndarray | None, codes: tuple[str, ...]):
    """`allowed` (every procedure when None) less `codes` and their same-named variants at
    other levels (a rejected "Cấp lại thẻ căn cước" is rejected at every level)."""
    ids = [indexes.records.by_code[c] for c in codes if c in indexes.records.by_code]
    if not ids:
        return allowed
    families = {indexes.family[i] for i in ids} - {""}
    ids += [i for i, family in enumerate(indexes.family) if family in families]
    mask = np.ones(len(indexes.records.records), dtype=bool) if allowed is None else allowed.copy()
    mask[ids] = False
    return mask


def resolve_with(
    indexes: Indexes,
    model: RankingModel,
    message: str,
    context: Context,
    *,
    limit: int = 10,
    allowed: np.ndarray | None = None,
) -> Resolution:
    examples = model.example_index(indexes.records)
    allowed = _without(indexes, allowed, context.rejected)
    v = view(indexes.names, indexes.records, message or "", context, allowed, examples)
    ids, p, p_none = score_view(indexes, model, v)
    g = none_vector(v)
    if allowed is not None and len(ids):
        keep = allowed[ids]
        ids, p = ids[keep], p[keep]
    order = np.lexsort(([indexes.records.records[i].code for i in ids], -np.round(p, 9)))
    ids, p = ids[order], p[order]
    group = 0.0
    if len(ids):
        family = indexes.family[ids[0]]
        group = float(sum(pi for i, pi in zip(ids, p, strict=True) if indexes.family[i] == family))
    candidates = [
        _candidate(indexes, int(i), float(pi)) for i, pi in zip(ids[:limit], p[:limit], strict=True)
    ]
    confidence = model.confidence(group, g, float(p_none)) if len(ids) else 0.0
    code_typed = bool(len(ids)) and int(ids[0]) in v.codes
    in_conversation = context.current is not None
    decision = decide(
        model.thresholds, candidates, confidence, code_typed, float(p_none), in_conversation
    )
    return Resolution(candidates, float(p_none), confidence, decision)


def _candidate(indexes: Indexes, i: int, probability: float) -> Candidate:
    r = indexes.records.records[i]
    return Candidate(
        code=r.code,
        name=r.name,
        probability=round(probability, 6),
        levels=r.levels,
        field=r.field,
        online_level=r.online_level,
        family=indexes.family[i],
    )


__all__ = [
    "Candidate",
    "Context",
    "Decision",
    "ModelMissing",
    "Resolution",
    "indexes_for",
    "invalidate",
    "load_model",
    "resolve",
    "resolve_with",
]
