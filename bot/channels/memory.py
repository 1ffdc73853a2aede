"""Short-lived channel memory: which events were already handled, which numbered choices a
citizen was offered.

One Rasa process keeps it in a bounded TTL map. Several Rasa replicas (the production profile)
must share it, or a re-delivered event reaching another replica is answered twice: when
LOCK_STORE_URL names a Redis server (the one Rasa's lock store uses) the memory lives there
(`SET key 1 NX EX ttl` makes "first delivery wins" atomic across replicas). If Redis fails, the
process falls back to its own memory rather than dropping citizens' messages.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from typing import Any

from procedures_db.settings import get_settings

logger = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 0.5


class TtlMemory:
    """A bounded key-value map: entries expire after `ttl_s`, the oldest go first when full."""

    def __init__(self, max_items: int, ttl_s: float) -> None:
        self.max_items = max_items
        self.ttl_s = ttl_s
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def _expire(self) -> None:
        now = time.monotonic()
        # Insertion order is expiry order: every entry lives the same ttl_s.
        while self._items:
            key, (expires_at, _) = next(iter(self._items.items()))
            if expires_at > now and len(self._items) <= self.max_items:
                break
            del self._items[key]

    def get(self, key: str) -> Any:
        self._expire()
        entry = self._items.get(key)
        return entry[1] if entry else None

    def put(self, key: str, value: Any) -> None:
        self._items.pop(key, None)
        self._items[key] = (time.monotonic() + self.ttl_s, value)
        self._expire()

    def pop(self, key: str) -> Any:
        self._expire()
        entry = self._items.pop(key, None)
        return entry[1] if entry else None

    def add_if_new(self, key: str) -> bool:
        if self.get(key) is not None:
            return False
        self.put(key, True)
        return True

    def __len__(self) -> int:
        return len(self._items)


class SharedMemory:
    """TtlMemory's interface, async, kept in Redis when LOCK_STORE_URL is set."""

    def __init__(self, namespace: str, max_items: int, ttl_s: float) -> None:
        self.namespace = namespace
        self.local = TtlMemory(max_items, ttl_s)
        self.ttl_s = max(1, int(ttl_s))
        self._redis_url = get_settings().lock_store_url
        self._redis = None

    def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio

            self._redis = redis.asyncio.Redis.from_url(
                self._redis_url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
            )
        return self._redis

    def _key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    def _fallback(self, error: Exception) -> None:
        logger.warning("%s kept in this process only, Redis failed: %s", self.namespace, error)

    async def add_if_new(self, key: str) -> bool:
        """Remember `key`; False when it was already remembered (a re-delivered event)."""
        if self._redis_url:
            try:
                added = await self._client().set(self._key(key), 1, nx=True, ex=self.ttl_s)
                return bool(added)
            except Exception as error:  # any Redis failure: this process decides alone
                self._fallback(error)
        return self.local.add_if_new(key)

    async def put(self, key: str, value: Any) -> None:
        self.local.put(key, value)
        if self._redis_url:
            try:
                await self._client().set(self._key(key), json.dumps(value), ex=self.ttl_s)
            except Exception as error:
                self._fallback(error)

    async def pop(self, key: str) -> Any:
        local = self.local.pop(key)
        if self._redis_url:
            try:
                async with self._client().pipeline(transaction=True) as pipe:
                    raw, _ = await pipe.get(self._key(key)).delete(self._key(key)).execute()
                return json.loads(raw) if raw is not None else None
            except Exception as error:
                self._fallback(error)
        return local

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()
