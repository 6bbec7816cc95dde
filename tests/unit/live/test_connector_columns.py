"""Connector hand-off of compiled column batches: order against tuple rows and the lazily folded last quotes."""

from __future__ import annotations

import asyncio

import numpy as np

from live.adapters._columns import QuoteColumns
from live.batcher import FeedItem
from live.connector import Connector, ConnectorConfig


def _cols(ts_recv: int, codes: list[int], bids: list[float]) -> QuoteColumns:
    n = len(codes)
    bid = np.array(bids, dtype=np.float64)
    return QuoteColumns(
        "okx",
        ts_recv,
        np.arange(n, dtype=np.int64) + ts_recv,
        np.array(codes, dtype=np.int32),
        ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
        bid,
        np.ones(n),
        bid + 1.0,
        np.ones(n),
        np.arange(n, dtype=np.int64),
        None,
        np.zeros(n, dtype=np.uint16),
    )


def _connector(queue: asyncio.Queue[FeedItem]) -> Connector:
    return Connector(ConnectorConfig("okx", "ws://127.0.0.1:9/x", ("BTC/USDT", "ETH/USDT", "SOL/USDT")), queue)


def test_last_quotes_fold_column_batches_in_order() -> None:
    """The newest row per symbol wins across batches; a symbol only an older batch carries is kept."""

    async def main() -> dict[str, tuple[object, ...]]:
        c = _connector(asyncio.Queue())
        c._stage_columns(_cols(100, [0, 1, 0], [1.0, 2.0, 3.0]))
        c._stage_columns(_cols(200, [0], [4.0]))
        c._stage_quote((300, 300, "okx", "SOL/USDT", 9.0, 1.0, 10.0, 1.0, 7, 0))  # a tuple row after them
        c._stage_columns(_cols(400, [1], [5.0]))
        return dict(c.last_quotes)

    last = asyncio.run(main())
    assert {s: row[4] for s, row in last.items()} == {"BTC/USDT": 4.0, "ETH/USDT": 5.0, "SOL/USDT": 9.0}
    assert last["ETH/USDT"] == (400, 400, "okx", "ETH/USDT", 5.0, 1.0, 6.0, 1.0, 0, 0)


def test_many_batches_are_folded_and_stay_bounded() -> None:
    async def main() -> tuple[int, dict[str, float]]:
        c = _connector(asyncio.Queue())
        c._stage_columns(_cols(1, [2], [7.0]))
        for k in range(1_000):
            c._stage_columns(_cols(10 + k, [k % 2], [float(k)]))
        return len(c._last_columns), {s: row[4] for s, row in c.last_quotes.items()}

    pending, last = asyncio.run(main())
    assert pending < 32
    assert last == {"BTC/USDT": 998.0, "ETH/USDT": 999.0, "SOL/USDT": 7.0}


def test_columns_and_tuples_reach_the_queue_in_arrival_order() -> None:
    async def main() -> list[tuple[str, list[float]]]:
        queue: asyncio.Queue[FeedItem] = asyncio.Queue()
        c = _connector(queue)
        c._stage_quote((1, 1, "okx", "BTC/USDT", 1.0, 1.0, 2.0, 1.0, 1, 0))
        c._stage_columns(_cols(2, [0, 1], [2.0, 3.0]))
        c._stage_quote((3, 3, "okx", "BTC/USDT", 4.0, 1.0, 5.0, 1.0, 2, 0))
        await asyncio.sleep(0)  # the scheduled hand-off
        items = []
        while not queue.empty():
            table, data = queue.get_nowait()
            rows = data.rows() if isinstance(data, QuoteColumns) else data
            items.append((table, [float(r[4]) for r in rows]))  # type: ignore[index]
        return items

    assert asyncio.run(main()) == [("quotes", [1.0]), ("quotes", [2.0, 3.0]), ("quotes", [4.0])]


def test_a_column_batch_is_handed_over_at_once() -> None:
    """No event-loop turn between a socket read's columns and the queue (the batcher sees them a turn sooner)."""

    async def main() -> tuple[int, int]:
        queue: asyncio.Queue[FeedItem] = asyncio.Queue()
        c = _connector(queue)
        c._stage_columns(_cols(2, [0, 1], [2.0, 3.0]))
        return queue.qsize(), c.stats.rows["quotes"]

    assert asyncio.run(main()) == (1, 2)
