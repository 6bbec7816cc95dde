"""PriceCache and RateLimiter against a real Redis (one key prefix per test)."""

from __future__ import annotations

import asyncio

import polars as pl
import pytest
import redis.asyncio as aioredis
import redis.exceptions
from polars.testing import assert_frame_equal

from arbkit.schema import QUOTES, SchemaError
from live.storage import PriceCache, RateLimiter

pytestmark = pytest.mark.integration


def quotes() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_event": [1, 2, 3, 4],
            "ts_recv": [10, 20, 30, 40],
            "exchange": ["binance", "okx", "binance", "okx"],
            "symbol": ["BTC/USDT", "BTC/USDT", "BTC/USDT", "ETH/USDT"],
            "bid": [100.1, 0.1 + 0.2, 100.2, None],
            "bid_size": [1.0, 1e-9, 2.5, None],
            "ask": [100.3, 0.4, 100.4, 3000.5],
            "ask_size": [1.0, 2.0, 3.0, 4.0],
            "seq": [7, None, 9, 1],
            "flags": [0, 4, 1, 0],
        },
        schema=QUOTES.polars,
    )


@pytest.mark.parametrize("decode", [False, True])
def test_cache_keeps_the_latest_quote_per_key(redis_url: str, redis_prefix: str, decode: bool) -> None:
    async def run() -> None:
        client = aioredis.from_url(redis_url, decode_responses=decode)
        try:
            cache = PriceCache(client, redis_prefix)
            assert await cache.write(quotes()) == 3
            keys = [("okx", "ETH/USDT"), ("binance", "BTC/USDT"), ("kraken", "BTC/USD"), ("okx", "BTC/USDT")]
            back = await cache.read(keys)
            expected = quotes()[[3, 2, 1]]  # latest binance row, null bid kept as null, missing key left out
            assert_frame_equal(back, expected)
            assert back["bid"][2] == 0.1 + 0.2  # floats read back bit for bit
            older = quotes()[[0]]
            await cache.write(older, pipeline=False)  # last write wins across writers
            assert (await cache.read([("binance", "BTC/USDT")]))["ts_recv"].to_list() == [10]
            assert (await cache.read([])).height == 0
            assert await cache.clear() == 3
        finally:
            await client.aclose()

    asyncio.run(run())


def test_cache_ttl_and_bad_input(redis_url: str, redis_prefix: str) -> None:
    async def run() -> None:
        client = aioredis.from_url(redis_url)
        try:
            cache = PriceCache(client, redis_prefix, ttl_s=0.2)
            await cache.write(quotes())
            assert 0 < await client.pttl(cache.key("okx", "BTC/USDT")) <= 200
            with pytest.raises(SchemaError, match="'ask', row 0: must be > 0"):
                await cache.write(quotes().with_columns(ask=pl.lit(-1.0)))
            await asyncio.sleep(0.25)
            assert (await cache.read([("okx", "BTC/USDT")])).height == 0
        finally:
            await client.aclose()

    asyncio.run(run())


def test_rate_limit_sliding_window(redis_url: str, redis_prefix: str) -> None:
    async def run() -> None:
        clients = [aioredis.from_url(redis_url) for _ in range(2)]
        try:
            a, b = (RateLimiter(c, redis_prefix) for c in clients)  # two processes sharing the counter
            calls = [a.allow("binance:orders", 5, 0.3) for _ in range(4)]
            calls += [b.allow("binance:orders", 5, 0.3) for _ in range(4)]
            admitted = await asyncio.gather(*calls)
            assert sum(admitted) == 5
            assert await a.allow("okx:orders", 1, 0.3)  # keys are independent
            assert not await b.allow("binance:orders", 5, 0.3)
            await asyncio.sleep(0.35)  # the window slid past every admitted call
            assert await b.allow("binance:orders", 5, 0.3)
            assert not await a.allow("x", 0, 1.0)
            await a.reset("binance:orders")
            assert sum([await a.allow("binance:orders", 5, 0.3) for _ in range(6)]) == 5
            with pytest.raises(ValueError, match="window_s > 0"):
                await a.allow("x", 1, 0.0)
        finally:
            for c in clients:
                await c.aclose()

    asyncio.run(run())


def test_missing_redis_raises(redis_prefix: str) -> None:
    async def run() -> None:
        client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        try:
            with pytest.raises(redis.exceptions.ConnectionError, match=r"127\.0\.0\.1:1\b"):
                await PriceCache(client, redis_prefix).write(quotes())
        finally:
            await client.aclose()

    asyncio.run(run())
