"""Micro-batcher: flush rules with an injected clock, coalescing under backpressure, and the asyncio driver."""

from __future__ import annotations

import asyncio
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbkit import schema
from arbkit.pipeline import Batch
from live.batcher import BatcherConfig, FeedItem, MicroBatcher, drive


def quotes(rows: list[tuple[int, str, str, float]]) -> pl.DataFrame:
    """Quote rows ``(ts, exchange, symbol, bid)``; ask = bid + 1 so nothing is crossed."""
    return schema.validate(
        pl.DataFrame(
            {
                "ts_event": [r[0] for r in rows],
                "ts_recv": [r[0] for r in rows],
                "exchange": [r[1] for r in rows],
                "symbol": [r[2] for r in rows],
                "bid": [r[3] for r in rows],
                "bid_size": [1.0] * len(rows),
                "ask": [r[3] + 1.0 for r in rows],
                "ask_size": [1.0] * len(rows),
            },
            schema_overrides={"ts_event": pl.Int64, "ts_recv": pl.Int64, "bid": pl.Float64},
        ),
        schema.QUOTES,
    )


def one(ts: int, exchange: str = "okx", symbol: str = "BTC/USDT", bid: float = 100.0) -> pl.DataFrame:
    return quotes([(ts, exchange, symbol, bid)])


def test_flush_on_rows() -> None:
    b = MicroBatcher(BatcherConfig(max_rows=3, max_delay_ns=10**9))
    for i in range(2):
        b.add("quotes", one(i + 1), now_ns=i)
    assert b.poll(now_ns=5) is None
    b.add("quotes", one(3), now_ns=6)
    batch = b.poll(now_ns=6)
    assert batch is not None
    assert batch.quotes.get_column("ts_recv").to_list() == [1, 2, 3]
    assert b.pending == 0
    assert b.stats.flushed_on_rows == 1
    assert b.poll(now_ns=10**10) is None


def test_flush_on_time_measured_from_first_pending_row() -> None:
    b = MicroBatcher(BatcherConfig(max_rows=100, max_delay_ns=1_000))
    b.add("quotes", one(1), now_ns=500)
    b.add("quotes", one(2), now_ns=1_400)
    assert b.due_ns() == 1_500
    assert b.poll(now_ns=1_499) is None
    batch = b.poll(now_ns=1_500)
    assert batch is not None
    assert batch.quotes.height == 2
    assert b.stats.flushed_on_time == 1
    assert b.due_ns() is None
    b.add("quotes", one(3), now_ns=5_000)
    assert b.due_ns() == 6_000


def test_mixed_tables_keep_schemas_and_order() -> None:
    b = MicroBatcher(BatcherConfig(max_rows=10, max_delay_ns=0))
    book = pl.DataFrame(
        {
            "ts_event": [5],
            "ts_recv": [5],
            "exchange": ["okx"],
            "symbol": ["BTC/USDT"],
            "side": ["bid"],
            "level": [0],
            "price": [1.0],
            "size": [2.0],
        }
    )
    b.add("book", book, now_ns=0)  # not the exact schema: cast by validate
    b.add("quotes", one(4), now_ns=0)
    b.add("trades", pl.DataFrame({"x": [1]}), now_ns=0)  # a Batch has no trades table: counted, dropped
    batch = b.poll(now_ns=0)
    assert batch is not None
    assert batch.book.schema == schema.BOOK.polars
    assert batch.quotes.schema == schema.QUOTES.polars
    assert batch.funding.height == 0
    assert batch.funding.schema == schema.FUNDING.polars
    assert b.stats.ignored == {"trades": 1}
    assert b.stats.rows_in == b.stats.rows_out == 2


def test_bad_frame_raises_and_queues_nothing() -> None:
    b = MicroBatcher()
    with pytest.raises(schema.SchemaError):
        b.add("quotes", pl.DataFrame({"ts_event": [1]}), now_ns=0)
    assert b.pending == 0


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        BatcherConfig(max_rows=0)
    with pytest.raises(ValueError, match="max_pending"):
        BatcherConfig(max_rows=10, max_pending=5)


def test_coalesce_keeps_latest_per_key_in_arrival_order() -> None:
    b = MicroBatcher(BatcherConfig(max_rows=4, max_delay_ns=10**9, max_pending=6))
    seq = [
        ("okx", "A/B", 1.0),
        ("okx", "C/D", 2.0),
        ("bybit", "A/B", 3.0),
        ("okx", "A/B", 4.0),
        ("okx", "C/D", 5.0),
        ("okx", "E/F", 6.0),
    ]
    # consumer never polls: the 6th row reaches max_pending and triggers coalescing
    for i, (ex, sym, bid) in enumerate(seq):
        b.add("quotes", one(i + 1, ex, sym, bid), now_ns=i)
    assert b.stats.coalesce_events == 1
    assert b.stats.coalesced["quotes"] == 2
    batch = b.flush()
    assert batch is not None
    got = batch.quotes.select("exchange", "symbol", "bid").rows()
    assert got == [("bybit", "A/B", 3.0), ("okx", "A/B", 4.0), ("okx", "C/D", 5.0), ("okx", "E/F", 6.0)]
    ts = batch.quotes.get_column("ts_recv").to_list()
    assert ts == sorted(ts)


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(
        st.tuples(st.sampled_from(["okx", "bybit"]), st.sampled_from(["A/B", "C/D", "E/F"])), min_size=1, max_size=200
    ),
    max_pending=st.integers(min_value=2, max_value=20),
)
def test_backpressure_bounds_memory_and_never_loses_the_latest(keys: list[tuple[str, str]], max_pending: int) -> None:
    b = MicroBatcher(BatcherConfig(max_rows=1, max_delay_ns=0, max_pending=max_pending))
    distinct = len(set(keys))
    peak = 0
    for i, (ex, sym) in enumerate(keys):
        b.add("quotes", one(i + 1, ex, sym, float(i + 1)), now_ns=i)
        peak = max(peak, b.pending)
    # reference: the latest bid per key, computed independently
    latest: dict[tuple[str, str], float] = {}
    for i, key in enumerate(keys):
        latest[key] = float(i + 1)
    batch = b.flush()
    assert batch is not None
    got = {(r[0], r[1]): r[2] for r in batch.quotes.select("exchange", "symbol", "bid").rows()}
    assert got == latest | {k: v for k, v in got.items() if k not in latest}
    for key, bid in latest.items():
        assert got[key] == bid
    assert peak <= max(max_pending, 2 * distinct)
    assert b.stats.rows_in == len(keys)
    assert b.stats.rows_out + b.stats.coalesced_total == len(keys)
    ts = batch.quotes.get_column("ts_recv").to_list()
    assert ts == sorted(ts)


def test_drive_batches_and_flushes_on_stop() -> None:
    async def main() -> list[Batch]:
        queue: asyncio.Queue[FeedItem] = asyncio.Queue()
        stop = asyncio.Event()
        out: list[Batch] = []

        async def on_batch(batch: Batch) -> None:
            out.append(batch)

        b = MicroBatcher(BatcherConfig(max_rows=5, max_delay_ns=2_000_000))
        task = asyncio.create_task(drive(queue, b, on_batch, stop=stop))
        for i in range(12):
            queue.put_nowait(("quotes", one(i + 1)))
        await asyncio.sleep(0.05)  # 10 rows flush on count, the last 2 on time
        queue.put_nowait(("quotes", one(13)))
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        return out

    out = asyncio.run(main())
    ts = [t for batch in out for t in batch.quotes.get_column("ts_recv").to_list()]
    assert ts == list(range(1, 14))
    # batches cut while running hold at most max_rows; the final flush on stop takes whatever is left
    assert all(batch.quotes.height <= 5 for batch in out[:-1])


def test_drive_coalesces_while_consumer_busy() -> None:
    async def main() -> tuple[list[Batch], MicroBatcher]:
        queue: asyncio.Queue[FeedItem] = asyncio.Queue()
        stop = asyncio.Event()
        out: list[Batch] = []
        blocked = True

        async def on_batch(batch: Batch) -> None:
            out.append(batch)

        b = MicroBatcher(BatcherConfig(max_rows=2, max_delay_ns=0, max_pending=4))
        task = asyncio.create_task(drive(queue, b, on_batch, stop=stop, busy=lambda: blocked))
        for i in range(100):
            queue.put_nowait(("quotes", one(i + 1, "okx", ["A/B", "C/D"][i % 2], float(i + 1))))
        await asyncio.sleep(0.02)
        assert not out
        blocked = False
        await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        return out, b

    out, b = asyncio.run(main())
    rows = [r for batch in out for r in batch.quotes.select("symbol", "bid").rows()]
    assert rows == [("A/B", 99.0), ("C/D", 100.0)]
    assert b.stats.coalesced["quotes"] == 98


def test_add_rows_interleaves_with_frames_in_arrival_order() -> None:
    b = MicroBatcher(BatcherConfig(max_rows=100, max_delay_ns=0))
    b.add_rows("quotes", [(1, 1, "okx", "A/B", 1.0, 1.0, 2.0, 1.0, 7, 0)], now_ns=0)
    b.add("quotes", one(2, "okx", "A/B", 3.0), now_ns=0)
    b.add_rows("quotes", [(3, 3, "okx", "A/B", 5.0, None, 6.0, 1.0, None, 0)], now_ns=0)
    b.add_rows("trades", [(1,)], now_ns=0)
    batch = b.poll(now_ns=0)
    assert batch is not None
    assert batch.quotes.schema == schema.QUOTES.polars
    assert batch.quotes.select("ts_recv", "bid", "bid_size", "seq").rows() == [
        (1, 1.0, 1.0, 7),
        (2, 3.0, 1.0, None),
        (3, 5.0, None, None),
    ]
    assert b.stats.ignored == {"trades": 1}


def test_row_tuples_become_the_same_frame_as_row_orientation() -> None:
    from live.batcher import _SCHEMAS, _rows_frame

    rows = [
        (1, 2, "okx", "BTC/USDT", 100.0, 1.0, 101.0, 2.0, 7, 0),
        (3, 4, "okx", "ETH/USDT", None, None, 50, 0.5, None, 2),  # absent side, an int price
    ]
    built = _rows_frame(rows, "quotes")
    assert built.schema == _SCHEMAS["quotes"]
    assert built.equals(pl.DataFrame(rows, schema=_SCHEMAS["quotes"], orient="row"))
    with pytest.raises(pl.exceptions.ShapeError, match="number of columns"):
        _rows_frame([(1, 2, "okx")], "quotes")  # wrong width: reported, not truncated


def _columns(exchange: str, ts_recv: int, symbols: list[str], rows: list[tuple[int, int, float, int | None]]) -> Any:
    """A QuoteColumns of ``rows`` = ``(ts_event, symbol code, bid, seq or None)``; ask = bid + 1, sizes 1 and 2."""
    import numpy as np

    from live.adapters._columns import QuoteColumns

    bid = np.array([r[2] for r in rows], dtype=np.float64)
    return QuoteColumns(
        exchange,
        ts_recv,
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int32),
        symbols,
        bid,
        np.ones(len(rows)),
        bid + 1.0,
        np.full(len(rows), 2.0),
        np.array([0 if r[3] is None else r[3] for r in rows], dtype=np.int64),
        np.array([r[3] is not None for r in rows], dtype=np.bool_),
        np.array([2 if r[2] > 150 else 0 for r in rows], dtype=np.uint16),
    )


def _tuple(exchange: str, ts_recv: int, symbols: list[str], r: tuple[int, int, float, int | None]) -> tuple[Any, ...]:
    """The row tuple the same values make, written out independently of QuoteColumns."""
    return (r[0], ts_recv, exchange, symbols[r[1]], r[2], 1.0, r[2] + 1.0, 2.0, r[3], 2 if r[2] > 150 else 0)


@given(
    parts=st.lists(
        st.tuples(
            st.sampled_from(["columns", "rows"]),
            st.sampled_from(["okx", "binance"]),
            st.lists(
                st.tuples(
                    st.integers(0, 10**12),
                    st.integers(0, 3),
                    st.floats(1.0, 200.0),
                    st.none() | st.integers(0, 2**40),
                ),
                min_size=0,
                max_size=6,
            ),
        ),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=120, deadline=None)
def test_column_batches_equal_the_same_rows_as_tuples(
    parts: list[tuple[str, str, list[tuple[int, int, float, int | None]]]],
) -> None:
    """Compiled-parser column batches, alone or interleaved with tuple rows, cut into the same frame as tuples."""
    symbols = {  # short (inline) and long (> 12 bytes: into the data buffer) names
        "okx": ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BTC/USDT:USDT-261225"],
        "binance": ["BTC/USDT:USDT", "ETH/USDT:USDT", "X/Y", "1000SHIB/USDT:USDT-250627"],
    }
    with_columns, reference = MicroBatcher(), MicroBatcher()
    for k, (kind, exchange, rows) in enumerate(parts):
        ts_recv = 1_000 + k
        tuples = [_tuple(exchange, ts_recv, symbols[exchange], r) for r in rows]
        if kind == "columns":
            with_columns.add_item(("quotes", _columns(exchange, ts_recv, symbols[exchange], rows)), now_ns=0)
        else:
            with_columns.add_item(("quotes", tuples), now_ns=0)
        reference.add_rows("quotes", tuples, now_ns=0)
    assert with_columns.pending == reference.pending
    got, want = with_columns.flush(), reference.flush()
    if want is None:
        assert got is None
        return
    assert got is not None
    assert got.quotes.schema == schema.QUOTES.polars
    assert got.quotes.equals(want.quotes)


def test_column_batches_coalesce_like_rows() -> None:
    """Under backpressure column batches are coalesced to the latest quote per key like any other rows."""
    b = MicroBatcher(BatcherConfig(max_rows=4, max_pending=4))
    syms = ["BTC/USDT", "ETH/USDT"]
    b.add_item(("quotes", _columns("okx", 1, syms, [(1, 0, 100.0, 1), (2, 1, 101.0, 2), (3, 0, 102.0, 3)])), 0)
    b.add_item(("quotes", _columns("okx", 2, syms, [(4, 0, 103.0, None), (5, 1, 104.0, 5)])), 0)
    assert b.stats.coalesced["quotes"] == 3
    batch = b.flush()
    assert batch is not None
    assert batch.quotes.select("ts_event", "bid", "seq").rows() == [(4, 103.0, None), (5, 104.0, 5)]


def test_column_batches_only_carry_quotes() -> None:
    with pytest.raises(ValueError, match="carry quotes"):
        MicroBatcher().add_columns("book", _columns("okx", 1, ["BTC/USDT"], [(1, 0, 1.0, 1)]), 0)
