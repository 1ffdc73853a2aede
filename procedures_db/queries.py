"""Read-side queries: one procedure with everything known about it, fields, database stats."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload

from procedures_db.db import get_engine
from procedures_db.facts import (
    LEVEL_LABELS,
    ONLINE_LABELS,
    UNKNOWN,
    method_fee,
    method_label,
    method_time,
)
from procedures_db.models import Document, ImportRun, LegalBasis, Procedure, SubmissionMethod


@dataclass(frozen=True)
class MethodDetails:
    method: str
    time_value: float | None
    time_unit: str | None
    time_text: str | None
    fee_amounts: list[int]
    fee_text: str | None
    fee_description: str | None
    description: str | None


@dataclass(frozen=True)
class DocumentDetails:
    name: str
    originals: int | None
    copies: int | None
    form_name: str | None
    case_name: str | None


@dataclass(frozen=True)
class LegalBasisDetails:
    title: str
    number: str | None


@dataclass(frozen=True)
class ProcedureDetails:
    code: str
    name: str
    field: str | None
    levels: list[str]
    procedure_type: str | None
    implementing_agencies: str | None
    competent_agency: str | None
    receiving_address: str | None
    target_subjects: str | None
    requirements: str | None
    steps: str | None
    result: str | None
    decision_number: str | None
    ministry: str | None
    online_level: str
    online_level_source: str
    online_submit_url: str | None
    source_url: str | None
    source_format: str
    source_file: str | None
    source_hash: str
    imported_at: datetime
    methods: list[MethodDetails]
    documents: list[DocumentDetails]
    legal_bases: list[LegalBasisDetails]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["imported_at"] = self.imported_at.isoformat()
        return data


def _engine(engine: Engine | None) -> Engine:
    return engine or get_engine()


def _columns(cls: type, row: object) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in fields(cls) if hasattr(row, f.name)}


def get_procedure(code: str, *, engine: Engine | None = None) -> ProcedureDetails | None:
    """Everything known about the procedure with this code (None when there is none)."""
    query = (
        select(Procedure)
        .where(Procedure.code == code.strip())
        .options(
            selectinload(Procedure.methods),
            selectinload(Procedure.documents),
            selectinload(Procedure.legal_bases),
        )
    )
    with Session(_engine(engine), future=True) as session:
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            return None
        values = _columns(ProcedureDetails, row)
        values["levels"] = list(row.levels or [])
        values["methods"] = [
            MethodDetails(**dict(_columns(MethodDetails, m), fee_amounts=list(m.fee_amounts or [])))
            for m in row.methods
        ]
        values["documents"] = [
            DocumentDetails(**_columns(DocumentDetails, d)) for d in row.documents
        ]
        values["legal_bases"] = [
            LegalBasisDetails(**_columns(LegalBasisDetails, b)) for b in row.legal_bases
        ]
    return ProcedureDetails(**values)


def list_fields(*, engine: Engine | None = None) -> list[str]:
    """Distinct fields (lĩnh vực), sorted."""
    query = select(Procedure.field).where(Procedure.field.is_not(None)).distinct()
    with _engine(engine).connect() as conn:
        return sorted(value for (value,) in conn.execute(query) if value)


def _count_by(conn, column) -> dict[str, int]:
    return {
        str(key): count
        for key, count in conn.execute(
            select(column, func.count()).group_by(column).order_by(column)
        )
    }


def database_stats(*, engine: Engine | None = None) -> dict[str, Any]:
    """What the database holds, and what the last import did."""
    with _engine(engine).connect() as conn:
        count = conn.execute(select(func.count()).select_from(Procedure)).scalar_one()
        stats: dict[str, Any] = {
            "procedures": count,
            "by_source_format": _count_by(conn, Procedure.source_format),
            "by_online_level": _count_by(conn, Procedure.online_level),
            "submission_methods": conn.execute(
                select(func.count()).select_from(SubmissionMethod)
            ).scalar_one(),
            "documents": conn.execute(select(func.count()).select_from(Document)).scalar_one(),
            "legal_bases": conn.execute(select(func.count()).select_from(LegalBasis)).scalar_one(),
            "fields": conn.execute(select(func.count(func.distinct(Procedure.field)))).scalar_one(),
        }
        last = conn.execute(select(ImportRun).order_by(ImportRun.id.desc()).limit(1)).first()
    if last is not None:
        report = last.report or {}
        stats["last_import"] = {
            "finished_at": last.finished_at.isoformat() if last.finished_at else None,
            **{key: report.get(key) for key in ("inserted", "updated", "unchanged")},
            "superseded": report.get("superseded_count"),
            "rejected": len(report.get("rejected") or []),
        }
    return stats


# --- text for `show` ---------------------------------------------------------------------------


def _section(title: str, body: str | None) -> list[str]:
    return [f"{title}:", f"  {body.strip()}"] if body and body.strip() else []


def format_procedure_text(details: ProcedureDetails) -> str:
    """A readable Vietnamese summary of one procedure (the `show` command without --json)."""
    levels = ", ".join(LEVEL_LABELS.get(level, level) for level in details.levels) or "-"
    lines = [
        f"{details.code} — {details.name}",
        f"Lĩnh vực: {details.field or '-'}",
        f"Cấp thực hiện: {levels}",
        f"Mức độ trực tuyến: {ONLINE_LABELS.get(details.online_level, details.online_level)}"
        f" (nguồn: {details.online_level_source})",
    ]
    if details.online_submit_url:
        lines.append(f"Nộp trực tuyến tại: {details.online_submit_url}")
    lines.append(f"Cơ quan thực hiện: {details.implementing_agencies or '-'}")
    lines.append("Cách thức thực hiện:")
    for method in details.methods:
        time, fee = method_time(method) or UNKNOWN, method_fee(method) or UNKNOWN
        lines.append(f"  - {method_label(method)}: thời hạn {time}; phí, lệ phí: {fee}")
        if method.description:
            lines.append(f"    Mô tả: {method.description}")
    if not details.methods:
        lines.append(f"  {UNKNOWN}")
    lines.append("Thành phần hồ sơ:")
    for doc in details.documents:
        quantity = (
            f" ({doc.originals} bản chính, {doc.copies} bản sao)"
            if doc.originals is not None
            else ""
        )
        form = f" — mẫu: {doc.form_name}" if doc.form_name else ""
        case = f"[{doc.case_name}] " if doc.case_name else ""
        lines.append(f"  - {case}{doc.name}{quantity}{form}")
    lines += _section("Trình tự thực hiện", details.steps)
    lines += _section("Yêu cầu, điều kiện", details.requirements)
    lines += _section("Kết quả", details.result)
    if details.legal_bases:
        lines.append("Căn cứ pháp lý:")
        lines += [
            f"  - {b.title}" + (f" ({b.number})" if b.number else "") for b in details.legal_bases
        ]
    lines.append(f"Nguồn: {details.source_url or details.source_file or details.source_format}")
    return "\n".join(lines)
