"""Staff area: sign-in (CSRF, lockout, cookies), pages, summary script, unanswered questions,
the account command line."""

from __future__ import annotations

import html
import io
import json
import os
import time
import uuid
from datetime import date, datetime

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from procedures_db.answers import summary_script
from procedures_db.db import get_engine
from procedures_db.facts import UNKNOWN
from procedures_db.privacy import PHONE_MASK
from procedures_db.profile import ProvinceProfile
from procedures_db.queries import MethodDetails, ProcedureDetails, get_procedure
from procedures_db.settings import get_settings
from scripts.prod import ensure_postgres_database
from tests.staff_support import (
    PASSWORD,
    app_settings,
    bot,
    csrf_token,
    new_staff_account,
    save_conversation,
    sign_in,
    slot,
    user,
)
from webapp import accounts, auth
from webapp.app import create_app
from webapp.unanswered import read_unanswered, tracker_engine

LICENCE_EXCHANGE = "3.000347"


@pytest.fixture
def settings(full_db_url, tmp_path):
    return app_settings(full_db_url, tmp_path)


@pytest.fixture
async def client(settings):
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


@pytest.fixture
async def staff_client(client, full_db_url):
    response = await sign_in(client, new_staff_account(full_db_url))
    assert response.status == 303
    return client


# ---- sign-in ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/staff", "/staff/unanswered", f"/staff/procedures/{LICENCE_EXCHANGE}"]
)
async def test_pages_need_sign_in(client, path):
    response = await client.get(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"/staff/login?next={path}"


async def test_sign_in_returns_to_the_page_asked_for_with_its_query(client, full_db_url):
    first = await client.get("/staff", params={"q": "doi gplx", "level": "tinh"})
    assert first.url.path == "/staff/login"  # followed the redirect to the sign-in form
    token = csrf_token(await first.text())
    next_path = first.url.query["next"]
    assert f'name="next" value="{html.escape(next_path)}"' in await first.text()
    response = await client.post(
        "/staff/login",
        data={"username": new_staff_account(full_db_url), "password": PASSWORD,
              "csrf_token": token, "next": next_path},
    )  # fmt: skip
    assert response.status == 200 and response.url.path == "/staff"
    assert dict(response.url.query) == {"q": "doi gplx", "level": "tinh"}


async def test_staff_search_json_needs_sign_in(client):
    response = await client.get("/staff/api/procedures", params={"q": "doi gplx"})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "not_signed_in"


async def test_sign_in_sets_a_strict_http_only_session_cookie(client, full_db_url):
    response = await sign_in(client, new_staff_account(full_db_url), next_path="/staff/unanswered")
    assert response.status == 303 and response.headers["Location"] == "/staff/unanswered"
    cookie = response.cookies["staff_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/staff"
    assert (await client.get("/staff", allow_redirects=False)).status == 200


async def test_wrong_password_is_rejected(client, full_db_url):
    response = await sign_in(client, new_staff_account(full_db_url), password="sai mật khẩu rồi")
    assert response.status == 401
    assert "Sai tên đăng nhập hoặc mật khẩu" in await response.text()
    assert "staff_session" not in response.cookies
    assert (await client.get("/staff", allow_redirects=False)).status == 303


async def test_sign_in_without_the_csrf_token_is_refused(client, full_db_url):
    username = new_staff_account(full_db_url)
    await client.get("/staff/login")
    response = await client.post(
        "/staff/login", data={"username": username, "password": PASSWORD}, allow_redirects=False
    )
    assert response.status == 403 and "staff_session" not in response.cookies


async def test_sign_in_never_redirects_off_site(client, full_db_url):
    response = await sign_in(client, new_staff_account(full_db_url), next_path="//evil.example/x")
    assert response.headers["Location"] == "/staff"


async def test_username_is_locked_after_five_failures(client, full_db_url):
    username = new_staff_account(full_db_url)
    for _ in range(5):
        assert (await sign_in(client, username, password="sai mật khẩu")).status == 401
    response = await sign_in(client, username)  # even the right password now waits
    assert response.status == 429 and "thử lại sau 15 phút" in await response.text()


async def test_ip_is_locked_after_twenty_failures(client, full_db_url):
    for i in range(20):
        assert (await sign_in(client, f"khong-co-{i}", password="sai mật khẩu")).status == 401
    assert (await sign_in(client, new_staff_account(full_db_url))).status == 429


async def test_sign_out_needs_csrf_and_ends_the_session(staff_client):
    page = await staff_client.get("/staff")
    token = csrf_token(await page.text())
    refused = await staff_client.post("/staff/logout", data={}, allow_redirects=False)
    assert refused.status == 403
    response = await staff_client.post(
        "/staff/logout", data={"csrf_token": token}, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/staff/login"
    assert (await staff_client.get("/staff", allow_redirects=False)).status == 303


def test_old_session_token_stops_working_after_sign_out(full_db_url):
    engine = get_engine(full_db_url)
    account = auth.authenticate(new_staff_account(full_db_url), PASSWORD, engine=engine)
    token = auth.open_session(account, engine=engine)
    assert auth.load_session(token, engine=engine) is not None
    auth.close_session(token, engine=engine)
    assert auth.load_session(token, engine=engine) is None
    assert auth.load_session("forged-token", engine=engine) is None


def test_password_hashes_are_salted_scrypt():
    first, second = auth.hash_password(PASSWORD), auth.hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$")
    assert auth.verify_password(PASSWORD, first) and not auth.verify_password("khác", first)
    assert not auth.verify_password(PASSWORD, "garbage")


def test_failure_limiter_window_slides():
    now = [0.0]
    limiter = auth.FailureLimiter(max_failures=2, window_s=60, clock=lambda: now[0])
    limiter.record_failure("a")
    limiter.record_failure("a")
    assert limiter.retry_after("a") == 60 and limiter.retry_after("b") == 0
    now[0] = 61
    assert limiter.retry_after("a") == 0


# ---- account command line ----------------------------------------------------------------------


class _Stdin(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_accounts_cli_creates_lists_and_deletes(full_db_url, monkeypatch, capsys):
    monkeypatch.setenv("PROCEDURES_DB_URL", full_db_url)
    get_settings.cache_clear()
    try:
        monkeypatch.setattr("sys.stdin", _Stdin("mật khẩu mới đủ dài\n"))
        assert accounts.main(["create", "Tong.Dai-01"]) == 0
        engine = get_engine(full_db_url)
        assert auth.authenticate("tong.dai-01", "mật khẩu mới đủ dài", engine=engine)
        monkeypatch.setattr("sys.stdin", _Stdin("mật khẩu mới đủ dài\n"))
        assert accounts.main(["create", "tong.dai-01"]) == 1  # exists already
        monkeypatch.setattr("sys.stdin", _Stdin("ngắn\n"))
        assert accounts.main(["create", "tong.dai-02"]) == 1  # password too short
        assert accounts.main(["list"]) == 0
        assert "tong.dai-01" in capsys.readouterr().out
        assert accounts.main(["delete", "tong.dai-01"]) == 0
        assert not auth.authenticate("tong.dai-01", "mật khẩu mới đủ dài", engine=engine)
    finally:
        get_settings.cache_clear()


# ---- pages -----------------------------------------------------------------------------------


async def test_search_page_and_staff_search_json(staff_client):
    page = await staff_client.get("/staff")
    html = await page.text()
    assert 'id="q"' in html and "Sát hạch, cấp giấy phép lái xe" in html  # field filter options
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert page.headers["Cache-Control"] == "no-store"
    body = await (await staff_client.get("/staff/api/procedures", params={"q": "doi gplx"})).json()
    assert body["results"][0]["code"] == LICENCE_EXCHANGE
    bad = await staff_client.get("/staff/api/procedures", params={"q": "x", "level": "huyen"})
    assert bad.status == 400


async def test_procedure_page_shows_everything(staff_client):
    response = await staff_client.get(f"/staff/procedures/{LICENCE_EXCHANGE}")
    html = await response.text()
    assert response.status == 200
    for expected in [
        "Đổi giấy phép lái xe",
        "5 ngày làm việc",
        "135.000 đồng",  # from the fee description, the fee cell says "Miễn phí"
        "Thành phần hồ sơ",
        "Giấy khám sức khỏe",
        "Trình tự thực hiện",
        "Căn cứ pháp lý",
        "Cục cảnh sát giao thông",
        "https://dichvucong.gov.vn/thu-tuc-hanh-chinh/",
        "Dữ liệu nhập lúc",
        'id="copy-summary"',
        UNKNOWN,  # no receiving address in the source
    ]:
        assert expected in html, expected
    assert ">Miễn phí<" not in html


async def test_province_level_page_derives_the_desk_from_the_level(staff_client, settings):
    body = await (
        await staff_client.get("/staff/api/procedures", params={"level": "tinh", "limit": "1"})
    ).json()
    html = await (await staff_client.get(f"/staff/procedures/{body['results'][0]['code']}")).text()
    # province.yml leaves the centre empty: the desk the level implies, said to be derived.
    assert "Trung tâm Phục vụ hành chính công của tỉnh" in html
    assert "suy ra từ cấp thực hiện: Cấp tỉnh" in html


async def test_unknown_procedure_page_is_404(staff_client):
    response = await staff_client.get("/staff/procedures/9.999999")
    assert response.status == 404 and "Không tìm thấy thủ tục" in await response.text()


async def test_page_values_are_html_escaped(staff_client):
    response = await staff_client.get("/staff/procedures/<script>alert(1)</script>")
    assert "<script>alert" not in await response.text()


def test_summary_script_reads_name_code_place_time_fee_online(full_db_url):
    details = get_procedure(LICENCE_EXCHANGE, engine=get_engine(full_db_url))
    profile = ProvinceProfile(centre_name="Trung tâm PVHCC tỉnh X", centre_address="1 Đường A")
    script = summary_script(details, profile, on=date(2026, 12, 4))
    assert script.splitlines() == [
        "Thủ tục: Đổi giấy phép lái xe (mã 3.000347, cấp bộ).",
        "Nơi nộp: Cục cảnh sát giao thông, Công an tỉnh, Công an cấp Xã.",
        "Thời gian giải quyết: 5 ngày làm việc.",
        "Phí, lệ phí: 135.000 đồng.",  # the online rate of 115.000 đồng ended on 31/12/2025
        "Mức độ trực tuyến: Có nộp trực tuyến (chưa rõ mức độ), tại https://dichvucong.gov.vn.",
    ]
    before = summary_script(details, profile, on=date(2025, 12, 31)).splitlines()[3]
    assert before == "Phí, lệ phí: 135.000 đồng; 115.000 đồng."


def _method(method: str, **values) -> MethodDetails:
    fields = dict(time_value=None, time_unit=None, time_text=None, fee_amounts=[],
                  fee_text=None, fee_description=None, description=None)  # fmt: skip
    return MethodDetails(method=method, **{**fields, **values})


def test_summary_script_uses_the_province_centre_for_province_procedures():
    details = ProcedureDetails(
        code="1.000001", name="Thủ tục thử", field=None, levels=["tinh"], procedure_type=None,
        implementing_agencies="Sở Tư pháp", competent_agency=None, receiving_address=None,
        target_subjects=None, requirements=None, steps=None, result=None, decision_number=None,
        ministry=None, online_level="truc_tiep", online_level_source="", online_submit_url=None,
        source_url=None, source_format="test", source_file=None, source_hash="",
        imported_at=datetime(2026, 1, 1),
        methods=[
            _method("truc_tiep", time_value=3, time_unit="working_day", fee_text="Miễn phí"),
            _method("buu_chinh", time_text="Không có thông tin"),
        ],
        documents=[], legal_bases=[],
    )  # fmt: skip
    profile = ProvinceProfile(centre_name="Trung tâm PVHCC tỉnh X", centre_address="1 Đường A")
    lines = summary_script(details, profile).splitlines()
    assert lines[1] == "Nơi nộp: Trung tâm PVHCC tỉnh X, 1 Đường A."
    assert lines[2] == "Thời gian giải quyết: Trực tiếp: 3 ngày làm việc."
    assert lines[3] == "Phí, lệ phí: Trực tiếp: Miễn phí."
    assert (
        lines[4]
        == "Mức độ trực tuyến: Không nộp trực tuyến (chỉ nộp trực tiếp hoặc qua bưu chính)."
    )
    assert summary_script(details, ProvinceProfile()).splitlines()[1] == "Nơi nộp: Sở Tư pháp."


# ---- what the bot could not answer -------------------------------------------------------------


def _conversations(now: float) -> dict[str, list]:
    """Conversations as Rasa stores them: what should and should not count as unanswered."""
    t = now - 600
    candidates = [
        {"code": "3.000347", "name": "Đổi giấy phép lái xe"},
        {"code": "3.000351", "name": "Đổi giấy phép lái xe của người nước ngoài"},
    ]
    buttons = [
        {
            "title": c["name"],
            "payload": "/choose_procedure" + json.dumps({"procedure_code": c["code"]}),
        }
        for c in candidates
    ]
    offer = [
        bot("Bạn hỏi về thủ tục nào?", t, buttons),
        slot("procedure_candidates", candidates, t),
    ]
    return {
        "web-fallback": [
            user("cho em hỏi sđt 0901234567 làm cái gì", "nlu_fallback", t + 1),
            bot("Xin lỗi, tôi chưa hiểu.", t + 1),
        ],
        "web-scope": [user("thời tiết hôm nay thế nào", "out_of_scope", t + 2)],
        # Offered candidates, the citizen wrote something else: abandoned.
        "web-abandon-reply": [
            user("đổi bằng lái", "ask_procedure_info", t + 3),
            *offer,
            user("thôi cảm ơn, mail em là a@b.vn", "thank", t + 5),
        ],
        # Offered candidates, no reply at all: abandoned.
        "web-abandon-silent": [user("gplx hết hạn", "ask_procedure_info", t + 6), *offer],
        # Offered candidates, the citizen typed "1" and the bot set the procedure: answered.
        "web-chosen": [
            user("đổi giấy phép", "ask_procedure_info", t + 8),
            *offer,
            user("1", "choose_procedure", t + 10),
            slot("procedure_code", "3.000347", t + 11),
            slot("procedure_code", "3.000347", t + 12),  # same conversation counts once
        ],
        # A button click (payload with the code) is a choice too.
        "web-clicked": [
            user("lái xe", "ask_procedure_info", t + 13),
            bot("Bạn hỏi về thủ tục nào?", t + 14, buttons),
            user('/choose_procedure{"procedure_code":"3.000351"}', "choose_procedure", t + 15),
            slot("procedure_code", "3.000351", t + 16),
        ],
        "web-direct": [
            user("đổi gplx mất bao lâu", "ask_processing_time", t + 17),
            slot("procedure_code", "3.000347", t + 18),
        ],
        # Rated answers: "Chưa đúng" is listed with its question; both are counted.
        "web-rated": [
            user("đổi gplx cần giấy tờ gì", "ask_documents", t + 19),
            slot("procedure_code", "3.000347", t + 20),
            bot("Thủ tục: Đổi giấy phép lái xe", t + 20, [{"title": "Chưa đúng", "payload": "x"}]),
            rating("wrong", t + 21, code="3.000347"),
            rating("helpful", t + 22, code="3.000351"),
            rating("wrong", t + 23),  # typed "sai rồi": the current procedure
        ],
    }


def rating(value: str, timestamp: float, code: str | None = None):
    """A feedback button click (or typed rating) as Rasa stores it: the entities carry it."""
    from rasa.shared.core.events import UserUttered

    entities = [{"entity": "rating", "value": value}]
    entities += [{"entity": "procedure_code", "value": code}] if code else []
    parse = {"text": "/feedback", "intent": {"name": "feedback", "confidence": 1.0},
             "entities": entities}  # fmt: skip
    return UserUttered("/feedback", parse["intent"], entities, parse, timestamp=timestamp)


async def _save_conversations(url: str) -> None:
    for sender, events in _conversations(time.time()).items():
        await save_conversation(url, sender, events)


def _check_report(url: str) -> None:
    report = read_unanswered(url)
    found = {(m.reason, m.text) for m in report.messages}
    assert found == {
        ("Bot không hiểu (nlu_fallback)", f"cho em hỏi sđt {PHONE_MASK} làm cái gì"),
        ("Ngoài phạm vi (out_of_scope)", "thời tiết hôm nay thế nào"),
        ("Bỏ dở khi chọn thủ tục", "đổi bằng lái"),
        ("Bỏ dở khi chọn thủ tục", "gplx hết hạn"),
        ("Người dân báo chưa đúng", "đổi gplx cần giấy tờ gì"),
    }
    assert report.feedback == [("3.000347", 0, 2), ("3.000351", 1, 0)]
    details = {m.text: m.detail for m in report.messages}
    assert details["đổi bằng lái"] == "Trả lời tiếp: thôi cảm ơn, mail em là [email]"
    assert "không trả lời" in details["gplx hết hạn"]
    assert report.messages[0].text == "đổi gplx cần giấy tờ gì"  # newest first
    assert report.top_procedures == [("3.000347", 3), ("3.000351", 1)]
    assert all(len(m.conversation) == 8 and "web" not in m.conversation for m in report.messages)


async def test_read_unanswered_finds_fallbacks_and_abandoned_choices(tmp_path):
    url = f"sqlite:///{tmp_path / 'tracker.sqlite3'}"
    await _save_conversations(url)
    _check_report(url)


@pytest.mark.postgres
async def test_read_unanswered_from_a_postgresql_tracker_store():
    name = f"tthc_test_unanswered_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    ensure_postgres_database(url)
    try:
        await _save_conversations(url)
        _check_report(url)
    finally:
        tracker_engine(url).dispose()
        admin = sa.create_engine(
            "postgresql://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_missing_tracker_store_is_reported_not_created(tmp_path):
    report = read_unanswered(f"sqlite:///{tmp_path / 'none.sqlite3'}")
    assert not report.store_found and report.messages == []
    assert not (tmp_path / "none.sqlite3").exists()


async def test_unanswered_page_lists_masked_messages_and_top_procedures(staff_client, settings):
    await _save_conversations(settings.tracker_db_url)
    html = await (await staff_client.get("/staff/unanswered")).text()
    assert f"cho em hỏi sđt {PHONE_MASK} làm cái gì" in html and "0901234567" not in html
    assert "thời tiết hôm nay thế nào" in html and "Bỏ dở khi chọn thủ tục" in html
    assert "a@b.vn" not in html
    assert f'href="/staff/procedures/{LICENCE_EXCHANGE}"' in html and "Đổi giấy phép lái xe" in html
    assert "Người dân báo chưa đúng" in html and 'id="feedback-counts"' in html


async def test_unanswered_page_without_tracker_store(staff_client):
    html = await (await staff_client.get("/staff/unanswered")).text()
    assert "Chưa có kho hội thoại" in html
