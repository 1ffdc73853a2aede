"""What the ranking model sees of a message and of each candidate procedure.

A message is read three ways: whole, its focus (the question sentence and the one before it:
a story's other words must not drown the procedure), and the span the NLU tagged as a procedure.
Each way is scored against names (the name index of `procedures_db.search`) and, for the first
two, against whole records (BM25) and against the questions the model remembers (`examples`:
citizens' questions of the dev parts with their procedures). Candidates are the union of the
best of each list plus the conversation's current and last offered procedures; the model weighs
them all.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from procedures_db.resolver.examples import ExampleIndex, turn_words
from procedures_db.resolver.records import RecordIndex, with_pairs
from procedures_db.search import _Index
from procedures_db.text import tokens
from procedures_db.vocabulary import load_vocabulary

TOP_PER_LIST = 12
TOP_NEAR = 8  # candidates from the nearest remembered questions
_SENTENCE_RE = re.compile(r"(?<=[?!.;:…])\s+|\n+|(?<=[?!])(?=\S)")

CANDIDATE_FEATURES = (
    "name_full",
    "name_focus",
    "name_span",
    "rank_name_full",
    "rank_name_focus",
    "rank_name_span",
    "record_full",
    "record_focus",
    "names_bm25",
    "rank_record_full",
    "rank_record_focus",
    "name_coverage",
    "name_coverage_focus",
    "level_commune",
    "level_province",
    "level_ministry_only",
    "name_length",
    "code_mentioned",
    "is_current",
    "current_few_words",
    "current_rival_name",
    "is_offered",
    "offered_few_words",
    "gap_name_full",
    "gap_name_focus",
    "record_full_log",
    "name_life_event",
    "rank_name_life_event",
    "query_coverage",
    "query_coverage_focus",
    "current_unexplained",
    "current_rival_coverage",
    "subject_citizen",
    "subject_foreign",
    "subject_business",
    "subject_organisation",
    "subject_official",
    "same_field_as_current",
    "rank_name_in_current_field",
    "near_full",
    "near_focus",
    "rank_near_full",
    "near_full_log",
    "specific_words",
    "specific_words_focus",
    "current_yes_no",
    "current_text_explains",
    "in_current_record",
    "is_earlier",
    "asked_before",
    "ridge",
    "rank_ridge",
    "ridge_focus",
    "current_stay_words",
    "ridge_field",
    "ridge_field_focus",
)
NONE_FEATURES = (
    "bias",
    "max_name_full",
    "max_name_focus",
    "max_name_span",
    "max_record_log",
    "words_full",
    "words_focus",
    "has_current",
    "code_any",
    "follow_up_shape",
    "max_near_log",
)


@dataclass(frozen=True)
class Context:
    """What the conversation knows besides the message."""

    current: str | None = None  # the procedure the conversation is about
    offered: tuple[str, ...] = ()  # candidates the bot last offered
    span: str | None = None  # the text the NLU tagged as a procedure
    # the procedures the conversation was about before the current one, latest first:
    # "thôi quay lại vụ sang tên" goes back to one of them
    earlier: tuple[str, ...] = ()
    # procedures the citizen just said are not the one meant ("không phải, ý em là …"): never
    # ranked, whatever their words share with the message
    rejected: tuple[str, ...] = ()


MAX_EARLIER = 3


def earlier_than(new: str, current: str | None, earlier: tuple[str, ...]) -> tuple[str, ...]:
    """The earlier procedures once the conversation moves from `current` to `new`."""
    kept = [c for c in (current, *earlier) if c and c != new]
    return tuple(dict.fromkeys(kept))[:MAX_EARLIER]


def earlier_procedures(codes: list[str]) -> tuple[str | None, tuple[str, ...]]:
    """The current and the earlier procedures of a conversation that was about `codes` in turn."""
    current, earlier = None, ()
    for code in codes:
        if code and code != current:
            earlier, current = earlier_than(code, current, earlier), code
    return current, earlier


def focus_text(message: str) -> str:
    """The question sentence (the last one asking) and the sentence before it."""
    sentences = [s.strip() for s in _SENTENCE_RE.split(message or "") if s and s.strip()]
    if len(sentences) <= 2:
        return " ".join(sentences)
    asking = [i for i, s in enumerate(sentences) if _asks(s)]
    last = asking[-1] if asking else len(sentences) - 1
    return " ".join(sentences[max(last - 1, 0) : last + 1])


def _asks(sentence: str) -> bool:
    """A sentence with a question mark or a phrase that asks for a fact."""
    if "?" in sentence:
        return True
    folded = f" {' '.join(tokens(sentence))} "
    return any(f" {phrase} " in folded for phrase in _asking_phrases())


ASKING_WORD_MAX_NAME_SHARE = 0.04


def asking_words(records: RecordIndex) -> frozenset[str]:
    """Folded words of the phrases that ask a fact ("phi", "lau", "nhieu") that procedure names
    rarely use (in under 4 % of names): in a follow-up they name no procedure, with or without
    accents. Frequent ones ("giay", "bao", "ho") and soft words ("mất") stay content."""
    limit = ASKING_WORD_MAX_NAME_SHARE * len(records.name_tokens)
    return frozenset(w for w in _asking_candidates() if records.name_df.get(w, 0) < limit)


@lru_cache(maxsize=1)
def _asking_candidates() -> frozenset[str]:
    soft = {" ".join(tokens(w)) for w in load_vocabulary().soft_words}
    return frozenset({w for phrase in _asking_phrases() for w in phrase.split()} - soft)


@lru_cache(maxsize=1)
def _asking_phrases() -> tuple[str, ...]:
    phrases = load_vocabulary().question_phrases
    return tuple(" ".join(tokens(p)) for p, fact in phrases.items() if fact)


@lru_cache(maxsize=1)
def _openings() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Folded follow-up openings (longest first) and endings (vocabulary)."""
    vocabulary = load_vocabulary()
    openings = sorted(
        (" ".join(tokens(p)) for p in vocabulary.follow_up_openings), key=len, reverse=True
    )
    return tuple(openings), tuple(" ".join(tokens(p)) for p in vocabulary.follow_up_endings)


def without_opening(message: str) -> str:
    """The message without a follow-up opening ("còn", "thế còn", also typed "con", "the con"):
    what follows it is what the citizen asks about (vocabulary: follow_up_openings)."""
    words = message.split()
    openings = _openings()[0]
    longest = max((len(o.split()) for o in openings), default=0)
    folded = [" ".join(tokens(w)) for w in words[:longest]]
    for opening in openings:
        size = len(opening.split())
        if " ".join(folded[:size]) == opening and len(words) > size:
            return " ".join(words[size:])
    return message


def follow_up_shape(message: str) -> bool:
    """The message opens or ends like a follow-up ("còn …", "thế còn …", "… thì sao"),
    compared accent-folded: it may still name a new procedure."""
    openings, endings = _openings()
    text = f" {' '.join(tokens(message))} "
    return any(text.startswith(f" {o} ") for o in openings) or any(
        text.endswith(f" {e} ") for e in endings
    )


@lru_cache(maxsize=1)
def _yes_no_words() -> tuple[frozenset[str], frozenset[str]]:
    """Folded words that end a yes-or-no question ("không" as typed: "ko", "k", "hong"; and
    "chưa"), and the final particles that may follow them ("ạ"): from the vocabulary."""
    vocabulary = load_vocabulary()
    typed = {k for k, v in vocabulary.chat_abbreviations.items() if v == "không"}
    endings = frozenset(" ".join(tokens(w)) for w in typed | {"không", "chưa"})
    return endings, frozenset(" ".join(tokens(w)) for w in vocabulary.final_particles)


def yes_no_question(message: str) -> bool:
    """The message ends asking yes or no ("… có cần sổ hộ khẩu không ạ"): in a conversation,
    mostly about the current procedure, even when it names a document another one issues."""
    endings, particles = _yes_no_words()
    words = tokens(message)
    while words and words[-1] in particles:
        words.pop()
    return bool(words) and words[-1] in endings


def _inverse_rank(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """1 / (1 + rank) of each candidate in `scores` (0 for a zero score); the rank is how many
    positive scores are higher. The candidates are sorted, not the thousands of scores: each
    score finds how many candidates it beats."""
    mine = scores[ids]
    order = np.argsort(mine, kind="stable")
    beaten = np.searchsorted(mine[order], scores[scores > 0], side="left")
    higher = np.cumsum(np.bincount(beaten, minlength=len(ids) + 1)[::-1])[::-1]
    ranks = np.empty(len(ids))
    ranks[order] = higher[1:]
    return np.where(mine > 0, 1.0 / (1.0 + ranks), 0.0)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    positive = np.flatnonzero(scores > 0)
    if len(positive) <= k:
        return positive
    return positive[np.argpartition(-scores[positive], k)[:k]]


@lru_cache(maxsize=1)
def _life_events() -> tuple[tuple[str, str], ...]:
    """(" folded phrase ", procedure words), longest phrase first (vocabulary/life_events.yml)."""
    pairs = [
        (f" {' '.join(tokens(alternative))} ", words)
        for phrase, words in load_vocabulary().life_events.items()
        for alternative in phrase.split("|")
    ]
    return tuple(sorted(pairs, key=lambda pair: -len(pair[0])))


def life_event_text(message: str) -> str:
    """The procedure words implied by the situations the message tells ("mới sinh" ->
    "đăng ký khai sinh"), or ""."""
    text = f" {' '.join(tokens(message))} "
    found = [words for phrase, words in _life_events() if phrase in text]
    return " . ".join(dict.fromkeys(found))


@dataclass
class QueryView:
    """The message scored every way, over all procedures."""

    name_full: np.ndarray
    name_life: np.ndarray
    name_focus: np.ndarray
    name_span: np.ndarray
    record_full: np.ndarray
    record_focus: np.ndarray
    names_bm25: np.ndarray
    query_words: set[str]
    focus_words: set[str]
    words_full: int
    words_focus: int
    codes: list[int]
    follow_up_shape: bool  # "còn …", "thế còn …", "… thì sao"
    yes_no: bool  # ends asking yes or no ("… có cần X không")
    name_in_field: np.ndarray  # name_full within the current procedure's field (else zeros)
    near_full: np.ndarray  # closeness to remembered questions about each procedure (examples)
    near_focus: np.ndarray
    asked: np.ndarray  # how many remembered questions were about each procedure
    ridge: np.ndarray  # the remembered questions' regression onto procedures
    ridge_focus: np.ndarray
    ridge_field: np.ndarray  # the same regression onto each procedure's field
    ridge_field_focus: np.ndarray
    stay: float  # the turn's words keep the current procedure (>0) or move (<0)
    current: int | None
    offered: list[int]
    earlier: list[int]
    candidates: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))


def view(
    names: _Index,
    records: RecordIndex,
    message: str,
    context: Context,
    allowed: np.ndarray | None = None,
    examples: ExampleIndex | None = None,
) -> QueryView:
    """The message scored every way; candidates are the best of each list (among the `allowed`
    procedures, when the staff page filters), the current and the offered ones. `examples`:
    the remembered questions (the model's; none, no such list)."""
    shape = follow_up_shape(message)
    message = without_opening(message)
    focus = focus_text(message)
    name_full, full_terms = names.read(message)
    name_focus, focus_terms = names.read(focus) if focus != message else (name_full, full_terms)
    full_words = [t for t in full_terms if " " not in t]
    # What names a procedure: the analysed words less the words that ask a fact.
    asking = asking_words(records)
    full_words = [t for t in full_words if t not in asking]
    focus_words = [t for t in focus_terms if " " not in t and t not in asking]
    span = context.span or ""
    zeros = np.zeros(len(records.records))
    life = life_event_text(message)
    typed = load_vocabulary().codes_in(message)
    codes = [records.by_code[c] for c in typed if c in records.by_code]
    current = records.by_code.get(context.current) if context.current else None
    offered = [records.by_code[c] for c in context.offered if c in records.by_code]
    earlier = [records.by_code[c] for c in context.earlier if c in records.by_code]
    v = QueryView(
        name_full=name_full,
        name_life=names.read(life)[0] if life else zeros,
        name_focus=name_focus,
        name_span=names.read(span)[0] if span else zeros,
        record_full=records.whole.scores(full_terms),
        record_focus=records.whole.scores(focus_terms),
        names_bm25=records.names.scores(with_pairs(full_words)),
        query_words=set(full_words),
        focus_words=set(focus_words),
        words_full=len(set(full_words)),
        words_focus=len(set(focus_words)),
        codes=codes,
        follow_up_shape=shape,
        yes_no=yes_no_question(message),
        current=current,
        name_in_field=(
            np.where(records.field_ids == records.field_ids[current], name_full, 0.0)
            if current is not None
            else zeros
        ),
        offered=offered,
        earlier=earlier,
        near_full=examples.scores(full_terms) if examples else zeros,
        near_focus=(examples.scores(focus_terms) if examples and focus != message else zeros),
        asked=examples.asked if examples else zeros,
        ridge=examples.ridge_scores(full_terms) if examples else zeros,
        ridge_focus=examples.ridge_scores(focus_terms) if examples and focus != message else zeros,
        ridge_field=examples.field_scores(full_terms) if examples else zeros,
        ridge_field_focus=(
            examples.field_scores(focus_terms) if examples and focus != message else zeros
        ),
        stay=(
            examples.stay_score([*full_terms, *turn_words(message)])
            if examples and current is not None
            else 0.0
        ),
    )
    if examples and focus == message:
        v.near_focus = v.near_full
        v.ridge_focus = v.ridge
        v.ridge_field_focus = v.ridge_field
    lists = [v.name_full, v.name_focus, v.name_span, v.name_life, v.record_full, v.record_focus]
    if current is not None:
        # "còn cấp lại khi bị mất thì sao" after "đổi bằng lái": the best names of the current
        # procedure's field are candidates too.
        lists.append(v.name_in_field)
    if allowed is not None:
        lists = [np.where(allowed, scores, 0.0) for scores in lists]
    ids = {int(i) for scores in lists for i in _top(scores, TOP_PER_LIST)}
    near = [v.near_full, v.near_focus, v.ridge]
    if allowed is not None:
        near = [np.where(allowed, scores, 0.0) for scores in near]
    ids.update(int(i) for scores in near for i in _top(scores, TOP_NEAR))
    ids.update(codes)
    ids.update(offered)
    ids.update(earlier)
    if current is not None:
        ids.add(current)
    v.candidates = np.array(sorted(ids), dtype=int)
    return v


def _share(values: np.ndarray) -> np.ndarray:
    top = values.max() if len(values) else 0.0
    return values / top if top > 0 else values


def candidate_matrix(v: QueryView, records: RecordIndex) -> np.ndarray:
    ids = v.candidates
    n = len(ids)
    if n == 0:
        return np.zeros((0, len(CANDIDATE_FEATURES)))
    few = float(v.words_focus <= 1)
    is_current = (ids == v.current).astype(float) if v.current is not None else np.zeros(n)
    is_offered = np.isin(ids, v.offered).astype(float)
    same_field = (
        (records.field_ids[ids] == records.field_ids[v.current]).astype(float)
        if v.current is not None
        else np.zeros(n)
    )
    others = v.name_focus[ids][is_current == 0]
    rival = float(others.max()) if len(others) else 0.0
    coverage = np.array([_coverage(records.name_tokens[i], v.query_words) for i in ids])
    coverage_focus = np.array([_coverage(records.name_tokens[i], v.focus_words) for i in ids])
    # The other way round: how much of what the citizen said the name explains.
    explained = np.array([_coverage(v.query_words, records.name_tokens[i]) for i in ids])
    explained_focus = np.array([_coverage(v.focus_words, records.name_tokens[i]) for i in ids])
    specific = _specific(records, ids, v.query_words)
    specific_focus = _specific(records, ids, v.focus_words)
    current_words = records.whole_words[v.current] if v.current is not None else set()
    current_explains = _coverage(v.query_words, current_words)
    in_current = np.array(
        [0.0 if i == v.current else _coverage(records.name_tokens[i], current_words) for i in ids]
    )
    rival_explained = explained_focus[is_current == 0]
    rival_coverage = float(rival_explained.max()) if len(rival_explained) else 0.0
    columns = [
        v.name_full[ids],
        v.name_focus[ids],
        v.name_span[ids],
        _inverse_rank(v.name_full, ids),
        _inverse_rank(v.name_focus, ids),
        _inverse_rank(v.name_span, ids),
        _share(v.record_full[ids]),
        _share(v.record_focus[ids]),
        _share(v.names_bm25[ids]),
        _inverse_rank(v.record_full, ids),
        _inverse_rank(v.record_focus, ids),
        coverage,
        coverage_focus,
        records.level_flags[ids, 0],
        records.level_flags[ids, 1],
        records.level_flags[ids, 2],
        records.name_length[ids],
        np.isin(ids, v.codes).astype(float),
        is_current,
        is_current * few,
        is_current * rival,
        is_offered,
        is_offered * few,
        v.name_full[ids] - v.name_full[ids].max(),
        v.name_focus[ids] - v.name_focus[ids].max(),
        np.log1p(v.record_full[ids]),
        v.name_life[ids],
        _inverse_rank(v.name_life, ids),
        explained,
        explained_focus,
        is_current * (1.0 - explained_focus),
        is_current * rival_coverage,
        *records.subject_flags[ids].T,
        same_field,
        _inverse_rank(v.name_in_field, ids),
        _share(v.near_full[ids]),
        _share(v.near_focus[ids]),
        _inverse_rank(v.near_full, ids),
        np.log1p(v.near_full[ids]),
        specific,
        specific_focus,
        is_current * float(v.yes_no),
        is_current * current_explains,
        in_current,
        np.isin(ids, v.earlier).astype(float),
        np.log1p(v.asked[ids]),
        v.ridge[ids],
        _inverse_rank(v.ridge, ids),
        v.ridge_focus[ids],
        is_current * v.stay,
        v.ridge_field[ids],
        v.ridge_field_focus[ids],
    ]
    return np.column_stack(columns)


def _specific(records: RecordIndex, ids: np.ndarray, words: set[str]) -> np.ndarray:
    """How many of the message's words a candidate's name shares with few other candidates
    ("quân sự" in "Đổi giấy phép lái xe quân sự" among the other licence procedures): each
    shared word counts 1 / the number of candidates whose names have it."""
    matched = [records.name_tokens[i] & words for i in ids]
    among = Counter(word for m in matched for word in m)
    # Sorted: a set's order, and so the sum's last bits, would change with the hash seed.
    return np.array([sum(1.0 / among[word] for word in sorted(m)) for m in matched])


def _coverage(part: set[str], whole: set[str]) -> float:
    """The share of `part` found in `whole` (0 for an empty part)."""
    return len(part & whole) / len(part) if part else 0.0


def none_vector(v: QueryView) -> np.ndarray:
    return np.array(
        [
            1.0,
            float(v.name_full.max(initial=0.0)),
            float(v.name_focus.max(initial=0.0)),
            float(v.name_span.max(initial=0.0)),
            float(np.log1p(v.record_full.max(initial=0.0))),
            float(np.log1p(v.words_full)),
            float(np.log1p(v.words_focus)),
            float(v.current is not None),
            float(bool(v.codes)),
            float(v.follow_up_shape),
            float(np.log1p(v.near_full.max(initial=0.0))),
        ]
    )
