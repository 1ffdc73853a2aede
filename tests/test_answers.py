"""procedures_db.answers on real records: fees in time (fixed clock), documents grouped, place,
eligibility quotes."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine

from procedures_db import facts
from procedures_db.answers import fee_summary, key_facts, plan_documents, procedure_reply
from procedures_db.answers.eligibility import eligibility_text
from procedures_db.answers.text import FACT_LABELS, FIRST_ITEMS, documents_first
from procedures_db.facts import expired_amounts, format_number, format_vnd, method_fee
from procedures_db.profile import ProvinceProfile
from procedures_db.queries import all_codes, get_procedure

LICENCE = "3.000347"
AFTER, BEFORE = date(2026, 1, 1), date(2025, 12, 31)


@pytest.fixture(scope="module")
def records(full_db_engine: Engine) -> list:
    return [get_procedure(code, engine=full_db_engine) for code in all_codes(engine=full_db_engine)]


def record(records: list, code: str):
    return next(d for d in records if d.code == code)


# --- values in time ---------------------------------------------------------------------------


def test_licence_online_rate_is_current_only_until_its_end_date(records: list) -> None:
    licence = record(records, LICENCE)
    assert fee_summary(licence, BEFORE) == "135.000 đồng; 115.000 đồng"
    assert fee_summary(licence, AFTER) == "135.000 đồng"
    full = method_fee(licence.methods[0], on=AFTER)
    assert "31/12/2025 (đã hết hạn, không còn áp dụng)" in full
    assert "(đã hết hạn" not in method_fee(licence.methods[0], on=BEFORE)


def test_the_clock_decides_for_every_surface(records: list, monkeypatch) -> None:
    monkeypatch.setattr(facts, "today", lambda: AFTER)
    reply = procedure_reply(record(records, LICENCE), ["fee"], ProvinceProfile()).text
    assert "Phí, lệ phí: 135.000 đồng\n" in reply and "đã hết hạn" in reply
    monkeypatch.setattr(facts, "today", lambda: BEFORE)
    reply = procedure_reply(record(records, LICENCE), ["fee"], ProvinceProfile()).text
    assert "Phí, lệ phí: 135.000 đồng; 115.000 đồng\n" in reply


def test_no_expired_amount_is_ever_presented_as_current(records: list) -> None:
    """Over every method of every record: an amount stated only in a period that ended is not
    among the current amounts, and its period is marked as over."""
    on = date(2026, 12, 4)
    checked = 0
    for details in records:
        for method in details.methods:
            text = " ; ".join(filter(None, [method.fee_text, method.fee_description]))
            for amount in expired_amounts(text, on):
                checked += 1
                assert format_vnd(amount) not in method_fee(method, short=True, on=on)
                full = method_fee(method, on=on)
                if format_number(amount) in full:
                    assert "đã hết hạn" in full, details.code
    assert checked >= 2  # the data has such fees (the licence's online rate among them)


def test_a_waiver_that_ended_is_marked(records: list) -> None:
    exam = record(records, "1.000246")  # "Miễn kể từ ngày 07/4/2026 đến 30/6/2026"
    assert "30/6/2026 (đã hết hạn" in method_fee(exam.methods[0], on=date(2026, 12, 4))
    assert "đã hết hạn" not in method_fee(exam.methods[0], on=date(2026, 5, 1))


# --- documents --------------------------------------------------------------------------------


def test_birth_registration_papers_first_special_cases_and_notes_grouped(records: list) -> None:
    plan = plan_documents(record(records, "1.001193").documents)
    assert plan.forms[0].name.startswith("Tờ khai đăng ký khai sinh")
    assert any(p.name.startswith("Giấy chứng sinh") for p in plan.submit)
    assert any(p.name.startswith("Hộ chiếu/Thẻ căn cước") for p in plan.show)
    assert any("bỏ rơi" in p.name for p in plan.special)
    assert len(plan.notes) == 25


def test_residence_lists_cases_with_the_common_form_first(records: list) -> None:
    lines, more = documents_first(plan_documents(record(records, "1.004222").documents))
    assert lines[0].startswith("1. Tờ khai thay đổi thông tin cư trú")
    assert lines[1] == "Tùy trường hợp (6):" and more


def test_every_first_documents_reply_is_short_and_starts_with_papers(records: list) -> None:
    for details in records:
        plan = plan_documents(details.documents)
        lines, _ = documents_first(plan)
        assert len(lines) <= FIRST_ITEMS + 1, details.code
        if plan.papers:
            assert lines[0].startswith("1. "), details.code


# --- place ------------------------------------------------------------------------------------


def test_marriage_place_from_the_agencies_and_the_province_desk(records: list) -> None:
    marriage = record(records, "1.000894")
    assert key_facts(marriage, ProvinceProfile())["place"] == "Ủy ban Nhân dân xã, phường, thị trấn"
    text = procedure_reply(marriage, ["place"], ProvinceProfile()).text
    assert "Bộ phận một cửa của UBND cấp xã nơi bạn cư trú (suy ra từ cấp thực hiện" in text


# --- eligibility --------------------------------------------------------------------------------


def test_eligibility_quotes_the_lines_that_speak_to_the_question(records: list) -> None:
    text = eligibility_text(record(records, LICENCE), "người nước ngoài có đổi được không")
    assert "«Hộ chiếu còn thời hạn sử dụng (đối với người nước ngoài" in text
    assert "Đối tượng thực hiện" in text


def test_eligibility_says_when_the_record_does_not_settle_it(records: list) -> None:
    text = eligibility_text(record(records, LICENCE), "bị mù màu có được đổi không")
    assert text.startswith("Hồ sơ thủ tục không nói rõ trường hợp bạn hỏi.")


def test_a_yes_no_question_about_the_procedure_gets_the_quotes_first(records: list) -> None:
    question = "người nước ngoài có đổi bằng lái được không"
    text = procedure_reply(record(records, LICENCE), ["overview"], ProvinceProfile(),
                           question=question).text  # fmt: skip
    assert text.splitlines()[1] == "Những dòng trong hồ sơ thủ tục liên quan đến câu hỏi của bạn:"
    assert "Thời gian giải quyết: 5 ngày làm việc" in text


def test_a_fact_the_record_lacks_comes_with_what_it_holds(records: list) -> None:
    card_exchange = record(records, "1.014063")  # no requirements in the record
    reply = procedure_reply(card_exchange, ["requirements"], ProvinceProfile())
    assert "chưa có thông tin về yêu cầu, điều kiện" in reply.text
    assert "Thời gian giải quyết: 7 ngày làm việc" in reply.then
    # A key fact the record lacks is said in the overview's own words: nothing follows.
    licence = record(records, LICENCE)
    assert procedure_reply(licence, ["requirements", "fee"], ProvinceProfile()).then is None
    assert procedure_reply(licence, ["fee"], ProvinceProfile()).then is None
    assert procedure_reply(licence, ["overview", "requirements"], ProvinceProfile()).then is None


def test_a_plain_conditions_question_gets_the_conditions(records: list) -> None:
    assert eligibility_text(record(records, "1.004222"), "điều kiện đăng ký thường trú") is None


# --- the bot evaluation reads the facts off these answers ------------------------------------


@pytest.mark.parametrize("fact", ["place", "time", "fee", "documents", "steps", "requirements"])
def test_the_evaluation_finds_each_asked_fact_in_its_answer(records: list, fact: str) -> None:
    from scripts.eval_bot import FACT_MARKS, fact_answered

    assert set(FACT_MARKS) == {"overview", *FACT_LABELS}
    licence = record(records, LICENCE)
    assert fact_answered(procedure_reply(licence, [fact], ProvinceProfile()).text, fact)
    overview = procedure_reply(licence, ["overview"], ProvinceProfile()).text
    assert fact_answered(overview, fact) is (fact in ("place", "time", "fee"))
