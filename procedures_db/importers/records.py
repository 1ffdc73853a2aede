"""The format-independent form of one procedure, ready to be written, and its source hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

# Bump when the parsers change what they produce, so that a re-import rewrites every record.
PARSER_VERSION = 3


class FieldError(ValueError):
    """A record that cannot be imported; `field` names the source field."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


@dataclass
class ProcedureRecord:
    """Column values for Procedure plus child rows (dicts keyed by column name)."""

    values: dict[str, Any]
    methods: list[dict[str, Any]] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    legal_bases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def code(self) -> str:
        return self.values["code"]


@dataclass
class SourceItem:
    """One record read from a file, converted (or not yet: `raw` keeps the source)."""

    format: str  # "national_api" | "scraped"
    file: str
    line: int  # JSONL line number, or 0 for a one-record JSON file
    raw: dict[str, Any]
    record: ProcedureRecord

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def source_hash(raw: dict[str, Any], overlay: dict[str, Any] | None) -> str:
    """sha256 of the canonical source record plus the overlay values applied to it."""
    canonical = json.dumps(
        {"parser": PARSER_VERSION, "record": raw, "overlay": overlay},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
