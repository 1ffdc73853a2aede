"""The question sets the resolver learns from and is measured on.

- tests/data/real_questions/*.yml: questions citizens published (each with its source URL).
- tests/data/multiturn/cases.yml: conversations; each turn with its acceptable codes.
- tests/data/search_queries.yml (232 chat-style queries), tests/data/e2e_questions.yml.

Real questions and conversations are split into a dev part (training, calibration, thresholds)
and a test part (run once, at the end) by a hash of the source URL, so one page never feeds both
parts. `TEST_SHARE` of the pages go to the test part.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from procedures_db.settings import PROJECT_ROOT

DATA = PROJECT_ROOT / "tests" / "data"
TEST_SHARE = 0.4


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


def part_of(url: str | None) -> str:
    """ "dev" or "test" for a source page; rows without a URL are dev."""
    if not url:
        return "dev"
    digest = int(hashlib.sha1(url.strip().encode("utf-8")).hexdigest(), 16)
    return "test" if (digest % 1000) < TEST_SHARE * 1000 else "dev"


def _read(path: Path) -> object:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def real_questions(part: str | None = None) -> list[Conversation]:
    out = []
    for path in sorted((DATA / "real_questions").glob("*.yml")):
        for row in (_read(path) or {}).get("questions") or []:
            turn = Turn(row["text"], frozenset(row.get("codes") or ()), row.get("fact"))
            out.append(Conversation(row["id"], row.get("url"), (turn,), f"real:{path.stem}"))
    return [c for c in out if part is None or part_of(c.url) == part]


def conversations(part: str | None = None) -> list[Conversation]:
    path = DATA / "multiturn" / "cases.yml"
    if not path.exists():
        return []
    out = []
    for row in (_read(path) or {}).get("cases") or []:
        turns = tuple(
            Turn(t["text"], frozenset(t.get("codes") or ()), t.get("fact"), bool(t.get("switch")))
            for t in row["turns"]
        )
        out.append(Conversation(row["id"], row.get("url"), turns, "multiturn", (row.get("kind"),)))
    return [c for c in out if part is None or part_of(c.url) == part]


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
