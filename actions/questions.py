"""What the citizen asks: the facts wanted, a choice among candidates, the procedure words.

Everything here works on accent-folded tokens of the normalized message, so "o dau", "ở đâu"
and "ở đâu?" are the same cue.
"""

from __future__ import annotations

import enum
import logging
import re

from procedures_db import asked
from procedures_db.text import canonical, fold_accents, normalize_message, tokens
from procedures_db.vocabulary import load_vocabulary

logger = logging.getLogger(__name__)


class Fact(str, enum.Enum):
    OVERVIEW = "overview"
    PLACE = "place"
    TIME = "time"
    FEE = "fee"
    DOCUMENTS = "documents"
    STEPS = "steps"
    REQUIREMENTS = "requirements"
    ONLINE = "online"


INTENT_FACTS: dict[str, Fact] = {intent: Fact(fact) for intent, fact in asked.INTENT_FACTS.items()}


def _folded(phrase: str) -> str:
    return " ".join(tokens(phrase))


# The question phrases, cues and choice words: procedures_db/vocabulary/question_phrases.yml and
# choices.yml (the same question-phrase list search drops).
_VOCABULARY = load_vocabulary()
# Accent-folded cue phrases that reveal a further question in the same message.
FACT_CUES: dict[Fact, tuple[str, ...]] = {
    Fact(fact): tuple(_folded(phrase) for phrase in phrases)
    for fact, phrases in _VOCABULARY.fact_cues().items()
}
# "nộp online mất bao lâu" asks the time of the online method, not the online level: an
# online word asks for the level only in a yes/no question or with the level's own words.
_ONLINE_LEVEL_WORDS = tuple(_folded(word) for word in _VOCABULARY.online_level_words)
_ORDINALS = {_folded(word): index for word, index in _VOCABULARY.ordinals.items()}
_CHOICE_FILLERS = frozenset(w for phrase in _VOCABULARY.choice_fillers for w in tokens(phrase))


def _alternation(phrases: tuple[str, ...]) -> str:
    folded_phrases = sorted({_folded(p) for p in phrases if _folded(p)}, key=len, reverse=True)
    return "|".join(r"\s+".join(map(re.escape, p.split())) for p in folded_phrases)


_OPENERS = _alternation(_VOCABULARY.correction_openers)
_RESTATEMENTS = _alternation(_VOCABULARY.restatements)
_CORRECTION_RE = re.compile(
    rf"^\W*(?:(?:{_OPENERS})\b|(?:{_alternation(_VOCABULARY.denials)})\s*"
    rf"(?:[,.;:!]+(?:\s*(?:{_RESTATEMENTS})\b)?|(?:{_RESTATEMENTS})\b|$|(?=(?:{_OPENERS})\b)))"
)
_STOP_WORDS = frozenset(_folded(word) for word in _VOCABULARY.stop_words)


def folded_words(text: str) -> list[str]:
    """Accent-folded tokens of the normalized message (chat abbreviations expanded)."""
    return tokens(normalize_message(text))


def _position(words: list[str], phrase: str) -> int:
    """Where the phrase starts in the message, -1 when absent (whole words only)."""
    return f" {' '.join(words)} ".find(f" {phrase} ")


def _contains(words: list[str], phrase: str) -> bool:
    return _position(words, phrase) >= 0


def _first_cue(words: list[str], cues: tuple[str, ...]) -> int:
    found = [p for p in (_position(words, cue) for cue in cues) if p >= 0]
    return min(found) if found else -1


def learned_fact(text: str) -> Fact | None:
    """The asked-fact model's best fact; None (the intent decides) when no model is built."""
    try:
        return Fact(asked.load_fact_model().best(text)[0])
    except asked.FactModelMissing as error:
        logger.warning("%s; the intent names the asked fact", error)
        return None


def facts_asked(intent: str | None, text: str, in_conversation: bool = False) -> list[Fact]:
    """The asked fact first (the intent's; in a conversation's later turns the learned model's),
    then every other fact cue words ask for, in message order."""
    words = folded_words(text)
    positions = {fact: _first_cue(words, cues) for fact, cues in FACT_CUES.items()}
    found = sorted((f for f, p in positions.items() if p >= 0), key=positions.__getitem__)
    if Fact.ONLINE in found and not any(_contains(words, w) for w in _ONLINE_LEVEL_WORDS):
        found.remove(Fact.ONLINE)
    # A button's payload ("/ask_documents{...}") names its intent exactly: no model reads it.
    learned = learned_fact(text) if in_conversation and not text.startswith("/") else None
    primary = learned or INTENT_FACTS.get(intent or "")
    facts = [primary] if primary and primary is not Fact.OVERVIEW else []
    facts += [fact for fact in found if fact not in facts]
    return facts or [Fact.OVERVIEW]


def mentions_level_number(text: str) -> bool:
    """The citizen speaks of "mức độ 3/4" (the old online-service scale)."""
    return _contains(folded_words(text), "muc do")


_WORD_RE = re.compile(r"[^\W_]+(?:\.\d+)*", re.UNICODE)


def _phrase_table(accented: bool) -> dict[tuple[str, ...], int]:
    """Question phrases and fillers, matched with accents when the message has them, else
    accent-folded (then without the words whose folded form is also a content word)."""
    phrases = list(_VOCABULARY.question_phrases)
    if accented:
        phrases += _VOCABULARY.accented_only
    table = {}
    for phrase in phrases:
        words = canonical(phrase).split() if accented else tokens(phrase)
        table[tuple(words)] = len(words)
    return table


_PHRASES = {accented: _phrase_table(accented) for accented in (True, False)}
_LONGEST = max(len(key) for key in _PHRASES[True])


def procedure_phrase(text: str) -> str:
    """The message without question and filler words, accents kept: "đăng ký thường trú"."""
    words = _WORD_RE.findall(normalize_message(text))
    accented = any(fold_accents(word) != word for word in words)
    keys = words if accented else [fold_accents(word) for word in words]
    table, kept, index = _PHRASES[accented], [], 0
    while index < len(words):
        for size in range(min(_LONGEST, len(words) - index), 0, -1):
            if tuple(keys[index : index + size]) in table:
                index += size
                break
        else:
            kept.append(words[index])
            index += 1
    return " ".join(kept)


def name_words(text: str) -> tuple[set[str], bool]:
    """The words a typed pick names a procedure by ("cái thường trú"), without question,
    filler and choice words, accents kept when typed with them ("thuế" is not "thuê"), and
    whether they were."""
    phrase = procedure_phrase(text)
    accented = fold_accents(phrase) != phrase
    words = name_word_set(phrase, accented)
    kept = {w for w in words if fold_accents(w) not in _CHOICE_FILLERS and not w.isdigit()}
    return kept, accented


def name_word_set(name: str, accented: bool) -> set[str]:
    """A name's words as a typed pick is compared with them: with accents or folded."""
    name = canonical(name)
    return set(_WORD_RE.findall(name if accented else fold_accents(name)))


def procedure_words(text: str) -> list[str]:
    """Tokens that may name a procedure: the message without question and filler words."""
    return [w for w in tokens(procedure_phrase(text)) if not w.isdigit()]


def codes_in(text: str) -> list[str]:
    return _VOCABULARY.codes_in(text)


def correction_rest(text: str) -> str | None:
    """What a message that says the procedure just answered is not the one meant names instead
    ("không phải, ý em là cấp lại giấy khai sinh" -> "cấp lại giấy khai sinh"; choices.yml),
    as typed or with chat shorthand expanded ("ko phai y e la …"); None when it corrects
    nothing or names no procedure ("không phải, ý em là hỏi lệ phí" corrects the question)."""
    typed = canonical(text)
    for form in (typed, normalize_message(typed)):
        match = _CORRECTION_RE.match(fold_accents(form))
        if match:
            rest = form[match.end() :]
            named = [w for w in procedure_words(rest) if w not in _STOP_WORDS]
            return rest.strip() if named else None
    return None


def parse_choice(text: str, count: int) -> int | None:
    """0-based index of a typed choice ("2", "số 2", "cái thứ hai", "đầu tiên"), else None."""
    words = [w for w in tokens(text) if w not in _CHOICE_FILLERS]
    phrase = " ".join(words)
    if phrase == "dau tien" or (phrase == "dau" and "đầu" in text.lower()):
        # Bare "dau" folds "đầu" (the first) and "đâu" (where): "o dau" after a list asks
        # where, so only the accented word picks.
        index = 1
    elif phrase in ("cuoi cung", "cuoi"):
        index = count
    elif len(words) == 1 and words[0] in _ORDINALS:
        index = _ORDINALS[words[0]]
    else:
        return None
    return index - 1 if 1 <= index <= count else None
