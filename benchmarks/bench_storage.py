"""Production storage throughput: PostgreSQL COPY vs executemany, Redis pipelining, bus messages/s.

Times, after one warm-up each, against the services named by ``ARBKIT_BENCH_PG_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and ``ARBKIT_BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``), in a throw-away schema and key prefix removed afterwards:

* ``PostgresStore.write_opportunities`` / ``write_fills`` with ``method="copy"`` (COPY into a staging table + one
  upsert) vs ``method="executemany"`` (the baseline), rows/s;
* ``PriceCache.write`` with one pipeline per batch vs one command per key (baseline), keys/s;
* bus publish + read + ack of small frames, ``InProcessBus`` vs ``RedisStreamBus``, messages/s.

Run: ``.venv/bin/python benchmarks/bench_storage.py [--rows N] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

import numpy as np
import polars as pl
import redis.asyncio as aioredis

from arbkit.schema import FILLS, OPPORTUNITIES, QUOTES
from live.bus import Bus, InProcessBus, RedisStreamBus
from live.storage import DAY_NS, PostgresStore, PriceCache, create_pool, migrate

T0 = 1_714_521_600 * 1_000_000_000


def opportunities(rows: int, salt: str) -> pl.DataFrame:
    rng = np.random.default_rng(1)
    ts = T0 + np.sort(rng.integers(0, 2 * DAY_NS, rows))
    leg = {"exchange": "binance", "symbol": "BTC/USDT", "side": "buy", "price": 100.0, "size": 1.0}
    return pl.DataFrame(
        {
            "id": [f"{salt}-{i}" for i in range(rows)],
            "kind": "cross_exchange",
            "ts_start": ts,
            "ts_end": ts + 1_000,
            "symbol": "BTC/USDT",
            "legs": [[leg, {**leg, "side": "sell", "exchange": "okx"}]] * rows,
            "buy_exchange": "binance",
            "sell_exchange": "okx",
            "buy_price": 100.0,
            "sell_price": 100.5 + rng.random(rows),
            "size": 1.0,
            "profit": rng.random(rows),
            "peak_profit": 1.0,
            "profit_percentage": 0.001,
            "confidence": 0.9,
            "rows": 3,
            "status": "active",
        }
    ).with_columns(pl.col("legs").cast(OPPORTUNITIES.polars["legs"]))


def fills(rows: int, salt: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "fill_id": [f"{salt}-{i}" for i in range(rows)],
            "order_id": [f"o{i // 4}" for i in range(rows)],
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "side": ["buy", "sell"] * (rows // 2) + ["buy"] * (rows % 2),
            "quantity": [Decimal("0.123")] * rows,
            "price": [Decimal("64000.5")] * rows,
            "fee": [Decimal("0.0001")] * rows,
            "fee_currency": "USDT",
            "liquidity": "taker",
            "ts": T0 + np.arange(rows, dtype=np.int64) * 1_000_000,
        },
        schema_overrides={c: FILLS.polars[c] for c in ("quantity", "price", "fee")},
    )


def quotes(keys: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_event": np.arange(1, keys + 1),
            "ts_recv": np.arange(1, keys + 1),
            "exchange": [f"v{i % 6}" for i in range(keys)],
            "symbol": [f"S{i}/USDT" for i in range(keys)],
            "bid": 100.0,
            "bid_size": 1.0,
            "ask": 100.5,
            "ask_size": 1.0,
        }
    ).pipe(lambda f: f.cast({c: QUOTES.polars[c] for c in f.columns}))


async def timed(label: str, count: int, fn: Callable[[int], Awaitable[object]], repeat: int = 3) -> float:
    await fn(-1)  # warm-up (prepared statements, partitions, connections)
    best = float("inf")
    for r in range(repeat):
        t = time.perf_counter()
        await fn(r)
        best = min(best, time.perf_counter() - t)
    rate = count / best
    print(f"  {label:<46} {rate:>12,.0f} /s   ({best * 1e3:8.1f} ms for {count:,})")
    return rate


async def bench_bus(bus: Bus, messages: int) -> Callable[[int], Awaitable[object]]:
    frame = pl.DataFrame({"n": np.arange(8), "x": np.ones(8)})
    topic = f"bench-{uuid.uuid4().hex[:6]}"
    await bus.ensure_group(topic, "g")

    async def run(_: int) -> None:
        for _ in range(messages):
            await bus.publish(topic, frame)
        done = 0
        while done < messages:
            got = await bus.read(topic, "g", "c", count=100)
            await bus.ack(topic, "g", [m.id for m in got])
            done += len(got)

    return run


async def main(rows: int, keys: int, messages: int) -> dict[str, float]:
    dsn = os.environ.get("ARBKIT_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    url = os.environ.get("ARBKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    schema = f"arbkit_bench_{uuid.uuid4().hex[:8]}"
    prefix = f"arbkit-bench:{uuid.uuid4().hex[:8]}"
    out: dict[str, float] = {}
    async with create_pool(dsn, max_size=2) as pool:
        await migrate(pool, schema)
        store = PostgresStore(pool, schema)
        try:
            print(f"PostgreSQL ({rows:,} rows per batch, fresh ids each run)")
            for name, make, write in (
                ("opportunities", opportunities, store.write_opportunities),
                ("fills", fills, store.write_fills),
            ):
                for method in ("executemany", "copy"):
                    frames = {r: make(rows, f"{method}{r}") for r in range(-1, 3)}
                    out[f"pg_{name}_{method}"] = await timed(
                        f"{name} {method}",
                        rows,
                        lambda r, f=frames, w=write, m=method: w(f[r], method=m),  # type: ignore[misc]
                    )
        finally:
            async with pool.acquire() as conn:
                await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    client = aioredis.from_url(url)
    try:
        cache = PriceCache(client, prefix)
        frame = quotes(keys)
        print(f"Redis price cache ({keys:,} keys per batch)")
        out["redis_cache_one_by_one"] = await timed(
            "one command per key", keys, lambda _: cache.write(frame, pipeline=False)
        )
        out["redis_cache_pipelined"] = await timed("one pipeline per batch", keys, lambda _: cache.write(frame))
        print(f"Bus ({messages:,} messages of 8 rows: publish + read + ack)")
        out["bus_inprocess"] = await timed("in-process", messages, await bench_bus(InProcessBus(), messages))
        out["bus_redis_streams"] = await timed(
            "Redis Streams", messages, await bench_bus(RedisStreamBus(client, prefix), messages)
        )
    finally:
        keys_left = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys_left:
            await client.delete(*keys_left)
        await client.aclose()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--keys", type=int, default=2_000)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.keys, args.messages = 1_000, 500, 500
    result = asyncio.run(main(args.rows, args.keys, args.messages))
    if args.json:
        print(json.dumps(result))
