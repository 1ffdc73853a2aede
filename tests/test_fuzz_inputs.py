"""Hostile input for the text normalizer, the masking of personal data, the cell parsers and the
importer: no crash (only the documented errors), and nothing stored half-way.

The budget is small in `make test`; `make bench` raises it: FUZZ_EXAMPLES=2000.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import string
from itertools import islice
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from procedures_db import parsing
from procedures_db.privacy import mask_personal_data
from procedures_db.settings import get_settings
from procedures_db.text import (
    canonical,
    expand_chat_abbreviations,
    fold_accents,
    folded,
    normalize_message,
    tokens,
)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Pieces of real portal cells and chat messages, so that the fuzzer reaches deep parser branches
# and not only "no match" paths.
FRAGMENTS = [
    "Hình thức nộp", "Thời gian", "Phí, lệ phí", "Mô tả", "Trực tiếp", "Trực tuyến",
    "Dịch vụ bưu chính", "Ngày làm việc", "Ngày", "Giờ", "Tháng", "Lệ phí", "Phí",
    "Không có thông tin", ": ", " : ", "đồng", "Đồng", "VNĐ", "triệu", "nghìn", "USD", "135.000",
    "1,200,000", "0", "-", "--", "(", ")", "[", "]", "Tên giấy tờ", "Mẫu đơn, tờ khai",
    "Số lượng", "Bản chính: 1", "Bản sao: 0", "Trường hợp", "Tên văn bản pháp lý", "Mã văn bản",
    "Luật", "Nghị định", "15/2020/NĐ-CP", "1.001193", "Cấp bộ", "Cấp tỉnh", "Cấp xã",
    "Cấp huyện", "Một phần", "Toàn trình", "\n", "\t", "  ", "hoà", "thuỷ", "QUÝ", "ko", "dc",
    "bn", "j", "0912345678", "+84 912 345 678", "012345678901", "a@b.vn", "\u0301", "\u200b",
    "İ", "ß", "ﬁ", "\ufeff", "\x00",
]  # fmt: skip
cell_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=25).map(
    "".join
)


# --- normalizer -----------------------------------------------------------------------------


@fuzz
@given(cell_text)
@example("hoa\u0300\u0300")  # found with 2000 examples: canonical() left a mark uncomposed
def test_normalizer_total_and_stable(text: str) -> None:
    once = canonical(text)
    assert isinstance(once, str) and "  " not in once and once == once.strip()
    assert canonical(once) == once
    assert not any(ch in "\u0300\u0301\u0303\u0309\u0323" for ch in fold_accents(text))
    for token in tokens(text):
        assert token and set(token) <= set(string.ascii_lowercase + string.digits + ".")
    assert folded(text) == folded(canonical(text))
    assert isinstance(expand_chat_abbreviations(text), str)
    message = normalize_message(text)
    assert "  " not in message and message == message.strip()


@fuzz
@given(cell_text, st.from_regex(r"0[0-9]{11}", fullmatch=True), cell_text)
def test_id_numbers_never_survive_masking(before: str, id_number: str, after: str) -> None:
    text = f"{before} {id_number} {after}"
    masked = mask_personal_data(text)
    # The ID may only remain when the fuzzer glued it to other digits (then it is no ID).
    assert id_number not in masked or id_number in f"{before}{after}"


# --- cell parsers ----------------------------------------------------------------------------

PARSERS = [
    parsing.parse_amounts,
    parsing.has_foreign_amount,
    parsing.parse_time,
    parsing.parse_methods,
    parsing.parse_documents,
    parsing.parse_legal_bases,
    parsing.parse_levels,
]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
def test_parsers_fail_only_with_cell_error(parser) -> None:
    @fuzz
    @given(st.one_of(st.none(), cell_text))
    def check(cell: str | None) -> None:
        try:
            result = parser(cell)
        except parsing.CellError as error:
            assert str(error)  # the importer turns it into a reject naming the field
            return
        if parser is parsing.parse_amounts:
            assert all(isinstance(a, int) and a > 0 for a in result)
        if parser is parsing.parse_levels:
            assert isinstance(result, list) and all(isinstance(level, str) for level in result)

    check()


# --- importer --------------------------------------------------------------------------------


def _seed_records(count: int = 5) -> list[dict]:
    path = get_settings().data_dir / "dichvucong-national-2026.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in islice(f, count)]


hostile_value = st.one_of(
    st.none(),
    cell_text,
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


@pytest.fixture(scope="module")
def empty_db_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from procedures_db.db import create_schema, get_engine

    path = tmp_path_factory.mktemp("fuzzdb") / "empty.sqlite3"
    engine = get_engine(f"sqlite:///{path}")
    create_schema(engine)
    # The engine keeps its connections (WAL mode): closing them writes the log into the file,
    # which the test then copies as a file.
    engine.dispose()
    return path


@fuzz
@given(
    mutations=st.lists(
        st.tuples(
            st.integers(0, 4),
            st.sampled_from(
                [
                    "ma_thu_tuc",
                    "ten_thu_tuc",
                    "cach_thuc_thuc_hien",
                    "thanh_phan_ho_so",
                    "can_cu_phap_ly",
                    "cap_thuc_hien",
                    "linh_vuc",
                    "ket_qua_xu_ly",
                    "_ministry_folder",
                ]
            ),
            hostile_value,
        ),
        max_size=8,
    ),
    garbage_lines=st.lists(st.binary(max_size=40), max_size=3),
)
def test_import_of_hostile_records_stores_nothing_half_way(
    mutations, garbage_lines, empty_db_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from procedures_db.importers import run_import
    from procedures_db.importers.records import FieldError
    from procedures_db.importers.scraped import convert

    records = _seed_records()
    for index, key, value in mutations:
        records[index][key] = value
    work = tmp_path_factory.mktemp("fuzzimport")
    data = work / "records.jsonl"
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in records]
    lines += [g.replace(b"\n", b" ") for g in garbage_lines]
    data.write_bytes(b"\n".join(lines) + b"\n")
    db = work / "db.sqlite3"
    shutil.copy(empty_db_file, db)
    engine = sa.create_engine(f"sqlite:///{db}", future=True)

    report = run_import([data], overlay=None, engine=engine)

    expected = {}
    for record in records:
        try:
            converted = convert(record)
        except FieldError:
            continue
        expected[converted.code] = converted  # a later duplicate wins
    with engine.connect() as connection:
        stored = dict(connection.execute(sa.text("SELECT code, id FROM procedures")).all())
        for code, procedure_id in stored.items():
            record = expected[code]
            for table, rows in (
                ("submission_methods", record.methods),
                ("documents", record.documents),
                ("legal_bases", record.legal_bases),
            ):
                count = connection.execute(
                    sa.text(f"SELECT count(*) FROM {table} WHERE procedure_id = :id"),
                    {"id": procedure_id},
                ).scalar_one()
                assert count == len(rows), (code, table)
    engine.dispose()
    assert set(stored) <= set(expected)
    assert report.inserted == len(stored)
