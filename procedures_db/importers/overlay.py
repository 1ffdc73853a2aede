"""Province overlay CSV: `code,online_level[,submit_url]` (header row). The overlay wins over
every derived value; each applied row is recorded as `online_level_source = overlay:<file>`."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from procedures_db.importers.report import ImportReport
from procedures_db.models import OnlineLevel
from procedures_db.text import fold_accents

# Accepted spellings (accent-folded, lower case) -> level.
_LEVELS = {
    "toan_trinh": OnlineLevel.FULL,
    "toan trinh": OnlineLevel.FULL,
    "dich vu cong truc tuyen toan trinh": OnlineLevel.FULL,
    "mot_phan": OnlineLevel.PARTIAL,
    "mot phan": OnlineLevel.PARTIAL,
    "dich vu cong truc tuyen mot phan": OnlineLevel.PARTIAL,
    "truc_tiep": OnlineLevel.OFFLINE,
    "truc tiep": OnlineLevel.OFFLINE,
    "chua_ro": OnlineLevel.UNKNOWN,
    "chua ro": OnlineLevel.UNKNOWN,
}


@dataclass(frozen=True)
class OverlayRow:
    online_level: str
    submit_url: str | None
    source: str  # "overlay:<file name>"

    def as_hash_input(self) -> dict[str, str | None]:
        return {"online_level": self.online_level, "submit_url": self.submit_url}


def _level(value: str) -> OnlineLevel | None:
    return _LEVELS.get(" ".join(fold_accents(value).lower().split()))


def read_overlay(path: Path, report: ImportReport) -> dict[str, OverlayRow]:
    """code -> OverlayRow; bad rows are rejected one by one (file, line, field, reason)."""
    name = str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        report.reject(name, None, None, f"overlay unreadable: {error}")
        return {}
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "code" not in header or "online_level" not in header:
        report.reject(name, 1, None, "header must name the columns code and online_level")
        return {}
    reader.fieldnames = header
    rows: dict[str, OverlayRow] = {}
    source = f"overlay:{path.name}"
    for row in reader:
        line = reader.line_num
        if None in row:  # more cells than header columns
            report.reject(name, line, None, "too many cells")
            continue
        code = (row.get("code") or "").strip()
        raw_level = (row.get("online_level") or "").strip()
        level = _level(raw_level)
        if not code:
            report.reject(name, line, "code", "missing procedure code")
        elif level is None:
            report.reject(name, line, "online_level", f"unknown level {raw_level!r}", code)
        else:
            url = (row.get("submit_url") or "").strip() or None
            rows[code] = OverlayRow(level.value, url, source)
    return rows
