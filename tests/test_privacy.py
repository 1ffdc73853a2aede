"""procedures_db.privacy.mask_personal_data: ID numbers, phone numbers and e-mails are hidden."""

from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- property: ID and phone numbers in many spellings inside Vietnamese sentences ------------

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
# Between digit groups: what citizens type or paste (non-breaking, narrow and thin spaces, dashes).
ID_SEPARATORS = ["", " ", "  ", "-", " - ", "\u00a0", "\u202f", "\u2009", "\u2011", "\u200b"]
PHONE_SEPARATORS = [*ID_SEPARATORS, ".", " . "]
BEFORE = ["Số CCCD của tôi là", "CCCD", "mã định danh", "CMND cũ", "sđt", "gọi cho em qua", "Zalo"]
AFTER = ["hoặc", "ạ", ", cảm ơn", ". Xin cảm ơn", " nhé", "!", "?", ""]
SENTENCES = [
    "Tôi muốn đổi giấy phép lái xe. {number}",
    "{number} Cho hỏi thủ tục cấp lại căn cước mất bao lâu?",
    "Em hỏi về đăng ký khai sinh cho con, {number} liên hệ giúp em",
    "{number}",
]

digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


def _digit_string(prefix: str, length: int):
    return st.lists(digits, min_size=length - len(prefix), max_size=length - len(prefix)).map(
        lambda rest: prefix + "".join(rest)
    )


def _leading(first_digits: str, length: int):
    return st.sampled_from(first_digits).flatmap(lambda d: _digit_string(d, length))


# (country prefix kept whole, the digits to spell, the separators allowed between groups)
numbers = st.one_of(
    st.tuples(st.just(""), _digit_string("0", 12), st.just(ID_SEPARATORS)),  # CCCD
    st.tuples(st.just(""), _leading("123456789", 12), st.just(ID_SEPARATORS)),
    st.tuples(st.just(""), _leading("123456789", 9), st.just(ID_SEPARATORS)),  # old CMND
    st.tuples(st.just(""), _leading("35789", 9).map("0".__add__), st.just(PHONE_SEPARATORS)),
    st.tuples(st.just(""), _digit_string("02", 11), st.just(PHONE_SEPARATORS)),  # landline
    st.tuples(
        st.sampled_from(["+84", "+84 ", "84", "0084 ", "(+84) ", "(+84)"]),
        _leading("35789", 9),
        st.just(PHONE_SEPARATORS),
    ),
)


@st.composite
def spelled_number(draw) -> str:
    """One number cut into groups of 1-4 digits joined by separators, some digits full-width."""
    prefix, number, separators = draw(numbers)
    groups, rest = [], number
    while rest:
        size = draw(st.integers(1, 4))
        groups.append(rest[:size])
        rest = rest[size:]
    spelled = groups[0]
    for group in groups[1:]:
        spelled += draw(st.sampled_from(separators)) + group
    if draw(st.booleans()):
        spelled = "".join(c.translate(FULL_WIDTH) if draw(st.booleans()) else c for c in spelled)
    return prefix + spelled


@st.composite
def sentence_with_number(draw) -> str:
    glue = st.sampled_from(["", " ", "\u00a0", ": "])
    phrase = (
        draw(st.sampled_from(BEFORE))
        + draw(glue)
        + draw(spelled_number())
        + draw(st.sampled_from(["", " "]))
        + draw(st.sampled_from(AFTER))
    )
    return draw(st.sampled_from(SENTENCES)).format(number=phrase)


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None)
@given(sentence_with_number())
def test_no_id_or_phone_number_survives(text: str) -> None:
    masked = mask_personal_data(text)
    # The sentences hold no other digit: any digit left is part of the number.
    assert not any(c.isdigit() for c in masked), (text, masked)
    assert ID_MASK in masked or PHONE_MASK in masked


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None)
@given(
    st.integers(1, 3),
    st.integers(0, 999_999),
    st.integers(1, 999),
    st.sampled_from(["000", "500", "000.000", "500.000"]),
    st.integers(1, 9),
)
def test_procedure_codes_amounts_and_picks_are_kept(level, code, thousands, tail, pick) -> None:
    text = (
        f"Thủ tục {level}.{code:06d} lệ phí {thousands}.{tail} đồng, "
        f"hồ sơ {level}.{code:06d}.000.00.00.H12, em chọn {pick}"
    )
    assert mask_personal_data(text) == text


# --- the tracker store every channel writes through ---------------------------------------------


async def test_tracker_store_keeps_no_personal_data_whatever_the_channel(tmp_path) -> None:
    import sqlite3

    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import BotUttered, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.production.stores import ResilientSQLTrackerStore

    database = tmp_path / "tracker.sqlite3"
    store = ResilientSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(database))
    raw = "CCCD 001 203 004 567, sđt 0912\u00a0345\u00a0678, hỏi thủ tục 1.001193"
    events = []
    for channel in ("rest", "zalo", "facebook"):
        parse = {"text": raw, "intent": {"name": "ask_fee", "confidence": 0.9}, "entities": []}
        events.append(UserUttered(raw, parse["intent"], parse_data=parse, input_channel=channel))
    events += [SlotSet("procedure_code", "1.001193"), BotUttered("Mã TTHC: 1.001193")]
    tracker = DialogueStateTracker.from_events("citizen-1", events)
    try:
        await store.save(tracker)
        assert tracker.events[0].text == raw  # the turn itself still sees the original
        with sqlite3.connect(database) as connection:
            # Every string the events hold (numbers such as timestamps left out).
            stored = " ".join(
                json.dumps(_strings(json.loads(row[0])), ensure_ascii=False)
                for row in connection.execute("SELECT data FROM events")
            )
        restored = await store.retrieve("citizen-1")
    finally:
        store.engine.dispose()
    digits = re.sub(r"\D", "", stored)
    assert "001203004567" not in digits and "0912345678" not in digits, stored
    assert "1.001193" in stored  # the procedure code is kept
    texts = [e.text for e in restored.events if isinstance(e, UserUttered)]
    assert texts == [f"CCCD {ID_MASK}, sđt {PHONE_MASK}, hỏi thủ tục 1.001193"] * 3
    assert [e.input_channel for e in restored.events if isinstance(e, UserUttered)] == [
        "rest",
        "zalo",
        "facebook",
    ]
    assert [e.value for e in restored.events if isinstance(e, SlotSet)] == ["1.001193"]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


# --- the shortcut for texts with nothing to mask -------------------------------------------------

ADVERSARIAL = [
    "12345678",  # eight digits: below a personal number
    "1234 5678 9",  # nine, spaced
    "12345678\u200b9",  # nine, an invisible character between
    "1234567８９",  # full-width digits: NFKC makes them ASCII
    "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",  # Arabic-Indic digits are \d
    "0912345678",
    "0912\u00a0345\u00a0678",
    "¹²³⁴⁵⁶⁷⁸⁹",  # superscripts: digits after NFKC
    "①②③④⑤⑥⑦⑧⑨",
    "⒈⒉⒊⒋⒌⒍⒎⒏⒐",
    "a@b.vn",
    "a＠b.vn",  # full-width at sign
    "a﹫b.vn",  # small at sign
    "a@",
    "@",
    "Tiếng Việt dựng sẵn",
    "Tie\u0302\u0301ng Vie\u0323\u0302t to\u0302\u0301 hợp",  # decomposed (NFD) Vietnamese
    "ﬁ ligature 1.001193",
    "thủ tục 1.001193 lệ phí 135.000 đồng",
    "1.000046.000.00.00.H12",
    "phí 1.500.000.000 đồng",
    "",
    " ",
    "\ufeff\u00ad",
    "action_listen",
    "0\u20101\u20102\u20103\u20104\u20105\u20106\u20107\u20108",
]


def _corpus() -> list[str]:
    """Every text of the repository's test questions and conversations, and the bot's own
    responses."""
    import pathlib

    import yaml

    texts: list[str] = []
    root = pathlib.Path(__file__).parent
    for path in [*sorted((root / "data").rglob("*.yml")), root.parent / "domain.yml"]:
        texts += _strings(yaml.safe_load(path.read_text(encoding="utf-8")))
    return texts


def test_the_shortcut_answers_as_the_rules_on_the_corpus() -> None:
    from procedures_db import privacy

    texts = _corpus() + ADVERSARIAL
    assert len(texts) > 1000
    shortcut = 0
    for text in texts:
        assert mask_personal_data(text) == privacy._mask_all(text), text
        shortcut += privacy._nothing_to_mask(text)
    assert shortcut > len(texts) // 4  # the shortcut is taken, not only the full path
    # Nine digits or an "@" that only NFKC reveals (or Unicode digits): never the shortcut.
    for text in ("1234567８９", "¹²³⁴⁵⁶⁷⁸⁹", "①②③④⑤⑥⑦⑧⑨", "⒈⒉⒊⒋⒌⒍⒎⒏⒐", "a＠b.vn", "a﹫b.vn"):
        assert not privacy._nothing_to_mask(text), text
    assert not privacy._nothing_to_mask("\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")


PIECES = [
    *"0123456789０１２３@＠﹫.- ab\u00a0\u200b\u2011",
    *("ệ", "e\u0302\u0323", "\u0663", "²", "①", "ﬁ", "đ", "0912", "345678"),
]


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_the_shortcut_answers_as_the_rules_on_any_text(text: str) -> None:
    from procedures_db import privacy

    assert mask_personal_data(text) == privacy._mask_all(text)
