"""Bus semantics on both implementations: groups share a topic without duplicates, a dead consumer's messages
are reclaimed, frames round-trip exactly, handlers are idempotent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal

import polars as pl
import pytest
import redis.asyncio as aioredis
from polars.testing import assert_frame_equal

from arbkit.schema import FILLS, OPPORTUNITIES, SchemaError
from live.bus import Bus, Deduplicator, InProcessBus, Message, RedisStreamBus, consume, decode_frame, encode_frame

pytestmark = pytest.mark.integration


@pytest.fixture(params=["inprocess", "redis"])
def make_bus(request: pytest.FixtureRequest, redis_url: str, redis_prefix: str) -> Callable[[], object]:
    @asynccontextmanager
    async def factory() -> AsyncIterator[Bus]:
        if request.param == "inprocess":
            yield InProcessBus()
            return
        client = aioredis.from_url(redis_url)
        try:
            yield RedisStreamBus(client, redis_prefix, max_len=10_000)
        finally:
            await client.aclose()

    return factory


def batch(i: int) -> pl.DataFrame:
    return pl.DataFrame({"n": [i, i], "x": [0.1 + 0.2, float(i)]})


def test_frames_round_trip_exactly(make_bus: Callable[[], object]) -> None:
    fills = pl.DataFrame(
        {
            "fill_id": ["f1"],
            "order_id": ["o1"],
            "exchange": ["okx"],
            "symbol": ["BTC/USDT"],
            "side": ["buy"],
            "quantity": [Decimal("0.1") + Decimal("0.2")],
            "price": [Decimal("64000.000000000000000001")],
            "fee": [Decimal("0")],
            "fee_currency": ["USDT"],
            "liquidity": ["maker"],
            "ts": [1],
        },
        schema=FILLS.polars,
    )
    legs = [[{"exchange": "okx", "symbol": "BTC/USDT", "side": "buy", "price": 0.1 + 0.2, "size": 1e-300}]]
    opportunity = pl.DataFrame(
        {
            "id": ["a"],
            "kind": ["basis"],
            "ts_start": [1],
            "ts_end": [2],
            "symbol": ["BTC/USDT"],
            "legs": legs,
            "buy_exchange": ["okx"],
            "sell_exchange": ["okx"],
            "buy_price": [None],
            "sell_price": [1.0],
            "size": [1.0],
            "profit": [-0.0],
            "peak_profit": [1.0],
            "profit_percentage": [1.0],
            "confidence": [1.0],
            "rows": [1],
            "status": ["active"],
        },
        schema=OPPORTUNITIES.polars,
    )
    assert_frame_equal(decode_frame(encode_frame(fills)), fills)

    async def run() -> None:
        async with make_bus() as bus:  # type: ignore[attr-defined]
            await bus.ensure_group("t", "g")
            await bus.publish("t", fills, table=FILLS)
            await bus.publish("t", opportunity, table=OPPORTUNITIES)
            await bus.publish("t", pl.DataFrame({"empty": []}, schema={"empty": pl.UInt16}))
            got = await bus.read("t", "g", "c", count=10)
            assert [m.table for m in got] == ["fills", "opportunities", None]
            assert_frame_equal(got[0].frame, fills)
            assert_frame_equal(got[1].frame, opportunity)
            assert got[2].frame.schema == {"empty": pl.UInt16}
            with pytest.raises(SchemaError, match="fills: column 'fee'"):
                await bus.publish("t", fills.drop("fee"), table=FILLS)
            assert await bus.ack("t", "g", [m.id for m in got]) == 3
            assert await bus.pending("t", "g") == 0

    asyncio.run(run())


def test_two_consumers_share_a_group_without_duplicates(make_bus: Callable[[], object]) -> None:
    async def run() -> None:
        async with make_bus() as bus:  # type: ignore[attr-defined]
            await bus.ensure_group("q", "storage")
            await bus.ensure_group("q", "api")  # a second group sees every message too
            ids = [await bus.publish("q", batch(i)) for i in range(40)]
            seen: dict[str, list[int]] = {"c1": [], "c2": []}
            stop = asyncio.Event()

            def handler(name: str) -> Callable[[Message], object]:
                async def handle(message: Message) -> None:
                    seen[name].extend(message.frame["n"].unique().to_list())
                    await asyncio.sleep(0)

                return handle

            tasks = [
                asyncio.create_task(
                    consume(bus, "q", "storage", name, handler(name), stop=stop, count=3, block_ms=20)  # type: ignore[arg-type]
                )
                for name in seen
            ]
            while len(seen["c1"]) + len(seen["c2"]) < 40:
                await asyncio.sleep(0.01)
            stop.set()
            counts = await asyncio.gather(*tasks)
            assert sorted(seen["c1"] + seen["c2"]) == list(range(40))  # every message once
            assert seen["c1"]  # both consumers did work
            assert seen["c2"]
            assert sum(counts) == 40
            assert await bus.pending("q", "storage") == 0
            other = await bus.read("q", "api", "x", count=100)
            assert [m.id for m in other] == ids

    asyncio.run(run())


def test_dead_consumer_messages_are_reclaimed(make_bus: Callable[[], object]) -> None:
    async def run() -> None:
        async with make_bus() as bus:  # type: ignore[attr-defined]
            await bus.ensure_group("r", "g")
            for i in range(5):
                await bus.publish("r", batch(i))
            taken = await bus.read("r", "g", "dies", count=3)  # reads, then dies before XACK
            assert len(taken) == 3
            assert await bus.pending("r", "g") == 3
            assert await bus.claim_stale("r", "g", "rescuer", min_idle_ms=10_000) == []  # not stale yet
            await asyncio.sleep(0.06)
            reclaimed = await bus.claim_stale("r", "g", "rescuer", min_idle_ms=50)
            assert [m.id for m in reclaimed] == [m.id for m in taken]
            assert_frame_equal(reclaimed[0].frame, batch(0))
            # the rescuer's consume loop handles reclaimed then new messages, each once, and acks them all
            handled: list[int] = []
            dedupe = Deduplicator()
            dedupe.add(taken[0].id)  # already handled here before (e.g. processed, crash before ack)
            stop = asyncio.Event()

            async def handle(message: Message) -> None:
                handled.append(int(message.frame["n"][0]))
                if len(handled) == 4:
                    stop.set()

            n = await consume(bus, "r", "g", "rescuer", handle, stop=stop, claim_idle_ms=0, block_ms=20, dedupe=dedupe)
            assert n == 4
            assert sorted(handled) == [1, 2, 3, 4]
            assert await bus.pending("r", "g") == 0

    asyncio.run(run())


def test_failing_handler_leaves_the_message_pending(make_bus: Callable[[], object]) -> None:
    async def run() -> None:
        async with make_bus() as bus:  # type: ignore[attr-defined]
            await bus.publish("f", batch(1))

            async def boom(message: Message) -> None:
                raise RuntimeError("handler failed")

            with pytest.raises(RuntimeError, match="handler failed"):
                await consume(bus, "f", "g", "c", boom, stop=asyncio.Event(), block_ms=20)
            assert await bus.pending("f", "g") == 1
            retried = await bus.claim_stale("f", "g", "c2", min_idle_ms=0)
            assert len(retried) == 1

    asyncio.run(run())


def test_redis_stream_is_capped(redis_url: str, redis_prefix: str) -> None:
    async def run() -> None:
        client = aioredis.from_url(redis_url)
        try:
            bus = RedisStreamBus(client, redis_prefix, max_len=100)
            for i in range(1_000):
                await bus.publish("capped", batch(i))
            assert await client.xlen(bus.stream("capped")) < 300  # MAXLEN ~ trims by whole nodes
        finally:
            await client.aclose()

    asyncio.run(run())
