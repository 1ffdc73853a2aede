"""The question sets the resolver learns from and is measured on.

- tests/data/real_questions/*.yml: questions citizens published (each with its source URL).
- tests/data/multiturn/cases.yml: conversations; each turn with its acceptable codes.
- tests/data/search_queries.yml (232 chat-style queries), tests/data/e2e_questions.yml.

Real questions and conversations are split into a dev part (training, calibration, thresholds)
and a test part (run once, at the end, after every choice is frozen). A file says which part its
rows belong to (`part: test` at its top; dev otherwise), and one page never feeds both parts.

History: the first test part (a hash of the URL chose 40 % of the pages) was run on 2026-12-04
with the first resolver and recorded in BENCHMARKS.md; having been seen, it joined the dev part,
and a fresh test part was collected from new pages (the files marked `part: test`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from procedures_db.settings import PROJECT_ROOT

DATA = PROJECT_ROOT / "tests" / "data"
NLU_DIR = PROJECT_ROOT / "data" / "nlu"
# The dev real questions as NLU examples (scripts/nlu_story_examples.py): read here as the
# questions themselves, so left out of the NLU examples.
STORY_EXAMPLES = "story_questions.yml"
_ANNOTATION_RE = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")
_PROCEDURE_RE = re.compile(r"\]\(procedure(?:_code)?\)|\"entity\":\s*\"procedure")
PARTS = ("dev", "test")


@dataclass(frozen=True)
class Turn:
    text: str
    codes: frozenset[str]
    fact: str | None = None
    switch: bool = False


@dataclass(frozen=True)
class Conversation:
    """One conversation (a single question is a conversation of one turn)."""

    id: str
    url: str | None
    turns: tuple[Turn, ...]
    source: str
    kinds: tuple[str, ...] = field(default_factory=tuple)
    part: str = "dev"


def _read(path: Path) -> object:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _part(document: dict, path: Path) -> str:
    part = document.get("part", "dev")
    if part not in PARTS:
        raise ValueError(f"{path}: part must be one of {PARTS}, not {part!r}")
    return part


def _selected(rows: list[Conversation], part: str | None) -> list[Conversation]:
    return [c for c in rows if part is None or c.part == part]


def real_questions(part: str | None = None) -> list[Conversation]:
    out = []
    for path in sorted((DATA / "real_questions").glob("*.yml")):
        document = _read(path) or {}
        file_part = _part(document, path)
        for row in document.get("questions") or []:
            turn = Turn(row["text"], frozenset(row.get("codes") or ()), row.get("fact"))
            out.append(
                Conversation(
                    row["id"], row.get("url"), (turn,), f"real:{path.stem}", part=file_part
                )
            )
    return _selected(out, part)


def conversations(part: str | None = None) -> list[Conversation]:
    out = []
    for path in sorted((DATA / "multiturn").glob("*.yml")):
        document = _read(path) or {}
        file_part = _part(document, path)
        for row in document.get("cases") or []:
            turns = tuple(
                Turn(
                    t["text"], frozenset(t.get("codes") or ()), t.get("fact"), bool(t.get("switch"))
                )
                for t in row["turns"]
            )
            kinds = (row.get("kind"),)
            out.append(
                Conversation(row["id"], row.get("url"), turns, "multiturn", kinds, part=file_part)
            )
    return _selected(out, part)


def search_queries() -> list[Conversation]:
    rows = _read(DATA / "search_queries.yml") or []
    return [
        Conversation(f"q-{i}", None, (Turn(r["q"], frozenset(r["codes"])),), "search")
        for i, r in enumerate(rows)
    ]


def e2e_questions() -> list[Conversation]:
    rows = (_read(DATA / "e2e_questions.yml") or {}).get("questions") or []
    return [
        Conversation(
            f"e2e-{i}", None, (Turn(r["text"], frozenset(r["codes"]), r.get("fact")),), "e2e"
        )
        for i, r in enumerate(rows)
    ]


@dataclass(frozen=True)
class IntentExample:
    """One NLU training example, its entity markup removed."""

    intent: str
    text: str
    names_procedure: bool


def intent_examples() -> list[IntentExample]:
    """The examples of data/nlu (but the generated story questions)."""
    out = []
    for path in sorted(NLU_DIR.glob("*.yml")):
        if path.name == STORY_EXAMPLES:
            continue
        for block in (_read(path) or {}).get("nlu") or []:
            intent = block.get("intent")
            if not intent or not isinstance(block.get("examples"), str):
                continue
            for line in block["examples"].splitlines():
                line = line.strip()
                if line.startswith("- "):
                    text = _ANNOTATION_RE.sub(r"\1", line[2:]).strip()
                    out.append(IntentExample(intent, text, bool(_PROCEDURE_RE.search(line))))
    return out
