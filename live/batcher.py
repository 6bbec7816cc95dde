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
import itertools
import operator
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from arbkit import schema
from arbkit.pipeline import TABLE_ORDER, Batch
from live._frame_kernels import fill_derived
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
    """Arrow ``string_view`` views of every exchange and symbol name seen, one row each, for the compiled gather.

    Polars stores strings as views; handing it Arrow ``string`` arrays (or gathering a Polars string Series)
    costs ~0.3 us per row in conversions, while a gathered view array is imported as it is.  A name of at most 12
    bytes is its own view; a longer one points into :attr:`data`, one buffer holding every long name seen so far.
    Names are only appended (a new long name makes a new, longer buffer; arrays already made keep the old one), so
    a name's row and view never change and a symbol list's rows are cached.
    """

    def __init__(self) -> None:
        self.data = pa.py_buffer(b"")
        self.views = np.zeros((0, 2), dtype=np.uint64)  # row -> 16-byte view, as two words
        self.row: dict[str, int] = {}
        self._long = bytearray()
        self._lists: dict[tuple[str, ...], npt.NDArray[np.int32]] = {}

    def rows(self, names: Sequence[str]) -> npt.NDArray[np.int32]:
        """``[len(names), row of names[0], row of names[1], ...]`` (cached per list: a venue's symbols)."""
        key = tuple(names)
        hit = self._lists.get(key)
        if hit is None:
            self.add(key)
            hit = np.fromiter(itertools.chain((len(key),), map(self.row.__getitem__, key)), np.int32, len(key) + 1)
            if len(self._lists) >= 4_096:
                self._lists.clear()
            self._lists[key] = hit
        return hit

    def add(self, names: Iterable[str]) -> None:
        """Give a row to the names not seen yet."""
        fresh = []
        for name in dict.fromkeys(names):
            if name in self.row:
                continue
            raw = name.encode()
            size = len(raw).to_bytes(4, "little")
            if len(raw) <= 12:
                fresh.append(size + raw.ljust(12, b"\0"))
            else:  # prefix, buffer 0, offset into it
                fresh.append(size + raw[:4] + bytes(4) + len(self._long).to_bytes(4, "little"))
                self._long += raw
            self.row[name] = len(self.row)
        if fresh:
            self.views = np.concatenate([self.views, np.frombuffer(b"".join(fresh), np.uint64).reshape(-1, 2)])
            if len(self._long) != self.data.size:
                self.data = pa.py_buffer(bytes(self._long))


_STRINGS = _StringViews()

# What _columns_frame reads of a part; the first eight are its per-row columns, joined in this order.
_PART = operator.attrgetter(
    "ts_event", "seq", "bid", "bid_size", "ask", "ask_size", "symbol_code", "flags",
    "seq_valid", "ts_recv", "exchange", "symbols",
)  # fmt: skip
_ROW_BYTES = 6 * 8 + 4 + 2
_JOIN_MAX = 1 << 22  # bytes: a larger block is concatenated by NumPy, which puts it on huge pages
_INT64, _FLOAT64, _UINT16, _VIEW = pa.int64(), pa.float64(), pa.uint16(), pa.string_view()
# QUOTES as the struct handed to Polars, its strings as views (Polars' own layout: imported without conversion)
_QUOTES_ARROW = pa.struct([(c.name, _VIEW if c.type == pa.string() else c.type) for c in schema.QUOTES.columns])


def _columns_frame(parts: Sequence[QuoteColumns]) -> pl.DataFrame:
    """Column batches (possibly of several venues) as one QUOTES frame, with no Python work per row.

    The parts' per-row columns are copied by one ``bytes.join`` (~15 ns per array; ``np.concatenate`` costs
    ~80 ns); a compiled kernel writes what is derived per part (``ts_recv``, the exchange and symbol names as
    Arrow string views of :class:`_StringViews`, the validity of ``seq``); and the frame is one Arrow struct
    array over those buffers, which Polars imports at once through the C data interface (less than half the
    cost of ``pl.from_arrow`` of a record batch).  The arrays are trusted to have the dtypes
    :class:`QuoteColumns` declares, as the parsers make them (checking each would cost a tenth of the call):
    one of another item size, or not contiguous, is converted first; one of the same size but another kind
    (``uint64`` for ``int64``) would be read as its bits.
    """
    if not parts:
        return _EMPTY["quotes"]
    ts_event, seq, bid, bid_size, ask, ask_size, codes, flags, valid, ts_recv, exchange, symbols = zip(
        *map(_PART, parts), strict=True
    )
    sizes = list(map(len, ts_event))
    n = sum(sizes)
    has_mask = list(map(operator.is_not, valid, itertools.repeat(None)))
    data: bytes | npt.NDArray[np.uint8] = b""
    masks = b""
    try:
        if n * _ROW_BYTES <= _JOIN_MAX:
            data = b"".join(ts_event + seq + bid + bid_size + ask + ask_size + codes + flags)
        else:  # faulting in huge pages is ~4x faster than bytes.join's
            data = np.empty(n * _ROW_BYTES, dtype=np.uint8)
            np.concatenate(ts_event + seq, out=data[: 16 * n].view(np.int64))
            np.concatenate(bid + bid_size + ask + ask_size, out=data[16 * n : 48 * n].view(np.float64))
            np.concatenate(codes, out=data[48 * n : 52 * n].view(np.int32))
            np.concatenate(flags, out=data[52 * n :].view(np.uint16))
            data.flags.writeable = False  # like bytes: one compiled signature for the kernel's view of the codes
        if any(has_mask):
            masks = b"".join([v for v in valid if v is not None])
    except TypeError:  # an array that is not contiguous (join) or does not cast (concatenate)
        data = b""
    if len(data) != n * _ROW_BYTES or len(masks) != sum(itertools.compress(sizes, has_mask)):
        if all(map(_is_exact, parts)):
            raise ValueError("column batch arrays must be one-dimensional, as long as ts_event")
        return _columns_frame(list(map(_exact, parts)))  # an array of another dtype than QuoteColumns declares

    strings = _STRINGS
    ids = list(map(id, symbols))
    remaps = []
    at: dict[int, int] = {}
    size = 0
    for key, symbol_list in dict(zip(ids, symbols, strict=True)).items():  # a venue's parts share one list
        rows = strings.rows(symbol_list)
        at[key] = size
        size += len(rows)
        remaps.append(rows)
    if not strings.row.keys() >= set(exchange):
        strings.add(exchange)
    meta = np.fromiter(
        itertools.chain(sizes, ts_recv, map(at.__getitem__, ids), map(strings.row.__getitem__, exchange), has_mask),
        dtype=np.int64,
        count=5 * len(parts),
    ).reshape(5, -1)
    out_ts_recv = np.empty(n, dtype=np.int64)
    out_exchange = np.empty((n, 2), dtype=np.uint64)
    out_symbol = np.empty((n, 2), dtype=np.uint64)
    validity = np.empty((n + 7) // 8 if masks else 0, dtype=np.uint8)
    nulls = fill_derived(
        meta,
        np.frombuffer(data, dtype=np.int32, count=n, offset=48 * n),
        np.concatenate(remaps) if len(remaps) > 1 else remaps[0],
        strings.views,
        np.frombuffer(masks, dtype=np.bool_),
        out_ts_recv,
        out_exchange,
        out_symbol,
        validity,
    )
    if nulls < 0:
        raise IndexError("symbol code outside its part's symbol list")

    block = pa.py_buffer(data)

    def column(kind: pa.DataType, at: int, width: int) -> pa.Array:
        return pa.Array.from_buffers(kind, n, [None, block.slice(at * n, width * n)])

    def text(views: npt.NDArray[np.uint64]) -> pa.Array:
        return pa.Array.from_buffers(_VIEW, n, [None, pa.py_buffer(views), strings.data])

    seq_validity = pa.py_buffer(validity) if masks else None
    struct = pa.Array.from_buffers(
        _QUOTES_ARROW,
        n,
        [None],
        children=[  # in QUOTES' order
            column(_INT64, 0, 8),
            pa.Array.from_buffers(_INT64, n, [None, pa.py_buffer(out_ts_recv)]),
            text(out_exchange),
            text(out_symbol),
            column(_FLOAT64, 16, 8),
            column(_FLOAT64, 24, 8),
            column(_FLOAT64, 32, 8),
            column(_FLOAT64, 40, 8),
            pa.Array.from_buffers(_INT64, n, [seq_validity, block.slice(8 * n, 8 * n)], null_count=nulls),
            column(_UINT16, 52, 2),
        ],
    )
    return pl.DataFrame(struct)


_DECLARED: tuple[tuple[str, type[np.generic]], ...] = (
    *(("ts_event", np.int64), ("seq", np.int64), ("symbol_code", np.int32), ("flags", np.uint16)),
    *((name, np.float64) for name in ("bid", "bid_size", "ask", "ask_size")),
)


def _is_exact(part: QuoteColumns) -> bool:
    """True when ``part``'s arrays are contiguous and of the dtypes :class:`QuoteColumns` declares."""
    arrays: list[tuple[npt.NDArray[Any], type[np.generic]]] = [(getattr(part, n), t) for n, t in _DECLARED]
    if part.seq_valid is not None:
        arrays.append((part.seq_valid, np.bool_))
    return all(a.dtype == dtype and a.flags.c_contiguous for a, dtype in arrays)


def _exact(part: QuoteColumns) -> QuoteColumns:
    """``part`` with contiguous arrays of the dtypes :class:`QuoteColumns` declares (copied where they differ)."""
    cast = {name: np.ascontiguousarray(getattr(part, name), dtype=dtype) for name, dtype in _DECLARED}
    valid = None if part.seq_valid is None else np.ascontiguousarray(part.seq_valid, dtype=np.bool_)
    return QuoteColumns(
        part.exchange, part.ts_recv, cast["ts_event"], cast["symbol_code"], part.symbols, cast["bid"],
        cast["bid_size"], cast["ask"], cast["ask_size"], cast["seq"], valid, cast["flags"],
    )  # fmt: skip


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
