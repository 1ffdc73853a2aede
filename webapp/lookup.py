"""Procedure lookups shared by the JSON API and the staff pages.

The sync functions here run in a worker thread (`call_blocking`); ranking is always
`procedures_db.search.search`, the same as the bot's; the queries are `procedures_db.queries`,
the wording `procedures_db.answers`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from procedures_db import queries
from procedures_db.answers import key_facts, procedure_reply, summary_script
from procedures_db.answers.text import method_summary
from procedures_db.facts import LEVEL_LABELS, ONLINE_LABELS, UNKNOWN
from procedures_db.profile import ProvinceProfile
from procedures_db.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_QUERY_LENGTH = 200
MAX_FIELD_LENGTH = 300
MAX_LIMIT = 50
DEFAULT_LIMIT = 10


class ParamError(ValueError):
    """A request parameter is invalid; `parameter` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class LookupUnavailable(RuntimeError):
    """The database or the search index did not answer in time, or failed."""


@dataclass(frozen=True)
class SearchParams:
    q: str = ""
    field: str | None = None
    level: str | None = None
    online: str | None = None
    limit: int = DEFAULT_LIMIT

    def filters(self) -> dict[str, str]:
        pairs = {"field": self.field, "level": self.level, "online": self.online}
        return {key: value for key, value in pairs.items() if value}


def _choice(query: Mapping[str, str], name: str, allowed: Mapping[str, str]) -> str | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    if value not in allowed:
        raise ParamError(name, f"'{name}' phải là một trong: {', '.join(allowed)}.")
    return value


def parse_search_params(query: Mapping[str, str]) -> SearchParams:
    q = query.get("q", "").strip()
    if len(q) > MAX_QUERY_LENGTH:
        raise ParamError("q", f"'q' dài quá {MAX_QUERY_LENGTH} ký tự.")
    field = query.get("field", "").strip() or None
    if field and len(field) > MAX_FIELD_LENGTH:
        raise ParamError("field", f"'field' dài quá {MAX_FIELD_LENGTH} ký tự.")
    raw_limit = query.get("limit", "").strip() or str(DEFAULT_LIMIT)
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise ParamError("limit", f"'limit' phải là số nguyên từ 1 đến {MAX_LIMIT}.")
    return SearchParams(
        q=q,
        field=field,
        level=_choice(query, "level", LEVEL_LABELS),
        online=_choice(query, "online", ONLINE_LABELS),
        limit=int(raw_limit),
    )


async def call_blocking(settings: Settings, function: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run a sync DB/search call in a thread, with the configured timeout."""
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(function, *args, **kw), settings.action_timeout_s
        )
    except asyncio.TimeoutError as error:
        logger.error("%s timed out after %.1f s", function.__qualname__, settings.action_timeout_s)
        raise LookupUnavailable(f"{function.__qualname__} timed out") from error
    except Exception as error:
        logger.exception("%s failed", function.__qualname__)
        raise LookupUnavailable(f"{function.__qualname__} failed") from error


# ---- queries (sync; run them through call_blocking) -----------------------------------------


@dataclass
class _MethodCache:
    version: tuple
    checked_at: float
    methods: dict[str, list[dict[str, str]]]


_method_caches: dict[Engine, _MethodCache] = {}
_method_lock = threading.Lock()


def _all_summaries(engine: Engine) -> dict[str, list[dict[str, str]]]:
    return {
        code: [method_summary(row) for row in rows]
        for code, rows in queries.methods_by_code(engine=engine).items()
    }


def _methods_of(engine: Engine, codes: list[str]) -> dict[str, list[dict[str, str]]]:
    """Method summaries kept in memory like the search index (a query per result list would
    double the cost of a search), reloaded when the search module sees the data change."""
    from procedures_db.search import VERSION_CHECK_INTERVAL_S, _data_version

    now = time.monotonic()
    entry = _method_caches.get(engine)
    if entry is None or now - entry.checked_at >= VERSION_CHECK_INTERVAL_S:
        with _method_lock:
            entry = _method_caches.get(engine)
            if entry is None or now - entry.checked_at >= VERSION_CHECK_INTERVAL_S:
                version = _data_version(engine)
                if entry is None or entry.version != version:
                    entry = _MethodCache(version, now, _all_summaries(engine))
                entry.checked_at = now
                _method_caches[engine] = entry
    return {code: entry.methods.get(code, []) for code in codes}


def search_procedures(engine: Engine, params: SearchParams) -> list[dict[str, Any]]:
    """Ranked like the bot (procedures_db.search), each hit with its per-method time and fee."""
    from procedures_db import search

    if params.q:
        hits = search.search(
            params.q,
            params.limit,
            engine=engine,
            field=params.field,
            level=params.level,
            online_level=params.online,
        )
        results = [hit.to_dict() for hit in hits]
    elif params.filters():
        results = queries.browse(
            field=params.field,
            level=params.level,
            online_level=params.online,
            limit=params.limit,
            engine=engine,
        )
    else:
        return []
    methods = _methods_of(engine, [result["code"] for result in results])
    for result in results:
        result["level_labels"] = [LEVEL_LABELS.get(level, level) for level in result["levels"]]
        result["online_label"] = ONLINE_LABELS.get(result["online_level"], UNKNOWN)
        result["methods"] = methods[result["code"]]
    return results


def procedure_details(engine: Engine, code: str) -> queries.ProcedureDetails | None:
    return queries.get_procedure(code.strip(), engine=engine)


def procedure_detail(engine: Engine, code: str, profile: ProvinceProfile) -> dict[str, Any] | None:
    """The record as JSON, with the text fields a person is told (`answers`), worded like the
    bot and the staff page."""
    details = procedure_details(engine, code)
    if details is None:
        return None
    data = details.to_dict()
    data["answers"] = {
        **key_facts(details, profile),
        "summary": summary_script(details, profile),
        "documents": procedure_reply(details, ["documents"], profile, full_documents=True).text,
    }
    return data


def list_fields(engine: Engine) -> list[str]:
    return queries.list_fields(engine=engine)
