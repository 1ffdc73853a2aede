"""Message understanding and answer formatting of the actions (no database needed)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from actions.disambiguation import _by_name
from actions.formatting import procedure_answer
from actions.questions import Fact, correction_rest, facts_asked, parse_choice, procedure_words
from procedures_db.asked import asks_same_again
from procedures_db.facts import method_fee, method_time
from procedures_db.profile import ProvinceProfile


@pytest.mark.parametrize(
    ("intent", "text", "facts"),
    [
        (
            "ask_submission_place",
            "làm ở đâu, mất bao lâu, bao nhiêu tiền?",
            [Fact.PLACE, Fact.TIME, Fact.FEE],
        ),
        ("ask_fee", "lam o dau, mat bao lau, bao nhieu tien", [Fact.FEE, Fact.PLACE, Fact.TIME]),
        ("ask_documents", "cần giấy tờ gì và điều kiện là gì", [Fact.DOCUMENTS, Fact.REQUIREMENTS]),
        ("ask_steps", "quy trình thế nào, có làm trực tuyến được không", [Fact.STEPS, Fact.ONLINE]),
        ("ask_processing_time", "nộp online mất mấy ngày", [Fact.TIME]),
        ("ask_procedure_info", "hồ sơ gồm những gì, lp bn", [Fact.DOCUMENTS, Fact.FEE]),
        ("ask_procedure_info", "thủ tục đổi bằng lái", [Fact.OVERVIEW]),
        (None, "mức độ mấy", [Fact.ONLINE]),
        (None, "lam tren vneid dc ko", [Fact.ONLINE]),
    ],
)
def test_facts_asked(intent: str | None, text: str, facts: list[Fact]) -> None:
    assert facts_asked(intent, text) == facts


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("1", 0),
        ("số 2", 1),
        ("cái thứ hai", 1),
        ("thứ 3 nhé", 2),
        ("chọn số 4", 3),
        ("cái đầu tiên", 0),
        ("cai dau tien", 0),
        ("cái đầu", 0),
        ("ở đâu", None),
        ("o dau", None),
        ("ở đâu vậy", None),
        ("cuối cùng", 4),
        ("Thủ tục số năm", 4),
        ("6", None),
        ("đổi bằng lái", None),
        ("2 bản sao", None),
    ],
)
def test_parse_choice(text: str, index: int | None) -> None:
    assert parse_choice(text, 5) == index


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("không phải, ý em là cấp lại giấy khai sinh", "cấp lại giấy khai sinh"),
        ("ko phai y e la gks", "gks"),
        ("à nhầm, bằng cũ e đánh rơi mất rồi", "bằng cũ e đánh rơi mất rồi"),
        ("sai rồi, tôi hỏi tạm trú", "tôi hỏi tạm trú"),
        ("ko, cấp lại hộ chiếu cơ", "cấp lại hộ chiếu cơ"),
        # a question, a story, a restated question: no correction of the procedure
        ("Không phải nộp lệ phí à?", None),
        ("Nhầm lẫn tên trong giấy khai sinh thì sửa thế nào", None),
        ("ý em là làm online được không", None),
        ("không phải, ý em là hỏi lệ phí", None),
        ("không", None),
    ],
)
def test_correction_rest(text: str, rest: str | None) -> None:
    assert correction_rest(text) == rest


@pytest.mark.parametrize(
    ("text", "follow_up"),
    [
        ("còn lệ phí thì sao?", True),
        ("nộp ở đâu vậy?", True),
        ("có làm online được không", True),
        ("thế còn đăng ký kết hôn thì sao", False),
    ],
)
def test_procedure_words_tell_a_follow_up(text: str, follow_up: bool) -> None:
    assert (len(procedure_words(text)) < 2) is follow_up


@pytest.mark.parametrize(
    ("text", "again"),
    [
        ("thế còn đăng ký tạm trú?", True),
        ("còn hộ chiếu thì sao", True),
        ("vay con ket hon", True),
        ("đăng ký kết hôn thì sao", True),
        ("khai sinh cho con", False),
        ("thủ tục đăng ký kết hôn", False),
    ],
)
def test_asks_same_again(text: str, again: bool) -> None:
    assert asks_same_again(text) is again


@dataclass(frozen=True)
class Method:
    method: str
    time_value: float | None = None
    time_unit: str | None = None
    time_text: str | None = None
    fee_amounts: list[int] = dataclasses.field(default_factory=list)
    fee_text: str | None = None
    fee_description: str | None = None


def test_fee_description_amount_beats_a_free_cell() -> None:
    method = Method(
        "truc_tuyen",
        fee_amounts=[135000],
        fee_text="Miễn phí",
        fee_description="- Lệ phí cấp giấy phép lái xe: 135.000 đồng/lần.",
    )
    assert method_fee(method) == "Lệ phí cấp giấy phép lái xe: 135.000 đồng/lần"


def test_fee_amount_without_description() -> None:
    method = Method("truc_tiep", fee_amounts=[50000], fee_text="Miễn phí")
    assert method_fee(method) == "50.000 đồng"


def test_fee_cell_amounts_in_vietnamese_style() -> None:
    method = Method("truc_tiep", fee_text="2,000 Việt Nam Đồng", fee_description="/trang")
    assert method_fee(method) == "2.000 đồng/trang"
    method = Method("truc_tiep", fee_text="20,000 VNĐ", fee_description="Nộp trực tiếp")
    assert method_fee(method) == "20.000 đồng. Nộp trực tiếp"


def test_free_and_unknown_fees() -> None:
    assert method_fee(Method("truc_tiep", fee_text="Miễn phí")) == "Miễn phí"
    assert method_fee(Method("truc_tiep", fee_text="Không có thông tin")) is None


def test_time_falls_back_to_the_source_text() -> None:
    assert method_time(Method("truc_tiep", 2.5, "working_day")) == "2,5 ngày làm việc"
    assert (
        method_time(Method("truc_tiep", 1.0, None, "1")) == "1 (nguồn chỉ ghi số; không ghi đơn vị)"
    )
    assert method_time(Method("truc_tiep", time_text="Theo thỏa thuận")) == "Theo thỏa thuận"
    assert method_time(Method("truc_tiep", time_text="Không có thông tin")) is None


@dataclass(frozen=True)
class Details:
    code: str = "9.999999"
    name: str = "Thủ tục thử"
    field: str | None = None
    levels: list[str] = dataclasses.field(default_factory=list)
    implementing_agencies: str | None = None
    competent_agency: str | None = None
    ministry: str | None = None
    target_subjects: str | None = None
    receiving_address: str | None = None
    requirements: str | None = None
    steps: str | None = None
    online_level: str = "chua_ro"
    online_submit_url: str | None = None
    source_url: str | None = None
    methods: list[Method] = dataclasses.field(default_factory=list)
    documents: list[object] = dataclasses.field(default_factory=list)


def test_a_record_without_values_never_gets_a_guess() -> None:
    answer = procedure_answer(
        Details(), list(Fact)[1:], ProvinceProfile(hotline="1022", opening_hours="7h-17h")
    ).text
    assert "Mã TTHC: 9.999999" in answer
    assert answer.count("Cơ sở dữ liệu chưa có thông tin") == 5
    assert "Nơi nộp hồ sơ: chưa có thông tin" in answer
    assert answer.count("1022 (7h-17h)") == 6


LAND_LIST = [
    {"code": "1.013978", "name": "Đăng ký đất đai, cấp Giấy chứng nhận quyền sử dụng đất"},
    {"code": "1.013831", "name": "Đăng ký biến động đất trường hợp chuyển nhượng, cho thuê"},
]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("cái chuyển nhượng", "1.013831"),
        ("cai bien dong", "1.013831"),
        ("đăng ký đất đai", "1.013978"),
        # "thuế" is not the name's "thuê": a question on the fee, not a pick
        ("thuế phí bao nhiêu", None),
        ("thue phi bn", None),
    ],
)
def test_a_typed_name_picks_one_offered(text: str, code: str | None) -> None:
    assert _by_name(text, LAND_LIST) == code


def test_words_every_offered_name_holds_pick_none_unless_a_whole_name() -> None:
    reissues = [
        {"code": "1.013080", "name": "Cấp lại chứng nhận đăng ký xe trực tuyến toàn trình"},
        {"code": "1.013082", "name": "Cấp lại chứng nhận đăng ký xe trực tiếp"},
    ]
    assert _by_name("le phi cap lai bao nhieu", reissues) is None
    residence = [
        {"code": "1.003197", "name": "Xóa đăng ký thường trú"},
        {"code": "1.004222", "name": "Đăng ký thường trú"},
    ]
    assert _by_name("đăng ký thường trú", residence) == "1.004222"
