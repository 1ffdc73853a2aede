"""Shared fixtures. The real data is imported once per test run into a temporary SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from procedures_db.settings import get_settings

DATA_DIR = get_settings().data_dir


@pytest.fixture(scope="session")
def full_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database holding every real record from the shared data folder."""
    from procedures_db.db import create_schema, get_engine
    from procedures_db.importers import run_import

    url = f"sqlite:///{tmp_path_factory.mktemp('fulldb') / 'procedures.sqlite3'}"
    engine = get_engine(url)
    create_schema(engine)
    report = run_import([DATA_DIR], overlay=None, engine=engine)
    assert report.inserted > 2600, report.summary_lines()
    return url


@pytest.fixture(scope="session")
def full_db_engine(full_db_url: str):
    from procedures_db.db import get_engine

    return get_engine(full_db_url)


@pytest.fixture
def use_full_db(full_db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the settings (and so every default engine) at the full database."""
    monkeypatch.setenv("PROCEDURES_DB_URL", full_db_url)
    get_settings.cache_clear()
    yield full_db_url
    get_settings.cache_clear()


def data_path(*parts: str) -> Path:
    return DATA_DIR.joinpath(*parts)


@pytest.fixture(scope="session")
def running_stack(full_db_url: str, tmp_path_factory: pytest.TempPathFactory):
    """Action server + Rasa (the model `make train` built) + web server on free ports.

    Uses the full procedures database and a fresh SQLite tracker store. Started once per run.
    """
    from scripts.stack import DEFAULT_MODEL, Stack, free_port

    if not DEFAULT_MODEL.exists():
        pytest.fail(f"no trained model at {DEFAULT_MODEL}: `make test` trains it first")
    work = tmp_path_factory.mktemp("stack")
    stack = Stack(
        rasa_port=free_port(),
        action_port=free_port(),
        web_port=free_port(),
        log_dir=work / "logs",
        token_file=work / "secrets" / "rasa_api_token",
        env={
            "PROCEDURES_DB_URL": full_db_url,
            "TRACKER_DB_URL": f"sqlite:///{work / 'tracker.sqlite3'}",
        },
    )
    stack.start()
    yield stack
    stack.stop()


# Debian's Chromium (`make browser`); a browser download is impossible here. The flags keep it
# from reaching out to the network at start.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()
