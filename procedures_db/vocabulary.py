"""The citizen vocabulary: the one place its data files are read.

The words live in YAML files under `procedures_db/vocabulary/` (each file's header says how its
words are used): concepts, citizen terms, chat abbreviations, question phrases, stop words,
actions, narrow variants, choices, life events and the procedure-code pattern. A province adds
its own words without touching code: files of the same name in the folder named by the setting
`vocabulary_extra_dir` (env VOCABULARY_EXTRA_DIR) are merged over the shipped ones: a mapping's
entries are added or replace the shipped entry, a list's new items are appended, a text
(codes.yml) replaces the shipped one.

`load_vocabulary()` reads, validates and caches everything once per process; a bad file raises
`VocabularyError` naming the file, the entry and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from procedures_db.settings import get_settings

VOCABULARY_DIR = Path(__file__).resolve().parent / "vocabulary"

FACTS = ("place", "time", "fee", "documents", "steps", "requirements", "online", "overview")
NO_FACT = "none"


class VocabularyError(ValueError):
    """A vocabulary file that cannot be used; the message names file, entry and problem."""


@dataclass(frozen=True)
class Vocabulary:
    concepts: Mapping[str, str]
    name_prefixes: tuple[str, ...]  # a procedure name's leading words that name nothing
    citizen_terms: Mapping[str, str]
    default_action_terms: Mapping[str, str]
    residence_terms: Mapping[str, str]
    goods_words: frozenset[str]
    chat_abbreviations: Mapping[str, str]
    final_particles: frozenset[str]
    # phrase -> the fact it asks (FACTS) or None for a filler
    question_phrases: Mapping[str, str | None]
    kept_by_search: frozenset[str]
    accented_only: frozenset[str]
    online_level_words: tuple[str, ...]
    follow_up_openings: tuple[str, ...]  # "còn X?", "thế còn X?": the last question, about X
    follow_up_endings: tuple[str, ...]  # "X thì sao?"
    stop_words: frozenset[str]
    ambiguous_folded: frozenset[str]
    soft_words: frozenset[str]
    actions: tuple[str, ...]
    generic_action_words: tuple[str, ...]
    narrow_variants: Mapping[str, tuple[str, ...]]
    ordinals: Mapping[str, int]
    choice_fillers: tuple[str, ...]
    correction_openers: tuple[str, ...]
    denials: tuple[str, ...]
    restatements: tuple[str, ...]
    life_events: Mapping[str, str]
    code_pattern: str
    code_label_pattern: str
    code_re: re.Pattern[str]  # a code with boundaries: not inside a longer number
    labelled_code_re: re.Pattern[str]  # a code with its optional label ("mã số: 1.001193")

    def search_question_phrases(self) -> tuple[str, ...]:
        """The question phrases search drops (all but those whose folded form names things)."""
        return tuple(p for p in self.question_phrases if p not in self.kept_by_search)

    def fact_cues(self) -> dict[str, tuple[str, ...]]:
        """Per fact (FACTS order, overview excluded), the phrases that ask it."""
        return {
            fact: tuple(p for p, asked in self.question_phrases.items() if asked == fact)
            for fact in FACTS
            if fact != "overview"
        }

    def codes_in(self, text: str) -> list[str]:
        """Procedure codes in `text`, in order, each once."""
        return list(dict.fromkeys(self.code_re.findall(text or "")))


# ---------------------------------------------------------------------------------------------
# Reading and checking the files


def _problem(path: Path, entry: str, problem: str) -> VocabularyError:
    return VocabularyError(f"{path}: {entry}: {problem}")


def _text(path: Path, entry: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _problem(path, entry, f"expected a text, got {type(value).__name__}")
    text = " ".join(str(value).split())
    if not text:
        raise _problem(path, entry, "empty text")
    return text


def _text_list(path: Path, section: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _problem(path, section, f"expected a list, got {type(value).__name__}")
    return [_text(path, f"{section}[{i}]", item) for i, item in enumerate(value)]


def _mapping(path: Path, section: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise _problem(path, section, f"expected a mapping, got {type(value).__name__}")
    return value


def _text_map(path: Path, section: str, value: Any) -> dict[str, str]:
    return {
        _text(path, section, key): _text(path, f"{section}: {key}", item)
        for key, item in _mapping(path, section, value).items()
    }


def _list_map(path: Path, section: str, value: Any) -> dict[str, list[str]]:
    return {
        _text(path, section, key): _text_list(path, f"{section}: {key}", item)
        for key, item in _mapping(path, section, value).items()
    }


def _int_map(path: Path, section: str, value: Any) -> dict[str, int]:
    out = {}
    for key, item in _mapping(path, section, value).items():
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise _problem(path, f"{section}: {key}", f"expected a number >= 1, got {item!r}")
        out[_text(path, section, key)] = item
    return out


def _fact_map(path: Path, section: str, value: Any) -> dict[str, str]:
    phrases = _text_map(path, section, value)
    allowed = (*FACTS, NO_FACT)
    for phrase, fact in phrases.items():
        if fact not in allowed:
            raise _problem(
                path, f"{section}: {phrase}", f"unknown fact {fact!r} (one of {', '.join(allowed)})"
            )
    return phrases


def _regex(path: Path, section: str, value: Any) -> str:
    pattern = _text(path, section, value)
    try:
        re.compile(pattern)
    except re.error as error:
        raise _problem(path, section, f"not a valid regular expression: {error}") from None
    return pattern


Reader = Callable[[Path, str, Any], Any]

# file -> section -> reader. Every section is required in the shipped files.
SCHEMA: dict[str, dict[str, Reader]] = {
    "concepts.yml": {"concepts": _text_map, "name_prefixes": _text_list},
    "citizen_terms.yml": {
        "citizen_terms": _text_map,
        "default_action_terms": _text_map,
        "residence_terms": _text_map,
        "goods_words": _text_list,
    },
    "abbreviations.yml": {"chat": _text_map, "final_particles": _text_list},
    "question_phrases.yml": {
        "phrases": _fact_map,
        "kept_by_search": _text_list,
        "accented_only": _text_list,
        "online_level_words": _text_list,
        "follow_up_openings": _text_list,
        "follow_up_endings": _text_list,
    },
    "stop_words.yml": {
        "stop_words": _text_list,
        "ambiguous_folded": _text_list,
        "soft_words": _text_list,
    },
    "actions.yml": {"actions": _text_list, "generic_words": _text_list},
    "narrow_variants.yml": {"narrow_variants": _list_map},
    "choices.yml": {
        "ordinals": _int_map,
        "choice_fillers": _text_list,
        "correction_openers": _text_list,
        "denials": _text_list,
        "restatements": _text_list,
    },
    "life_events.yml": {"life_events": _text_map},
    "codes.yml": {"pattern": _regex, "label": _regex},
}


def _read_file(path: Path, *, required: bool) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        if required:
            raise _problem(path, "file", "missing") from None
        return {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise _problem(path, "file", f"not valid YAML: {error}") from None
    if data is None and not required:
        return {}
    data = _mapping(path, "file", data)
    readers = SCHEMA[path.name]
    unknown = sorted(set(data) - set(readers))
    if unknown:
        raise _problem(path, unknown[0], f"unknown section (expected {', '.join(readers)})")
    sections = {section: readers[section](path, section, value) for section, value in data.items()}
    missing = [section for section in readers if section not in data]
    if required and missing:
        raise _problem(path, missing[0], "missing section")
    return sections


def _merge(shipped: Any, extra: Any) -> Any:
    if isinstance(shipped, dict):
        return {**shipped, **extra}
    if isinstance(shipped, list):
        return shipped + [item for item in extra if item not in shipped]
    return extra


def _read_all(folder: Path, extra_dir: Path | None) -> dict[str, dict[str, Any]]:
    if extra_dir is not None and not extra_dir.is_dir():
        raise _problem(extra_dir, "VOCABULARY_EXTRA_DIR", "not a folder")
    data = {}
    for name in SCHEMA:
        sections = _read_file(folder / name, required=True)
        if extra_dir is not None:
            for section, value in _read_file(extra_dir / name, required=False).items():
                sections[section] = _merge(sections[section], value)
        data[name] = sections
    return data


def _compile_codes(path: Path, pattern: str, label: str) -> tuple[re.Pattern, re.Pattern]:
    bounded = rf"(?<![\d.])(?:{pattern})(?!\.?\d)"
    code_re = re.compile(bounded)
    if code_re.groups:
        raise _problem(path, "pattern", "must not capture groups (use (?:...))")
    labelled = re.compile(rf"(?:\b{label}\s*:?\s*)?{bounded}")
    return code_re, labelled


def read_vocabulary(folder: Path = VOCABULARY_DIR, extra_dir: Path | None = None) -> Vocabulary:
    """The vocabulary in `folder`, with `extra_dir`'s same-named files merged over it."""
    data = _read_all(folder, extra_dir)
    questions = data["question_phrases.yml"]
    codes = data["codes.yml"]
    code_re, labelled = _compile_codes(folder / "codes.yml", codes["pattern"], codes["label"])
    return Vocabulary(
        concepts=MappingProxyType(data["concepts.yml"]["concepts"]),
        name_prefixes=tuple(data["concepts.yml"]["name_prefixes"]),
        citizen_terms=MappingProxyType(data["citizen_terms.yml"]["citizen_terms"]),
        default_action_terms=MappingProxyType(data["citizen_terms.yml"]["default_action_terms"]),
        residence_terms=MappingProxyType(data["citizen_terms.yml"]["residence_terms"]),
        goods_words=frozenset(data["citizen_terms.yml"]["goods_words"]),
        chat_abbreviations=MappingProxyType(data["abbreviations.yml"]["chat"]),
        final_particles=frozenset(data["abbreviations.yml"]["final_particles"]),
        question_phrases=MappingProxyType(
            {p: (None if f == NO_FACT else f) for p, f in questions["phrases"].items()}
        ),
        kept_by_search=frozenset(questions["kept_by_search"]),
        accented_only=frozenset(questions["accented_only"]),
        online_level_words=tuple(questions["online_level_words"]),
        follow_up_openings=tuple(questions["follow_up_openings"]),
        follow_up_endings=tuple(questions["follow_up_endings"]),
        stop_words=frozenset(data["stop_words.yml"]["stop_words"]),
        ambiguous_folded=frozenset(data["stop_words.yml"]["ambiguous_folded"]),
        soft_words=frozenset(data["stop_words.yml"]["soft_words"]),
        actions=tuple(data["actions.yml"]["actions"]),
        generic_action_words=tuple(data["actions.yml"]["generic_words"]),
        narrow_variants=MappingProxyType(
            {k: tuple(v) for k, v in data["narrow_variants.yml"]["narrow_variants"].items()}
        ),
        ordinals=MappingProxyType(data["choices.yml"]["ordinals"]),
        choice_fillers=tuple(data["choices.yml"]["choice_fillers"]),
        correction_openers=tuple(data["choices.yml"]["correction_openers"]),
        denials=tuple(data["choices.yml"]["denials"]),
        restatements=tuple(data["choices.yml"]["restatements"]),
        life_events=MappingProxyType(data["life_events.yml"]["life_events"]),
        code_pattern=codes["pattern"],
        code_label_pattern=codes["label"],
        code_re=code_re,
        labelled_code_re=labelled,
    )


@lru_cache(maxsize=1)
def load_vocabulary() -> Vocabulary:
    """The vocabulary of this process (shipped files + the settings' extra folder), read once."""
    return read_vocabulary(VOCABULARY_DIR, get_settings().vocabulary_extra_dir)


__all__ = [
    "FACTS",
    "VOCABULARY_DIR",
    "Vocabulary",
    "VocabularyError",
    "load_vocabulary",
    "read_vocabulary",
]
