"""run_import: read every file, pick one record per code, apply the overlay, upsert by hash.

Rules:
- Format is detected per file (*.jsonl[.gz] = scraped portal pages, *.json = national API,
  *.csv given as a path = overlay); folders are walked in sorted order; other files are skipped.
- One record per code. The national API record beats a scraped one (it is the province's
  authoritative source and states the online level); within one format the last file in sorted
  path order, then the last line, wins. The ranking does not depend on the order of the paths,
  so imports are deterministic. Losers are reported as superseded, never as updates.
- Every record is converted and validated completely before anything is written, so a bad
  record is a reject and never a half-written row. Writes go in batches, one transaction per
  batch; a batch that fails in the database is retried record by record, each in its own
  transaction, so one failing record cannot take valid ones down with it.
- Idempotence: `source_hash` = sha256(canonical source record + overlay values + parser version);
  an unchanged hash means no write at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from procedures_db.importers import national_api, scraped
from procedures_db.importers.overlay import OverlayRow, read_overlay
from procedures_db.importers.records import SourceItem, source_hash
from procedures_db.importers.report import ImportReport
from procedures_db.models import Document, ImportRun, LegalBasis, Procedure, SubmissionMethod

BATCH_SIZE = 500
FORMAT_RANK = {scraped.FORMAT: 0, national_api.FORMAT: 1}
CHILD_TABLES = (
    ("methods", SubmissionMethod.__table__),
    ("documents", Document.__table__),
    ("legal_bases", LegalBasis.__table__),
)


def _walk(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def _read_all(paths: Iterable[Path], report: ImportReport) -> tuple[list[SourceItem], list[Path]]:
    items: list[SourceItem] = []
    overlays: list[Path] = []
    for path in _walk(paths):
        if not path.exists():
            report.reject(str(path), None, None, "no such file")
            continue
        if path.suffix == ".csv":
            overlays.append(path)
            continue
        reader = (
            scraped.read_file
            if scraped.is_scraped_file(path)
            else national_api.read_file
            if national_api.is_api_file(path)
            else None
        )
        if reader is None:
            report.files_skipped.append(path.name)
            continue
        report.files_read.append(str(path))
        for item in reader(path, report):
            report.records_read[item.format] = report.records_read.get(item.format, 0) + 1
            items.append(item)
    return items, overlays


def _pick_winners(items: list[SourceItem], report: ImportReport) -> list[SourceItem]:
    ranked = sorted(items, key=lambda i: (FORMAT_RANK[i.format], i.file, i.line))
    winners: dict[str, SourceItem] = {}
    for item in ranked:
        winners[item.record.code] = item  # a later (higher-ranked) item replaces
    for item in ranked:
        winner = winners[item.record.code]
        if winner is not item:
            report.superseded.append(f"{item.record.code} {item.where} -> {winner.where}")
    return sorted(winners.values(), key=lambda i: i.record.code)


def _apply_overlay(
    item: SourceItem, overlay: dict[str, OverlayRow], report: ImportReport
) -> dict | None:
    row = overlay.get(item.record.code)
    if row is None:
        return None
    item.record.values.update(
        online_level=row.online_level,
        online_level_source=row.source,
        online_submit_url=row.submit_url,
    )
    report.overlay_applied += 1
    return row.as_hash_input()


def _write(conn: Connection, item: SourceItem, digest: str, existing_id: int | None) -> None:
    values = dict(item.record.values, source_file=item.file, source_hash=digest)
    values["imported_at"] = datetime.utcnow()
    if existing_id is None:
        procedure_id = conn.execute(
            insert(Procedure.__table__).values(**values)
        ).inserted_primary_key[0]
    else:
        procedure_id = existing_id
        conn.execute(
            update(Procedure.__table__).where(Procedure.id == existing_id).values(**values)
        )
        for _, table in CHILD_TABLES:
            conn.execute(delete(table).where(table.c.procedure_id == existing_id))
    for attribute, table in CHILD_TABLES:
        rows = [
            dict(row, procedure_id=procedure_id, position=position)
            for position, row in enumerate(getattr(item.record, attribute))
        ]
        if rows:
            conn.execute(insert(table), rows)


def _write_batch(
    engine: Engine, batch: list[tuple[SourceItem, str, int | None]], report: ImportReport
) -> None:
    try:
        with engine.begin() as conn:
            for item, digest, existing_id in batch:
                _write(conn, item, digest, existing_id)
    except SQLAlchemyError:
        if len(batch) == 1:
            item = batch[0][0]
            report.reject(
                item.file, item.line, None, "database refused the record", item.record.code
            )
            return
        for one in batch:  # find the failing record; every other one is still written
            _write_batch(engine, [one], report)
        return
    for _, _, existing_id in batch:
        if existing_id is None:
            report.inserted += 1
        else:
            report.updated += 1


def run_import(paths: list[Path], overlay: Path | None = None, *, engine: Engine) -> ImportReport:
    """Import procedure files into the database behind `engine` (schema must exist)."""
    started = datetime.utcnow()
    clock = time.perf_counter()
    report = ImportReport()
    items, overlay_paths = _read_all([Path(p) for p in paths], report)
    overlay_rows: dict[str, OverlayRow] = {}
    for path in [*overlay_paths, *([Path(overlay)] if overlay else [])]:
        overlay_rows.update(read_overlay(path, report))
    winners = _pick_winners(items, report)
    codes = {item.record.code for item in winners}
    for code in sorted(set(overlay_rows) - codes):
        report.reject(
            overlay_rows[code].source, None, "code", "not among the imported records", code
        )

    with engine.connect() as conn:
        existing = {
            code: (pid, digest)
            for pid, code, digest in conn.execute(
                select(Procedure.id, Procedure.code, Procedure.source_hash)
            )
        }
    pending: list[tuple[SourceItem, str, int | None]] = []
    for item in winners:
        digest = source_hash(item.raw, _apply_overlay(item, overlay_rows, report))
        for method in item.record.methods:
            report.coverage.add(
                item.record.code,
                method["time_value"],
                method["fee_amounts"],
                " ".join(method[k] or "" for k in ("fee_text", "fee_description", "description")),
            )
        procedure_id, old_digest = existing.get(item.record.code, (None, None))
        if old_digest == digest:
            report.unchanged += 1
        else:
            pending.append((item, digest, procedure_id))
    for start in range(0, len(pending), BATCH_SIZE):
        _write_batch(engine, pending[start : start + BATCH_SIZE], report)
    report.seconds = time.perf_counter() - clock
    _record_run(engine, started, report)
    return report


def _record_run(engine: Engine, started: datetime, report: ImportReport) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(ImportRun.__table__).values(
                started_at=started,
                finished_at=datetime.utcnow(),
                report=report.to_dict(),
                rows_total=report.inserted + report.updated + report.unchanged,
            )
        )
