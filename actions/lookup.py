"""Async access to the procedures database, search index and province profile.

Every call runs the synchronous library function in a worker thread with a timeout, so the
action server's event loop never blocks; any failure surfaces as `LookupFailed`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from procedures_db import queries, resolver
from procedures_db.profile import ProvinceProfile, load_profile
from procedures_db.queries import ProcedureDetails
from procedures_db.resolver import Context, Resolution
from procedures_db.settings import get_settings

logger = logging.getLogger(__name__)
T = TypeVar("T")


class LookupFailed(RuntimeError):
    """The database, the search index or the profile could not answer in time."""


# The first call on a database builds the in-memory indexes (a few seconds on two busy cores;
# a call takes a few ms afterwards): that one call may take this many times the usual timeout.
COLD_SEARCH_FACTOR = 10.0
_searched_urls: set[str] = set()


async def _call(
    function: Callable[..., T], *args: Any, timeout_factor: float = 1.0, **kwargs: Any
) -> T:
    timeout = get_settings().action_timeout_s * timeout_factor
    try:
        return await asyncio.wait_for(asyncio.to_thread(function, *args, **kwargs), timeout)
    except asyncio.TimeoutError as error:
        logger.error("%s timed out after %.1f s", function.__qualname__, timeout)
        raise LookupFailed(f"{function.__qualname__} timed out") from error
    except Exception as error:
        logger.exception("%s failed", function.__qualname__)
        raise LookupFailed(f"{function.__qualname__} failed: {error}") from error


def _resolve(message: str, context: Context) -> Resolution:
    return resolver.resolve(message, context)


async def resolve(message: str, context: Context) -> Resolution:
    """`procedures_db.resolver.resolve` on the configured database."""
    url = get_settings().database_url
    factor = 1.0 if url in _searched_urls else COLD_SEARCH_FACTOR
    resolution = await _call(_resolve, message, context, timeout_factor=factor)
    _searched_urls.add(url)
    return resolution


async def get_procedure(code: str) -> ProcedureDetails | None:
    """`procedures_db.queries.get_procedure`: the full record, or None for an unknown code."""
    return await _call(queries.get_procedure, code)


async def get_profile() -> ProvinceProfile:
    return await _call(load_profile)


async def get_profile_or_default() -> ProvinceProfile:
    """The province profile, or the default (national portal only) when it cannot be read."""
    try:
        return await get_profile()
    except LookupFailed:
        return ProvinceProfile()
