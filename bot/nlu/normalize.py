"""Per-word normalization for the NLU pipeline.

Each word of the ORIGINAL message keeps its offsets; what changes is the form the featurizers
see: canonical (NFC, one tone placement, lower case), chat abbreviations expanded, accents folded.
So "đổi bằng lái", "doi bang lai" and "đổi bằng lái" in NFD all produce the same features.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from procedures_db.text import canonical, fold_accents, nfc
from procedures_db.vocabulary import load_vocabulary

# Procedure codes (1.001193) stay one word; otherwise letters/digits plus combining marks, so a
# message typed in NFD (decomposed accents) splits at the same places as its NFC form.
_WORD_RE = re.compile(r"\d+(?:[.,]\d+)+|[\w\u0300-\u036f]+")

# "a" ends many polite messages typed without accents ("cho em hoi a" = "... ạ"): as the last
# word it is the particle "ạ", not the abbreviation of "anh" (abbreviations.yml final_particles).


@dataclass(frozen=True)
class Word:
    start: int
    end: int
    surface: str  # accent-folded, lower case form of the word as typed
    lemma: str  # accent-folded form after chat-abbreviation expansion (may hold a space)


def normalize_word(word: str, *, last: bool = False) -> tuple[str, str]:
    """(surface, lemma) of one word: "Đc" -> ("dc", "duoc"), "ko" -> ("ko", "khong")."""
    canon = canonical(word)
    surface = fold_accents(canon)
    vocabulary = load_vocabulary()
    if last and canon in vocabulary.final_particles:
        return surface, "a"
    return surface, fold_accents(vocabulary.chat_abbreviations.get(canon, canon))


def split_words(text: str) -> list[Word]:
    """Words of `text` with offsets into `text` itself (NFC or not)."""
    matches = list(_WORD_RE.finditer(text or ""))
    words = []
    for index, match in enumerate(matches):
        surface, lemma = normalize_word(match.group(0), last=index == len(matches) - 1)
        words.append(Word(match.start(), match.end(), surface, lemma))
    return words


def normalized_text(text: str) -> str:
    """The whole message as the featurizers see it (for logs and tests)."""
    return " ".join(word.lemma for word in split_words(nfc(text)))
