"""Cell parsers on real cell strings from the scraped portal file."""

from __future__ import annotations

import pytest

from procedures_db import parsing
from procedures_db.models import Method, OnlineLevel, TimeUnit

HEADER = parsing.METHODS_HEADER

# 3.000347 "Đổi giấy phép lái xe": the fee cell says "Miễn phí", its note states the amounts.
DRIVING_LICENCE = (
    HEADER + "Trực tuyến5 Ngày làm việcMiễn phí(- Lệ phí cấp giấy phép lái xe: 135.000 đồng/lần.  "
    "- Trường hợp tổ chức, cá nhân nộp hồ sơ theo hình thức trực tuyến: Kể từ ngày 01/12/2023 "
    "đến hết ngày 31/12/2025, áp dụng mức thu lệ phí là 115.000 đồng/lần cấp.)Trực tiếp5 Ngày "
    "làm việcMiễn phí(- Lệ phí cấp giấy phép lái xe: 135.000 đồng/lần.  - Trường hợp tổ chức, cá "
    "nhân nộp hồ sơ theo hình thức trực tuyến: Kể từ ngày 01/12/2023 đến hết ngày 31/12/2025, áp "
    "dụng mức thu lệ phí là 115.000 đồng/lần cấp.)"
)


def test_driving_licence_methods_keep_both_amounts_in_order() -> None:
    rows = parsing.parse_methods(DRIVING_LICENCE)
    assert [row.method for row in rows] == [Method.ONLINE, Method.IN_PERSON]
    for row in rows:
        assert (row.time.value, row.time.unit) == (5, TimeUnit.WORKING_DAY)
        assert row.fee_text == "Miễn phí"
        assert row.fee_amounts == [135000, 115000]
        assert row.fee_description.startswith("- Lệ phí cấp giấy phép lái xe")
        assert row.description is None


def test_bare_number_time_glued_to_fee_number() -> None:
    # 2.002032: "1" (time) + "100 VNĐ" (fee), "1" + "25 VNĐ"
    cell = HEADER + "Trực tuyến1100 VNĐDịch vụ bưu chính1100 VNĐTrực tiếp125 VNĐ"
    rows = parsing.parse_methods(cell)
    assert [r.method for r in rows] == [Method.ONLINE, Method.POSTAL, Method.IN_PERSON]
    assert [(r.time.value, r.time.unit) for r in rows] == [(1, None)] * 3
    assert [r.fee_amounts for r in rows] == [[100], [100], [25]]


def test_no_information_is_none_and_description_is_kept() -> None:
    cell = (
        HEADER + "Dịch vụ bưu chính60 Ngày làm việcKhông có thông tinThời hạn giải quyết khiếu nại"
        " lần đầu không quá 30 ngàyTrực tiếpKhông có thông tinKhông có thông tin"
    )
    first, second = parsing.parse_methods(cell)
    assert first.fee_text is None and first.fee_amounts == []
    assert first.description.startswith("Thời hạn giải quyết")
    assert (second.time.value, second.time.text, second.fee_text) == (None, None, None)


def test_method_names_inside_descriptions_are_not_rows() -> None:
    cell = (  # 1.014066
        HEADER + "Trực tiếp5 Ngày làm việcMiễn phí- Trực tiếp tại Công an cấp xã trong phạm vi "
        "cấp tỉnh không phụ thuộc nơi cư trú."
    )
    (row,) = parsing.parse_methods(cell)
    assert row.description.startswith("- Trực tiếp tại Công an cấp xã")


def test_free_text_time_and_bare_number_time() -> None:
    rows = parsing.parse_methods(  # 1.008312
        HEADER + "Trực tuyếnKhông quy địnhMiễn phíQua Cổng DVC Quốc giaDịch vụ bưu chínhKhông quy "
        "địnhMiễn phíThông qua dịch vụ bưu chính công íchTrực tiếpKhông quy địnhMiễn phíTại "
        "TTPVHCC cấp tỉnh, xã"
    )
    assert len(rows) == 3
    assert all(r.time.value is None and r.time.text == "Không quy định" for r in rows)
    assert rows[2].description == "Tại TTPVHCC cấp tỉnh, xã"
    rows = parsing.parse_methods(
        HEADER + "Dịch vụ bưu chính1Miễn phí(Không có)Trực tiếp1Miễn phí(Không có)"
    )
    assert [(r.time.value, r.fee_description) for r in rows] == [(1, "Không có")] * 2


def test_fee_cell_amounts_and_foreign_currency() -> None:
    (row, *_) = parsing.parse_methods(  # 1.003026
        HEADER + "Trực tuyến28 Ngày làm việc18,000,000 VNĐ(Phí thẩm định tiêu chuẩn)"
    )
    assert row.fee_amounts == [18_000_000]
    (row,) = parsing.parse_methods(HEADER + "Trực tuyến5 Ngày làm việc10 USD(/lần)")
    assert row.fee_text == "10 USD" and row.fee_amounts == []  # VND only


def test_fee_cell_in_thousands_is_read_from_its_description() -> None:
    (row,) = parsing.parse_methods(  # 3.000351: the cell says 135, the description 135.000
        HEADER + "Trực tiếp5 Ngày làm việc135 VNĐ(Lệ phí cấp giấy phép lái xe: 135.000 đồng/lần.)"
    )
    assert row.fee_amounts == [135_000]
    # Without the description's evidence the published figure stays as it is.
    assert parsing.fee_amounts("120 VNĐ", "20.000 vnđ /tờ khai") == [120, 20_000]


def test_unknown_method_label_is_an_error() -> None:
    with pytest.raises(parsing.CellError, match="unknown submission method"):
        parsing.parse_methods(HEADER + "Qua fax5 Ngày làm việcMiễn phí")
    with pytest.raises(parsing.CellError, match="header"):
        parsing.parse_methods("Trực tuyến5 Ngày làm việcMiễn phí")
    assert parsing.parse_methods("Không có thông tin") == []


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("5 Ngày làm việc", 5, TimeUnit.WORKING_DAY),
        ("30 Ngày", 30, TimeUnit.DAY),
        ("8 Giờ", 8, TimeUnit.HOUR),
        ("4 Tháng", 4, TimeUnit.MONTH),
        ("1", 1, None),
        ("Không có thông tin", None, None),
        ("0", None, None),
        ("Không quy định", None, None),
    ],
)
def test_parse_time(text: str, value: float | None, unit: TimeUnit | None) -> None:
    parsed = parsing.parse_time(text)
    assert (parsed.value, parsed.unit) == (value, unit)


@pytest.mark.parametrize(
    ("text", "amounts"),
    [
        ("Lệ phí : 50.000 Đồng", [50_000]),
        ("1,200,000 Việt Nam Đồng(1.200.000đ/thẻ ABTC.)", [1_200_000]),
        ("120 VNĐ(20.000 vnđ /tờ khai)", [120, 20_000]),
        (
            "Cho một loại hình sản phẩm: 8.000.000/lần; thêm một loại: 2.000.000/lần.",
            [8_000_000, 2_000_000],
        ),
        ("Mức phí giảm 20%: 1.600.000", [1_600_000]),
        ("Nộp 150.000 đồng + (số tấn thủy sản", [150_000]),
        ("Lệ phí 5 triệu đồng", [5_000_000]),
        ("Từ ngày 01/7/2025 đến hết ngày 31/12/2026 theo Điều 2", []),
        ("Phí : 0 Đồng", []),
        ("Miễn phí", []),
    ],
)
def test_parse_amounts(text: str, amounts: list[int]) -> None:
    assert parsing.parse_amounts(text) == amounts


def test_documents_with_quantities_forms_and_cases() -> None:
    cell = (  # 3.000347, shortened names
        "--Tên giấy tờMẫu đơn, tờ khaiSố lượngĐề nghị đổi giấy phép lái xe theo mẫu;1 bản chính"
        "Hộ chiếu còn thời hạn sử dụng1 bản chínhBản sao giấy phép lái xe0 bản chính,1 bản sao"
    )
    docs = parsing.parse_documents(cell)
    assert [(d.originals, d.copies) for d in docs] == [(1, 0), (1, 0), (0, 1)]
    assert docs[2].name == "Bản sao giấy phép lái xe" and docs[0].case_name is None
    cell = (  # 1.000757
        "Phiếu này là biểu mẫu điện tửTên giấy tờMẫu đơn, tờ khaiSố lượngPhiếu đề nghị (Mẫu DC02 "
        "của Bộ Công an)Mẫu DC02 Phiếu đề nghị.doc1 bản chínhHồ sơ đại diệnTên giấy tờMẫu đơn, tờ "
        "khaiSố lượngGiấy tờ chứng minh người đại diện1 bản chính"
    )
    first, second = parsing.parse_documents(cell)
    assert first.name == "Phiếu đề nghị (Mẫu DC02 của Bộ Công an)"
    assert first.form_name == "Mẫu DC02 Phiếu đề nghị.doc"
    assert first.case_name == "Phiếu này là biểu mẫu điện tử"
    assert second.case_name == "Hồ sơ đại diện"
    assert parsing.parse_documents("--") == []


def test_legal_bases_split_title_and_number() -> None:
    cell = (  # 1.000178
        "Tên văn bản pháp lýMã văn bảnHướng dẫn xử lý khiếu nại68/2013/TT-BCALuật Khiếu nại  năm "
        "201102/2011/QH13Nghị định 05/2012/NĐ-CP05/2012/NĐ-CPLuật 54/2014/QH1354/2014/QH13"
        "Luật Các tổ chức tín dụngLuật số 32/2024/QH15"
    )
    rows = parsing.parse_legal_bases(cell)
    assert [(r.title, r.number) for r in rows] == [
        ("Hướng dẫn xử lý khiếu nại", "68/2013/TT-BCA"),
        ("Luật Khiếu nại  năm 2011", "02/2011/QH13"),
        ("Nghị định 05/2012/NĐ-CP", "05/2012/NĐ-CP"),
        ("Luật 54/2014/QH13", "54/2014/QH13"),
        ("Luật Các tổ chức tín dụng", "Luật số 32/2024/QH15"),
    ]
    assert parsing.parse_legal_bases("Không có thông tin") == []


def test_levels_and_online_level_from_name() -> None:
    assert parsing.parse_levels("Cấp bộ, Cấp tỉnh, Cấp xã, Cơ quan khác") == [
        "bo",
        "tinh",
        "xa",
        "khac",
    ]
    with pytest.raises(parsing.CellError):
        parsing.parse_levels("Cấp huyện")
    full = "Đăng ký xe tạm thời thực hiện bằng dịch vụ công  trực  tuyến toàn trình"
    partial = "Đổi chứng nhận đăng ký xe bằng dịch vụ công trực tuyến một phần hoặc trực tiếp"
    assert parsing.online_level_from_name(full) is OnlineLevel.FULL
    assert parsing.online_level_from_name(partial) is OnlineLevel.PARTIAL
    assert parsing.online_level_from_name("Cho phép chuyển nhượng một phần dự án") is None
