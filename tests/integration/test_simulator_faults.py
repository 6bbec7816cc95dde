"""Each injected fault is detected by the connector (and book keeper), recovered from, and counted."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import polars as pl
import pytest

from arbkit.schema import QuoteFlag
from live.adapters._columns import QuoteColumns
from live.batcher import FeedItem
from live.connector import Connector, ConnectorConfig
from live.simulator import SimulatorHandle, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def quotes(venue: str, symbol: str, n: int, step_ms: int) -> pl.DataFrame:
    base = (time.time_ns() // 1_000_000) * 1_000_000
    return pl.DataFrame(
        {
            "ts_event": [base + i * step_ms * 1_000_000 for i in range(n)],
            "ts_recv": [base + i * step_ms * 1_000_000 for i in range(n)],
            "exchange": [venue] * n,
            "symbol": [symbol] * n,
            "bid": [100.0 + i for i in range(n)],
            "bid_size": [1.0] * n,
            "ask": [100.5 + i for i in range(n)],
            "ask_size": [2.0] * n,
        }
    )


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


def drain(queue: asyncio.Queue[FeedItem]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    while not queue.empty():
        table, data = queue.get_nowait()
        if table == "quotes":
            if isinstance(data, QuoteColumns):  # a socket read parsed by the compiled reader
                data = data.rows()
            assert isinstance(data, list)
            rows.extend(data)
    return rows


Scenario = Callable[[SimulatorHandle, Connector, asyncio.Queue[FeedItem]], Awaitable[None]]


def scenario(frame: pl.DataFrame, config: dict[str, object], body: Scenario, speed: float = 1.0) -> Connector:
    async def main() -> Connector:
        async with await serve(frame, speed=speed, autostart=False) as sim:
            venue = str(frame["exchange"][0])
            symbols = tuple(frame["symbol"].unique().to_list())
            queue: asyncio.Queue[FeedItem] = asyncio.Queue()
            cfg = ConnectorConfig(venue, sim.url(venue), symbols, backoff_initial_s=0.05, **config)  # type: ignore[arg-type]
            connector = Connector(cfg, queue, rng=random.Random(1))
            stop = asyncio.Event()
            task = asyncio.create_task(connector.run(stop))
            await connector.wait_subscribed(5)
            sim.start()
            try:
                await asyncio.wait_for(body(sim, connector, queue), 20)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
            return connector

    return asyncio.run(main())


def test_drop_reconnects_and_flags_outage() -> None:
    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        await until(lambda: c.stats.data_messages >= 5)
        await sim.inject("okx", "drop")
        await until(lambda: c.stats.connects == 2 and c.stats.acks >= 2)
        rows = drain(q)
        flagged = [r for r in rows if int(r[9]) & QuoteFlag.OUTAGE]
        assert flagged, "the venue's last quote must be re-emitted with OUTAGE at once"
        assert all(int(r[9]) & QuoteFlag.STALE for r in flagged)
        before = c.stats.data_messages
        await until(lambda: c.stats.data_messages > before)  # data flows again on the new connection

    c = scenario(quotes("okx", "BTC/USDT", 200, 10), {}, body)
    assert c.stats.disconnects == 1
    assert c.stats.stale_rows >= 1


def test_silent_stall_is_detected_within_the_limit_and_recovers() -> None:
    stale_after = 0.4

    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        await until(lambda: c.stats.data_messages >= 3)
        drain(q)
        await sim.inject("bybit", "stall")
        t0 = time.monotonic()
        await until(lambda: c.stats.stalls == 1, timeout=5)
        detected = time.monotonic() - t0
        assert detected <= stale_after + 1.0  # detection tick is 50 ms; slack for a loaded CI box
        stale = [r for r in drain(q) if int(r[9]) & QuoteFlag.STALE]
        assert [r[3] for r in stale] == ["BTC/USDT:USDT"]
        await sim.inject("bybit", "resume")
        before = c.stats.data_messages
        await until(lambda: c.stats.data_messages > before)

    c = scenario(quotes("bybit", "BTC/USDT:USDT", 300, 10), {"stale_after_s": stale_after}, body)
    assert c.stats.stalls == 1
    assert c.stats.connects == 2


def test_default_stall_limit_is_max_of_twice_interval_and_five_seconds() -> None:
    assert ConnectorConfig("okx", "ws://x", ()).stale_after() == 5.0
    assert ConnectorConfig("okx", "ws://x", (), expected_interval_s=4.0).stale_after() == 8.0


def test_malformed_json_is_counted_not_fatal() -> None:
    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        await until(lambda: c.stats.data_messages >= 3)
        await sim.inject("coinbase", "malformed", count=3)
        await until(lambda: c.stats.parse_errors == 3)
        before = c.stats.data_messages
        await until(lambda: c.stats.data_messages > before)

    c = scenario(quotes("coinbase", "BTC/USD", 200, 10), {}, body)
    assert c.stats.disconnects == 0
    assert c.stats.connects == 1


def test_oversize_frame_closes_and_reconnects() -> None:
    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        await until(lambda: c.stats.oversize >= 1 and c.stats.connects >= 2)

    c = scenario(quotes("coinbase", "BTC/USD", 100, 10), {"max_frame_bytes": 200}, body)
    assert c.stats.disconnects >= 1


def test_announced_shutdown_hands_over_without_a_gap() -> None:
    n = 150
    got: list[int] = []

    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        await until(lambda: c.stats.data_messages >= 20)
        await sim.inject("okx", "shutdown", grace_s=0.3)
        await until(lambda: c.stats.handovers == 1)
        await sim.wait_done(timeout=10)
        await asyncio.sleep(0.2)
        got.extend(int(r[8]) for r in drain(q) if r[8] is not None and not int(r[9]) & QuoteFlag.STALE)

    c = scenario(quotes("okx", "BTC/USDT", n, 10), {}, body)
    assert c.stats.shutdown_notices == 1
    assert c.stats.disconnects == 0, "the old connection must be replaced before it drops"
    assert set(got) == set(range(1, n + 1)), "every sequence id arrives across the handover"


def test_book_gap_and_bad_checksum_trigger_resync() -> None:
    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        await until(lambda: c.stats.data_messages >= 5)
        await sim.inject("okx", "skip_seq")
        await until(lambda: c.stats.resyncs == 1)
        await until(lambda: not c.books.needs_resync())  # the re-subscription's snapshot rebuilt the book
        await sim.inject("okx", "corrupt_checksum")
        await until(lambda: c.stats.resyncs == 2)
        rows = drain(q)

        def healthy_again() -> bool:  # needs_resync clears when the resync starts: wait for the new snapshot
            rows.extend(drain(q))
            return bool(rows) and int(rows[-1][9]) & QuoteFlag.blocking() == 0

        await until(healthy_again)
        assert any(int(r[9]) & QuoteFlag.RESYNCING for r in rows)

    c = scenario(quotes("okx", "BTC/USDT", 300, 10), {"channel": "books"}, body)
    counters = c.books.counters
    assert counters.gaps == 1
    assert counters.checksum_failures == 1


def test_delay_holds_data_then_delivers_all_of_it() -> None:
    n = 60

    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        await until(lambda: c.stats.data_messages >= 5)
        await sim.inject("deribit", "delay", duration_s=0.3)
        await sim.wait_done(timeout=10)
        await until(lambda: c.stats.data_messages == n)

    c = scenario(quotes("deribit", "BTC/USD:BTC", n, 5), {}, body)
    assert c.stats.stalls == 0
    assert c.stats.disconnects == 0


def test_unreachable_venue_backs_off_without_crashing() -> None:
    async def main() -> Connector:
        queue: asyncio.Queue[FeedItem] = asyncio.Queue()
        cfg = ConnectorConfig(
            "kraken", "ws://127.0.0.1:9/kraken", ("BTC/USD",), backoff_initial_s=0.02, backoff_max_s=0.1
        )
        connector = Connector(cfg, queue, rng=random.Random(3))
        stop = asyncio.Event()
        task = asyncio.create_task(connector.run(stop))
        await until(lambda: connector.stats.connect_failures >= 3)
        stop.set()
        await asyncio.wait_for(task, 5)
        return connector

    c = asyncio.run(main())
    assert c.stats.connects == 0
    assert "connect" in c.stats.last_error


def test_subscription_limits_split_connections_and_requests() -> None:
    symbols = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    frame = pl.concat([quotes("okx", s, 100, 10) for s in symbols])
    seen: set[str] = set()

    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        assert len(c.slots) == 2  # two symbols per connection
        await until(lambda: len({r[3] for r in drain_into(q, seen)} | seen) == 3)
        await c.unsubscribe(["ETH/USDT"])
        await asyncio.sleep(0.1)
        drain(q)
        await asyncio.sleep(0.1)
        assert "ETH/USDT" not in {r[3] for r in drain(q)}
        await c.subscribe(["ETH/USDT"])  # room again on the first connection
        await until(lambda: "ETH/USDT" in {r[3] for r in drain(q)})
        with pytest.raises(ValueError, match="no connection has room"):
            await c.subscribe(["XRP/USDT", "DOGE/USDT"])

    c = scenario(frame, {"symbols_per_connection": 2, "symbols_per_request": 1}, body)
    assert c.stats.connects == 2
    assert c.stats.acks >= 3  # one request (and ack) per symbol


def drain_into(queue: asyncio.Queue[FeedItem], seen: set[str]) -> list[tuple[object, ...]]:
    rows = drain(queue)
    seen.update(str(r[3]) for r in rows)
    return rows


def test_kraken_book_checksums_verify_and_a_corrupt_one_resyncs() -> None:
    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        await until(lambda: c.stats.data_messages >= 10)
        assert c.books.counters.checksum_failures == 0  # the keeper's own CRC32 agrees with the simulator's
        await sim.inject("kraken", "corrupt_checksum")
        await until(lambda: c.stats.resyncs == 1)
        await until(lambda: not c.books.needs_resync())
        before = c.books.counters.applied
        await until(lambda: c.books.counters.applied > before + 3)

    c = scenario(quotes("kraken", "BTC/USD", 300, 10), {"channel": "book"}, body)
    assert c.books.counters.checksum_failures == 1
    assert c.stats.parse_errors == 0


def test_connection_age_limit_rotates_without_a_gap() -> None:
    n = 120
    got: list[int] = []

    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        await until(lambda: c.stats.handovers >= 2, timeout=10)
        await sim.wait_done(timeout=10)
        await asyncio.sleep(0.2)
        got.extend(int(r[8]) for r in drain(q) if r[8] is not None)

    c = scenario(quotes("binance", "BTC/USDT", n, 10), {"max_connection_age_s": 0.4}, body)
    assert c.stats.disconnects == 0
    assert set(got) == set(range(1, n + 1))


@pytest.mark.parametrize(("venue", "symbol"), [("okx", "BTC/USDT"), ("bybit", "BTC/USDT:USDT"), ("kraken", "BTC/USD")])
def test_application_pings_are_answered_and_pongs_parse(venue: str, symbol: str) -> None:
    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        await until(lambda: c.stats.pings_sent >= 3)
        await asyncio.sleep(0.1)

    c = scenario(quotes(venue, symbol, 200, 10), {"app_ping_s": 0.05}, body)
    assert c.stats.parse_errors == 0, c.stats.last_error
    assert c.stats.messages > c.stats.data_messages  # acks and pongs arrived besides data


def test_a_bug_outside_the_parser_contract_is_contained() -> None:
    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        await until(lambda: c.stats.data_messages >= 3)
        calls = {"n": 0}

        def flaky(real: Callable[..., object]) -> Callable[..., object]:
            def parse(*args: object) -> object:
                calls["n"] += 1
                if calls["n"] == 1:
                    raise RuntimeError("boom")
                return real(*args)

            return parse

        # bbo-tbt goes through the compiled reader (parse_quote_columns), the batch path (parse_quote_batch) or the
        # fast path (parse_quote_tuple), other channels through parse_rows; the first call of any of them fails
        c.adapter.parse_quote_columns = flaky(c.adapter.parse_quote_columns)  # type: ignore[method-assign]
        c.adapter.parse_rows = flaky(c.adapter.parse_rows)  # type: ignore[method-assign,assignment]
        c.adapter.parse_quote_tuple = flaky(c.adapter.parse_quote_tuple)  # type: ignore[method-assign,assignment]
        c.adapter.parse_quote_batch = flaky(c.adapter.parse_quote_batch)  # type: ignore[method-assign,assignment]
        await until(lambda: c.stats.internal_errors == 1)
        before = c.stats.data_messages
        await until(lambda: c.stats.data_messages > before)

    c = scenario(quotes("okx", "BTC/USDT", 200, 10), {}, body)
    assert c.stats.disconnects == 0
    assert "boom" in c.stats.last_error


def test_coinbase_connection_sequence_gap_is_counted() -> None:
    async def body(sim: SimulatorHandle, c: Connector, q: asyncio.Queue[FeedItem]) -> None:
        await until(lambda: c.stats.data_messages >= 5)
        assert c.stats.sequence_gaps == 0
        await sim.inject("coinbase", "skip_seq")
        await until(lambda: c.stats.sequence_gaps == 1)

    c = scenario(quotes("coinbase", "BTC/USD", 300, 10), {}, body)
    assert c.stats.disconnects == 0
