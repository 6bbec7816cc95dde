"""Micro-batcher: rows from the live feed into columnar :class:`arbkit.pipeline.Batch` slices.

The live engine calls a strategy's ``step`` on micro-batches of a few milliseconds.  :class:`MicroBatcher` is the
pure core that decides when a batch is due; :func:`drive` is the thin asyncio driver that feeds it from the
connector's :class:`asyncio.Queue` and hands batches on.

Flush rules
-----------
* **Rows**: a batch is due as soon as ``max_rows`` rows are pending.
* **Time**: a batch is due ``max_delay_ns`` after the first pending row arrived, however few rows there are, so a
  quiet market still reaches the strategy within a bounded delay.

Backpressure
------------
When the consumer does not take batches (the strategy is slower than the feed), pending rows would grow without
bound.  Once ``max_pending`` rows are pending, each table is *coalesced*: only the latest row per key (quotes:
``(exchange, symbol)``; book: ``(exchange, symbol, side, level)``; funding and option quotes: ``(exchange,
symbol)``) survives, kept at the position it arrived in, so the newest data is never behind older data and the
canonical ``ts_recv`` order is preserved.  Every dropped row is counted in :attr:`BatcherStats.coalesced`.  The
next coalescing threshold is ``max(max_pending, 2 x rows left)``, so memory stays within a constant factor of
``max(max_pending, distinct keys)`` whatever the input rate.

The core never reads a clock: every call takes ``now_ns`` (any monotonic nanosecond clock), which is what makes
it testable with an injected clock and replayable.

Examples
--------
>>> import polars as pl
>>> b = MicroBatcher(BatcherConfig(max_rows=2, max_delay_ns=1_000))
>>> q = pl.DataFrame({"ts_event": [1], "ts_recv": [1], "exchange": ["okx"], "symbol": ["BTC/USDT"],
...                   "bid": [1.0], "bid_size": [1.0], "ask": [2.0], "ask_size": [1.0]})
>>> b.add("quotes", q, now_ns=0)
>>> b.poll(now_ns=10) is None
True
>>> b.poll(now_ns=1_000).quotes.height
1
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute  # imported now: Array.take loads it lazily, a ~100 ms stall on the first batch

from arbkit import schema
from arbkit.pipeline import TABLE_ORDER, Batch
from live.adapters._columns import QuoteColumns

__all__ = [
    "COALESCE_KEYS",
    "BatcherConfig",
    "BatcherStats",
    "FeedItem",
    "MicroBatcher",
    "drive",
    "next_item",
]

#: A unit of work on the feed queue: ``(table name, frame of that table, row tuples in its column order, or -- quotes
#: only -- the columns a compiled parser filled from one socket read)``.
FeedItem = tuple[str, pl.DataFrame | Sequence[tuple[Any, ...]] | QuoteColumns]

#: Columns identifying "the same thing" per table: under backpressure only the latest row per key is kept.
COALESCE_KEYS: dict[str, tuple[str, ...]] = {
    "quotes": ("exchange", "symbol"),
    "book": ("exchange", "symbol", "side", "level"),
    "funding": ("exchange", "symbol"),
    "option_quotes": ("exchange", "symbol"),
}

_TABLES: dict[str, schema.Table] = {
    "quotes": schema.QUOTES,
    "book": schema.BOOK,
    "funding": schema.FUNDING,
    "option_quotes": schema.OPTION_QUOTES,
}
# Deriving a Polars schema from the Arrow declaration costs ~0.2 ms; a batch is cut every few ms, so cache them.
# Polars frames are immutable, so one empty frame per table can be shared by every batch.
_SCHEMAS: dict[str, pl.Schema] = {name: table.polars for name, table in _TABLES.items()}
_EMPTY: dict[str, pl.DataFrame] = {name: pl.DataFrame(schema=_SCHEMAS[name]) for name in _TABLES}
_COLUMNS: dict[str, list[tuple[str, pl.DataType]]] = {name: list(_SCHEMAS[name].items()) for name in _TABLES}
_QUOTE_NAMES = list(_SCHEMAS["quotes"])


@dataclass(frozen=True, slots=True)
class BatcherConfig:
    """When to flush and when to coalesce.

    Parameters
    ----------
    max_rows
        Flush as soon as this many rows (all tables together) are pending.
    max_delay_ns
        Flush this long after the first pending row arrived (5 ms by default: a few ms is the live step period).
    max_pending
        Coalesce to the latest row per key once this many rows are pending (the consumer is behind).
    """

    max_rows: int = 4_096
    max_delay_ns: int = 5_000_000
    max_pending: int = 65_536

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {self.max_rows}")
        if self.max_delay_ns < 0:
            raise ValueError(f"max_delay_ns must be >= 0, got {self.max_delay_ns}")
        if self.max_pending < self.max_rows:
            raise ValueError(f"max_pending ({self.max_pending}) must be >= max_rows ({self.max_rows})")


@dataclass(slots=True)
class BatcherStats:
    """Counters: what came in, what went out, why batches were cut and what backpressure dropped."""

    rows_in: int = 0
    rows_out: int = 0
    batches: int = 0
    flushed_on_rows: int = 0
    flushed_on_time: int = 0
    flushed_forced: int = 0
    coalesce_events: int = 0
    coalesced: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLE_ORDER, 0))
    ignored: dict[str, int] = field(default_factory=dict)  # rows of tables a Batch does not carry (e.g. trades)

    @property
    def coalesced_total(self) -> int:
        return sum(self.coalesced.values())


class MicroBatcher:
    """Pure micro-batching core: ``add`` rows, ``poll`` with an explicit clock, get a :class:`Batch` when due.

    Not thread-safe; one event loop owns it.  See the module docstring for the flush and coalescing rules.
    """

    __slots__ = ("_chunks", "_columns", "_first_ns", "_pending", "_rows", "_threshold", "config", "stats")

    def __init__(self, config: BatcherConfig | None = None) -> None:
        self.config = config or BatcherConfig()
        self.stats = BatcherStats()
        self._chunks: dict[str, list[pl.DataFrame]] = {name: [] for name in TABLE_ORDER}
        self._rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TABLE_ORDER}
        self._columns: list[QuoteColumns] = []  # quotes only; at most one of _rows["quotes"] / _columns is non-empty
        self._pending = 0
        self._first_ns: int | None = None
        self._threshold = self.config.max_pending

    @property
    def pending(self) -> int:
        """Rows waiting for the next batch."""
        return self._pending

    def add(self, table: str, frame: pl.DataFrame, now_ns: int) -> None:
        """Queue the rows of ``frame`` (a frame of ``table``) that arrived at ``now_ns``.

        Frames with a schema other than the table's exact one are validated (cast) first; a frame that cannot be
        cast raises :class:`arbkit.schema.SchemaError` and nothing is queued.  Tables a batch does not carry
        (``trades``) are counted in ``stats.ignored`` and dropped.
        """
        if frame.height == 0:
            return
        spec = _TABLES.get(table)
        if spec is None:
            self.stats.ignored[table] = self.stats.ignored.get(table, 0) + frame.height
            return
        if frame.schema != _SCHEMAS[table]:
            frame = schema.validate(frame, spec)
        self._seal(table)
        self._chunks[table].append(frame)
        self._pending += frame.height
        self.stats.rows_in += frame.height
        if self._first_ns is None:
            self._first_ns = now_ns
        if self._pending >= self._threshold:
            self._coalesce()

    def add_rows(self, table: str, rows: Sequence[tuple[Any, ...]], now_ns: int) -> None:
        """Queue row tuples in ``table``'s column order (the adapters' fast path: no frame per message).

        Rows are trusted to be valid (the adapter checked them); they become a frame with the table's exact schema
        when the batch is cut.
        """
        if not rows:
            return
        if table not in _TABLES:
            self.stats.ignored[table] = self.stats.ignored.get(table, 0) + len(rows)
            return
        if self._columns and table == "quotes":
            self._seal(table)  # arrival order: the columns staged so far go first
        self._rows[table].extend(rows)
        self._pending += len(rows)
        self.stats.rows_in += len(rows)
        if self._first_ns is None:
            self._first_ns = now_ns
        if self._pending >= self._threshold:
            self._coalesce()

    def add_columns(self, table: str, columns: QuoteColumns, now_ns: int) -> None:
        """Queue the quotes a compiled parser read from one socket read (trusted like :meth:`add_rows`).

        Consecutive column batches become one frame when the batch is cut (one NumPy concatenation per column),
        not one frame per socket read.
        """
        if table != "quotes":
            raise ValueError(f"column batches carry quotes, not {table!r}")
        n = len(columns)
        if n == 0:
            return
        if self._rows[table]:
            self._seal(table)
        self._columns.append(columns)
        self._pending += n
        self.stats.rows_in += n
        if self._first_ns is None:
            self._first_ns = now_ns
        if self._pending >= self._threshold:
            self._coalesce()

    def add_item(self, item: FeedItem, now_ns: int) -> None:
        """:meth:`add` a frame, :meth:`add_columns` or :meth:`add_rows`, whichever the queue item holds."""
        table, data = item
        if isinstance(data, pl.DataFrame):
            self.add(table, data, now_ns)
        elif isinstance(data, QuoteColumns):
            self.add_columns(table, data, now_ns)
        else:
            self.add_rows(table, data, now_ns)

    def add_many(self, items: Iterable[FeedItem], now_ns: int) -> None:
        """:meth:`add_item` every item."""
        for item in items:
            self.add_item(item, now_ns)

    def due_ns(self) -> int | None:
        """Clock value at which the pending rows are due by time; ``None`` when nothing is pending."""
        if self._first_ns is None:
            return None
        return self._first_ns + self.config.max_delay_ns

    def ready(self, now_ns: int) -> bool:
        """True when a batch is due at ``now_ns`` (enough rows, or the oldest pending row waited long enough)."""
        if self._pending == 0:
            return False
        if self._pending >= self.config.max_rows:
            return True
        due = self.due_ns()
        return due is not None and now_ns >= due

    def poll(self, now_ns: int) -> Batch | None:
        """The pending rows as a batch when one is due at ``now_ns``, else ``None`` (rows stay pending)."""
        if not self.ready(now_ns):
            return None
        if self._pending >= self.config.max_rows:
            self.stats.flushed_on_rows += 1
        else:
            self.stats.flushed_on_time += 1
        return self._take()

    def flush(self) -> Batch | None:
        """Everything pending as a batch now, whatever the rules say (shutdown); ``None`` when empty."""
        if self._pending == 0:
            return None
        self.stats.flushed_forced += 1
        return self._take()

    def _seal(self, table: str) -> None:
        rows = self._rows[table]
        if rows:
            self._chunks[table].append(_rows_frame(rows, table))
            self._rows[table] = []
        elif self._columns and table == "quotes":
            self._chunks[table].append(_columns_frame(self._columns))
            self._columns = []

    def _take(self) -> Batch:
        frames = {}
        for name in TABLE_ORDER:
            self._seal(name)
            chunks = self._chunks[name]
            if not chunks:
                frames[name] = _EMPTY[name]
            elif len(chunks) == 1:
                frames[name] = chunks[0]
            else:
                frames[name] = pl.concat(chunks, how="vertical", rechunk=True)
            self._chunks[name] = []
        self.stats.rows_out += self._pending
        self.stats.batches += 1
        self._pending = 0
        self._first_ns = None
        self._threshold = self.config.max_pending
        return Batch(**frames)

    def _coalesce(self) -> None:
        total = 0
        for name in TABLE_ORDER:
            self._seal(name)
            chunks = self._chunks[name]
            if not chunks:
                continue
            whole = pl.concat(chunks, how="vertical", rechunk=True) if len(chunks) > 1 else chunks[0]
            kept = _latest_per_key(whole, COALESCE_KEYS[name])
            self.stats.coalesced[name] += whole.height - kept.height
            self._chunks[name] = [kept]
            total += kept.height
        self.stats.coalesce_events += 1
        self._pending = total
        self._threshold = max(self.config.max_pending, 2 * total)


def _rows_frame(rows: Sequence[tuple[Any, ...]], table: str) -> pl.DataFrame:
    """Row tuples (in ``table``'s column order) as a frame with its exact schema.

    Transposed in C (``zip(*rows)``) and built one typed Series per column: about 40 % cheaper per row than
    Polars' row orientation here.  Rows of the wrong width go through the row constructor, which reports them.
    """
    columns = list(zip(*rows, strict=False))
    spec = _COLUMNS[table]
    if len(columns) != len(spec):
        return pl.DataFrame(rows, schema=_SCHEMAS[table], orient="row")
    return pl.DataFrame([pl.Series(name, col, dtype=dtype) for (name, dtype), col in zip(spec, columns, strict=True)])


class _StringViews:
    """Arrow ``string_view`` columns of a few distinct names, built by gathering 16-byte views with NumPy.

    Polars stores strings as views; handing it Arrow ``string`` arrays (or gathering a Polars string Series)
    costs ~0.3 us per row in conversions, while a gathered view array is imported as it is.  A name of at most 12
    bytes is its own view; a longer one points into one data buffer holding every long name seen so far (rebuilt,
    as a new buffer, when a new long name arrives: arrays already made keep the old one).
    """

    def __init__(self) -> None:
        self._views: dict[str, npt.NDArray[np.uint8]] = {}
        self._tables: dict[tuple[str, ...], npt.NDArray[np.uint8]] = {}
        self._data = pa.py_buffer(b"")

    def table(self, names: Sequence[str]) -> npt.NDArray[np.uint8]:
        """The ``(len(names), 16)`` views of ``names`` (cached per list of names: a venue's symbols)."""
        key = tuple(names)
        hit = self._tables.get(key)
        if hit is None:
            missing = [name for name in key if name not in self._views]
            if missing:
                self._add(missing)
            views = self._views
            hit = np.stack([views[name] for name in key]) if key else np.empty((0, 16), dtype=np.uint8)
            if len(self._tables) >= 4_096:
                self._tables.clear()
            self._tables[key] = hit
        return hit

    def column(self, table: npt.NDArray[np.uint8], codes: npt.NDArray[Any]) -> pa.Array:
        views = np.ascontiguousarray(table[codes])
        return pa.Array.from_buffers(pa.string_view(), len(codes), [None, pa.py_buffer(views), self._data])

    def _add(self, names: list[str]) -> None:
        data = bytearray()
        fresh: dict[str, npt.NDArray[np.uint8]] = {}
        for name in dict.fromkeys([*self._views, *names]):
            raw = name.encode()
            view = np.zeros(16, dtype=np.uint8)
            view[0:4] = np.frombuffer(len(raw).to_bytes(4, "little"), dtype=np.uint8)
            if len(raw) <= 12:
                view[4 : 4 + len(raw)] = np.frombuffer(raw, dtype=np.uint8)
            else:  # prefix, buffer 0, offset into it
                view[4:8] = np.frombuffer(raw[:4], dtype=np.uint8)
                view[12:16] = np.frombuffer(len(data).to_bytes(4, "little"), dtype=np.uint8)
                data += raw
            fresh[name] = view
        self._views = fresh
        self._tables = {}  # their views point into the old buffer
        self._data = pa.py_buffer(bytes(data))


_STRINGS = _StringViews()


def _columns_frame(parts: Sequence[QuoteColumns]) -> pl.DataFrame:
    """Column batches (possibly of several venues) as one QUOTES frame: one concatenation per column.

    Each part brings its own ``exchange``, ``ts_recv`` and symbol table; the strings are gathered as Arrow views
    (:class:`_StringViews`), so no Python string is made per row, and the whole frame is one Arrow record batch
    handed to Polars at once (a Polars Series per column costs several times more at these sizes).
    """
    sizes = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    part_of_row = np.repeat(np.arange(len(parts), dtype=np.intp), sizes)

    def cat(name: str) -> npt.NDArray[Any]:
        arrays = [getattr(p, name) for p in parts]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    if len(parts) == 1:
        symbol_table, codes = _STRINGS.table(parts[0].symbols), parts[0].symbol_code
    else:
        tables = [_STRINGS.table(p.symbols) for p in parts]
        offsets = np.cumsum([0] + [len(t) for t in tables[:-1]])
        symbol_table, codes = np.concatenate(tables), cat("symbol_code") + offsets[part_of_row]
    if all(p.seq_valid is None for p in parts):
        seq = pa.array(cat("seq"), type=pa.int64())
    else:
        valid = [np.ones(len(p), dtype=np.bool_) if p.seq_valid is None else p.seq_valid for p in parts]
        seq = pa.array(cat("seq"), type=pa.int64(), mask=~np.concatenate(valid))
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(cat("ts_event"), type=pa.int64()),
            pa.array(np.array([p.ts_recv for p in parts], dtype=np.int64)[part_of_row], type=pa.int64()),
            _STRINGS.column(_STRINGS.table([p.exchange for p in parts]), part_of_row),
            _STRINGS.column(symbol_table, codes),
            pa.array(cat("bid"), type=pa.float64()),
            pa.array(cat("bid_size"), type=pa.float64()),
            pa.array(cat("ask"), type=pa.float64()),
            pa.array(cat("ask_size"), type=pa.float64()),
            seq,
            pa.array(cat("flags"), type=pa.uint16()),
        ],
        names=_QUOTE_NAMES,
    )
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _latest_per_key(frame: pl.DataFrame, keys: tuple[str, ...]) -> pl.DataFrame:
    """The last row of each key, in the order those rows arrived (so time order is kept)."""
    indexed = frame.with_row_index("__pos")
    last = indexed.group_by(list(keys)).agg(pl.col("__pos").max())
    return indexed.filter(pl.col("__pos").is_in(last.get_column("__pos").implode())).drop("__pos")


async def drive(
    queue: asyncio.Queue[FeedItem],
    batcher: MicroBatcher,
    on_batch: Callable[[Batch], Awaitable[None]],
    *,
    stop: asyncio.Event | None = None,
    clock: Callable[[], int] = time.monotonic_ns,
    busy: Callable[[], bool] | None = None,
) -> None:
    """Drain ``queue`` into ``batcher`` and await ``on_batch`` for every due batch, until ``stop`` is set.

    The queue is drained eagerly (everything available is added before the next poll), so a burst is batched
    rather than stepped row by row.  While ``busy()`` is true (the consumer is behind, e.g. its own queue is full)
    no batch is taken: rows keep accumulating and the batcher coalesces them, which is the backpressure policy.
    On stop the queue's remaining items are added and a final batch is flushed, so nothing received is lost.

    Parameters
    ----------
    queue
        ``(table, frame or row tuples)`` items put by the connector.
    batcher
        The core; its ``stats`` tell what happened.
    on_batch
        Awaited with each batch, in order.
    stop
        Set it to end the loop (the function returns after the final flush).
    clock
        Monotonic nanosecond clock (injectable for tests).
    busy
        Optional predicate: true while the consumer cannot take a batch.
    """
    stop = stop or asyncio.Event()
    idle_wait_s = 0.05
    while not stop.is_set():
        blocked = busy is not None and busy()
        if blocked or not batcher.ready(clock()):
            due = batcher.due_ns()
            timeout = idle_wait_s if due is None else max(due - clock(), 0) / 1e9
            if blocked:
                timeout = max(min(timeout, idle_wait_s), 0.0005)
            if timeout > 0:
                item = await next_item(queue, timeout)
                if item is not None:
                    batcher.add_item(item, clock())
            # while the consumer is busy drain everything (coalescing bounds memory); otherwise stop at a batch
            _drain(queue, batcher, clock, until_ready=not blocked)
        if busy is not None and busy():
            continue
        batch = batcher.poll(clock())
        if batch is not None:
            await on_batch(batch)
    _drain(queue, batcher, clock, until_ready=False)
    final = batcher.flush()
    if final is not None:
        await on_batch(final)


async def next_item(queue: asyncio.Queue[FeedItem], timeout: float) -> FeedItem | None:
    """The next queue item, or ``None`` after ``timeout`` seconds.

    ``asyncio.wait_for`` runs the get in a task of its own: an extra event-loop turn (a few hundred microseconds
    while the feeds are busy) between a connector's put and the batcher.  A timeout context awaits it in place;
    a get cancelled by the timeout leaves the item in the queue.
    """
    if not queue.empty():
        return queue.get_nowait()
    try:
        async with asyncio.timeout(timeout):
            return await queue.get()
    except TimeoutError:
        return None


def _drain(
    queue: asyncio.Queue[FeedItem], batcher: MicroBatcher, clock: Callable[[], int], *, until_ready: bool
) -> None:
    now = clock()
    limit = batcher.config.max_rows
    while not (until_ready and batcher.pending >= limit):
        try:
            item = queue.get_nowait()
        except asyncio.QueueEmpty:
            return
        batcher.add_item(item, now)
