"""procedures_db.search: the name index (one source of the resolver's features) over the
real data, on the citizen question set, and its behaviours."""

from __future__ import annotations

import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert, text

from procedures_db import search as search_module
from procedures_db.db import create_schema, get_engine
from procedures_db.importers import run_import
from procedures_db.models import ImportRun, Procedure
from procedures_db.search import (
    SearchHit,
    invalidate_index,
    short_title,
    short_titles,
)
from procedures_db.search import (
    name_search as search,
)
from tests.conftest import data_path

QUERIES = yaml.safe_load(
    (Path(__file__).parent / "data" / "search_queries.yml").read_text(encoding="utf-8")
)

LICENCE_EXCHANGE = "3.000347"  # Đổi giấy phép lái xe
BIRTH = "1.001193"  # Thủ tục đăng ký khai sinh (cấp xã)
MARRIAGE = "1.000894"  # Thủ tục đăng ký kết hôn
PERMANENT_RESIDENCE = "1.004222"  # Đăng ký thường trú
CARD_RENEWAL = ("1.014063", "2.001195", "1.000889")  # Cấp đổi thẻ căn cước: xã, tỉnh, trung ương


def codes(hits: list[SearchHit]) -> list[str]:
    return [hit.code for hit in hits]


def first(query: str, engine, **filters) -> SearchHit:
    hits = search(query, 5, engine=engine, **filters)
    assert hits, f"no hit for {query!r}"
    return hits[0]


# --- the question set ---------------------------------------------------------------------------


def test_question_set_is_large_and_varied():
    assert len(QUERIES) >= 150
    assert all(entry["codes"] for entry in QUERIES)
    texts = [entry["q"] for entry in QUERIES]
    assert len(set(texts)) == len(texts)
    assert sum(t == unicodedata.normalize("NFC", t) and t.isascii() for t in texts) >= 20
    assert sum(len(t.split()) >= 7 for t in texts) >= 10  # whole chat messages


def test_question_set_codes_exist(full_db_engine):
    known = {row.code for row in search_module._load_rows(full_db_engine)}
    missing = {code for entry in QUERIES for code in entry["codes"]} - known
    assert not missing


def test_question_set_accuracy(full_db_engine):
    top1 = top3 = 0
    misses = []
    for entry in QUERIES:
        found = codes(search(entry["q"], 3, engine=full_db_engine))
        top1 += bool(found) and found[0] in entry["codes"]
        in_top3 = any(code in entry["codes"] for code in found)
        top3 += in_top3
        if not in_top3:
            misses.append((entry["q"], found))
    assert top1 / len(QUERIES) >= 0.90, misses
    assert top3 / len(QUERIES) >= 0.97, misses


# --- normalisation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "đổi bằng lái xe",
        "doi bang lai xe",
        "ĐỔI BẰNG LÁI XE",
        unicodedata.normalize("NFD", "đổi bằng lái xe"),
        "  Đổi   bằng lái   xe  ",
    ],
)
def test_accents_case_unicode_form_and_spaces_do_not_matter(full_db_engine, variant):
    hits = search(variant, 3, engine=full_db_engine)
    assert hits[0].code == LICENCE_EXCHANGE
    assert hits == search("đổi bằng lái xe", 3, engine=full_db_engine)


def test_old_and_new_tone_placement_are_the_same(full_db_engine):
    old = search("hòa giải tranh chấp đất đai", 3, engine=full_db_engine)
    new = search("hoà giải tranh chấp đất đai", 3, engine=full_db_engine)
    assert old == new and old[0].code == "1.012812"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("dang ky khai sinhh", BIRTH),
        ("đăg ký khai sinh", BIRTH),
        ("dang ki ket hon", MARRIAGE),
        ("dang ky thuongtru", PERMANENT_RESIDENCE),
        ("lam ho chiu", "1.001456"),
    ],
)
def test_typos(full_db_engine, query, code):
    assert first(query, full_db_engine).code == code


def test_typed_accents_tell_apart_words_that_fold_alike(full_db_engine):
    # "thuê" (rent) and "thuế" (tax) fold to the same letters.
    rent = first("khai tiền thuê đất", full_db_engine)
    assert rent.code == "1.011006" and rent.score > 0.95
    tax = search("khai tiền thuế đất", 5, engine=full_db_engine)
    assert tax[0].score < rent.score


def test_corrected_words_never_score_like_exact_ones(full_db_engine):
    exact = first("dang ky khai sinh", full_db_engine)
    typo = first("dang ky khai sinhh", full_db_engine)
    assert exact.code == typo.code and typo.score < exact.score


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_gives_ranked_scores(full_db_engine, text):
    hits = search(text, 5, engine=full_db_engine)
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)


def test_long_messages_are_cut_not_choked(full_db_engine):
    assert first("đổi bằng lái xe " + "ạ " * 3000, full_db_engine).code == LICENCE_EXCHANGE
    assert search("a" * 5000, engine=full_db_engine) == []


def test_gibberish_finds_nothing(full_db_engine):
    assert search("xyz qwrt", engine=full_db_engine) == []
    assert search("", engine=full_db_engine) == []
    assert search("cho em hỏi ạ", engine=full_db_engine) == []


# --- citizen vocabulary ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "acceptable"),
    [
        ("đổi gplx", {LICENCE_EXCHANGE}),
        ("đổi bằng lái", {LICENCE_EXCHANGE}),
        ("cấp đổi cccd", set(CARD_RENEWAL)),
        ("cấp đổi căn cước công dân", set(CARD_RENEWAL)),
        ("đổi chứng minh nhân dân", set(CARD_RENEWAL)),
        ("đổi cmnd", set(CARD_RENEWAL)),
        ("cấp lại sổ đỏ", {"1.012786"}),
        ("cấp đổi sổ hồng", {"1.012783"}),
        ("nhập hộ khẩu", {PERMANENT_RESIDENCE}),
        ("nhập khẩu về nhà chồng", {PERMANENT_RESIDENCE}),
        ("làm khai tử", {"1.000656"}),
        ("xin lltp", {"3.000333", "3.000330"}),
        ("lý lịch tư pháp", {"3.000333", "3.000330"}),
        ("đăng ký hkd", {"1.001612"}),
        ("đăng ký hộ kinh doanh", {"1.001612"}),
        ("làm passport", {"1.001456", "1.001471"}),
        ("đăng ký khai sinh", {BIRTH}),
        ("đăng ký kết hôn", {MARRIAGE}),
        ("đăng ký xe lần đầu", {"1.013067", "1.012575", "1.013066"}),
        ("cấp lại mst", {"1.008501"}),
        ("giải thể dn", {"2.002023"}),
    ],
)
def test_citizen_words(full_db_engine, query, acceptable):
    assert first(query, full_db_engine).code in acceptable


def test_vneid_is_the_account_but_on_vneid_is_the_channel(full_db_engine):
    assert first("đăng ký tài khoản vneid", full_db_engine).code == "3.000228"
    # "on VNeID" says how the card is renewed, not which procedure.
    assert first("cap doi the can cuoc tren vneid", full_db_engine).code in set(CARD_RENEWAL)


def test_imported_goods_are_not_residence(full_db_engine):
    hit = first("đăng ký xe nhập khẩu", full_db_engine)
    assert hit.code == "1.013066"
    assert first("thủ tục chuyển khẩu", full_db_engine).code == PERMANENT_RESIDENCE
    assert first("chuyển khẩu hàng hóa", full_db_engine).field == "Hải quan"


def test_words_no_name_has_weaken_the_match(full_db_engine):
    known = first("giấy phép kinh doanh", full_db_engine)
    unknown = first("giấy phép kinh doanh karaoke", full_db_engine)
    assert unknown.score < known.score - 0.1


# --- codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("3.000347", LICENCE_EXCHANGE),
        ("mã 1.001193", BIRTH),
        ("1.001193?", BIRTH),
        ("cho em hỏi thủ tục 1.004222 cần gì ạ", PERMANENT_RESIDENCE),
    ],
)
def test_codes_come_first_with_score_one(full_db_engine, query, code):
    hits = search(query, 5, engine=full_db_engine)
    assert hits[0].code == code and hits[0].score == 1.0
    assert all(hit.score < 1.0 for hit in hits[1:])


def test_code_label_names_no_procedure(full_db_engine):
    for query in ("mã 1.001193", "ma so: 1.001193", "mã thủ tục 1.001193"):
        assert codes(search(query, engine=full_db_engine)) == [BIRTH]


def test_unknown_code_is_not_invented(full_db_engine):
    assert "9.999999" not in codes(search("mã 9.999999", engine=full_db_engine))


def test_code_plus_words_keeps_code_first(full_db_engine):
    hits = search("1.000894 đăng ký khai sinh", 3, engine=full_db_engine)
    assert codes(hits)[:2] == [MARRIAGE, BIRTH]


# --- whole chat messages versus entity spans -------------------------------------------------


@pytest.mark.parametrize(
    ("span", "message", "code"),
    [
        ("đổi bằng lái", "cho em hỏi đổi bằng lái xe mất bao lâu ạ", LICENCE_EXCHANGE),
        ("đăng ký thường trú", "đăng ký thường trú nộp ở đâu vậy ạ", PERMANENT_RESIDENCE),
        ("khai sinh", "ad ơi làm giấy khai sinh cho bé hết bao nhiêu tiền", BIRTH),
        ("đăng ký kết hôn", "thủ tục đăng ký kết hôn cần những giấy tờ gì ạ", MARRIAGE),
        ("cấp lại căn cước", "Cho mình hỏi làm lại căn cước bị mất thì lệ phí bao nhiêu", None),
    ],
)
def test_question_words_do_not_derail_ranking(full_db_engine, span, message, code):
    from_span = first(span, full_db_engine)
    from_message = first(message, full_db_engine)
    assert from_span.code == from_message.code
    if code:
        assert from_span.code == code


# --- preferences when names tie --------------------------------------------------------------


def rank_of(hits: list[SearchHit], code: str) -> int:
    return codes(hits).index(code)


def test_general_procedure_beats_narrow_variants(full_db_engine):
    hits = search("đăng ký khai sinh", 20, engine=full_db_engine)
    assert hits[0].code == BIRTH
    for narrow in ("2.000528", "1.003583", "1.000110"):  # nước ngoài, lưu động, biên giới
        assert rank_of(hits, narrow) > 0


def test_narrow_variant_wins_when_asked_for(full_db_engine):
    assert first("đăng ký khai sinh có yếu tố nước ngoài", full_db_engine).code == "2.000528"
    assert first("đăng ký khai sinh lưu động", full_db_engine).code == "1.003583"
    assert first("đăng ký kết hôn với người nước ngoài", full_db_engine).code == "2.000806"


def test_a_named_nationality_is_a_foreign_element(full_db_engine):
    assert first("đăng ký kết hôn với người hàn quốc", full_db_engine).code == "2.000806"
    assert first("con tôi có bố là người mỹ, khai sinh ở đâu", full_db_engine).code == "2.000528"
    # accent-folded "người lao động" is not Laos: no foreign element
    assert first("đăng ký kết hôn cho người lao động", full_db_engine).code == "1.000894"


def test_commune_and_province_beat_central_level(full_db_engine):
    hits = search("cấp đổi thẻ căn cước", 5, engine=full_db_engine)
    assert codes(hits)[:3] == list(CARD_RENEWAL)
    passports = search("cấp hộ chiếu phổ thông", 5, engine=full_db_engine)
    assert rank_of(passports, "1.001456") < rank_of(passports, "1.001471")


def test_plain_request_beats_added_actions(full_db_engine):
    hits = search("đăng ký tàu cá", 5, engine=full_db_engine)
    assert hits[0].code == "1.003650"
    assert rank_of(hits, "1.003681") > 0  # Xóa đăng ký tàu cá


# --- filters, result shape -----------------------------------------------------------------


def test_results_are_ranked_scored_and_limited(full_db_engine):
    hits = search("cấp giấy phép", 7, engine=full_db_engine)
    assert len(hits) == 7
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert search("cấp giấy phép", 0, engine=full_db_engine) == []


def test_hit_to_dict(full_db_engine):
    data = first("đổi bằng lái xe", full_db_engine).to_dict()
    assert data["code"] == LICENCE_EXCHANGE and data["name"] == "Đổi giấy phép lái xe"
    assert data["levels"] == ["bo"] and data["field"] == "Sát hạch, cấp giấy phép lái xe"
    assert set(data) >= {"code", "name", "score", "levels", "field", "online_level"}


def test_level_filter(full_db_engine):
    hits = search("cấp thẻ căn cước", 10, engine=full_db_engine, level="tinh")
    assert hits and all("tinh" in h.levels for h in hits)
    assert "1.014061" not in codes(hits)  # commune-only


def test_field_filter_is_accent_and_case_insensitive(full_db_engine):
    hits = search("đăng ký", 10, engine=full_db_engine, field="ho tich")
    assert hits == []  # accents are part of a field name; folding must not merge fields
    hits = search("đăng ký", 10, engine=full_db_engine, field="HỘ TỊCH")
    assert hits and all(h.field == "Hộ tịch" for h in hits)


def test_online_level_filter(full_db_engine):
    hits = search("đăng ký xe", 10, engine=full_db_engine, online_level="toan_trinh")
    assert all(h.online_level == "toan_trinh" for h in hits)
    everything = search("đăng ký xe", 50, engine=full_db_engine)
    assert len(hits) < len(everything)


def test_filters_without_words_list_the_filtered_procedures(full_db_engine):
    hits = search("", 100, engine=full_db_engine, field="Lý lịch tư pháp")
    assert sorted(codes(hits)) == ["3.000330", "3.000333", "3.000334", "3.000335"]
    assert all(h.score == 0.0 for h in hits)


# --- short titles ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("Thủ tục đăng ký khai sinh", "Đăng ký khai sinh"),
        ("Cấp đổi thẻ căn cước (thực hiện tại cấp tỉnh)", "Cấp đổi thẻ căn cước (cấp tỉnh)"),
        ("Thủ tục: Kiểm tra hồ sơ", "Kiểm tra hồ sơ"),
        ("Đổi giấy phép lái xe", "Đổi giấy phép lái xe"),
    ],
)
def test_short_title_examples(name, title):
    assert short_title(name) == title


def test_short_titles_fit_buttons(full_db_engine):
    for row in search_module._load_rows(full_db_engine):
        title = short_title(row.name)
        assert 0 < len(title) <= 60, row.name
        if len(row.name) > 60:  # cut, or short enough once "Thủ tục" and spaces are gone
            assert title.endswith(("…", ")")) or len(title) < len(row.name.strip()), title


def test_short_title_keeps_level_apart():
    long = "Khai thác thông tin người gốc Việt Nam chưa xác định được quốc tịch trong Cơ sở dữ liệu"
    province = short_title(long + " (thực hiện tại cấp tỉnh)")
    commune = short_title(long + " (thực hiện tại cấp xã)")
    assert province != commune and province.endswith("(cấp tỉnh)")


def test_short_titles_tell_long_siblings_apart():
    under = (
        "Cấp giấy phép khai thác nước dưới đất đối với công trình có quy mô dưới 5.000 m3/ngày đêm"
    )
    over = "Cấp giấy phép khai thác nước dưới đất đối với công trình có quy mô từ 5.000 m3/ngày đêm"
    assert short_title(under) == short_title(over)
    titles = short_titles([under, over, "Đổi giấy phép lái xe"])
    assert len(set(titles)) == 3 and all(len(t) <= 60 for t in titles)
    assert "dưới 5.000" in titles[0] and "từ 5.000" in titles[1]
    assert titles[2] == "Đổi giấy phép lái xe"


# --- the index: per engine, rebuilt when data changes, thread-safe ---------------------------


def add_procedure(engine, code: str, name: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(Procedure.__table__).values(
                code=code,
                name=name,
                field="Hộ tịch",
                levels=["xa"],
                online_level="chua_ro",
                online_level_source="",
                source_format="test",
                source_hash=code,
                imported_at=datetime.utcnow(),
            )
        )
        connection.execute(
            insert(ImportRun.__table__).values(started_at=datetime.utcnow(), report={})
        )


@pytest.fixture
def small_engine(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'small.sqlite3'}")
    create_schema(engine)
    add_procedure(engine, "1.000001", "Đăng ký khai sinh")
    yield engine
    invalidate_index(engine)
    engine.dispose()


def test_index_follows_imports(small_engine, monkeypatch):
    assert codes(search("kết hôn", engine=small_engine)) == []
    add_procedure(small_engine, "1.000002", "Đăng ký kết hôn")
    monkeypatch.setattr(search_module, "VERSION_CHECK_INTERVAL_S", 0.0)
    assert codes(search("kết hôn", engine=small_engine)) == ["1.000002"]


def test_invalidate_index_forces_a_rebuild(small_engine):
    search("khai sinh", engine=small_engine)
    add_procedure(small_engine, "1.000003", "Đăng ký khai tử")
    invalidate_index(small_engine)
    assert codes(search("khai tử", engine=small_engine))[0] == "1.000003"


def test_concurrent_searches_agree(full_db_url):
    engine = get_engine(full_db_url)
    invalidate_index(engine)  # threads race to build it
    queries = [entry["q"] for entry in QUERIES[:40]] * 3
    expected = {q: search(q, 5, engine=engine) for q in queries}
    invalidate_index(engine)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda q: (q, search(q, 5, engine=engine)), queries))
    assert all(hits == expected[q] for q, hits in results)


# --- PostgreSQL --------------------------------------------------------------------------------


@pytest.mark.postgres
def test_search_on_postgresql(tmp_path):
    """The same search over the production database: JSON levels, version check, filters."""
    url = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    schema = f"search_test_{os.getpid()}"
    admin = create_engine(url, future=True)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_engine(url, future=True, connect_args={"options": f"-csearch_path={schema}"})
    try:
        create_schema(engine)
        run_import([data_path("national-api-sample")], overlay=None, engine=engine)
        hits = search("nop tien trong rung thay the", 3, engine=engine)
        assert hits[0].code == "1.007916"
        assert search("mã 1.012590", engine=engine)[0].score == 1.0
        by_level = search("đăng ký", 10, engine=engine, level="xa")
        assert by_level and all("xa" in hit.levels for hit in by_level)
    finally:
        invalidate_index(engine)
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def test_the_cli_names_a_missing_model_without_a_traceback(
    use_full_db, tmp_path, monkeypatch, capsys
):
    from procedures_db.cli import main
    from procedures_db.settings import get_settings

    missing = tmp_path / "resolver.json"
    monkeypatch.setenv("RESOLVER_MODEL", str(missing))
    get_settings.cache_clear()
    try:
        assert main(["search", "đổi bằng lái"]) == 2
    finally:
        get_settings.cache_clear()
    assert capsys.readouterr().err.strip() == (f"no resolver model at {missing}: run `make train`")
