"""Procedure search: the name index, and `search()`, the resolver's ranking for the staff page,
the API and the CLI.

`search()` ranks as the bot does (`procedures_db.resolver`, without a conversation). The name
index below is one of the resolver's feature sources (`name_search` queries it alone). Its
scoring (measured against alternatives in BENCHMARKS.md, "Search"):

1. A procedure code in the query ("3.000347", "mã 1.001193", "1.001193?") puts that procedure
   first with score 1.0.
2. The query is normalised like every other text (`procedures_db.text`: NFC/NFD, old/new tone
   placement, case, accents folded), chat shorthand is expanded, typos are corrected against the
   words of the procedure names (rapidfuzz), question words and chat fluff are dropped, and
   citizen words are rewritten into the words the names use (the vocabulary files,
   `procedures_db.vocabulary`).
3. Every procedure is scored by weighted coverage: the IDF weight of the query's words and word
   pairs found in its name (found only in its field: a quarter) over the weight of all query
   words and pairs, times 0.8 + 0.2 x the share of the name the query covers (so the general
   "Đăng ký khai sinh" beats "Đăng ký khai sinh có yếu tố nước ngoài"). A word the citizen typed
   with accents counts half where the name spells it with other accents (thuế is not thuê); a
   typo-corrected word counts 0.8; words that say why (bị mất, lần đầu) count 0.4; a word no
   name has ("karaoke") matches nothing but weighs half the rarest word's IDF in the total.
4. Small priors break ties the way a citizen means them: x0.95 for narrow variants ("có yếu tố
   nước ngoài", "lưu động", "khu vực biên giới", "cấp trung ương", specialised sectors) unless the
   query mentions them, x0.93 for each action the name adds to the query (xóa, cấp lại, thu hồi,
   ...), x0.985 for ministry-only procedures (citizens deal with the commune and the province).

Scores are in 0..1; a query equal to a name scores 1.0.

The index lives in memory, one per engine, built on first use from (code, name, field, levels,
online_level) and rebuilt when the data version changes (latest ImportRun id, latest procedure
id, procedure count), checked at most every `VERSION_CHECK_INTERVAL_S` seconds or forced with
`invalidate_index()`. Searching reads the index without changing it (apart from a small dict of
filter masks, whose single-key updates are atomic), so threads (asyncio.to_thread) can share it.
A message is read up to its first 64 words.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from functools import lru_cache
from typing import Generic, TypeVar

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from procedures_db.text import canonical, fold_accents, nfc
from procedures_db.vocabulary import load_vocabulary

VERSION_CHECK_INTERVAL_S = 1.0
T = TypeVar("T")

_FIELD_FACTOR = 0.25  # a query word found only in the procedure's field
_BIGRAM_FACTOR = 0.5  # a word pair counts half its own IDF
_TYPO_CONFIDENCE = 0.8  # a word we had to correct counts 0.8 of its weight when it matches
_SOFT_FACTOR = 0.4  # stop_words.yml soft_words
_MAX_PAIR_CORRECTIONS = 3
_MAX_TYPO_LENGTH = 20
_MAX_QUERY_WORDS = 64  # a chat message names its procedure well within this
_MAX_CACHED_MASKS = 256
_MAX_CACHED_PHRASES = 50_000
_ACTION_FACTOR = 0.93  # the name adds an action (xóa, cấp lại, ...) the query did not ask for
_NARROW_FACTOR = 0.95
_MINISTRY_ONLY_FACTOR = 0.985
_UNKNOWN_WORD_SHARE = 0.5  # of the rarest word's IDF, for a query word no name has
_ACCENT_CREDIT = 0.5  # a name word with other accents than the citizen typed (thuê for thuế)

_WORD_RE = re.compile(r"[^\W_]+(?:\.\d+)*", re.UNICODE)
_FOLDED_OK_RE = re.compile(r"[a-z0-9]+(?:\.[0-9]+)*")


@dataclass(frozen=True)
class SearchHit:
    code: str
    name: str
    score: float
    levels: list[str] = dataclass_field(default_factory=list)
    field: str | None = None
    online_level: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class IndexRow:
    """What the index needs of one procedure (independent of how it was loaded)."""

    code: str
    name: str
    field: str | None
    levels: tuple[str, ...]
    online_level: str | None


# ---------------------------------------------------------------------------------------------
# Text analysis shared by names and queries


@dataclass(frozen=True)  # hashable: `_term` is cached by its words
class _Word:
    folded: str
    accented: str | None  # None when typed without accents or produced by a rewrite
    corrected: bool = False  # typo-corrected
    rewritten: bool = False  # produced by a synonym table: never dropped or corrected
    hint: bool = False  # "~word" in a synonym: found in the field it counts as in the name


@lru_cache(maxsize=65536)
def _fold(word: str) -> str:
    return fold_accents(word).lower()


def _token(raw: str) -> str:
    folded = _fold(raw)
    if folded.isdigit():
        return folded.lstrip("0") or "0"  # "mức độ 02" == "mức 2"
    return folded


def _words(text: str, *, is_canonical: bool = False) -> list[_Word]:
    out = []
    for raw in _WORD_RE.findall(text if is_canonical else canonical(text)):
        folded = _token(raw)
        if _FOLDED_OK_RE.fullmatch(folded):
            out.append(_Word(folded, raw if raw != folded else None))
    return out


def _folded_words(text: str) -> list[str]:
    """Folded words of a synonym; "~" marks a hint word (kept on the word)."""
    return [
        ("~" if raw.startswith("~") else "") + _token(raw.lstrip("~"))
        for raw in re.findall(r"~?[^\W_]+(?:\.\d+)*", canonical(text))
    ]


def _replacement(value: str) -> list[str]:
    """Folded words; "a|b" (alternative phrases) stays one word "a|b" that scoring expands."""
    if "|" in value:
        return ["|".join(" ".join(_folded_words(alt)) for alt in value.split("|"))]
    return _folded_words(value)


@dataclass(frozen=True)
class _PhraseTable:
    """Folded phrase -> folded replacement words, with what a fast longest match needs."""

    phrases: dict[tuple[str, ...], list[str]]
    # Per word a phrase can start with, the lengths of its phrases, longest first.
    starts: dict[str, tuple[int, ...]]

    def words(self) -> set[str]:
        return {word for phrase in self.phrases for word in phrase}


def _phrase_table(table: dict[str, str]) -> _PhraseTable:
    phrases = {tuple(_folded_words(key)): _replacement(value) for key, value in table.items()}
    lengths: dict[str, set[int]] = {}
    for phrase in phrases:
        lengths.setdefault(phrase[0], set()).add(len(phrase))
    starts = {word: tuple(sorted(sizes, reverse=True)) for word, sizes in lengths.items()}
    return _PhraseTable(phrases, starts)


_VOCABULARY = load_vocabulary()
# A code in the query ranks its procedure first; with its label ("mã 1.001193") it names no words.
_CODE_RE = _VOCABULARY.code_re
_LABELLED_CODE_RE = _VOCABULARY.labelled_code_re
_CONCEPTS = _phrase_table(_VOCABULARY.concepts)
_CITIZEN = _phrase_table(_VOCABULARY.citizen_terms)
_QUESTIONS = _phrase_table(dict.fromkeys(_VOCABULARY.search_question_phrases(), ""))
_CHAT = {
    key: [_fold(w) for w in _WORD_RE.findall(value)]
    for key, value in _VOCABULARY.chat_abbreviations.items()
}
_DEFAULT_ACTION = _phrase_table(_VOCABULARY.default_action_terms)
_RESIDENCE = _phrase_table(_VOCABULARY.residence_terms)
_GOODS_FOLDED = {_fold(w) for w in _VOCABULARY.goods_words}
_STOP_WORDS = _VOCABULARY.stop_words
_STOP_FOLDED_SAFE = {_fold(w) for w in _STOP_WORDS} - _VOCABULARY.ambiguous_folded
_SOFT_WORDS = _VOCABULARY.soft_words
_SOFT_FOLDED = {_fold(w) for w in _SOFT_WORDS}
_GENERIC_ACTION_WORDS = {
    word for phrase in _VOCABULARY.generic_action_words for word in _folded_words(phrase)
}
_ACTIONS = {
    canonical(action): set(_folded_words(action)) - _GENERIC_ACTION_WORDS
    for action in _VOCABULARY.actions
}
# "Thủ tục đăng ký khai sinh": a name's leading "Thủ tục" names nothing.
_NAME_PREFIXES = [tuple(_folded_words(prefix)) for prefix in _VOCABULARY.name_prefixes]
# Folded name marker -> the folded query phrases that show the citizen means it.
_NARROW_VARIANTS = {
    " ".join(_folded_words(marker)): tuple(" ".join(_folded_words(p)) for p in phrases)
    for marker, phrases in _VOCABULARY.narrow_variants.items()
}


def _rewrite(words: list[_Word], table: _PhraseTable) -> list[_Word]:
    """Longest-match phrase replacement, one left-to-right pass (outputs are not re-read)."""
    out: list[_Word] = []
    folded = [w.folded for w in words]
    i = 0
    while i < len(words):
        sizes = table.starts.get(folded[i])
        if sizes is None:
            out.append(words[i])
            i += 1
            continue
        for size in sizes:
            key = tuple(folded[i : i + size])
            if len(key) == size and key in table.phrases:
                replacement = table.phrases[key]
                out.extend(
                    _Word(token.lstrip("~"), None, rewritten=True, hint=token.startswith("~"))
                    for token in replacement
                )
                i += size
                break
        else:
            out.append(words[i])
            i += 1
    return out


def _name_tokens(words: list[_Word]) -> list[str]:
    tokens = [w.folded for w in _rewrite(words, _CONCEPTS)]
    for prefix in _NAME_PREFIXES:
        if tuple(tokens[: len(prefix)]) == prefix:
            return tokens[len(prefix) :]
    return tokens


@lru_cache(maxsize=1024)
def _field_terms(field: str) -> frozenset[str]:
    tokens = _name_tokens(_words(field))
    return frozenset(tokens) | frozenset(_bigrams(tokens))


def _marker_present(markers: Iterable[str], texts: list[str], factor: float) -> dict:
    """Per marker, a per-procedure multiplier: `factor` where the text contains it, else 1."""
    return {
        marker: np.where([f" {marker} " in text for text in texts], factor, 1.0)
        for marker in markers
    }


def _bigrams(tokens: Sequence[str]) -> list[str]:
    return [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


def _is_stop(word: _Word) -> bool:
    if word.rewritten:
        return False
    if word.accented is not None:
        return word.accented in _STOP_WORDS
    return word.folded in _STOP_FOLDED_SAFE


@dataclass(frozen=True)
class _Term:
    text: str  # index key: a word, "word word" (a pair), or "phrase|phrase" (alternatives)
    factor: float  # weight relative to IDF (pairs, soft words)
    confidence: float = 1.0  # < 1 for typo-corrected words: they can never score fully
    accents: str | None = None  # the words as the citizen typed them, when with accents
    hint: bool = False  # a field match counts fully (see _Word.hint)

    @property
    def alternatives(self) -> list[str]:
        return self.text.split("|")

    @property
    def is_word(self) -> bool:
        return " " not in self.text and "|" not in self.text


@lru_cache(maxsize=65536)  # a message's words recur, and the same words recur across messages
def _term(words: tuple[_Word, ...]) -> _Term:
    """A query word, or a pair of adjacent words (weighted by _BIGRAM_FACTOR)."""
    factor = min(_word_factor(w) for w in words)
    if len(words) == 2:
        factor *= _BIGRAM_FACTOR
    return _Term(
        " ".join(w.folded for w in words),
        factor,
        _TYPO_CONFIDENCE if any(w.corrected for w in words) else 1.0,
        _accent_key(words),
        len(words) == 1 and words[0].hint,
    )


def _accent_key(words: Sequence[_Word]) -> str | None:
    """The accented spelling of a word or pair, when it has accents (None: nothing to check)."""
    if any(w.rewritten or w.corrected for w in words) or not any(w.accented for w in words):
        return None
    return " ".join(w.accented or w.folded for w in words)


def _name_accent_keys(words: list[_Word]) -> set[str]:
    """The accented words and word pairs of a name, as `_accent_key` spells them."""
    spelled = [w.accented or w.folded for w in words]
    keys = {w.accented for w in words if w.accented}
    for i in range(len(words) - 1):
        if words[i].accented or words[i + 1].accented:
            keys.add(f"{spelled[i]} {spelled[i + 1]}")
    return keys


def _mentions_action(words: list[_Word]) -> bool:
    folded = {w.folded for w in words}
    return any(words_of_action <= folded for words_of_action in _ACTIONS.values())


def _word_factor(word: _Word) -> float:
    soft = (
        word.accented in _SOFT_WORDS if word.accented is not None else word.folded in _SOFT_FOLDED
    )
    return _SOFT_FACTOR if soft else 1.0


def _drop_purpose_clause(words: list[_Word]) -> list[_Word]:
    """'... lý lịch tư pháp để đi xuất khẩu lao động': the purpose names no procedure."""
    content_before = 0
    for i, word in enumerate(words):
        if word.accented == "để" and content_before >= 2:
            return words[:i]
        content_before += not _is_stop(word)
    return words


# ---------------------------------------------------------------------------------------------
# The index


class _Index:
    def __init__(self, rows: Iterable[IndexRow]) -> None:
        self.rows = list(rows)
        self.by_code = {row.code: i for i, row in enumerate(self.rows)}
        self.raw_bigrams: set[str] = set()  # word pairs as written (typo correction)
        self.name_bigrams: set[str] = set()  # word pairs after CONCEPTS (split-word repair)
        raw_vocab: dict[str, int] = {}
        accent_postings: dict[str, list[int]] = {}
        name_terms, folded_names, canonical_names = [], [], []
        for i, row in enumerate(self.rows):
            canonical_name = canonical(row.name)
            words = _words(canonical_name, is_canonical=True)
            tokens = _name_tokens(words)
            self.name_bigrams.update(_bigrams(tokens))
            name_terms.append(set(tokens) | set(_bigrams(tokens)))
            for w in words:
                raw_vocab[w.folded] = raw_vocab.get(w.folded, 0) + 1
            self.raw_bigrams.update(_bigrams([w.folded for w in words]))
            for key in _name_accent_keys(words):
                accent_postings.setdefault(key, []).append(i)
            folded_names.append(f" {' '.join(w.folded for w in words)} ")
            canonical_names.append(f" {' '.join(_WORD_RE.findall(canonical_name))} ")
        self._build_postings(name_terms, [_field_terms(row.field or "") for row in self.rows])
        # Per accented word or pair, the procedures that spell it so (ascending ids).
        self.accent_postings = {w: np.array(ids) for w, ids in accent_postings.items()}
        self.level_prior = np.array(
            [
                _MINISTRY_ONLY_FACTOR
                if row.levels and not {"xa", "tinh"} & set(row.levels)
                else 1.0
                for row in self.rows
            ]
        )
        self.narrow = _marker_present(_NARROW_VARIANTS, folded_names, _NARROW_FACTOR)
        self.actions = _marker_present(_ACTIONS, canonical_names, _ACTION_FACTOR)
        # Typo correction targets: frequent words first, so ties go to the common word.
        self.vocab = sorted(raw_vocab, key=lambda w: -raw_vocab[w])
        self.vocab_set = set(self.vocab)
        self.known = (
            self.vocab_set
            | _CITIZEN.words()
            | _QUESTIONS.words()
            | {_fold(w) for w in _STOP_WORDS}
            | set(_CHAT)
        )
        self._masks: dict[tuple, np.ndarray] = {}
        # Per (phrase, hint, accents typed): its posting's values as `_phrase_part` weighs them.
        self._phrase_values: dict[tuple[str, bool, str | None], tuple] = {}
        # Per set of narrow markers and actions the query lacks: the product of their priors.
        self._priors: dict[tuple, np.ndarray] = {}

    def _build_postings(self, name_terms: list[set[str]], field_terms: list[frozenset]) -> None:
        """IDF over names and fields; per term the procedures having it and how (name: 1.0,
        field only: _FIELD_FACTOR); per procedure the IDF sum of its name's words."""
        n = len(name_terms)
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for i, (names, fields) in enumerate(zip(name_terms, field_terms, strict=True)):
            for term in names | fields:
                ids, factors = postings.setdefault(term, ([], []))
                ids.append(i)
                factors.append(1.0 if term in names else _FIELD_FACTOR)
        self.idf = {
            t: math.log(1 + (n - len(ids) + 0.5) / (len(ids) + 0.5))
            for t, (ids, _) in postings.items()
        }
        self.postings = {
            t: (np.array(ids, dtype=np.int32), np.array(fs)) for t, (ids, fs) in postings.items()
        }
        self.unknown_word_weight = _UNKNOWN_WORD_SHARE * max(self.idf.values(), default=0.0)
        self.name_weight = np.array(
            # Summed in sorted order: a set's order changes with the hash seed, and so would
            # the last bits of the sum, and the order of names that tie.
            [sum(self.idf[t] for t in sorted(terms) if " " not in t) or 1.0 for terms in name_terms]
        )

    # -- query analysis -------------------------------------------------------------------

    def _correct(self, word: _Word) -> list[_Word]:
        token = word.folded
        if token in self.known or not token.isalpha() or len(token) > _MAX_TYPO_LENGTH:
            return [word]
        for cut in range(2, len(token) - 1):
            left, right = token[:cut], token[cut:]
            if f"{left} {right}" in self.name_bigrams:
                return [_Word(left, None, True), _Word(right, None, True)]
        if len(token) < 4:  # too short to tell a typo from another word
            return [word]
        max_distance = 1 if len(token) <= 5 else 2
        match = process.extractOne(
            token, self.vocab, scorer=Levenshtein.distance, score_cutoff=max_distance
        )
        if match is None:
            return [word]
        return [_Word(match[0], None, True)]

    def _correct_pairs(self, words: list[_Word]) -> list[_Word]:
        """Fix a typo that is itself a word ("ho chiu" -> "ho chieu") when one edit turns an
        unknown word pair into a pair that procedure names use."""
        words = list(words)
        paired = [False] * len(words)
        for i in range(len(words) - 1):
            if f"{words[i].folded} {words[i + 1].folded}" in self.raw_bigrams:
                paired[i] = paired[i + 1] = True
        attempts = 0
        for i in range(len(words) - 1):
            # Only a word that pairs with neither neighbour is suspect.
            if (paired[i] and paired[i + 1]) or any(
                w.corrected or w.rewritten for w in words[i : i + 2]
            ):
                continue
            if attempts == _MAX_PAIR_CORRECTIONS:
                break
            attempts += 1
            for position, other in ((i + 1, i), (i, i + 1)):
                if paired[position]:
                    continue
                candidate = self._pair_candidate(
                    words[position], words[other].folded, position < other
                )
                if candidate:
                    words[position] = _Word(candidate, None, True)
                    paired[position] = paired[other] = True
                    break
        return words

    def _pair_candidate(self, word: _Word, neighbour: str, word_first: bool) -> str | None:
        # A word typed with accents was typed with care: not a typo.
        if word.accented or len(word.folded) < 3 or word.folded not in self.vocab_set:
            return None
        word = word.folded
        for candidate, _distance, _ in process.extract(
            word, self.vocab, scorer=Levenshtein.distance, score_cutoff=1, limit=8
        ):
            pair = f"{candidate} {neighbour}" if word_first else f"{neighbour} {candidate}"
            if candidate != word and pair in self.raw_bigrams:
                return candidate
        return None

    def analyze(self, query: str, *, keep_purpose: bool = False) -> list[_Term]:
        """The query's terms. `keep_purpose` (the resolver, reading whole messages): keep a
        purpose clause ("mẹ tôi mất thì đến đâu để đăng ký khai tử"), which a search box drops.
        (Reading stories past 64 words measured no better: the resolver reads their question
        sentence apart.)"""
        # Citizen phrases first, so chat shorthand cannot split them ("so hong" is sổ hồng, not
        # "sổ không"), then shorthand and typos on the rest, then the phrases again.
        words: list[_Word] = []
        text = _LABELLED_CODE_RE.sub(" ", canonical(query))
        typed = _words(text, is_canonical=True)[:_MAX_QUERY_WORDS]
        for word in _rewrite(typed, _CITIZEN):
            expansion = _CHAT.get(word.folded)
            if word.rewritten or word.accented is not None:
                words.append(word)
            elif expansion:
                words.extend(_Word(t, None) for t in expansion)
            else:
                words.extend(self._correct(word))
        words = _rewrite(words, _QUESTIONS)
        if not keep_purpose:
            words = _drop_purpose_clause(words)
        if not _GOODS_FOLDED & {w.folded for w in words}:
            words = _rewrite(words, _RESIDENCE)
        if not _mentions_action(words):
            words = _rewrite(words, _DEFAULT_ACTION)
        words = _rewrite(_rewrite(words, _CITIZEN), _CONCEPTS)
        words = [w for w in words if not _is_stop(w)]
        words = _rewrite(self._correct_pairs(words), _CONCEPTS)
        terms: dict[str, _Term] = {}
        for i, word in enumerate(words):
            if word.folded not in terms:  # the first occurrence decides, as typed
                terms[word.folded] = _term((word,))
            if i + 1 < len(words) and "|" not in word.folded + words[i + 1].folded:
                text = f"{word.folded} {words[i + 1].folded}"
                if text not in terms:
                    terms[text] = _term((word, words[i + 1]))
        return list(terms.values())

    # -- scoring --------------------------------------------------------------------------

    def mask(self, field: str | None, level: str | None, online_level: str | None) -> np.ndarray:
        key = (field and canonical(field), level, online_level)
        cached = self._masks.get(key)
        if cached is None:
            cached = np.array(
                [
                    (key[0] is None or canonical(row.field or "") == key[0])
                    and (level is None or level in row.levels)
                    and (online_level is None or row.online_level == online_level)
                    for row in self.rows
                ],
                dtype=bool,
            )
            if len(self._masks) >= _MAX_CACHED_MASKS:  # filters come from web requests
                self._masks.clear()
            self._masks[key] = cached
        return cached

    def _phrase_weight(self, phrase: str) -> float:
        """A word: its IDF. A pair: _BIGRAM_FACTOR x its IDF. Alternatives: the sum of words."""
        if " " not in phrase:
            return self.idf[phrase]
        return _BIGRAM_FACTOR * self.idf[phrase]

    def _alternatives_weight(self, phrase: str) -> float:
        return sum(self.idf.get(word, 0.0) for word in phrase.split())

    def score(self, terms: list[_Term], query_tokens: set[str], query_text: str) -> np.ndarray:
        """Per procedure, in 0..1. `query_text`: the analysed words, space-padded."""
        n = len(self.rows)
        matched = np.zeros(n)
        name_matched = np.zeros(n)  # IDF of the name's own words the query covers
        sparse_parts: tuple[list, list, list, list] = ([], [], [], [])
        total = 0.0
        for term in terms:
            alternatives = [a for a in term.alternatives if a in self.postings]
            if not alternatives:
                if term.is_word and term.text.isalpha():
                    # A word no procedure name has ("karaoke"): the match is that much weaker.
                    total += term.factor * self.unknown_word_weight
                continue
            group = len(term.alternatives) > 1
            if not group:
                # One phrase (most terms): sparse over its posting, summed once below.
                total += self._phrase_part(term, alternatives[0], sparse_parts)
                continue
            best = np.zeros(n)
            best_name = np.zeros(n)
            weights = []
            for phrase in alternatives:
                ids, factors = self.postings[phrase]
                if term.hint:
                    factors = np.ones(len(ids))
                weight = self._alternatives_weight(phrase) if group else self._phrase_weight(phrase)
                weights.append(weight)
                best[ids] = np.maximum(best[ids], weight * factors)
                if group or term.is_word:
                    in_name = self._alternatives_weight(phrase) * (factors == 1.0)
                    best_name[ids] = np.maximum(best_name[ids], in_name)
            if term.accents:
                best[ids[self._spelled_otherwise(term.accents, ids)]] *= _ACCENT_CREDIT
            total += term.factor * max(weights)
            matched += term.factor * term.confidence * best
            name_matched += best_name
        for ids, values, into in ((0, 1, matched), (2, 3, name_matched)):
            if sparse_parts[ids]:
                into += np.bincount(
                    np.concatenate(sparse_parts[ids]),
                    weights=np.concatenate(sparse_parts[values]),
                    minlength=n,
                )
        if total == 0.0:
            return matched
        precision = np.minimum(name_matched / self.name_weight, 1.0)
        scores = matched / total * (0.8 + 0.2 * precision)
        return scores * self._prior(query_tokens, query_text)

    def _prior(self, query_tokens: set[str], query_text: str) -> np.ndarray:
        """Per procedure, the product of the priors of the narrow variants and the actions the
        query does not name, and of the level prior (few distinct products: cached)."""
        narrow = tuple(
            marker
            for marker in self.narrow
            if not any(f" {phrase} " in query_text for phrase in _NARROW_VARIANTS[marker])
        )
        actions = tuple(a for a in self.actions if not query_tokens & _ACTIONS[a])
        key = (narrow, actions)
        prior = self._priors.get(key)
        if prior is None:
            prior = self.level_prior.copy()
            for marker in narrow:
                prior *= self.narrow[marker]
            for action in actions:
                prior *= self.actions[action]
            if len(self._priors) >= _MAX_CACHED_MASKS:
                self._priors.clear()
            self._priors[key] = prior
        return prior

    def _phrase_part(self, term: _Term, phrase: str, parts: tuple[list, list, list, list]) -> float:
        """`score` for a term of one phrase: its posting's values, appended to `parts` (ids,
        values, name ids, name values); returns its weight."""
        ids, weight, best, in_name = self._phrase_arrays(phrase, term.hint, term.accents)
        parts[0].append(ids)
        parts[1].append(term.factor * term.confidence * best)
        if term.is_word:
            parts[2].append(ids)
            parts[3].append(in_name)
        return term.factor * weight

    def _phrase_arrays(self, phrase: str, hint: bool, accents: str | None) -> tuple:
        """A phrase's posting ids, weight, values (less where the names spell it with other
        accents than typed) and name-word values: the same for every query, so cached."""
        key = (phrase, hint, accents)
        cached = self._phrase_values.get(key)
        if cached is None:
            ids, factors = self.postings[phrase]
            if hint:
                factors = np.ones(len(ids))
            weight = self._phrase_weight(phrase)
            best = weight * factors
            if accents:
                best = np.where(self._spelled_otherwise(accents, ids), best * _ACCENT_CREDIT, best)
            in_name = self._alternatives_weight(phrase) * (factors == 1.0)
            cached = (ids, weight, best, in_name)
            if len(self._phrase_values) >= _MAX_CACHED_PHRASES:  # accents come from citizens
                self._phrase_values.clear()
            self._phrase_values[key] = cached
        return cached

    def _spelled_otherwise(self, accents: str, ids: np.ndarray) -> np.ndarray:
        """Of the procedures in `ids` (a word's or pair's posting), a mask of those whose name
        does not have the word or pair with the accents the citizen typed."""
        spelled = self.accent_postings.get(accents)
        if spelled is None:
            return np.ones(len(ids), dtype=bool)
        # Membership by binary search in the ascending posting (np.isin sorts both every call).
        at = np.minimum(np.searchsorted(spelled, ids), len(spelled) - 1)
        return spelled[at] != ids

    def read(self, query: str) -> tuple[np.ndarray, list[str]]:
        """For the resolver, in one analysis: per procedure the name score of `query` (codes
        aside), and the analysed words (synonyms, shorthand, typos resolved) with the word pairs
        that the record index is searched with."""
        terms = self.analyze(query, keep_purpose=True)
        if not terms:
            return np.zeros(len(self.rows)), []
        query_tokens = {word for t in terms for a in t.alternatives for word in a.split()}
        query_text = f" {' '.join(t.text for t in terms if t.is_word)} "
        return self.score(terms, query_tokens, query_text), _index_terms(terms)

    def terms(self, query: str) -> list[str]:
        """What `read` searches the record indexes with, without scoring the names."""
        return _index_terms(self.analyze(query, keep_purpose=True))

    def hit(self, i: int, score: float) -> SearchHit:
        row = self.rows[i]
        return SearchHit(
            code=row.code,
            name=row.name,
            score=round(min(max(score, 0.0), 1.0), 4),
            levels=list(row.levels),
            field=row.field,
            online_level=row.online_level,
        )

    def search(
        self,
        query: str,
        limit: int,
        field: str | None,
        level: str | None,
        online_level: str | None,
    ) -> list[SearchHit]:
        allowed = self.mask(field, level, online_level)
        hits = []
        for code in dict.fromkeys(_CODE_RE.findall(query)):
            i = self.by_code.get(code)
            if i is not None and allowed[i]:
                hits.append(self.hit(i, 1.0))
        terms = self.analyze(query)
        if not terms:
            if hits or (field is None and level is None and online_level is None):
                return hits[:limit]
            ids = sorted(np.flatnonzero(allowed), key=lambda i: self.rows[i].name)
            return [self.hit(i, 0.0) for i in ids[:limit]]
        query_tokens = {word for t in terms for a in t.alternatives for word in a.split()}
        query_text = f" {' '.join(t.text for t in terms if t.is_word)} "
        scores = self.score(terms, query_tokens, query_text)
        scores[~allowed] = 0.0
        for hit in hits:
            scores[self.by_code[hit.code]] = 0.0
        wanted = max(limit - len(hits), 0)
        candidates = np.flatnonzero(scores > 0)
        if wanted and len(candidates):
            top = candidates[np.argsort(-scores[candidates], kind="stable")][:wanted]
            # Equal scores: stable order by code keeps results reproducible.
            top = sorted(top, key=lambda i: (-round(scores[i], 6), self.rows[i].code))
            hits.extend(self.hit(i, float(scores[i])) for i in top)
        return hits[:limit]


def _index_terms(terms: list[_Term]) -> list[str]:
    """The analysed words (a term's alternatives split into words), then the phrases."""
    words: list[str] = []
    pairs: list[str] = []
    for term in terms:
        if term.is_word:
            words.append(term.text)
        elif "|" in term.text:
            words.extend(w for alt in term.alternatives for w in alt.split())
        else:
            pairs.append(term.text)
    return words + pairs


def doc_tokens(text: str) -> list[str]:
    """Folded tokens of any record text, spelled as the index spells names (CONCEPTS applied)."""
    return _name_tokens(_words(text))


def build_index(rows: Iterable[IndexRow]) -> _Index:
    """The index over plain rows, whatever loaded them; `search()` builds one per engine.

    `build_index(rows).search(query, limit, field, level, online_level)` ranks like `search()`.
    """
    return _Index(rows)


# ---------------------------------------------------------------------------------------------
# Per-engine cache


@dataclass
class _CacheEntry(Generic[T]):
    value: T
    version: tuple
    checked_at: float


class EngineCache(Generic[T]):
    """Per engine, a value built from the database (an index), rebuilt when the data version
    changes; the version is checked at most every `VERSION_CHECK_INTERVAL_S` seconds."""

    def __init__(self, build: Callable[[Engine], T]) -> None:
        self._build = build
        self._entries: weakref.WeakKeyDictionary[Engine, _CacheEntry[T]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def _fresh(self, entry: _CacheEntry[T] | None, now: float) -> bool:
        return entry is not None and now - entry.checked_at < VERSION_CHECK_INTERVAL_S

    def get(self, engine: Engine) -> T:
        now = time.monotonic()
        entry = self._entries.get(engine)
        if self._fresh(entry, now):
            return entry.value
        with self._lock:
            entry = self._entries.get(engine)
            if self._fresh(entry, now):
                return entry.value
            version = _data_version(engine)
            if entry is None or entry.version != version:
                entry = _CacheEntry(self._build(engine), version, now)
            else:
                entry.checked_at = now
            self._entries[engine] = entry
            return entry.value

    def invalidate(self, engine: Engine | None = None) -> None:
        with self._lock:
            if engine is None:
                self._entries.clear()
            else:
                self._entries.pop(engine, None)


def _data_version(engine: Engine) -> tuple:
    from procedures_db.models import ImportRun, Procedure

    # Every import run (even one that changed nothing) adds an ImportRun row; ids and the count
    # come from indexes, so this stays cheap (no scan of the wide procedures table).
    statement = select(
        select(func.max(ImportRun.id)).scalar_subquery(),
        select(func.max(Procedure.id)).scalar_subquery(),
        select(func.count(Procedure.id)).scalar_subquery(),
    )
    with engine.connect() as connection:
        return tuple(connection.execute(statement).one())


def _load_rows(engine: Engine) -> list[IndexRow]:
    from procedures_db.models import Procedure

    statement = select(
        Procedure.code, Procedure.name, Procedure.field, Procedure.levels, Procedure.online_level
    ).order_by(Procedure.code)
    with engine.connect() as connection:
        return [
            IndexRow(code, name, field, tuple(levels or ()), online_level)
            for code, name, field, levels, online_level in connection.execute(statement)
        ]


_indexes: EngineCache[_Index] = EngineCache(lambda engine: build_index(_load_rows(engine)))


def _index_for(engine: Engine) -> _Index:
    return _indexes.get(engine)


def invalidate_index(engine: Engine | None = None) -> None:
    """Forget the cached index (all engines when None); the next search rebuilds it."""
    _indexes.invalidate(engine)


# ---------------------------------------------------------------------------------------------
# Public API


def _engine(engine: Engine | None) -> Engine:
    from procedures_db.db import get_engine

    return engine if engine is not None else get_engine()


def name_search(
    query: str,
    limit: int = 10,
    *,
    engine: Engine | None = None,
    field: str | None = None,
    level: str | None = None,
    online_level: str | None = None,
) -> list[SearchHit]:
    """The name index alone (one source of the resolver's features, and its baseline).

    `query` may be a span ("đổi bằng lái") or a whole chat message; a procedure code in it comes
    first with score 1.0. Filters: `field` (lĩnh vực, accent/case-insensitive), `level`
    ("bo", "tinh", "xa", "khac"), `online_level` (OnlineLevel value). With filters and no
    searchable words, the filtered procedures are listed by name with score 0.
    """
    if limit < 1:
        return []
    return _index_for(_engine(engine)).search(query or "", limit, field, level, online_level)


def search(
    query: str,
    limit: int = 10,
    *,
    engine: Engine | None = None,
    field: str | None = None,
    level: str | None = None,
    online_level: str | None = None,
) -> list[SearchHit]:
    """Procedures for a citizen's words, best first, as the bot ranks them: the resolver
    (`procedures_db.resolver`) without conversation context; `score` is its probability.

    Filters as in `name_search`; with filters and no searchable words, the filtered procedures
    are listed by name with score 0. A typed code comes first.
    """
    if limit < 1:
        return []
    from procedures_db import resolver

    engine = _engine(engine)
    indexes = resolver.indexes_for(engine)
    allowed = indexes.names.mask(field, level, online_level)
    resolution = resolver.resolve(query or "", limit=limit, engine=engine, allowed=allowed)
    hits = [
        SearchHit(c.code, c.name, round(c.probability, 4), list(c.levels), c.field, c.online_level)
        for c in resolution.candidates
    ]
    typed = indexes.names.search(query or "", limit, field, level, online_level)
    codes = [h for h in typed if h.score >= 1.0 and _CODE_RE.search(query or "")]
    if codes:  # a typed code identifies its procedure
        hits = codes + [h for h in hits if h.code not in {c.code for c in codes}]
    if not hits and not indexes.names.analyze(query or ""):
        return typed  # filters only: the filtered procedures by name
    return hits[:limit]


_TITLE_MAX = 60
_LEVEL_SUFFIX_RE = re.compile(
    r"\s*\((?:thực hiện\s+)?(?:tại|ở)?\s*(cấp\s+[^)]*)\)\s*$", re.IGNORECASE
)
_TITLE_PREFIX_RE = re.compile(r"^[\s.:;,-]*(?:thủ tục\s*:?\s*)?", re.IGNORECASE)


def _title_parts(name: str) -> tuple[str, str]:
    """The name without "Thủ tục" and trailing punctuation, and its level suffix ("(cấp tỉnh)")."""
    text = _TITLE_PREFIX_RE.sub("", " ".join(nfc(name or "").split()))
    suffix = ""
    match = _LEVEL_SUFFIX_RE.search(text)
    if match:
        suffix = f" ({match.group(1).strip()})"
        text = text[: match.start()]
    text = text.rstrip(" .,;:")
    return (text[:1].upper() + text[1:], suffix)


def _cut(text: str, room: int) -> str:
    """`text` within `room` characters, cut at a word boundary with "…"."""
    if len(text) <= room:
        return text
    return text[: room - 1].rsplit(" ", 1)[0].rstrip(" ,;:-(") + "…"


def short_title(name: str) -> str:
    """A readable title of at most 60 characters for a chat button.

    Drops the "Thủ tục" prefix, shortens "(thực hiện tại cấp tỉnh)" to "(cấp tỉnh)" and keeps it
    (it is what tells same-named buttons apart), and cuts the rest at a word boundary with "…".
    """
    text, suffix = _title_parts(name)
    return (_cut(text, _TITLE_MAX - len(suffix)) + suffix)[:_TITLE_MAX]


def _common_prefix(a: list[str], b: list[str]) -> int:
    pairs = enumerate(zip(a, b, strict=False))  # up to the shorter one
    return next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))


def short_titles(names: Sequence[str]) -> list[str]:
    """`short_title` of each name, except that names whose titles would be equal (they differ
    after 60 characters) show the start, "…", and the words where they differ:
    "Cấp giấy phép khai thác nước… quy mô dưới 5.000 m3/ngày đêm"."""
    titles = [short_title(name) for name in names]
    groups: dict[str, list[int]] = {}
    for i, title in enumerate(titles):
        groups.setdefault(title, []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        parts = [_title_parts(names[i]) for i in members]
        words = [text.split() for text, _ in parts]
        for k, (i, (_text, suffix)) in enumerate(zip(members, parts, strict=True)):
            name_words = words[k]
            # Where this name parts from the most similar other one.
            same = max(_common_prefix(name_words, other) for j, other in enumerate(words) if j != k)
            tail = " ".join(name_words[same:])
            if not tail:
                continue
            room = _TITLE_MAX - len(suffix)
            tail = _cut(tail, room // 2)
            head = _cut(" ".join(name_words[:same]), room - len(tail) - 1)
            head = head if head.endswith("…") else head + "…"
            titles[i] = f"{head} {tail}{suffix}"[:_TITLE_MAX]
    return titles


__all__ = [
    "IndexRow",
    "SearchHit",
    "build_index",
    "doc_tokens",
    "invalidate_index",
    "name_search",
    "search",
    "short_title",
    "short_titles",
]
