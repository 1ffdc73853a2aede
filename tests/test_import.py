"""Importer: real data counts, idempotence, precedence, overlay, and broken input of every kind."""

from __future__ import annotations

import copy
import gzip
import json
import random
import string
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from procedures_db.db import create_schema, get_engine
from procedures_db.importers import run_import
from procedures_db.models import Document, ImportRun, Procedure, SubmissionMethod
from tests.conftest import DATA_DIR, data_path

API_SAMPLE = data_path("national-api-sample")
METHODS_CELL = (
    "Hình thức nộpThời gianPhí, lệ phíMô tảTrực tuyến5 Ngày làm việcMiễn phí(Lệ phí: 50.000 "
    "đồng/lần)Trực tiếp7 NgàyLệ phí : 50.000 Đồng"
)


def scraped(code: str, **changes: str) -> dict:
    """A small record in the scraped portal format."""
    record = {
        "ma_thu_tuc": code,
        "detail_url": f"https://dichvucong.gov.vn/thu-tuc-hanh-chinh/{code}",
        "ten_thu_tuc": f"Thủ tục thử {code}",
        "so_quyet_dinh": "1/QĐ-TEST",
        "cap_thuc_hien": "Cấp tỉnh",
        "linh_vuc": "Thử nghiệm",
        "cach_thuc_thuc_hien": METHODS_CELL,
        "thanh_phan_ho_so": "--Tên giấy tờMẫu đơn, tờ khaiSố lượngTờ khai1 bản chínhBản sao0 bản "
        "chính,1 bản sao",
        "can_cu_phap_ly": "Tên văn bản pháp lýMã văn bảnNghị định thử1/2024/NĐ-CP",
        "trinh_tu_thuc_hien": "Bước 1",
        "_ministry_folder": "bo-tu-phap",
    }
    record.update(changes)
    return record


def write_jsonl(path: Path, lines: list[dict | str | bytes]) -> Path:
    data = b"".join(
        (
            line
            if isinstance(line, bytes)
            else (line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)).encode()
        )
        + b"\n"
        for line in lines
    )
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = get_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    create_schema(engine)
    return engine


def codes(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(Procedure.code)).scalars())


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def assert_no_half_records(engine: Engine, methods_per_record: int = 2) -> None:
    """Every procedure has all of its rows, and no row lacks its procedure."""
    with engine.connect() as conn:
        per_procedure = conn.execute(
            select(Procedure.code, func.count(SubmissionMethod.id))
            .join(SubmissionMethod, isouter=True)
            .group_by(Procedure.code)
        ).all()
    assert all(n == methods_per_record for _, n in per_procedure), per_procedure
    assert count(engine, SubmissionMethod) == methods_per_record * len(per_procedure)
    assert count(engine, Document) == 2 * len(per_procedure)


# --- real data --------------------------------------------------------------------------------


def first_run_report(engine: Engine) -> dict:
    with engine.connect() as conn:
        return conn.execute(select(ImportRun.report).order_by(ImportRun.id).limit(1)).scalar_one()


def test_full_import_counts_and_edge_cases(full_db_engine: Engine) -> None:
    report = first_run_report(full_db_engine)
    assert report["records_read"] == {"scraped": 2642, "national_api": 23}
    assert report["inserted"] == 2642 + 23 - 2  # two codes are in both formats
    reasons = {r["code"]: r["field"] for r in report["rejected"]}
    assert reasons == {"1.116628": "executionSteps", "5.003909": "isInternal"}
    assert sorted(s.split()[0] for s in report["superseded"]) == ["1.007916", "1.013945"]
    coverage = report["coverage"]
    assert coverage["with_time"] / coverage["method_rows"] > 0.94
    assert coverage["value_bearing_unparsed"] <= 2
    with full_db_engine.connect() as conn:
        fmt, source = conn.execute(
            select(Procedure.source_format, Procedure.online_level_source).where(
                Procedure.code == "1.007916"
            )
        ).one()
    assert (fmt, source) == ("national_api", "national_api:online_not_full_process")


def test_reimport_of_full_data_changes_nothing(full_db_engine: Engine) -> None:
    report = run_import([DATA_DIR], overlay=None, engine=full_db_engine)
    assert (report.inserted, report.updated) == (0, 0)
    assert report.unchanged == 2663
    assert len(report.superseded) == 2
    assert any(line == "unchanged: 2663" for line in report.summary_lines())


# --- precedence and idempotence ---------------------------------------------------------------


def test_national_api_record_wins_regardless_of_order(tmp_path: Path) -> None:
    api_file = API_SAMPLE / "019d2bfa-47ed-725f-9881-5cb6112be9e7.json"  # 1.007916
    scraped_file = write_jsonl(tmp_path / "s.jsonl", [scraped("1.007916"), scraped("9.000001")])
    for order, name in (([api_file, scraped_file], "a"), ([scraped_file, api_file], "b")):
        engine = get_engine(f"sqlite:///{tmp_path / name}.sqlite3")
        create_schema(engine)
        report = run_import(order, engine=engine)
        assert (report.inserted, len(report.superseded)) == (2, 1)
        again = run_import(order, engine=engine)
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
        assert len(again.superseded) == 1
        with engine.connect() as conn:
            row = conn.execute(
                select(Procedure.source_format, Procedure.name).where(Procedure.code == "1.007916")
            ).one()
        assert row == ("national_api", "Nộp tiền trồng rừng thay thế")
        assert count(engine, SubmissionMethod) == 6 + 2  # both alternative times kept


def test_changed_record_is_updated_not_duplicated(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    run_import([write_jsonl(path, [scraped("9.000001"), scraped("9.000002")])], engine=engine)
    changed = scraped("9.000002", ten_thu_tuc="Tên mới")
    report = run_import([write_jsonl(path, [scraped("9.000001"), changed])], engine=engine)
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 1)
    assert_no_half_records(engine)


# --- overlay ---------------------------------------------------------------------------------


def test_overlay_wins_and_reimport_is_unchanged(engine: Engine, tmp_path: Path) -> None:
    records = write_jsonl(tmp_path / "s.jsonl", [scraped("9.000001"), scraped("9.000002")])
    overlay = tmp_path / "gia-lai.csv"
    overlay.write_text(
        "code,online_level,submit_url\n"
        "9.000001,Toàn trình,https://dichvucong.gialai.gov.vn/9.000001\n"
        "9.000002,cap_5,\n"  # bad row: unknown level
        ",mot_phan,\n",  # bad row: no code
        encoding="utf-8",
    )
    report = run_import([records], overlay=overlay, engine=engine)
    assert report.inserted == 2 and report.overlay_applied == 1
    assert {(r.line, r.field) for r in report.rejected} == {(3, "online_level"), (4, "code")}
    with engine.connect() as conn:
        rows = dict(
            (code, (level, source, url))
            for code, level, source, url in conn.execute(
                select(
                    Procedure.code,
                    Procedure.online_level,
                    Procedure.online_level_source,
                    Procedure.online_submit_url,
                )
            )
        )
    assert rows["9.000001"] == (
        "toan_trinh",
        "overlay:gia-lai.csv",
        "https://dichvucong.gialai.gov.vn/9.000001",
    )
    assert rows["9.000002"] == ("chua_ro", "derived:online_method_listed", None)
    again = run_import([records], overlay=overlay, engine=engine)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    overlay.write_text("code,online_level\n9.000001,một phần\n", encoding="utf-8")
    changed = run_import([records], overlay=overlay, engine=engine)
    assert (changed.updated, changed.unchanged) == (1, 1)


# --- broken input: valid records still import, nothing half-written ---------------------------


def test_truncated_gzip(engine: Engine, tmp_path: Path) -> None:
    noise = "".join(random.Random(1).choices(string.ascii_letters, k=200_000))
    path = write_jsonl(
        tmp_path / "cut.jsonl.gz",
        [scraped("9.000001"), scraped("9.000002"), scraped("9.000003", steps=noise)],
    )
    path.write_bytes(path.read_bytes()[:-2000])
    report = run_import([path], engine=engine)
    assert codes(engine) == ["9.000001", "9.000002"]
    (reject,) = report.rejected
    assert reject.file == str(path) and "unreadable" in reject.reason
    assert_no_half_records(engine)


@pytest.mark.parametrize(
    ("bad_line", "field", "reason"),
    [
        ('{"ma_thu_tuc": "9.000009", "ten_thu_tuc": ', None, "bad JSON"),
        (b'{"ma_thu_tuc": "9.000009", "ten_thu_tuc": "\xff\xfe"}', None, "not UTF-8"),
        (scraped("", ten_thu_tuc="Không mã"), "ma_thu_tuc", "missing procedure code"),
        (
            scraped("9.000009", cach_thuc_thuc_hien=METHODS_CELL.replace("Trực tuyến", "Qua fax")),
            "cach_thuc_thuc_hien",
            "unknown submission method",
        ),
        (scraped("9.000009", cap_thuc_hien="Cấp huyện"), "cap_thuc_hien", "unknown level"),
    ],
)
def test_bad_scraped_line(engine: Engine, tmp_path: Path, bad_line, field, reason) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [scraped("9.000001"), bad_line, scraped("9.000002")])
    report = run_import([path], engine=engine)
    assert codes(engine) == ["9.000001", "9.000002"]
    (reject,) = report.rejected
    assert (reject.file, reject.line, reject.field) == (str(path), 2, field)
    assert reason in reject.reason
    assert_no_half_records(engine)


def test_bad_api_files(engine: Engine, tmp_path: Path) -> None:
    good = json.loads((API_SAMPLE / "019d2bf7-cd62-75ce-b319-7b31d19fb35f.json").read_text())
    unknown_method = copy.deepcopy(good)
    unknown_method["code"] = "9.000010"
    unknown_method["executionMethods"][1]["submissionMethod"] = "FAX"
    (tmp_path / "a.json").write_text(json.dumps(good), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps(unknown_method), encoding="utf-8")
    (tmp_path / "c.json").write_text('{"code": "9.000011", ', encoding="utf-8")
    (tmp_path / "d.json").write_bytes(b'{"code": "9.000012", "name": "\xff"}')
    report = run_import([tmp_path], engine=engine)
    assert codes(engine) == ["1.000358"]
    assert count(engine, SubmissionMethod) == 3
    rejects = {Path(r.file).name: (r.field, r.reason) for r in report.rejected}
    assert rejects["b.json"] == ("executionMethods[1].submissionMethod", "unknown method 'FAX'")
    assert rejects["c.json"][1].startswith("bad JSON")
    assert rejects["d.json"][1].startswith("not UTF-8")


def test_bad_overlay_file_does_not_stop_import(engine: Engine, tmp_path: Path) -> None:
    records = write_jsonl(tmp_path / "s.jsonl", [scraped("9.000001")])
    overlay = tmp_path / "o.csv"
    overlay.write_bytes(b"code,online_level\n9.000001,to\xe0n tr\xecnh\n")  # Latin-1, not UTF-8
    report = run_import([records], overlay=overlay, engine=engine)
    assert report.inserted == 1 and report.overlay_applied == 0
    assert "unreadable" in report.rejected[0].reason


def test_import_run_is_recorded(engine: Engine, tmp_path: Path) -> None:
    report = run_import([write_jsonl(tmp_path / "s.jsonl", [scraped("9.000001")])], engine=engine)
    with engine.connect() as conn:
        stored = conn.execute(select(ImportRun.report)).scalar_one()
    assert stored["inserted"] == report.inserted == 1
    assert stored["coverage"]["method_rows"] == 2
    assert stored["coverage"]["with_fee_amount"] == 2
