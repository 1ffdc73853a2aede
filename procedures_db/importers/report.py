"""What an import did: counts, rejects (file, line, field, reason) and parse coverage."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

# A method row "bears a value" when its text states money: a number with a currency, or a
# grouped number ("1.600.000"). Deliberately looser than the parser, so that the coverage
# figure measures the parser instead of repeating it.
_VALUE_RE = re.compile(
    r"(?<![\d/.,])\d{1,3}(?:[.,]\d{3})+(?![\d/])"
    r"|(?<![\d/.,])(?!0+\s)\d+\s*(?:Việt Nam Đồng|đồng|Đồng|VNĐ|vnđ|VND|USD|usd|đ\b)"
)
_FOREIGN_RE = re.compile(r"\d\s*(?:USD|usd|EUR)")


@dataclass(frozen=True)
class Reject:
    file: str
    line: int | None  # line (JSONL, CSV) or record index; None = the whole file
    field: str | None
    reason: str
    code: str | None = None

    def describe(self) -> str:
        where = f"{self.file}" + (f":{self.line}" if self.line is not None else "")
        what = f" [{self.code}]" if self.code else ""
        return f"{where}{what} {self.field or '-'}: {self.reason}"


@dataclass
class Coverage:
    method_rows: int = 0
    with_time: int = 0
    with_fee_amount: int = 0
    value_bearing: int = 0
    foreign_currency_only: int = 0  # only USD/EUR amounts: kept as text, not as VND
    value_bearing_unparsed: int = 0
    unparsed_examples: list[str] = field(default_factory=list)

    def add(self, code: str, time_value: float | None, amounts: list[int], text: str) -> None:
        self.method_rows += 1
        self.with_time += time_value is not None
        self.with_fee_amount += bool(amounts)
        if not _VALUE_RE.search(text):
            return
        self.value_bearing += 1
        if amounts:
            return
        if _FOREIGN_RE.search(text):
            self.foreign_currency_only += 1
            return
        self.value_bearing_unparsed += 1
        if len(self.unparsed_examples) < 20:
            self.unparsed_examples.append(f"{code}: {text[:120]}")


@dataclass
class ImportReport:
    files_read: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)
    records_read: dict[str, int] = field(default_factory=dict)  # per source format
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    superseded: list[str] = field(default_factory=list)  # "code file:line -> winner"
    rejected: list[Reject] = field(default_factory=list)
    overlay_applied: int = 0
    coverage: Coverage = field(default_factory=Coverage)
    seconds: float = 0.0

    def reject(
        self,
        file: str,
        line: int | None,
        field_name: str | None,
        reason: str,
        code: str | None = None,
    ) -> None:
        self.rejected.append(Reject(file, line, field_name, reason, code))

    def summary_lines(self) -> list[str]:
        cov = self.coverage
        lines = [
            f"files read: {len(self.files_read)}"
            + (f" (skipped: {', '.join(self.files_skipped)})" if self.files_skipped else ""),
            "records read: "
            + (", ".join(f"{fmt} {n}" for fmt, n in sorted(self.records_read.items())) or "0"),
            f"inserted: {self.inserted}",
            f"updated: {self.updated}",
            f"unchanged: {self.unchanged}",
            f"superseded: {len(self.superseded)}",
            f"rejected: {len(self.rejected)}",
            f"overlay applied: {self.overlay_applied}",
            f"method rows: {cov.method_rows}, with time: {cov.with_time}, "
            f"with fee amount: {cov.with_fee_amount}, value-bearing: {cov.value_bearing}, "
            f"foreign currency only: {cov.foreign_currency_only}, "
            f"value-bearing but unparsed: {cov.value_bearing_unparsed}",
            f"seconds: {self.seconds:.1f}",
        ]
        lines += [f"  superseded {item}" for item in self.superseded]
        lines += [f"  rejected {item.describe()}" for item in self.rejected]
        lines += [f"  unparsed {item}" for item in cov.unparsed_examples]
        return lines

    def to_dict(self) -> dict:
        data = asdict(self)
        data["superseded_count"] = len(self.superseded)
        return data
