"""Public, read-only JSON API under /api/ (procedure data is public information).

No sign-in; each client IP is limited to `API_RATE_LIMIT_PER_MINUTE` requests per minute
(token bucket, in memory). The OpenAPI description is served at /api/openapi.json.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from aiohttp import web

from procedures_db.db import get_engine
from procedures_db.profile import load_profile_or_default
from webapp.clientip import client_ip
from webapp.lookup import (
    LookupUnavailable,
    ParamError,
    SearchParams,
    call_blocking,
    list_fields,
    parse_search_params,
    procedure_detail,
    search_procedures,
)
from webapp.openapi import openapi_document

logger = logging.getLogger(__name__)
MAX_CODE_LENGTH = 64
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_dumps = partial(json.dumps, ensure_ascii=False)


def json_response(body: object, status: int = 200, **kwargs) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps, **kwargs)


def error_response(
    status: int, error_code: str, message: str, *, headers=None, **extra: object
) -> web.Response:
    body = {"error": {"status": status, "code": error_code, "message": message, **extra}}
    return json_response(body, status=status, headers=headers)


class RateLimiter:
    """Token bucket per key: `per_minute` requests per minute, bursts up to a fifth of that."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 5)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds to wait."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 10_000:
            self._forget_idle(now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        # A bucket idle long enough to be full again carries no information.
        refill_s = self.capacity / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill_s}


LIMITER_KEY = web.AppKey("api_rate_limiter", RateLimiter)


def json_errors(handler: Handler) -> Handler:
    """Bad parameters -> 400, database trouble -> 503, both with a JSON error body."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ParamError as error:
            return error_response(400, "bad_parameter", str(error), parameter=error.parameter)
        except LookupUnavailable:
            return error_response(503, "unavailable", "Cơ sở dữ liệu tạm thời không trả lời.")

    return wrapper


def public_endpoint(handler: Handler) -> Handler:
    """JSON errors plus the per-IP rate limit."""
    handler = json_errors(handler)

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        limiter = request.app.get(LIMITER_KEY)
        wait_s = limiter.allow(client_ip(request)) if limiter else 0.0
        if wait_s:
            return error_response(
                429,
                "rate_limited",
                "Quá nhiều yêu cầu, vui lòng thử lại sau.",
                headers={"Retry-After": str(int(wait_s) + 1)},
            )
        return await handler(request)

    return wrapper


def _engine(request: web.Request):
    return get_engine(request.app["settings"].database_url)


@public_endpoint
async def search_handler(request: web.Request) -> web.Response:
    params = parse_search_params(request.query)
    settings = request.app["settings"]
    results = await call_blocking(settings, search_procedures, _engine(request), params)
    return json_response(
        {"query": params.q, "filters": params.filters(), "count": len(results), "results": results}
    )


@public_endpoint
async def detail_handler(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    if len(code) > MAX_CODE_LENGTH:
        raise ParamError("code", f"'code' dài quá {MAX_CODE_LENGTH} ký tự.")
    settings = request.app["settings"]
    profile = await call_blocking(settings, load_profile_or_default, settings.province_profile)
    detail = await call_blocking(settings, procedure_detail, _engine(request), code, profile)
    if detail is None:
        return error_response(404, "not_found", f"Không có thủ tục mã '{code}'.", procedure=code)
    return json_response(detail)


@public_endpoint
async def fields_handler(request: web.Request) -> web.Response:
    fields = await call_blocking(request.app["settings"], list_fields, _engine(request))
    return json_response({"count": len(fields), "fields": fields})


@public_endpoint
async def openapi_handler(request: web.Request) -> web.Response:
    return json_response(openapi_document(request.app["settings"]))


async def warm_search_index(app: web.Application) -> None:
    """Build the in-memory search index (and method summaries) before the first request: it
    takes a few seconds, more than a request's timeout on a busy machine."""
    started = time.perf_counter()
    engine = get_engine(app["settings"].database_url)
    try:
        await asyncio.to_thread(search_procedures, engine, SearchParams(q="giấy phép", limit=1))
    except Exception:
        logger.exception("search index not built at start; the first searches may fail")
        return
    logger.info("search index ready in %.1f s", time.perf_counter() - started)


def setup_routes(app: web.Application) -> None:
    app.on_startup.append(warm_search_index)
    per_minute = app["settings"].api_rate_limit_per_minute
    if per_minute > 0:
        app[LIMITER_KEY] = RateLimiter(per_minute)
    app.router.add_get("/api/procedures", search_handler, name="api-search")
    app.router.add_get("/api/procedures/{code}", detail_handler, name="api-detail")
    app.router.add_get("/api/fields", fields_handler, name="api-fields")
    app.router.add_get("/api/openapi.json", openapi_handler, name="api-openapi")
