"""procedures_db.privacy.mask_personal_data: ID numbers, phone numbers and e-mails are hidden."""

from __future__ import annotations

import pytest

from procedures_db.privacy import EMAIL_MASK, ID_MASK, PHONE_MASK, mask_personal_data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("số CCCD của em là 001203004567 ạ", f"số CCCD của em là {ID_MASK} ạ"),
        ("CMND cũ 123456789", f"CMND cũ {ID_MASK}"),
        ("sđt 0901234567", f"sđt {PHONE_MASK}"),
        ("gọi 090 123 4567 nhé", f"gọi {PHONE_MASK} nhé"),
        ("0901.234.567", PHONE_MASK),
        ("0901-234-567", PHONE_MASK),
        ("+84 901 234 567", PHONE_MASK),
        ("+84901234567 hoặc 84901234567", f"{PHONE_MASK} hoặc {PHONE_MASK}"),
        ("máy bàn 02838123456", f"máy bàn {PHONE_MASK}"),
        ("mail nguyen.van-a+tthc@gmail.com.vn nhé", f"mail {EMAIL_MASK} nhé"),
    ],
)
def test_personal_data_is_masked(text, expected):
    assert mask_personal_data(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "thủ tục 1.001193 lệ phí 135.000 đồng",
        "phí 1.500.000.000 đồng",
        "năm 2024, quyết định 1025/QĐ-BCA",
        "mất 15 ngày làm việc",
        "",
    ],
)
def test_codes_amounts_and_dates_are_kept(text):
    assert mask_personal_data(text) == text


def test_several_items_in_one_message():
    text = "Em tên A, CCCD 079090001234, sđt 0987654321, mail a@b.vn, hỏi đổi GPLX"
    masked = mask_personal_data(text)
    assert masked == f"Em tên A, CCCD {ID_MASK}, sđt {PHONE_MASK}, mail {EMAIL_MASK}, hỏi đổi GPLX"
