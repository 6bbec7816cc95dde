"""Record live feeds into the Parquet tick store, in the layout the backtester reads.

``arbkit record`` runs :func:`record`: one :class:`live.connector.Connector` per venue feeds a queue; rows are
cut into large batches (by default 20,000 rows or 1 s, whichever comes first) and appended with
:meth:`arbkit.data.store.Store.append`, which partitions by table, exchange and UTC day of ``ts_recv``.  So
``arbkit backtest --store DIR`` replays exactly what the live engine saw, integrity flags included: quotes the
connector re-emitted as ``STALE`` or ``OUTAGE`` during a stall or a disconnect are recorded as such.

Recording never coalesces: every row received is written (backpressure shows as a growing queue, not as lost
ticks).  Writes run in a worker thread so the event loop keeps reading sockets while Parquet is encoded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from arbkit import schema
from arbkit.data.store import Store
from arbkit.pipeline import TABLE_ORDER
from live.adapters._columns import QuoteColumns
from live.batcher import BatcherConfig, FeedItem, MicroBatcher, next_item
from live.connector import Connector, ConnectorConfig, ConnectorStats

__all__ = ["RecordSummary", "record"]

_TRADES_SCHEMA = schema.TRADES.polars  # derived once: deriving costs ~0.2 ms
_RECORD_BATCH = BatcherConfig(max_rows=20_000, max_delay_ns=1_000_000_000, max_pending=1 << 40)


@dataclass(frozen=True, slots=True)
class RecordSummary:
    """What a recording session wrote and what its connections went through.

    ``duration_s`` is the recording window (start to stop request); the final flush after it is not counted.
    """

    rows: dict[str, int]
    writes: int
    duration_s: float
    connectors: dict[str, ConnectorStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``arbkit record --json``)."""
        return {
            "rows": dict(self.rows),
            "writes": self.writes,
            "duration_s": self.duration_s,
            "connectors": {
                name: {k: getattr(stats, k) for k in ConnectorStats.__slots__}  # type: ignore[attr-defined]
                for name, stats in self.connectors.items()
            },
        }


class _Writer:
    """Accumulates queue items (trades beside the batch tables) and appends them to the store."""

    def __init__(self, store: Store, config: BatcherConfig) -> None:
        self.store = store
        self.batcher = MicroBatcher(config)
        self.trades: list[tuple[Any, ...]] = []
        self.trade_frames: list[pl.DataFrame] = []
        self.rows: dict[str, int] = {}
        self.writes = 0

    def add(self, item: FeedItem, now_ns: int) -> None:
        table, data = item
        if table == "trades":
            if isinstance(data, pl.DataFrame):
                self.trade_frames.append(schema.validate(data, schema.TRADES))
            elif not isinstance(data, QuoteColumns):  # column batches only ever carry quotes
                self.trades.extend(data)
            return
        self.batcher.add_item(item, now_ns)

    def _trade_frame(self) -> pl.DataFrame | None:
        frames = list(self.trade_frames)
        if self.trades:
            frames.append(pl.DataFrame(self.trades, schema=_TRADES_SCHEMA, orient="row"))
        self.trades = []
        self.trade_frames = []
        return pl.concat(frames) if frames else None

    async def write(self, *, force: bool, now_ns: int) -> None:
        batch = self.batcher.flush() if force else self.batcher.poll(now_ns)
        trades = self._trade_frame() if force or batch is not None or len(self.trades) >= 20_000 else None
        frames: dict[str, pl.DataFrame] = {}
        if batch is not None:
            for name in TABLE_ORDER:
                frame = batch.frame(name)
                if frame.height:
                    frames[name] = frame
        if trades is not None and trades.height:
            frames["trades"] = trades
        for name, frame in frames.items():
            await asyncio.to_thread(self.store.append, name, frame)
            self.rows[name] = self.rows.get(name, 0) + frame.height
            self.writes += 1


async def record(
    feeds: Sequence[ConnectorConfig],
    store_root: str | Path,
    duration_s: float | None = None,
    stop_event: asyncio.Event | None = None,
    *,
    batch: BatcherConfig = _RECORD_BATCH,
) -> RecordSummary:
    """Record ``feeds`` into the store at ``store_root`` until ``duration_s`` passes or ``stop_event`` is set.

    Parameters
    ----------
    feeds
        One connector config per venue (URL, symbols, channel); simulator URLs work the same as venues'.
    store_root
        Root of the Parquet store (created if missing).
    duration_s
        Stop after this many seconds (``None``: only ``stop_event`` stops it).
    stop_event
        Set it to stop; everything received is written before the function returns.
    batch
        When to cut a write (rows or time); coalescing is disabled by the huge default ``max_pending``.

    Returns
    -------
    RecordSummary
        Rows written per table, number of appends, duration and each connector's counters.
    """
    if duration_s is None and stop_event is None:
        raise ValueError("record needs duration_s or stop_event, or it would never stop")
    stop = stop_event or asyncio.Event()
    store = Store(store_root)
    queue: asyncio.Queue[FeedItem] = asyncio.Queue()
    connectors = [Connector(cfg, queue) for cfg in feeds]
    for connector in connectors:
        connector.warm()  # compiled readers loaded (or compiled, on a fresh install) before the clock starts
    feed_stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(feed_stop), name=f"record-{c.venue}") for c in connectors]
    writer = _Writer(store, batch)
    started = time.monotonic()
    deadline = None if duration_s is None else started + duration_s
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            due = writer.batcher.due_ns()
            wait = 0.2 if due is None else max(due - time.monotonic_ns(), 0) / 1e9
            if deadline is not None:
                wait = min(wait, max(deadline - time.monotonic(), 0.0))
            item = await next_item(queue, max(wait, 0.001))
            if item is not None:
                writer.add(item, time.monotonic_ns())
            while not queue.empty():
                writer.add(queue.get_nowait(), time.monotonic_ns())
            await writer.write(force=False, now_ns=time.monotonic_ns())
    finally:
        recorded_s = time.monotonic() - started
        feed_stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        while not queue.empty():
            writer.add(queue.get_nowait(), time.monotonic_ns())
        await writer.write(force=True, now_ns=time.monotonic_ns())
    names = [c.venue if c.config.market is None else f"{c.venue}/{c.config.market}" for c in connectors]
    return RecordSummary(
        rows=writer.rows,
        writes=writer.writes,
        duration_s=recorded_s,
        connectors={name: c.stats for name, c in zip(names, connectors, strict=True)},
    )
