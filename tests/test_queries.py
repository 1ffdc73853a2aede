"""queries on the real data: one procedure's details, fields, stats, text for `show`."""

from __future__ import annotations

import json

from sqlalchemy.engine import Engine

from procedures_db.answers.text import procedure_text
from procedures_db.profile import ProvinceProfile
from procedures_db.queries import database_stats, get_procedure, list_fields


def test_driving_licence_exchange_facts(full_db_engine: Engine) -> None:
    details = get_procedure("3.000347", engine=full_db_engine)
    assert details is not None and details.name == "Đổi giấy phép lái xe"
    by_method = {m.method: m for m in details.methods}
    assert set(by_method) == {"truc_tuyen", "truc_tiep"}
    for method in by_method.values():
        assert (method.time_value, method.time_unit) == (5, "working_day")
        assert method.fee_amounts == [135000, 115000]
    assert details.online_level == "chua_ro"
    assert details.online_level_source == "derived:online_method_listed"
    assert details.source_url.startswith("https://dichvucong.gov.vn/thu-tuc-hanh-chinh/")
    assert [(d.originals, d.copies) for d in details.documents][-1] == (0, 1)
    assert any(b.number == "12/2025/TT-BCA" for b in details.legal_bases)


def test_show_text_never_says_bare_free_when_the_note_states_amounts(
    full_db_engine: Engine,
) -> None:
    text = procedure_text(get_procedure("3.000347", engine=full_db_engine), ProvinceProfile())
    method_lines = [line for line in text.splitlines() if line.startswith("  - Trực")]
    assert len(method_lines) == 2
    for line in method_lines:
        assert "5 ngày làm việc" in line
        assert "135.000 đồng" in line and "115.000 đồng" in line
        assert "31/12/2025 (đã hết hạn" in line  # the online rate's period is over
        assert "phí: Miễn phí" not in line


def test_api_record_with_two_alternative_times(full_db_engine: Engine) -> None:
    details = get_procedure("1.007916", engine=full_db_engine)
    assert details.source_format == "national_api"
    assert sorted((m.method, m.time_value) for m in details.methods) == sorted(
        (method, days) for method in ("truc_tuyen", "truc_tiep", "buu_chinh") for days in (18, 27)
    )


def test_to_dict_is_json_ready_and_unknown_code_is_none(full_db_engine: Engine) -> None:
    data = get_procedure("3.000347", engine=full_db_engine).to_dict()
    assert json.loads(json.dumps(data, ensure_ascii=False))["methods"][0]["fee_amounts"] == [
        135000,
        115000,
    ]
    assert get_procedure("9.999999", engine=full_db_engine) is None


def test_fields_and_stats(full_db_engine: Engine) -> None:
    fields = list_fields(engine=full_db_engine)
    assert "Sát hạch, cấp giấy phép lái xe" in fields and fields == sorted(set(fields))
    stats = database_stats(engine=full_db_engine)
    assert stats["procedures"] == 2663
    assert stats["by_source_format"] == {"national_api": 23, "scraped": 2640}
    assert sum(stats["by_online_level"].values()) == 2663
    assert stats["last_import"]["rejected"] == 2


def test_default_engine_follows_settings(use_full_db: str) -> None:
    assert get_procedure("3.000347").code == "3.000347"
