"""JSON API under /api/: search (same ranking as the bot), filters, details, errors, OpenAPI."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate_spec
from sqlalchemy import select

from procedures_db import search
from procedures_db.answers.text import method_summary
from procedures_db.db import get_engine
from procedures_db.facts import LEVEL_LABELS, NOTHING_MORE, ONLINE_LABELS, UNKNOWN, clean
from procedures_db.models import SubmissionMethod
from procedures_db.text import canonical
from tests.staff_support import app_settings
from webapp.api import RateLimiter
from webapp.app import create_app
from webapp.lookup import MAX_LIMIT

LICENCE_EXCHANGE = "3.000347"  # Đổi giấy phép lái xe
LICENCE_FIELD = "Sát hạch, cấp giấy phép lái xe"


@pytest.fixture
async def client(full_db_url, tmp_path):
    app = create_app(app_settings(full_db_url, tmp_path))
    async with TestClient(TestServer(app)) as client:
        yield client


async def get_json(client, path: str, status: int = 200, **params):
    response = await client.get(path, params=params)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


async def test_search_finds_licence_exchange_without_accents(client):
    body = await get_json(client, "/api/procedures", q="doi gplx")
    first = body["results"][0]
    assert (first["code"], first["name"]) == (LICENCE_EXCHANGE, "Đổi giấy phép lái xe")
    assert body["count"] == len(body["results"]) and body["query"] == "doi gplx"
    # Time per method, and the fee from the description (the fee cell says "Miễn phí").
    assert {m["method"] for m in first["methods"]} == {"truc_tuyen", "truc_tiep"}
    for method in first["methods"]:
        assert method["time"] == "5 ngày làm việc"
        assert "135.000 đồng" in method["fee"] and "miễn phí" not in method["fee"].lower()


@pytest.mark.parametrize(
    "query",
    ["đổi giấy phép lái xe", "doi giay phep lai xe", "ĐỔI GIẤY PHÉP LÁI XE", "đổi bằng lái xe"],
)
async def test_search_is_accent_and_case_insensitive(client, query):
    body = await get_json(client, "/api/procedures", q=query, limit="3")
    assert body["results"][0]["code"] == LICENCE_EXCHANGE


@pytest.mark.parametrize(
    "query", ["cấp hộ chiếu", "dang ky ket hon", "giấy phép xây dựng", "khai sinh", "1.001193"]
)
async def test_search_ranks_exactly_like_the_bot(client, full_db_url, query):
    body = await get_json(client, "/api/procedures", q=query, limit="8")
    expected = search.search(query, 8, engine=get_engine(full_db_url))
    assert [r["code"] for r in body["results"]] == [hit.code for hit in expected]
    assert [r["score"] for r in body["results"]] == [hit.score for hit in expected]


async def test_level_filter(client):
    body = await get_json(client, "/api/procedures", q="giấy phép", level="tinh", limit="20")
    assert body["results"] and body["filters"] == {"level": "tinh"}
    assert all("tinh" in r["levels"] for r in body["results"])


async def test_online_filter(client):
    body = await get_json(client, "/api/procedures", q="giấy phép lái xe", online="truc_tiep")
    assert body["results"]
    assert all(r["online_level"] == "truc_tiep" for r in body["results"])
    assert LICENCE_EXCHANGE not in [r["code"] for r in body["results"]]  # it has online submission


async def test_field_filter_with_and_without_query(client):
    with_query = await get_json(client, "/api/procedures", q="cấp", field=LICENCE_FIELD)
    browse = await get_json(client, "/api/procedures", field=LICENCE_FIELD, limit="50")
    for body in (with_query, browse):
        assert body["results"]
        assert all(r["field"] == LICENCE_FIELD for r in body["results"])
    names = [r["name"] for r in browse["results"]]
    assert names == sorted(names) and all(r["score"] is None for r in browse["results"])
    assert LICENCE_EXCHANGE in [r["code"] for r in browse["results"]]


async def test_limit_and_empty_query(client):
    body = await get_json(client, "/api/procedures", q="giấy phép", limit="2")
    assert len(body["results"]) == 2
    assert (await get_json(client, "/api/procedures"))["results"] == []


async def test_procedure_details(client):
    body = await get_json(client, f"/api/procedures/{LICENCE_EXCHANGE}")
    assert body["code"] == LICENCE_EXCHANGE and body["name"] == "Đổi giấy phép lái xe"
    assert body["documents"] and body["legal_bases"] and len(body["methods"]) == 2
    assert body["imported_at"]
    answers = body["answers"]  # worded like the bot and the staff page
    assert answers["time"] == "5 ngày làm việc"
    assert answers["fee"].startswith("135.000 đồng")
    assert answers["place"] == "Cục cảnh sát giao thông, Công an tỉnh, Công an cấp Xã"
    assert answers["online"] == "Có nộp trực tuyến (chưa rõ mức độ)"
    assert answers["documents"].startswith("Thủ tục: Đổi giấy phép lái xe")


async def test_unknown_code_is_a_json_404(client):
    body = await get_json(client, "/api/procedures/9.999999", status=404)
    assert body["error"]["code"] == "not_found" and "9.999999" in body["error"]["message"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"q": "x", "limit": "abc"}, "limit"),
        ({"q": "x", "limit": "0"}, "limit"),
        ({"q": "x", "limit": str(MAX_LIMIT + 1)}, "limit"),
        ({"q": "x", "limit": "-3"}, "limit"),
        ({"q": "x", "level": "huyen"}, "level"),
        ({"q": "x", "online": "online"}, "online"),
        ({"q": "a" * 201}, "q"),
    ],
)
async def test_bad_parameters_are_json_400(client, params, parameter):
    body = await get_json(client, "/api/procedures", status=400, **params)
    assert body["error"]["code"] == "bad_parameter"
    assert body["error"]["parameter"] == parameter and body["error"]["message"]


async def test_overlong_code_is_400(client):
    body = await get_json(client, "/api/procedures/" + "1" * 65, status=400)
    assert body["error"]["parameter"] == "code"


async def test_openapi_is_valid_and_matches_the_routes(client):
    document = await get_json(client, "/api/openapi.json")
    validate_spec(document)
    routes = {r.resource.canonical for r in client.server.app.router.routes()}
    assert set(document["paths"]) <= routes
    parameters = {
        p["name"]: p["schema"] for p in document["paths"]["/api/procedures"]["get"]["parameters"]
    }
    assert parameters["level"]["enum"] == list(LEVEL_LABELS)
    assert parameters["online"]["enum"] == list(ONLINE_LABELS)
    assert parameters["limit"]["maximum"] == MAX_LIMIT
    assert document["security"] == []  # public, read-only


async def test_fields_are_listed(client):
    body = await get_json(client, "/api/fields")
    assert LICENCE_FIELD in body["fields"] and body["count"] == len(body["fields"])


async def test_rate_limit_per_ip_answers_429_with_retry_after(full_db_url, tmp_path):
    app = create_app(app_settings(full_db_url, tmp_path, api_rate_limit_per_minute=10))
    async with TestClient(TestServer(app)) as client:
        statuses = [(await client.get("/api/procedures/9.999999")).status for _ in range(3)]
        assert statuses == [404, 404, 429]  # a burst of 10 / 5 = 2
        response = await client.get("/api/procedures", params={"q": "x"})
        assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["error"]["code"] == "rate_limited"


def test_rate_limiter_refills_over_time():
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])  # one per second, burst 12
    assert all(limiter.allow("a") == 0 for _ in range(12))
    assert limiter.allow("a") == pytest.approx(1.0)
    assert limiter.allow("b") == 0  # other clients are not affected
    now[0] += 1.0
    assert limiter.allow("a") == 0


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ({"fee_amounts": [135000, 115000], "fee_text": "Miễn phí"}, "135.000 đồng; 115.000 đồng"),
        ({"fee_amounts": [], "fee_text": "Miễn phí", "fee_description": "Không có."}, "Miễn phí"),
        (
            {"fee_amounts": [], "fee_text": "Miễn phí",
             "fee_description": "Mức lệ phí do Hội đồng nhân dân tỉnh quyết định."},
            "Mức lệ phí do Hội đồng nhân dân tỉnh quyết định",
        ),
        ({"fee_amounts": [], "fee_text": "Không có thông tin"}, UNKNOWN),
        ({"fee_amounts": [], "fee_text": None}, UNKNOWN),
    ],
)  # fmt: skip
def test_fee_wording(method, expected):
    assert method_summary(method)["fee"] == expected


def test_no_bare_free_fee_that_the_description_contradicts(full_db_engine):
    """Over every real submission method: "Miễn phí" only when the description adds nothing."""
    columns = select(
        SubmissionMethod.fee_amounts, SubmissionMethod.fee_text, SubmissionMethod.fee_description
    )
    with full_db_engine.connect() as connection:
        methods = [row._mapping for row in connection.execute(columns)]
    free = [m for m in methods if method_summary(m)["fee"].lower() == "miễn phí"]
    assert free  # the data does have free procedures
    amount = re.compile(r"\d[\d.]*\s*(đồng|vnđ|vnd)", re.IGNORECASE)
    assert not [m["fee_description"] for m in free if amount.search(m["fee_description"] or "")]
    notes = [clean(m["fee_description"]) for m in free]
    assert all(note is None or canonical(note) in NOTHING_MORE for note in notes)
