"""The national TTHC database's API format (`get-formality-by-citizen` detail), one JSON file each.

Rejected on purpose (with the reason in the report):
- test records (every execution step reads "test"): not a real procedure;
- internal records (`isInternal: true`): procedures between state bodies, which citizens cannot
  start; answering citizens about them would mislead, so they are not imported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from procedures_db import parsing
from procedures_db.importers.common import (
    field_text,
    join_names,
    require_code,
    require_name,
    text_or_none,
)
from procedures_db.importers.records import FieldError, ProcedureRecord, SourceItem
from procedures_db.importers.report import ImportReport
from procedures_db.models import Level, Method, OnlineLevel, TimeUnit

FORMAT = "national_api"
PORTAL_URL = "https://dichvucong.gov.vn/thu-tuc-hanh-chinh/"

METHODS = {"ONLINE": Method.ONLINE, "DIRECT": Method.IN_PERSON, "POSTAL": Method.POSTAL}
UNITS = {
    "WORKING_DAY": (TimeUnit.WORKING_DAY, "ngày làm việc"),
    "DAY": (TimeUnit.DAY, "ngày"),
    "HOUR": (TimeUnit.HOUR, "giờ"),
    "MONTH": (TimeUnit.MONTH, "tháng"),
}
FEE_TYPES = {"FEE": "Lệ phí", "SERVICE_FEE": "Phí"}
LEVEL_FLAGS = (
    ("isMinistry", Level.MINISTRY),
    ("isProvince", Level.PROVINCE),
    ("isWard", Level.COMMUNE),
    ("isOtherAgency", Level.OTHER),
)


def is_api_file(path: Path) -> bool:
    return path.suffix == ".json"


def read_file(path: Path, report: ImportReport) -> Iterator[SourceItem]:
    """A file holds one record (an object) or several (an array)."""
    name = str(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        report.reject(name, None, None, f"not UTF-8: {error}")
        return
    except json.JSONDecodeError as error:
        report.reject(name, None, None, f"bad JSON: {error}")
        return
    records = data if isinstance(data, list) else [data]
    for index, raw in enumerate(records):
        code = raw.get("code") if isinstance(raw, dict) else None
        try:
            record = convert(raw)
        except FieldError as error:
            report.reject(name, index, error.field, error.reason, code)
            continue
        yield SourceItem(FORMAT, name, index, raw, record)


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise FieldError(key, f"expected a list, got {type(value).__name__}")
    return value


def _method(index: int, item: Any) -> dict[str, Any]:
    where = f"executionMethods[{index}]"
    if not isinstance(item, dict):
        raise FieldError(where, "expected an object")
    method = METHODS.get(item.get("submissionMethod"))
    if method is None:
        raise FieldError(
            f"{where}.submissionMethod", f"unknown method {item.get('submissionMethod')!r}"
        )
    time = item.get("processingTime")
    unit = UNITS.get(item.get("processingTimeUnit"))
    if isinstance(time, (int, float)) and not isinstance(time, bool) and time > 0 and unit:
        time_value, time_unit, time_text = float(time), unit[0].value, f"{time:g} {unit[1]}"
    else:  # unit OTHER: the time is free text ("Không quy định.")
        time_value, time_unit = None, None
        time_text = text_or_none(str(time)) if time not in (None, 0) else None
    fee_texts, notes = [], []
    for fee in item.get("fees") or []:
        if not isinstance(fee, dict) or not isinstance(fee.get("value", 0), (int, float)):
            raise FieldError(f"{where}.fees", f"bad fee {fee!r}")
        label = FEE_TYPES.get(fee.get("type"), "Phí")
        fee_texts.append(f"{label}: {fee.get('value') or 0:,.0f} đồng".replace(",", "."))
        note = text_or_none(fee.get("description"))
        if note and note not in notes:
            notes.append(note)
    fee_text = "; ".join(fee_texts) or None
    fee_description = "\n".join(notes) or None
    return {
        "method": method.value,
        "time_value": time_value,
        "time_unit": time_unit,
        "time_text": time_text,
        "fee_amounts": parsing.parse_amounts(" ".join(t for t in (fee_text, fee_description) if t)),
        "fee_text": fee_text,
        "fee_description": fee_description,
        "description": None,
    }


def _documents(raw: dict[str, Any]) -> list[dict[str, Any]]:
    documents = []
    for case in _list(raw, "executionCases"):
        case_name = text_or_none(case.get("name")) if isinstance(case, dict) else None
        for component in case.get("profileComponents") or []:
            name = text_or_none(component.get("name"))
            if not name:
                raise FieldError("executionCases.profileComponents", "document without a name")
            forms = [a.get("fileName") for a in component.get("attachments") or [] if a]
            documents.append(
                {
                    "name": name,
                    "originals": component.get("originalQty"),
                    "copies": component.get("copyQty"),
                    "form_name": ", ".join(f for f in forms if f) or None,
                    "case_name": case_name,
                }
            )
    return documents


def _legal_bases(raw: dict[str, Any]) -> list[dict[str, Any]]:
    seen: list[tuple[str, str | None]] = []
    for item in _list(raw, "legalBasisesDetails"):
        key = (text_or_none(item.get("name")), text_or_none(item.get("code")))
        if key[0] and key not in seen:
            seen.append(key)
    return [{"title": title, "number": number} for title, number in seen]


def _steps(raw: dict[str, Any]) -> str | None:
    parts = []
    for step in _list(raw, "executionSteps"):
        text = "\n".join(
            t for t in (text_or_none(step.get(k)) for k in ("name", "description")) if t
        )
        if text:
            parts.append(text)
    return "\n\n".join(parts) or None


def online_level(raw: dict[str, Any], methods: list[dict[str, Any]]) -> tuple[str, str]:
    if raw.get("isFullProcess") is True:
        return OnlineLevel.FULL.value, "national_api:isFullProcess"
    if raw.get("isOfflineOnly") is True:
        return OnlineLevel.OFFLINE.value, "national_api:isOfflineOnly"
    if not any(m["method"] == Method.ONLINE.value for m in methods):
        return OnlineLevel.OFFLINE.value, "national_api:no_online_method"
    return OnlineLevel.PARTIAL.value, "national_api:online_not_full_process"


def convert(raw: Any) -> ProcedureRecord:
    code = require_code(raw, "code")
    name = require_name(raw, "name")
    if raw.get("isInternal") is True:
        raise FieldError("isInternal", "internal procedure between state bodies, not for citizens")
    steps = _steps(raw)
    if steps and steps.strip().lower() == "test":
        raise FieldError("executionSteps", "test record (steps read 'test')")
    methods = [_method(i, item) for i, item in enumerate(_list(raw, "executionMethods"))]
    level, level_source = online_level(raw, methods)
    proposal = raw.get("procedureProposal") or {}
    values = {
        "code": code,
        "name": name,
        "field": join_names(_list(raw, "categoriesDetails")),
        "levels": [level.value for flag, level in LEVEL_FLAGS if raw.get(flag) is True],
        "procedure_type": field_text(raw, "formalityType"),
        "implementing_agencies": field_text(raw, "executingAgencies")
        or join_names(_list(raw, "departmentsExecuting")),
        "competent_agency": join_names(_list(raw, "departmentsAuthority")),
        "receiving_address": field_text(raw, "dossierReceivingAddresses"),
        "target_subjects": join_names(_list(raw, "subjectTypesDetails")),
        "requirements": field_text(raw, "requirementsAndConditions"),
        "steps": steps,
        "result": join_names(_list(raw, "resultsDetails")),
        "decision_number": field_text(raw, "decisionNo")
        or text_or_none(proposal.get("proposalNumber")),
        "ministry": field_text(raw, "departmentPromulgateName"),
        "online_level": level,
        "online_level_source": level_source,
        "online_submit_url": None,
        "source_url": PORTAL_URL + raw["id"] if isinstance(raw.get("id"), str) else None,
        "source_format": FORMAT,
    }
    return ProcedureRecord(values, methods, _documents(raw), _legal_bases(raw))
