"""The real PostgreSQL server: Alembic migration, import (subset + API sample), re-import, queries.

Runs in a schema of its own, dropped before and after, so reruns start clean and other users of
the `test` database are not touched.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from procedures_db.db import create_schema
from procedures_db.importers import run_import
from procedures_db.queries import database_stats, get_procedure
from tests.conftest import data_path

pytestmark = pytest.mark.postgres

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
SCHEMA = f"procedures_import_test_{os.getpid()}"
SUBSET_CODES = ("3.000347", "1.007916", "1.013945")


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    admin = create_engine(POSTGRES_URL, future=True)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    engine = create_engine(
        POSTGRES_URL, future=True, connect_args={"options": f"-csearch_path={SCHEMA}"}
    )
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        admin.dispose()


def scraped_subset(path: Path, first_lines: int = 150) -> Path:
    """The first lines of the real scraped file plus the records of SUBSET_CODES."""
    with gzip.open(data_path("dichvucong-national-2026.jsonl.gz"), "rb") as source:
        lines = [
            line
            for number, line in enumerate(source)
            if number < first_lines or any(f'"{code}"'.encode() in line for code in SUBSET_CODES)
        ]
    path.write_bytes(gzip.compress(b"".join(lines)))
    return path


def test_migrate_import_reimport_and_query(pg_engine: Engine, tmp_path: Path) -> None:
    create_schema(pg_engine)
    with pg_engine.connect() as conn:
        tables = set(
            conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": SCHEMA},
            ).scalars()
        )
    assert {"procedures", "submission_methods", "documents", "legal_bases", "import_runs"} <= tables

    paths = [scraped_subset(tmp_path / "subset.jsonl.gz"), data_path("national-api-sample")]
    report = run_import(paths, engine=pg_engine)
    assert report.records_read == {"scraped": 153, "national_api": 23}
    assert report.inserted == 153 + 23 - 2 and len(report.superseded) == 2
    assert len(report.rejected) == 2

    again = run_import(paths, engine=pg_engine)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, report.inserted)

    details = get_procedure("3.000347", engine=pg_engine)
    assert [m.fee_amounts for m in details.methods] == [[135000, 115000]] * 2
    assert get_procedure("1.007916", engine=pg_engine).source_format == "national_api"
    stats = database_stats(engine=pg_engine)
    assert stats["procedures"] == report.inserted
    assert stats["last_import"]["unchanged"] == report.inserted


async def test_tracker_store_statements_read_what_rasa_s_query_reads() -> None:
    """bot/production/stores.EventStatements on PostgreSQL: the rows of Rasa's _event_query."""
    from rasa.shared.core.domain import Domain
    from sqlalchemy.engine import make_url

    from bot.production.stores import ResilientSQLTrackerStore
    from tests.test_rasa_patches import _converse

    url = make_url(POSTGRES_URL)
    database = f"tracker_statements_test_{os.getpid()}"
    domain = Domain.load("domain.yml")
    store = ResilientSQLTrackerStore(
        domain,
        dialect="postgresql",
        host=url.host,
        port=url.port,
        db=database,
        username=url.username,
        password=url.password,
        login_db=url.database,
    )
    try:
        await _converse(store, domain)
        with store.session_scope() as session:
            for sender in ("a", "b", "nobody"):
                for all_sessions in (False, True):
                    query = store._event_query(session, sender, all_sessions)
                    expected = [row.data for row in query.all()]
                    assert store._statements.data(session, sender, all_sessions) == expected
                latest = store._event_query(session, sender, False).count()
                assert store._statements.count(session, sender) == latest
            assert store._statements.data(session, "a", False)
    finally:
        store.engine.dispose()
        admin = create_engine(POSTGRES_URL, future=True, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {database}"))
        admin.dispose()
