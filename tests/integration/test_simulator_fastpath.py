"""The simulator's fast path (texts rendered ahead for stateless channels) hands over cleanly to the per-message
path: book state skipped while only tickers were subscribed is caught up before a book channel, a late joiner or
a REST snapshot reads it, and sequence numbers continue across loop passes."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import orjson
import polars as pl
import pytest

from live import adapters
from live._ws import open_feed
from live.adapters._columns import QuoteColumns
from live.batcher import FeedItem
from live.connector import DEFAULT_CHANNELS, Connector, ConnectorConfig
from live.simulator import serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def quotes(venue: str, symbols: list[str], n: int, step_ms: int) -> pl.DataFrame:
    base = (time.time_ns() // 1_000_000) * 1_000_000
    return pl.concat(
        pl.DataFrame(
            {
                "ts_event": [base + i * step_ms * 1_000_000 for i in range(n)],
                "ts_recv": [base + i * step_ms * 1_000_000 for i in range(n)],
                "exchange": [venue] * n,
                "symbol": [symbol] * n,
                "bid": [100.0 + k + i * 0.5 for i in range(n)],
                "bid_size": [1.0 + (i % 3) for i in range(n)],
                "ask": [100.25 + k + i * 0.5 for i in range(n)],
                "ask_size": [2.0] * n,
            }
        )
        for k, symbol in enumerate(symbols)
    )


async def _until(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(("venue", "symbol", "channel"), [("kraken", "BTC/USD", "book"), ("okx", "BTC/USDT", "books")])
def test_book_channel_joining_mid_stream_gets_a_consistent_book(venue: str, symbol: str, channel: str) -> None:
    """Ticks sent on the fast path still advance the checksummed book: a book subscriber arriving later gets a
    snapshot and updates whose sequence ids and checksums verify, and whose top of book is the data's."""
    frame = quotes(venue, [symbol], 400, 5)

    async def main() -> Connector:
        async with await serve(frame, speed=1.0, autostart=False) as sim:
            queue: asyncio.Queue[FeedItem] = asyncio.Queue()
            ticker = await open_feed(sim.url(venue))
            adapter = adapters.get(venue)
            request = adapter.subscribe_message(DEFAULT_CHANNELS[venue], [adapter.venue_symbol(symbol)])
            await ticker.send(request.decode())
            await asyncio.sleep(0.2)
            sim.start()
            got = 0
            while got < 100:  # a fifth of the data goes out on the fast path only
                got += sum(1 for m in await ticker.recv_batch() if m.startswith((b'{"arg"', b'{"channel":"ticker"')))
            cfg = ConnectorConfig(venue, sim.url(venue), (symbol,), channel=channel, backoff_initial_s=0.05)
            book = await _run_until_applied(cfg, queue)
            ticker.transport.abort()
            rows = [r for table, data in _drain(queue) if table == "quotes" for r in data]
            assert rows
            known = set(zip(frame["bid"].to_list(), frame["ask"].to_list(), strict=True))
            assert all((r[4], r[6]) in known for r in rows)
            return book

    book = asyncio.run(main())
    assert book.books.counters.checksum_failures == 0
    assert book.books.counters.gaps == 0
    assert book.stats.resyncs == 0


async def _run_until_applied(config: ConnectorConfig, queue: asyncio.Queue[FeedItem], n: int = 20) -> Connector:
    """A book connector run until its keeper has applied ``n`` updates, then stopped."""
    stop = asyncio.Event()
    connector = Connector(config, queue, rng=random.Random(1))
    task = asyncio.create_task(connector.run(stop))
    await connector.wait_subscribed(5)
    await _until(lambda: connector.books.counters.applied >= n)
    stop.set()
    await asyncio.wait_for(task, 10)
    return connector


def _drain(queue: asyncio.Queue[FeedItem]) -> list[FeedItem]:
    items = []
    while not queue.empty():
        table, data = queue.get_nowait()
        items.append((table, data.rows() if isinstance(data, QuoteColumns) else data))  # compiled reads as tuples
    return items


def test_sequence_ids_continue_across_loop_passes() -> None:
    """With ``loop=True`` the rendered texts of each pass carry event times shifted by the data's span and
    sequence ids that continue where the previous pass ended (rows without a stored seq are counted on)."""
    n = 50
    frame = quotes("bybit", ["BTC/USDT:USDT", "ETH/USDT:USDT"], n, 1)

    async def main() -> list[dict[str, object]]:
        async with await serve(frame, speed=0, autostart=False, loop=True) as sim:
            conn = await open_feed(sim.url("bybit"))
            await conn.send('{"op":"subscribe","args":["orderbook.1.BTCUSDT"]}')
            await asyncio.sleep(0.1)
            sim.start()
            out: list[dict[str, object]] = []
            while len(out) < 3 * n:
                out += [orjson.loads(m) for m in await conn.recv_batch() if m.startswith(b'{"topic"')]
            conn.transport.abort()
            return out

    msgs = asyncio.run(main())[: 3 * n]
    assert [m["data"]["u"] for m in msgs] == list(range(1, 3 * n + 1))  # type: ignore[index]
    ts = [int(m["ts"]) for m in msgs]  # type: ignore[call-overload]
    span = (n - 1) + 1  # data span in ms (rows 1 ms apart) plus the 1 ms the replay adds between passes
    assert ts[n] - ts[0] == span
    assert ts[2 * n] - ts[n] == span
    assert all(b > a for a, b in itertools.pairwise(ts))


def test_binance_rest_snapshot_after_fast_path_syncs_the_diff_stream() -> None:
    """A diff-depth client arriving after ticks went out on the fast path: its REST snapshot and the diff stream
    that follows come from one book state, so the stream continues from the snapshot's ``lastUpdateId``."""
    frame = quotes("binance", ["BTC/USDT"], 300, 5)

    async def main() -> Connector:
        async with await serve(frame, speed=1.0, autostart=False) as sim:
            ticker = await open_feed(sim.url("binance"))
            await ticker.send('{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":1}')
            await asyncio.sleep(0.1)
            sim.start()
            got = 0
            while got < 60:
                got += sum(1 for m in await ticker.recv_batch() if m.startswith(b'{"u"'))
            cfg = ConnectorConfig(
                "binance", sim.url("binance"), ("BTC/USDT",), channel="depth@100ms", rest_url=sim.rest_url("binance")
            )
            depth = await _run_until_applied(cfg, asyncio.Queue())
            ticker.transport.abort()
            return depth

    depth = asyncio.run(main())
    assert depth.books.counters.gaps == 0
    assert depth.stats.snapshots == 1
