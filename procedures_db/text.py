"""Vietnamese text normalization shared by search, the importer and the NLU pipeline.

Citizens type with or without accents, in NFC or NFD, with old ("hòa") or new ("hoà") tone
placement, and with chat abbreviations. Everything that compares text goes through here.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from procedures_db.vocabulary import load_vocabulary

# Combining tone marks (NFD): grave, acute, hook above, tilde, dot below.
_TONE_MARKS = {"\u0300", "\u0301", "\u0309", "\u0303", "\u0323"}
_VOWELS = set("aeiouyăâêôơư")


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@lru_cache(maxsize=65536)  # a message's syllables repeat; each is fixed once
def _syllable_tone_fix(syllable: str) -> str:
    """Move a tone mark to the traditional position in open oa/oe/uy syllables.

    "hoà" -> "hòa", "thuỷ" -> "thủy", "khoẻ" -> "khỏe"; "hoàn", "quý" stay as they are.
    """
    decomposed = unicodedata.normalize("NFD", syllable)
    tones = [ch for ch in decomposed if ch in _TONE_MARKS]
    if len(tones) != 1:
        return syllable
    bare = nfc("".join(ch for ch in decomposed if ch not in _TONE_MARKS))
    lower = bare.lower()
    match = re.search(r"(o[ae]|uy)$", lower)
    if not match or (lower.startswith(("qu", "gi")) and match.group(1) == "uy"):
        return syllable
    start = match.start()
    if start > 0 and lower[start - 1] in _VOWELS:
        return syllable
    target = start  # traditional placement: first vowel of the pair
    with_tone = unicodedata.normalize("NFD", bare[target]) + tones[0]
    return bare[:target] + nfc(with_tone) + bare[target + 1 :]


_WORD_RE = re.compile(r"\w+", re.UNICODE)


def fix_tone_placement(text: str) -> str:
    return _WORD_RE.sub(lambda m: _syllable_tone_fix(m.group(0)), text)


def canonical(text: str) -> str:
    """NFC, one tone-placement convention, lower case, single spaces."""
    # Lower case first: a letter whose lower case is longer ("İ" -> "i" + a combining dot) would
    # shift the tone fix's positions. NFC again: a tone moved within a word can precede a stray
    # combining mark left outside it.
    text = nfc(fix_tone_placement(nfc(text or "").lower()))
    return " ".join(text.split())


class _KeepUnlessMark(dict):
    """A `str.translate` table that drops combining marks (category Mn) and keeps every other
    character. Characters of the alphabets before CJK are remembered (later lookups stay in C);
    others are looked up each time, so strange input cannot grow the table."""

    def __missing__(self, code: int) -> int | None:
        kept = None if unicodedata.category(chr(code)) == "Mn" else code
        if code < 0x3000:
            self[code] = kept
        return kept


_DROP_MARKS = _KeepUnlessMark()


def fold_accents(text: str) -> str:
    """Remove all Vietnamese diacritics: "Đổi bằng lái" -> "Doi bang lai"."""
    stripped = unicodedata.normalize("NFD", text or "").translate(_DROP_MARKS)
    return nfc(stripped).replace("đ", "d").replace("Đ", "D")


def folded(text: str) -> str:
    """Lower case, accent-free, punctuation-free form used for matching."""
    return " ".join(tokens(text))


_TOKEN_RE = re.compile(r"[a-z0-9]+(?:\.[0-9]+)*")


def tokens(text: str) -> list[str]:
    """Accent-folded lower-case tokens; procedure codes like 1.001193 stay one token."""
    return _TOKEN_RE.findall(fold_accents(nfc(text or "")).lower())


_CHAT_TOKEN_RE = re.compile(r"\d+(?:\.\d+)+|[\wđĐ]+|[^\w\s]", re.UNICODE)


def expand_chat_abbreviations(text: str) -> str:
    """Replace chat shorthand (ko, dc, bn, j, ...: abbreviations.yml) by full words; keep
    everything else."""
    abbreviations = load_vocabulary().chat_abbreviations

    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        return abbreviations.get(word.lower(), word)

    return re.sub(r"[\wđĐ]+", replace, text)


def normalize_message(text: str) -> str:
    """The form of a chat message the NLU pipeline sees."""
    return " ".join(_CHAT_TOKEN_RE.findall(expand_chat_abbreviations(canonical(text))))
