"""How a procedure's facts are worded, the same way in the bot, the staff page and the CLI.

Pure functions on one submission method (a `queries.MethodDetails`, or a mapping with the same
keys such as a JSON-ready dict or a database row). A value the source lacks gives None (or
`UNKNOWN` through `known`), never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from procedures_db.models import Level, Method, OnlineLevel, TimeUnit
from procedures_db.parsing import parse_amounts
from procedures_db.text import canonical, fold_accents

UNKNOWN = "chưa có thông tin"

METHOD_LABELS = {
    Method.ONLINE.value: "Trực tuyến",
    Method.IN_PERSON.value: "Trực tiếp",
    Method.POSTAL.value: "Bưu chính",
}
UNIT_LABELS = {
    TimeUnit.WORKING_DAY.value: "ngày làm việc",
    TimeUnit.DAY.value: "ngày",
    TimeUnit.HOUR.value: "giờ",
    TimeUnit.MONTH.value: "tháng",
}
LEVEL_LABELS = {
    Level.MINISTRY.value: "Cấp bộ",
    Level.PROVINCE.value: "Cấp tỉnh",
    Level.COMMUNE.value: "Cấp xã",
    Level.OTHER.value: "Cấp khác",
}
ONLINE_LABELS = {
    OnlineLevel.FULL.value: "Trực tuyến toàn trình",
    OnlineLevel.PARTIAL.value: "Trực tuyến một phần",
    OnlineLevel.OFFLINE.value: "Không nộp trực tuyến",
    OnlineLevel.UNKNOWN.value: "Có nộp trực tuyến (chưa rõ mức độ)",
}
# Fee notes that add nothing to a "Miễn phí" cell (compared after `clean` and `canonical`).
NOTHING_MORE = {"không", "không có", "không quy định", "chưa quy định", "miễn phí", "không thu"}
# The portal's ways of saying "no information" (accent-folded).
_MISSING = ("khong co thong tin", "khong co", "khong quy dinh", "")
_FREE_PREFIXES = ("mien phi", "khong thu")
NOTE_LIMIT = 300
SHORT_NOTE_LIMIT = 160


def clean(value: Any) -> str | None:
    """Text with whitespace collapsed; None when empty or the portal's "no information"."""
    if value is None:
        return None
    text = " ".join(str(value).split()).strip(" -;,.")
    if text.startswith("(") and text.endswith(")") and text.count("(") == 1:
        text = text[1:-1].strip(" -;,.")  # the scraper wrapped some descriptions in brackets
    return None if fold_accents(text).lower() in _MISSING else text


def known(value: Any) -> str:
    """The text as the source has it (line breaks kept), or `UNKNOWN` when it has none."""
    return UNKNOWN if clean(value) is None else str(value).strip()


def trim(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


def format_number(value: float) -> str:
    """Vietnamese number: 135000 -> "135.000", 2.5 -> "2,5"."""
    if float(value).is_integer():
        return f"{int(value):,}".replace(",", ".")
    return f"{value:g}".replace(".", ",")


def format_vnd(amount: float) -> str:
    return f"{format_number(amount)} đồng"


def attr(method: Any, name: str) -> Any:
    """A field of a method object or of a mapping (JSON dict, database row)."""
    if isinstance(method, Mapping):
        return method.get(name)
    return getattr(method, name, None)


def method_label(method: Any) -> str:
    name = attr(method, "method") or ""
    return METHOD_LABELS.get(name, known(name))


def today() -> date:
    """The date fee periods are judged against (tests replace it to fix the clock)."""
    return date.today()


_UNIT_HINT = r"0*{value}\s*(ngày làm việc|ngày|giờ|tháng)"


def unit_hint(value: float, context: str | None) -> str | None:
    """ "01 ngày làm việc" when the steps or description state the bare number with a unit."""
    if not context or not float(value).is_integer():
        return None
    found = re.search(_UNIT_HINT.format(value=int(value)), context, re.IGNORECASE)
    return " ".join(found.group(0).split()) if found else None


def method_time(method: Any, context: str | None = None) -> str | None:
    """ "5 ngày làm việc". A bare number is shown as the source gives it, never with a guessed
    unit: with the unit the `context` (steps, description) states for it, if any."""
    value, unit = attr(method, "time_value"), attr(method, "time_unit")
    if value is not None and unit in UNIT_LABELS:
        return f"{format_number(value)} {UNIT_LABELS[unit]}"
    if value is not None:
        context = " ".join(filter(None, [attr(method, "description"), context]))
        hint = unit_hint(value, context)
        said = f"mô tả thủ tục ghi: {hint}" if hint else "không ghi đơn vị"
        return f"{format_number(value)} (nguồn chỉ ghi số; {said})"
    return clean(attr(method, "time_text"))


# --- fees valid for a period ("Kể từ ngày 01/12/2023 đến hết ngày 31/12/2025, ... 115.000") ---
_DATE = r"(\d{1,2})/(\d{1,2})/(\d{4})"
_UNTIL_RE = re.compile(rf"(?:đến|tới)\s+(?:hết\s+)?(?:ngày\s+)?{_DATE}", re.IGNORECASE)
# Clauses: lines, list items, sentences, brackets (a period belongs to its own clause).
_CLAUSE_SPLIT = re.compile(r"\n|;|\s-\s|\.\s+-|\(|(?<=\.)\s+(?=[A-ZĐ])")
EXPIRED_MARK = " (đã hết hạn, không còn áp dụng)"


def _date(day: str, month: str, year: str) -> date | None:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def _ends(text: str) -> list[date]:
    return [d for d in (_date(*m.groups()) for m in _UNTIL_RE.finditer(text)) if d]


def expired_amounts(text: str | None, on: date) -> set[int]:
    """Amounts stated only in clauses whose validity period ended before `on`."""
    expired: set[int] = set()
    current: set[int] = set()
    for clause in _CLAUSE_SPLIT.split(text or ""):
        ends = _ends(clause)
        (expired if ends and max(ends) < on else current).update(parse_amounts(clause))
    return expired - current


def mark_expired(text: str, on: date) -> str:
    """Say after every past end date that the period is over."""

    def mark(match: re.Match[str]) -> str:
        end = _date(*match.groups())
        return match.group(0) + (EXPIRED_MARK if end and end < on else "")

    return _UNTIL_RE.sub(mark, text)


def _says_free(cell: str) -> bool:
    return fold_accents(cell).lower().startswith(_FREE_PREFIXES)


def _vietnamese_amounts(cell: str) -> str:
    """ "2,000,000 Việt Nam Đồng" -> "2.000.000 đồng" (the portal's cells use English commas)."""
    cell = re.sub(r"\d{1,3}(?:,\d{3})+", lambda m: m.group(0).replace(",", "."), cell)
    return re.sub(r"Việt Nam Đồng|VNĐ|VND", "đồng", cell)


def _shows(text: str, amount: int) -> bool:
    return re.search(rf"(?<![\d.]){re.escape(format_number(amount))}(?!\.?\d)", text) is not None


def method_fee(method: Any, *, short: bool = False, on: date | None = None) -> str | None:
    """The fee as the record states it, judged on the date `on` (default: today).

    A "Miễn phí" cell is never shown when the note contradicts it (parsed amounts) or explains
    it ("Mức lệ phí do HĐND tỉnh quyết định"): the note replaces it. A unit note ("/trang")
    joins the amount. Current amounts ("135.000 đồng") always appear: when the text does not
    already state each of them, they follow it. An amount whose validity period has ended is
    never shown as current: it is left out of the amounts and its period is marked as over.
    `short` (staff tables and the read-aloud script, which show the note separately) gives just
    the current amounts when there are any, else the cell, else the note shortened.
    """
    on = on or today()
    cell, note = clean(attr(method, "fee_text")), clean(attr(method, "fee_description"))
    gone = expired_amounts(" ; ".join(filter(None, [cell, note])), on)
    amounts = list(dict.fromkeys(a for a in attr(method, "fee_amounts") or [] if a))
    amounts = [a for a in amounts if a not in gone]
    explanation = None if note is None or canonical(note) in NOTHING_MORE else note
    explanation = explanation and mark_expired(explanation, on)
    unit = explanation if explanation and explanation.startswith("/") else ""
    stated = "; ".join(format_vnd(amount) for amount in amounts)
    if cell and _says_free(cell):
        cell = None if amounts or explanation else cell
    elif cell:
        cell = mark_expired(_vietnamese_amounts(cell), on)
    if cell and unit:
        cell, explanation = cell + unit, None
    if short:
        if amounts:
            return stated + unit
        return cell or (trim(explanation, SHORT_NOTE_LIMIT) if explanation else None)
    text = ". ".join(filter(None, [cell, explanation and trim(explanation, NOTE_LIMIT)]))
    if any(not _shows(text, amount) for amount in amounts):
        text = f"{text} (mức thu: {stated})" if text else stated
    cut_off = [format_vnd(a) for a in gone if _shows(text, a)]
    if cut_off and EXPIRED_MARK not in text:  # the note was trimmed before its end date
        text += f" (mức {'; '.join(cut_off)}: đã hết hạn, không còn áp dụng)"
    return text or None
