"""Procedure lookups shared by the JSON API and the staff pages, plus their Vietnamese wording.

The sync functions here run in a worker thread (`call_blocking`); ranking is always
`procedures_db.search.search`, the same as the bot's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import Engine

from procedures_db.facts import (
    LEVEL_LABELS,
    ONLINE_LABELS,
    UNKNOWN,
    known,
    method_fee,
    method_label,
    method_time,
)
from procedures_db.models import Level, Method, OnlineLevel, Procedure, SubmissionMethod
from procedures_db.profile import ProvinceProfile
from procedures_db.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_QUERY_LENGTH = 200
MAX_FIELD_LENGTH = 300
MAX_LIMIT = 50
DEFAULT_LIMIT = 10

# How the summary script says it (the "truc_tiep" level never gets here: no online method).
ONLINE_SCRIPT = {
    OnlineLevel.FULL.value: "toàn trình",
    OnlineLevel.PARTIAL.value: "một phần (một số bước vẫn làm trực tiếp)",
    OnlineLevel.UNKNOWN.value: "chưa rõ toàn trình hay một phần",
}


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


# ---- wording -------------------------------------------------------------------------------


def method_summary(method: Mapping[str, Any]) -> dict[str, str]:
    """Per-method wording for tables and the read-aloud script (the short fee form)."""
    return {
        "method": method.get("method") or "",
        "method_label": method_label(method),
        "time": method_time(method) or UNKNOWN,
        "fee": method_fee(method, short=True) or UNKNOWN,
    }


def _per_method(summaries: list[dict[str, str]], key: str) -> str:
    """ "5 ngày làm việc" when every method agrees, else "trực tuyến: 3 ngày; trực tiếp: 5 ngày"."""
    values = [summary[key] for summary in summaries]
    if not values:
        return UNKNOWN
    if len(set(values)) == 1:
        return values[0]
    return "; ".join(f"{s['method_label'].lower()}: {s[key]}" for s in summaries)


def _spoken_fee(methods: list[Mapping[str, Any]], summaries: list[dict[str, str]]) -> str:
    """Several amounts depend on the case: say so rather than read a bare list."""
    fee = _per_method(summaries, "fee")
    amounts = {amount for m in methods for amount in m.get("fee_amounts") or [] if amount}
    return f"{fee} (tùy trường hợp, xem ghi chú phí)" if len(amounts) > 1 else fee


def online_available(detail: Mapping[str, Any]) -> bool:
    has_online_method = any(m.get("method") == Method.ONLINE.value for m in detail["methods"])
    return has_online_method or detail.get("online_level") in (
        OnlineLevel.FULL.value,
        OnlineLevel.PARTIAL.value,
    )


def online_url(detail: Mapping[str, Any], profile: ProvinceProfile) -> str:
    return detail.get("online_submit_url") or profile.online_portal_url


def where_to_submit(detail: Mapping[str, Any], profile: ProvinceProfile) -> list[tuple[str, str]]:
    """(label, value) rows: the record's own address and agencies, then the province profile."""
    rows = [
        ("Địa chỉ tiếp nhận hồ sơ", known(detail.get("receiving_address"))),
        ("Cơ quan thực hiện", known(detail.get("implementing_agencies"))),
        ("Cơ quan có thẩm quyền", known(detail.get("competent_agency"))),
    ]
    levels = detail.get("levels") or []
    if Level.PROVINCE.value in levels:
        rows += [
            ("Trung tâm Phục vụ hành chính công", known(profile.centre_name)),
            ("Địa chỉ Trung tâm", known(profile.centre_address)),
            ("Giờ làm việc", known(profile.opening_hours)),
            ("Đường dây nóng", known(profile.hotline)),
        ]
    if Level.COMMUNE.value in levels:
        rows.append(("Bộ phận một cửa cấp xã", known(profile.commune_one_stop)))
    if online_available(detail):
        rows.append(("Nộp trực tuyến tại", online_url(detail, profile)))
    return rows


def _where_short(detail: Mapping[str, Any], profile: ProvinceProfile) -> str:
    if known(detail.get("receiving_address")) != UNKNOWN:
        return detail["receiving_address"].strip()
    levels = detail.get("levels") or []
    if Level.PROVINCE.value in levels and profile.centre_name:
        return ", ".join(filter(None, [profile.centre_name, profile.centre_address]))
    if Level.COMMUNE.value in levels and profile.commune_one_stop:
        return profile.commune_one_stop
    return known(detail.get("implementing_agencies"))


def summary_script(detail: Mapping[str, Any], profile: ProvinceProfile) -> str:
    """A short script the hotline staff reads to the caller."""
    summaries = [method_summary(m) for m in detail["methods"]]
    levels = ", ".join(LEVEL_LABELS.get(level, level).lower() for level in detail["levels"])
    if online_available(detail):
        how = ONLINE_SCRIPT.get(detail.get("online_level"), ONLINE_SCRIPT["chua_ro"])
        online = f"có, {how}, tại {online_url(detail, profile)}."
    else:
        online = "không, chỉ nộp trực tiếp hoặc qua bưu chính."
    lines = [
        f"Thủ tục: {detail['name']} (mã {detail['code']}{', ' + levels if levels else ''}).",
        f"Nơi nộp: {_where_short(detail, profile)}.",
        f"Thời gian giải quyết: {_per_method(summaries, 'time')}.",
        f"Phí, lệ phí: {_spoken_fee(detail['methods'], summaries)}.",
        f"Nộp trực tuyến: {online}",
    ]
    return "\n".join(lines)


# ---- queries (sync; run them through call_blocking) -----------------------------------------


def _all_methods(engine: Engine) -> dict[str, list[dict[str, str]]]:
    """Per-method time and fee wording of every procedure (a few thousand short rows)."""
    rows = select(
        Procedure.code,
        SubmissionMethod.method,
        SubmissionMethod.time_value,
        SubmissionMethod.time_unit,
        SubmissionMethod.time_text,
        SubmissionMethod.fee_amounts,
        SubmissionMethod.fee_text,
        SubmissionMethod.fee_description,
    ).join(SubmissionMethod, SubmissionMethod.procedure_id == Procedure.id)
    found: dict[str, list[dict[str, str]]] = {}
    with engine.connect() as connection:
        for row in connection.execute(rows.order_by(SubmissionMethod.position)):
            found.setdefault(row.code, []).append(method_summary(row._mapping))
    return found


@dataclass
class _MethodCache:
    version: tuple
    checked_at: float
    methods: dict[str, list[dict[str, str]]]


_method_caches: dict[Engine, _MethodCache] = {}
_method_lock = threading.Lock()


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
                    entry = _MethodCache(version, now, _all_methods(engine))
                entry.checked_at = now
                _method_caches[engine] = entry
    return {code: entry.methods.get(code, []) for code in codes}


def _browse(engine: Engine, params: SearchParams) -> list[dict[str, Any]]:
    """No query text: procedures matching the filters, by name."""
    statement = select(
        Procedure.code, Procedure.name, Procedure.levels, Procedure.field, Procedure.online_level
    ).order_by(Procedure.name)
    if params.field:
        statement = statement.where(Procedure.field == params.field)
    if params.online:
        statement = statement.where(Procedure.online_level == params.online)
    results = []
    with engine.connect() as connection:
        for row in connection.execute(statement):
            if params.level and params.level not in (row.levels or []):
                continue
            results.append({**row._mapping, "score": None})
            if len(results) == params.limit:
                break
    return results


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
        results = _browse(engine, params)
    else:
        return []
    methods = _methods_of(engine, [result["code"] for result in results])
    for result in results:
        result["level_labels"] = [LEVEL_LABELS.get(level, level) for level in result["levels"]]
        result["online_label"] = ONLINE_LABELS.get(result["online_level"], UNKNOWN)
        result["methods"] = methods[result["code"]]
    return results


def procedure_detail(engine: Engine, code: str) -> dict[str, Any] | None:
    from procedures_db import queries

    details = queries.get_procedure(code.strip(), engine=engine)
    return details.to_dict() if details else None


def list_fields(engine: Engine) -> list[str]:
    from procedures_db import queries

    return queries.list_fields(engine=engine)
