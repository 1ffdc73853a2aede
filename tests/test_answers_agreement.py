"""Every procedure in the database: the bot, the staff page and the API say the same time, fee,
place and online level (all worded by procedures_db.answers), and no place answer says "chưa
có thông tin" when the record's level or agencies say more."""

from __future__ import annotations

import html
from datetime import date

import pytest
from sqlalchemy.engine import Engine

from procedures_db import facts
from procedures_db.answers import key_facts
from procedures_db.facts import UNKNOWN
from procedures_db.profile import ProvinceProfile
from procedures_db.queries import all_codes, get_procedure
from tests.test_actions import Chat
from webapp.lookup import procedure_detail
from webapp.staff import procedure_content

TODAY = date(2026, 12, 4)
KEYS = ("time", "fee", "place", "online")


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(facts, "today", lambda: TODAY)


@pytest.fixture(scope="module")
def records(full_db_engine: Engine) -> list:
    return [get_procedure(code, engine=full_db_engine) for code in all_codes(engine=full_db_engine)]


def test_every_record_is_read(records: list) -> None:
    assert len(records) == 2663


def test_staff_page_and_api_state_the_bots_facts(full_db_engine: Engine, records: list) -> None:
    profile = ProvinceProfile()
    disagree = []
    for details in records:
        said = key_facts(details, profile)
        page = html.unescape(procedure_content(details, profile))
        api = procedure_detail(full_db_engine, details.code, profile)["answers"]
        for key in KEYS:
            if said[key] not in page or api[key] != said[key]:
                disagree.append((details.code, key, said[key]))
    assert not disagree, disagree[:10]


async def test_the_bot_states_the_same_facts(use_full_db: str, records: list) -> None:
    profile = ProvinceProfile()
    disagree = []
    for details in records:
        reply = await Chat().say(
            f"thủ tục {details.code}", "ask_procedure_info", procedure_code=details.code
        )
        said = key_facts(details, profile)
        # A fee note shortened for the summary ("…") is said in full by the bot.
        disagree += [(details.code, key) for key in KEYS if said[key].rstrip("…") not in reply]
    assert not disagree, disagree[:10]


def test_no_unknown_place_when_the_record_says_more(records: list) -> None:
    profile = ProvinceProfile()
    unknown = [
        d.code
        for d in records
        if key_facts(d, profile)["place"] == UNKNOWN
        and (d.implementing_agencies or d.competent_agency or {"xa", "tinh"} & set(d.levels))
    ]
    assert not unknown


def test_a_commune_procedure_without_agencies_gets_the_commune_desk(records: list) -> None:
    birth = next(d for d in records if d.code == "1.001193")
    assert key_facts(birth, ProvinceProfile())["place"] == (
        "Bộ phận một cửa của UBND cấp xã nơi bạn cư trú (suy ra từ cấp thực hiện: Cấp xã)"
    )
    own = ProvinceProfile(commune_one_stop="Bộ phận Một cửa UBND xã, phường")
    assert key_facts(birth, own)["place"] == "Bộ phận Một cửa UBND xã, phường"
