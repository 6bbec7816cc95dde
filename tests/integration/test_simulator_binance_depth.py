"""Binance diff-depth books over the simulator: REST snapshot sync at start, gap detection and recovery.

Binance's diff streams (``<symbol>@depth@100ms``) never push a snapshot.  The documented procedure
(https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#how-to-manage-a-local-order-book-correctly
and the USD-M equivalent) is: buffer the stream, GET the REST snapshot, drop buffered events with ``u <=
lastUpdateId`` (USD-M: ``u < lastUpdateId``), apply the rest, and start over on any break in the ids.  The
simulator serves that REST snapshot on its own port; the connector fetches it at start and after every gap.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable

import httpx
import orjson
import polars as pl
import pytest
from websockets.asyncio.client import connect

from arbkit.schema import QuoteFlag
from live.adapters._columns import QuoteColumns
from live.batcher import FeedItem
from live.connector import Connector, ConnectorConfig
from live.simulator import serve


def quotes(symbol: str, n: int, step_ms: int) -> pl.DataFrame:
    """Tick i: bid 100+i x 1, ask 100.5+i x 2 (so a book mixing two ticks shows a spread other than 0.5)."""
    base = (time.time_ns() // 1_000_000) * 1_000_000
    ts = [base + i * step_ms * 1_000_000 for i in range(n)]
    return pl.DataFrame(
        {
            "ts_event": ts,
            "ts_recv": ts,
            "exchange": ["binance"] * n,
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


pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

CASES = [(None, "BTC/USDT", "/binance"), ("linear", "BTC/USDT:USDT", "/binance/linear")]


@pytest.mark.parametrize(("market", "symbol", "path"), CASES)
def test_diff_stream_ids_and_rest_snapshot_follow_the_docs(market: str | None, symbol: str, path: str) -> None:
    """Wire check, independent of the connector: ``U``/``u`` (and ``pu``) chain, and the snapshot's id is the book's."""
    frame = quotes(symbol, 5, 10)
    venue_symbol = symbol.split(":", maxsplit=1)[0].replace("/", "")

    async def main() -> None:
        async with await serve(frame, speed=0, autostart=False) as sim, connect(sim.url("binance", market)) as ws:
            await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": [f"{venue_symbol.lower()}@depth@100ms"]}))
            assert orjson.loads(await ws.recv()) == {"result": None, "id": None}
            sim.start()
            events = [orjson.loads(await ws.recv()) for _ in range(5)]
            url = sim.rest_url("binance", market)
            rest = "/api/v3/depth" if market is None else "/fapi/v1/depth"
            async with httpx.AsyncClient() as client:
                snap = (await client.get(f"{url}{rest}?symbol={venue_symbol}&limit=1000")).json()
                missing = await client.get(f"{url}{rest}?symbol=NOPE")
        assert missing.status_code == 400
        for prev, event in itertools.pairwise(events):
            assert event["e"] == "depthUpdate"
            assert event["s"] == venue_symbol
            if market == "linear":
                assert event["pu"] == prev["u"]  # USD-M continuity
                assert event["U"] <= prev["u"] + 1
            else:
                assert event["U"] == prev["u"] + 1  # spot continuity
        assert ("pu" in events[0]) == (market == "linear")
        assert snap["lastUpdateId"] == events[-1]["u"]
        assert snap["bids"] == [["104", "1"]]
        assert snap["asks"] == [["104.5", "2"]]

    asyncio.run(main())


@pytest.mark.parametrize(("market", "symbol", "path"), CASES)
def test_gap_fetches_a_new_snapshot_and_no_broken_quote_escapes(market: str | None, symbol: str, path: str) -> None:
    n = 300
    frame = quotes(symbol, n, 10)  # tick i: bid 100+i x 1, ask 100.5+i x 2

    async def main() -> tuple[Connector, list[tuple[object, ...]], int]:
        async with await serve(frame, speed=1.0, autostart=False) as sim:
            queue: asyncio.Queue[FeedItem] = asyncio.Queue()
            cfg = ConnectorConfig(
                "binance",
                sim.url("binance", market),
                (symbol,),
                market=market,
                channel="depth@100ms",
                rest_url=sim.rest_url("binance", market),
            )
            c = Connector(cfg, queue, rng=random.Random(1))
            stop = asyncio.Event()
            task = asyncio.create_task(c.run(stop))
            keeper = c.books.keeper("binance", symbol)
            try:
                await c.wait_subscribed(5)
                sim.start()
                await until(lambda: c.stats.snapshots == 1 and keeper.synced)  # synced at start from REST
                await until(lambda: keeper.counters.applied >= 20)
                assert keeper.counters.gaps == 0
                await sim.inject(path, "skip_seq", count=3)
                await until(lambda: keeper.counters.gaps >= 1)
                await until(lambda: c.stats.snapshots >= 2 and keeper.synced and not keeper.resyncing)
                await sim.wait_done(timeout=15)
                await asyncio.sleep(0.2)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
            return c, drain(queue), sim.stats()[path].rest_snapshots

    c, rows, served = asyncio.run(main())
    keeper = c.books.keeper("binance", symbol)
    assert c.stats.parse_errors == 0, c.stats.last_error
    assert c.stats.snapshot_failures == 0, c.stats.last_error
    assert keeper.counters.gaps == 1
    assert c.stats.snapshots == served >= 2
    assert keeper.counters.dropped >= 1  # buffered events already in a snapshot were dropped
    assert any(int(r[9]) & QuoteFlag.RESYNCING for r in rows), "the gap is flagged while resyncing"
    healthy = [r for r in rows if int(r[9]) & QuoteFlag.blocking() == 0]
    assert healthy, "quotes flow once synced"
    for r in healthy:  # every quote not flagged is a book the venue really had: bid and ask of the same tick
        bid, bid_size, ask, ask_size = r[4:8]
        assert (bid_size, ask_size) == (1.0, 2.0)
        assert isinstance(bid, float)
        assert isinstance(ask, float)
        assert ask - bid == 0.5, r
        assert bid == float(int(bid)), r
    assert healthy[-1][4] == 100.0 + n - 1, "recovered: the last tick arrives healthy"
    assert int(rows[-1][9]) & QuoteFlag.blocking() == 0


def test_snapshot_failure_is_counted_and_retried() -> None:
    frame = quotes("BTC/USDT", 200, 10)

    async def main() -> Connector:
        async with await serve(frame, speed=1.0, autostart=False) as sim:
            queue: asyncio.Queue[FeedItem] = asyncio.Queue()
            cfg = ConnectorConfig(
                "binance",
                sim.url("binance"),
                ("BTC/USDT",),
                channel="depth@100ms",
                rest_url=sim.rest_url("binance") + "/nowhere",  # 404 from the simulator
                backoff_max_s=0.1,
            )
            c = Connector(cfg, queue, rng=random.Random(1))
            stop = asyncio.Event()
            task = asyncio.create_task(c.run(stop))
            try:
                await c.wait_subscribed(5)
                sim.start()
                await until(lambda: c.stats.snapshot_failures >= 2)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
            assert drain(queue) == [], "nothing is emitted from a book never synced"
            return c

    started = time.monotonic()
    c = asyncio.run(main())
    assert c.stats.snapshots == 0
    assert not c.books.keeper("binance", "BTC/USDT").synced
    assert time.monotonic() - started < 20
