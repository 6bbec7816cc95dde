"""Redis services shared by engine processes and API replicas: the latest-price cache and rate-limit counters.

Keys
----
* ``<prefix>:px:<exchange>:<symbol>``: a hash with the latest quote of one instrument on one venue (fields
  ``ts_event``, ``ts_recv``, ``bid``, ``bid_size``, ``ask``, ``ask_size``, ``seq``, ``flags``; floats written
  with ``repr`` so they read back bit for bit; an empty field is a null).
* ``<prefix>:rl:<key>`` (sorted set) and ``<prefix>:rl:<key>:seq``: a sliding rate-limit window.

Every key lives under the caller's ``prefix``, so tests and deployments sharing one Redis never collide.  The
client is the caller's ``redis.asyncio.Redis`` (``decode_responses`` either way).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from arbkit.schema import QUOTES, validate

__all__ = ["PriceCache", "RateLimiter"]

_FIELDS = ("ts_event", "ts_recv", "bid", "bid_size", "ask", "ask_size", "seq", "flags")
_FLOATS = frozenset({"bid", "bid_size", "ask", "ask_size"})


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PriceCache:
    """The latest quote per ``(exchange, symbol)``, written in batches and read back many keys at once.

    Parameters
    ----------
    redis
        A ``redis.asyncio.Redis`` client owned by the caller.
    prefix
        Namespace of every key this cache writes.
    ttl_s
        Expire a key this long after its last write (``None``: never), so a dead feed's prices vanish
        instead of looking current.

    Examples
    --------
    >>> async def main(client) -> None:  # doctest: +SKIP
    ...     cache = PriceCache(client, prefix="arbkit")
    ...     await cache.write(quotes)
    ...     latest = await cache.read([("binance", "BTC/USDT"), ("okx", "BTC/USDT")])
    """

    def __init__(self, redis: Any, prefix: str = "arbkit", *, ttl_s: float | None = None) -> None:
        self._redis: Any = redis
        self.prefix = prefix
        self.ttl_s = ttl_s

    def key(self, exchange: str, symbol: str) -> str:
        """The Redis key of one instrument on one venue."""
        return f"{self.prefix}:px:{exchange}:{symbol}"

    async def write(self, quotes: pl.DataFrame, *, pipeline: bool = True) -> int:
        """Store the latest row per ``(exchange, symbol)`` of a `arbkit.schema.QUOTES` frame.

        Rows are coalesced to the newest ``ts_recv`` per key first; with ``pipeline`` (the default) the batch
        is one round trip, otherwise one command per key (the slow path, kept for the benchmark).  Across
        writers the last write wins.  Returns the number of keys written.
        """
        frame = validate(quotes, QUOTES)
        if frame.height == 0:
            return 0
        latest = frame.sort("ts_recv", maintain_order=True).unique(["exchange", "symbol"], keep="last")
        px = int(self.ttl_s * 1000) if self.ttl_s is not None else None
        if pipeline:
            pipe = self._redis.pipeline(transaction=False)
            for row in latest.iter_rows(named=True):
                key = self.key(row["exchange"], row["symbol"])
                pipe.hset(key, mapping=_encode(row))
                if px is not None:
                    pipe.pexpire(key, px)
            await pipe.execute()
        else:
            for row in latest.iter_rows(named=True):
                key = self.key(row["exchange"], row["symbol"])
                await self._redis.hset(key, mapping=_encode(row))
                if px is not None:
                    await self._redis.pexpire(key, px)
        return latest.height

    async def read(self, keys: Iterable[tuple[str, str]]) -> pl.DataFrame:
        """The cached quotes of ``keys`` (``(exchange, symbol)`` pairs) as a `arbkit.schema.QUOTES` frame.

        Rows come in the order of ``keys``; keys with no cached quote are left out.  One round trip.
        """
        pairs = list(keys)
        pipe = self._redis.pipeline(transaction=False)
        for exchange, symbol in pairs:
            pipe.hgetall(self.key(exchange, symbol))
        results: Sequence[dict[Any, Any]] = await pipe.execute()
        columns: dict[str, list[Any]] = {name: [] for name in QUOTES.names}
        for (exchange, symbol), raw in zip(pairs, results, strict=True):
            if not raw:
                continue
            fields = {_text(k): _text(v) for k, v in raw.items()}
            columns["exchange"].append(exchange)
            columns["symbol"].append(symbol)
            for name in _FIELDS:
                value = fields.get(name, "")
                if value == "":
                    columns[name].append(None)
                elif name in _FLOATS:
                    columns[name].append(float(value))
                else:
                    columns[name].append(int(value))
        return validate(pl.DataFrame(columns, schema=QUOTES.polars), QUOTES)

    async def clear(self) -> int:
        """Delete every price key under the prefix; returns how many were deleted."""
        deleted = 0
        async for key in self._redis.scan_iter(match=f"{self.prefix}:px:*", count=1000):
            deleted += int(await self._redis.delete(key))
        return deleted


def _encode(row: dict[str, Any]) -> dict[str, str]:
    return {name: "" if row[name] is None else repr(row[name]) for name in _FIELDS}


# Sliding window on the server's clock (TIME, microseconds) so processes with skewed clocks agree.  Members are
# made unique by a per-key counter; both keys expire one window after the last admitted call.
_SLIDING_WINDOW = """
local limit = tonumber(ARGV[1])
local window_us = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window_us)
if redis.call('ZCARD', KEYS[1]) < limit then
    local seq = redis.call('INCR', KEYS[2])
    redis.call('ZADD', KEYS[1], now, now .. '-' .. seq)
    local ms = math.ceil(window_us / 1000)
    redis.call('PEXPIRE', KEYS[1], ms)
    redis.call('PEXPIRE', KEYS[2], ms)
    return 1
end
return 0
"""


class RateLimiter:
    """Shared rate limits: at most ``limit`` admitted calls per key in any sliding window of ``window_s``.

    The check-and-record is one Lua script, atomic across every process sharing the Redis, and uses the
    server's clock.  A refused call is not recorded, so a client that backs off regains capacity as its
    earlier calls leave the window.

    Examples
    --------
    >>> async def main(client) -> None:  # doctest: +SKIP
    ...     limiter = RateLimiter(client, prefix="arbkit")
    ...     if await limiter.allow("binance:orders", limit=10, window_s=1.0):
    ...         ...
    """

    def __init__(self, redis: Any, prefix: str = "arbkit") -> None:
        self._redis: Any = redis
        self.prefix = prefix
        self._script: Any = self._redis.register_script(_SLIDING_WINDOW)

    async def allow(self, key: str, limit: int, window_s: float) -> bool:
        """Record and admit one call on ``key`` if fewer than ``limit`` were admitted in the last ``window_s``.

        Raises `ValueError` for a negative ``limit`` or a non-positive window.
        """
        if limit < 0 or not window_s > 0:
            raise ValueError(f"limit must be >= 0 and window_s > 0, got {limit} and {window_s}")
        base = f"{self.prefix}:rl:{key}"
        window_us = max(1, round(window_s * 1_000_000))
        admitted = await self._script(keys=[base, f"{base}:seq"], args=[limit, window_us])
        return bool(int(admitted))

    async def reset(self, key: str) -> None:
        """Forget every recorded call on ``key``."""
        base = f"{self.prefix}:rl:{key}"
        await self._redis.delete(base, f"{base}:seq")
