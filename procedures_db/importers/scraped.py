"""The scraped national file (dichvucong-national-*.jsonl.gz): one portal page per line."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from procedures_db import parsing
from procedures_db.importers.common import field_text, require_code, require_name
from procedures_db.importers.records import FieldError, ProcedureRecord, SourceItem
from procedures_db.importers.report import ImportReport
from procedures_db.models import Method, OnlineLevel

FORMAT = "scraped"

MINISTRIES = {
    "bo-cong-an": "Bộ Công an",
    "bo-tu-phap": "Bộ Tư pháp",
    "bo-xay-dung": "Bộ Xây dựng",
    "bo-tai-chinh": "Bộ Tài chính",
    "bo-nong-nghiep-mt": "Bộ Nông nghiệp và Môi trường",
    "ngan-hang-nha-nuoc": "Ngân hàng Nhà nước Việt Nam",
    "toa-an-nhan-dan": "Tòa án nhân dân",
}
_RESULT_CODE_RE = re.compile(r"Mã: ?\S*?Từ khóa.*?Mô tả", re.DOTALL)


def is_scraped_file(path: Path) -> bool:
    return path.name.endswith((".jsonl", ".jsonl.gz"))


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        yield from handle


def read_file(path: Path, report: ImportReport) -> Iterator[SourceItem]:
    """Every convertible record of the file; each bad line becomes a reject, never a stop."""
    name = str(path)
    line_no = 0
    try:
        for line_no, raw_line in enumerate(_lines(path), start=1):
            if not raw_line.strip():
                continue
            item = _read_line(name, line_no, raw_line, report)
            if item:
                yield item
    except (EOFError, OSError, zlib.error) as error:
        # Truncated or corrupt gzip: the records before the damage are kept.
        report.reject(name, line_no + 1, None, f"file unreadable after line {line_no}: {error}")


def _read_line(name: str, line_no: int, raw_line: bytes, report: ImportReport) -> SourceItem | None:
    try:
        raw = json.loads(raw_line.decode("utf-8"))
    except UnicodeDecodeError as error:
        report.reject(name, line_no, None, f"not UTF-8: {error}")
        return None
    except json.JSONDecodeError as error:
        report.reject(name, line_no, None, f"bad JSON: {error}")
        return None
    code = raw.get("ma_thu_tuc") if isinstance(raw, dict) else None
    try:
        record = convert(raw)
    except FieldError as error:
        report.reject(name, line_no, error.field, error.reason, code)
        return None
    return SourceItem(FORMAT, name, line_no, raw, record)


def _parsed(key: str, parser, raw: dict[str, Any]):
    try:
        return parser(field_text(raw, key))
    except parsing.CellError as error:
        raise FieldError(key, str(error)) from None


def result_names(cell: str | None) -> str | None:
    """ "<name>Mã: KQ...Từ khóa...Mô tả...<next name>..." -> "name; next name"."""
    if not cell:
        return None
    cell = cell.split("Chọn cơ quan thực hiện")[0]
    pieces = _RESULT_CODE_RE.split(cell)
    names = [pieces[0]] + [p.removeprefix(parsing.NO_INFO) for p in pieces[1:]]
    return "; ".join(n.strip() for n in names if n.strip()) or None


def online_level(name: str, methods: list[dict[str, Any]]) -> tuple[str, str]:
    from_name = parsing.online_level_from_name(name)
    if from_name:
        return from_name.value, "name"
    if not any(m["method"] == Method.ONLINE.value for m in methods):
        return OnlineLevel.OFFLINE.value, "derived:no_online_method"
    return OnlineLevel.UNKNOWN.value, "derived:online_method_listed"


def convert(raw: Any) -> ProcedureRecord:
    code = require_code(raw, "ma_thu_tuc")
    name = require_name(raw, "ten_thu_tuc")
    rows = _parsed("cach_thuc_thuc_hien", parsing.parse_methods, raw)
    methods = [
        {
            "method": row.method.value,
            "time_value": row.time.value,
            "time_unit": row.time.unit.value if row.time.unit else None,
            "time_text": row.time.text,
            "fee_amounts": row.fee_amounts,
            "fee_text": row.fee_text,
            "fee_description": row.fee_description,
            "description": row.description,
        }
        for row in rows
    ]
    level, level_source = online_level(name, methods)
    values = {
        "code": code,
        "name": name,
        "field": field_text(raw, "linh_vuc"),
        "levels": _parsed("cap_thuc_hien", parsing.parse_levels, raw),
        "procedure_type": field_text(raw, "loai_thu_tuc"),
        "implementing_agencies": field_text(raw, "co_quan_thuc_hien"),
        "competent_agency": field_text(raw, "co_quan_co_tham_quyen"),
        "receiving_address": field_text(raw, "dia_chi_tiep_nhan"),
        "target_subjects": field_text(raw, "doi_tuong_thuc_hien"),
        "requirements": field_text(raw, "yeu_cau_dieu_kien"),
        "steps": field_text(raw, "trinh_tu_thuc_hien"),
        "result": result_names(field_text(raw, "ket_qua_xu_ly")),
        "decision_number": field_text(raw, "so_quyet_dinh"),
        "ministry": MINISTRIES.get(field_text(raw, "_ministry_folder") or ""),
        "online_level": level,
        "online_level_source": level_source,
        "online_submit_url": None,
        "source_url": field_text(raw, "detail_url"),
        "source_format": FORMAT,
    }
    documents = [
        {
            "name": doc.name,
            "originals": doc.originals,
            "copies": doc.copies,
            "form_name": doc.form_name,
            "case_name": doc.case_name,
        }
        for doc in _parsed("thanh_phan_ho_so", parsing.parse_documents, raw)
    ]
    legal = [
        {"title": row.title, "number": row.number}
        for row in _parsed("can_cu_phap_ly", parsing.parse_legal_bases, raw)
    ]
    return ProcedureRecord(values, methods, documents, legal)
