"""Async access to the procedures database, search index and province profile.

Every call runs the synchronous library function in a worker thread with a timeout, so the
action server's event loop never blocks; any failure surfaces as `LookupFailed`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from procedures_db.profile import ProvinceProfile, load_profile
from procedures_db.settings import get_settings

logger = logging.getLogger(__name__)
T = TypeVar("T")


class LookupFailed(RuntimeError):
    """The database, the search index or the profile could not answer in time."""


async def _call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    timeout = get_settings().action_timeout_s
    try:
        return await asyncio.wait_for(asyncio.to_thread(function, *args, **kwargs), timeout)
    except asyncio.TimeoutError as error:
        logger.error("%s timed out after %.1f s", function.__qualname__, timeout)
        raise LookupFailed(f"{function.__qualname__} timed out") from error
    except Exception as error:
        logger.exception("%s failed", function.__qualname__)
        raise LookupFailed(f"{function.__qualname__} failed: {error}") from error


async def search_procedures(query: str, limit: int = 10) -> list[Any]:
    """`procedures_db.search.search` on the configured database."""
    from procedures_db import search

    return await _call(search.search, query, limit)


async def get_procedure(code: str) -> Any | None:
    """`procedures_db.queries.get_procedure`: the full record, or None for an unknown code."""
    from procedures_db import queries

    return await _call(queries.get_procedure, code)


async def get_profile() -> ProvinceProfile:
    return await _call(load_profile)
