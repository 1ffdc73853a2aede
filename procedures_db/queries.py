"""Read-side queries: one procedure with everything known about it, fields, database stats."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload

from procedures_db.db import get_engine
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


def methods_by_code(*, engine: Engine | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every procedure's submission methods (the columns that word time and fee), by code."""
    rows = select(
        Procedure.code,
        SubmissionMethod.method,
        SubmissionMethod.time_value,
        SubmissionMethod.time_unit,
        SubmissionMethod.time_text,
        SubmissionMethod.fee_amounts,
        SubmissionMethod.fee_text,
        SubmissionMethod.fee_description,
        SubmissionMethod.description,
    ).join(SubmissionMethod, SubmissionMethod.procedure_id == Procedure.id)
    found: dict[str, list[dict[str, Any]]] = {}
    with _engine(engine).connect() as connection:
        for row in connection.execute(rows.order_by(SubmissionMethod.position)):
            found.setdefault(row.code, []).append(dict(row._mapping))
    return found


def browse(
    *,
    field: str | None = None,
    level: str | None = None,
    online_level: str | None = None,
    limit: int = 10,
    engine: Engine | None = None,
) -> list[dict[str, Any]]:
    """Procedures matching the filters, by name (a list page without query text)."""
    statement = select(
        Procedure.code, Procedure.name, Procedure.levels, Procedure.field, Procedure.online_level
    ).order_by(Procedure.name)
    if field:
        statement = statement.where(Procedure.field == field)
    if online_level:
        statement = statement.where(Procedure.online_level == online_level)
    results = []
    with _engine(engine).connect() as connection:
        for row in connection.execute(statement):
            if level and level not in (row.levels or []):
                continue
            results.append({**row._mapping, "score": None})
            if len(results) == limit:
                break
    return results


def procedure_names(codes: list[str], *, engine: Engine | None = None) -> dict[str, str]:
    if not codes:
        return {}
    query = select(Procedure.code, Procedure.name).where(Procedure.code.in_(codes))
    with _engine(engine).connect() as connection:
        return {row.code: row.name for row in connection.execute(query)}


def all_codes(*, engine: Engine | None = None) -> list[str]:
    with _engine(engine).connect() as connection:
        return list(connection.execute(select(Procedure.code).order_by(Procedure.code)).scalars())
