"""One wording of a procedure's facts (bot, staff page, CLI) and of the outage apology."""

from __future__ import annotations

import logging

import pytest

from procedures_db.facts import UNKNOWN, format_number, known, method_fee, method_time
from procedures_db.profile import (
    NATIONAL_HOTLINE,
    NATIONAL_SUPPORT_URL,
    ProvinceProfile,
    contact_hint,
    load_profile_or_default,
    outage_apology,
)

LICENCE_NOTE = (
    "- Lệ phí cấp giấy phép lái xe: 135.000 đồng/lần.  - Trường hợp nộp hồ sơ trực tuyến: "
    "áp dụng mức thu lệ phí là 115.000 đồng/lần cấp."
)
COUNCIL_NOTE = "Mức lệ phí do Hội đồng nhân dân tỉnh quyết định."


@pytest.mark.parametrize(
    ("value", "expected"), [(135000, "135.000"), (5.0, "5"), (2.5, "2,5"), (1e6, "1.000.000")]
)
def test_vietnamese_numbers(value: float, expected: str) -> None:
    assert format_number(value) == expected


def test_time_never_guesses_a_unit() -> None:
    assert method_time({"time_value": 5, "time_unit": "working_day"}) == "5 ngày làm việc"
    bare = {"time_value": 30, "time_text": "30"}
    assert method_time(bare) == "30 (nguồn chỉ ghi số; không ghi đơn vị)"
    # The unit the steps or the description state for that number is quoted with it.
    steps = "Trong thời hạn 30 ngày làm việc kể từ ngày nhận đủ hồ sơ"
    assert method_time(bare, steps) == "30 (nguồn chỉ ghi số; mô tả thủ tục ghi: 30 ngày làm việc)"
    assert method_time({**bare, "description": "trả kết quả sau 030 ngày"}).endswith("030 ngày)")
    assert method_time({"time_text": "(Không có thông tin)"}) is None


@pytest.mark.parametrize("short", [False, True])
def test_free_cell_contradicted_by_amounts_shows_the_amounts(short: bool) -> None:
    method = {
        "fee_amounts": [135000, 115000],
        "fee_text": "Miễn phí",
        "fee_description": LICENCE_NOTE,
    }
    fee = method_fee(method, short=short)
    assert "Miễn phí" not in fee and "135.000 đồng" in fee and "115.000 đồng" in fee
    assert ("Trường hợp nộp hồ sơ trực tuyến" in fee) is not short


@pytest.mark.parametrize("short", [False, True])
def test_free_cell_explained_by_the_note_shows_the_note(short: bool) -> None:
    method = {"fee_amounts": [], "fee_text": "Miễn phí", "fee_description": COUNCIL_NOTE}
    assert method_fee(method, short=short) == "Mức lệ phí do Hội đồng nhân dân tỉnh quyết định"


def test_amounts_not_stated_in_the_text_follow_it() -> None:
    method = {"fee_amounts": [50000], "fee_text": "Lệ phí", "fee_description": "50000 đồng/hồ sơ"}
    assert method_fee(method) == "Lệ phí. 50000 đồng/hồ sơ (mức thu: 50.000 đồng)"
    assert method_fee(method, short=True) == "50.000 đồng"


def test_a_unit_note_stays_with_the_amount_even_when_short() -> None:
    method = {"fee_amounts": [2000], "fee_text": "2,000 VNĐ", "fee_description": "/trang"}
    assert method_fee(method, short=True) == method_fee(method) == "2.000 đồng/trang"


def test_free_only_when_nothing_says_otherwise() -> None:
    method = {"fee_amounts": [], "fee_text": "Miễn phí", "fee_description": "(Không có)"}
    assert method_fee(method) == "Miễn phí"
    assert method_fee({"fee_text": "Không có thông tin"}) is None


def test_known_keeps_line_breaks_and_marks_missing_values() -> None:
    assert known("Bước 1: nộp.\nBước 2: nhận.") == "Bước 1: nộp.\nBước 2: nhận."
    assert known(" Không có thông tin ") == UNKNOWN and known(None) == UNKNOWN


def test_contact_hint_and_apology_name_the_hotline_with_its_hours() -> None:
    profile = ProvinceProfile(hotline="1900 0000", opening_hours="7h30-17h00")
    assert contact_hint(profile) == (
        "Để được hướng dẫn, bạn vui lòng gọi đường dây nóng 1900 0000 (7h30-17h00)."
    )
    apology = outage_apology(profile)
    assert apology.startswith("Xin lỗi, hệ thống đang gặp sự cố") and apology.endswith(
        contact_hint(profile)
    )


def test_without_hotline_the_province_or_national_portal() -> None:
    hint = contact_hint(ProvinceProfile())
    assert "Cổng Dịch vụ công quốc gia: https://dichvucong.gov.vn" in hint
    assert NATIONAL_HOTLINE in hint and NATIONAL_SUPPORT_URL in hint  # the default profile
    own = ProvinceProfile(online_portal_url="https://dichvucong.thu.gov.vn")
    assert "Cổng Dịch vụ công: https://dichvucong.thu.gov.vn" in contact_hint(own)


def test_unusable_profile_is_logged_and_replaced_by_the_default(tmp_path, caplog) -> None:
    path = tmp_path / "province.yml"
    path.write_text("- not a mapping\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="procedures_db.profile"):
        assert load_profile_or_default(path) == ProvinceProfile()
    assert str(path) in caplog.text
