"""Schemathesis fuzz of the public JSON API against the description it serves itself
(GET /api/openapi.json): no 5xx, always JSON, and every answer conforms to the schema
(status code, content type, body). Valid and invalid requests are generated; a request line
over aiohttp's 8190-byte limit must get (aiohttp's plain-text) 400.

The real aiohttp server runs on a free port in its own thread (schemathesis calls it through
`requests`, synchronously). Its pytest plugin is disabled for the suite (`-p no:schemathesis`
in pyproject.toml); its Python API drives hypothesis directly.
"""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import negative_data_rejection
from sqlalchemy import select

from procedures_db.models import Procedure
from scripts.stack import free_port
from tests.staff_support import app_settings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
# aiohttp's HTTP parser answers a longer request line with its own plain-text 400, before any
# handler or middleware runs.
MAX_REQUEST_LINE = 8190
OPERATIONS = ["/api/procedures", "/api/procedures/{code}", "/api/fields", "/api/openapi.json"]


@pytest.fixture(scope="module")
def base_url(full_db_url: str, tmp_path_factory: pytest.TempPathFactory):
    """The whole web app (full database, no per-IP limit) served on a free port."""
    from webapp.app import create_app

    app = create_app(app_settings(full_db_url, tmp_path_factory.mktemp("schemathesis")))
    runner = web.AppRunner(app)
    port = free_port()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=30)
    loop.close()


@pytest.fixture(scope="module")
def api_schema(base_url: str):
    # Fetched, then loaded as a dict: `from_url` would leave out the operation it was loaded from.
    document = requests.get(f"{base_url}/api/openapi.json", timeout=30)
    assert document.status_code == 200, document.text[:300]
    return schemathesis.openapi.from_dict(document.json())


def test_the_schema_lists_exactly_the_fuzzed_operations(api_schema) -> None:
    paths = sorted(op.ok().path for op in api_schema.get_all_operations())
    assert paths == sorted(OPERATIONS), paths


def _cases(operation, full_db_engine) -> st.SearchStrategy:
    """Valid and invalid generated cases; for the detail page also real codes (random text
    never hits one)."""
    generated = st.one_of([operation.as_strategy(mode) for mode in schemathesis.GenerationMode])
    if operation.path != "/api/procedures/{code}":
        return generated
    with full_db_engine.connect() as connection:
        codes = connection.execute(select(Procedure.code).order_by(Procedure.code)).scalars()
        real = st.sampled_from(list(codes))
    return st.one_of(generated, real.map(lambda c: operation.Case(path_parameters={"code": c})))


@pytest.mark.parametrize("path", OPERATIONS)
def test_operation_conforms_to_its_schema(
    api_schema, base_url: str, full_db_engine, path: str
) -> None:
    operation = api_schema[path]["GET"]
    session = requests.Session()
    statuses: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(_cases(operation, full_db_engine))
    def check(case) -> None:
        response = case.call(base_url=base_url, session=session, timeout=30)
        assert response.status_code < 500, (case.path_parameters, case.query, response.text[:300])
        if len(f"GET {response.request.path_url} HTTP/1.1") > MAX_REQUEST_LINE:
            assert response.status_code == 400, response.status_code
            return
        # schemathesis' Response: header names in lower case, each with a list of values.
        content_type = response.headers["content-type"][0]
        assert content_type.startswith("application/json"), (response.status_code, content_type)
        response.json()
        # Every default check but "invalid input must be rejected": blank or space-padded
        # filters are deliberately "no filter" (the staff search form sends `level=` for "Tất cả").
        case.validate_response(response, excluded_checks=[negative_data_rejection])
        statuses.append(response.status_code)

    check()
    session.close()
    # The fuzz must have reached the real handlers, not only the parameter validation.
    assert 200 in statuses, statuses
