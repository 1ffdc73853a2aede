"""Helpers shared by the format readers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from procedures_db.importers.records import FieldError


def text_or_none(value: Any) -> str | None:
    """Strip text; empty and the portal's "Không có thông tin" mean no value."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    value = value.strip()
    return None if not value or value == "Không có thông tin" else value


def field_text(raw: dict[str, Any], key: str) -> str | None:
    """`text_or_none` of one field; a non-text value is a reject naming that field."""
    try:
        return text_or_none(raw.get(key))
    except TypeError as error:
        raise FieldError(key, str(error)) from None


def join_names(items: Iterable[dict[str, Any]] | None, key: str = "name") -> str | None:
    names: list[str] = []
    for item in items or []:
        name = text_or_none(item.get(key)) if isinstance(item, dict) else None
        if name and name not in names:
            names.append(name)
    return ", ".join(names) or None


def require_code(raw: Any, key: str) -> str:
    if not isinstance(raw, dict):
        raise FieldError("(record)", f"expected a JSON object, got {type(raw).__name__}")
    code = raw.get(key)
    if not isinstance(code, str) or not code.strip():
        raise FieldError(key, "missing procedure code")
    return code.strip()


def require_name(raw: dict[str, Any], key: str) -> str:
    name = raw.get(key)
    if not isinstance(name, str) or not name.strip():
        raise FieldError(key, "missing procedure name")
    return " ".join(name.split())
