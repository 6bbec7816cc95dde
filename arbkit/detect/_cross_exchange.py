"""Cross-exchange arbitrage: buy an instrument at the ask on one venue, sell it at the bid on another.

For every row of an instrument's timeline (its quote updates, all venues merged) and every ordered venue pair
``(A, B)`` whose as-of quotes are usable (the rules of :mod:`arbkit.align`), the profit per unit, net of taker
fees from the instrument registry, is::

    profit_per_unit = (bid_B - ask_A) - fee_A * ask_A - fee_B * bid_B

and the size is limited by the displayed sizes and the notional cap, then rounded down to the coarser of the two
lot sizes::

    size = floor_lot(min(ask_size_A, bid_size_B, max_notional / ask_A))

A row is an *event* when ``profit_per_unit > 0``, ``size * ask_A`` reaches both venues' ``min_notional`` and
``profit = profit_per_unit * size >= min_profit``.

Book depth: when the batch carries ``book`` rows (or the state holds snapshots), a leg whose latest usable
snapshot visible at the row (:mod:`arbkit.detect._depth`: clock strictly before the row, carried in state) is at
least as recent as its quote walks that snapshot's levels; a leg without one walks its top of book.  The size is
then the joint walk's profit-maximizing one (marginal profit of the next unit ``sell level * (1 - fee_B) - buy
level * (1 + fee_A)`` while positive, ``max_notional`` on the buy notional, the coarser lot, both venues'
``min_notional``) and ``profit`` its exact net profit; ``buy_price``/``sell_price`` stay the quoted top of book
and the legs carry the average fill prices.

Speed: the detector is one compiled pass over the rows (:mod:`arbkit.detect._cross_kernels`): venue and symbol
strings become integer codes (:mod:`arbkit._intern`, zero-copy for short names), each row replaces its
``(symbol, venue)`` cell in dense carried arrays, and the ordered venue pairs of the row's symbol are evaluated
on the cells, each dropped at its first failing test.  Rows need only be in clock order per
symbol, so a store file sorted by symbol then time is scanned chunk by chunk, zero-copy, without a global sort;
other input is put in canonical order first.  Symbols share nothing, so a big batch (``_PARALLEL_ROWS``) has its
two string columns coded, then its rows scanned, by two threads at once (the kernels release the GIL; each scan
thread owns a range of symbols, and the hits are merged back into row order).  Hits (row, buy venue, sell venue)
are priced column-wise (book walk, confidence) and folded into the open episodes by a second compiled pass;
strings are made only for the episodes that close, and many closed episodes get their ids from one compiled
SHA-1 pass (:mod:`arbkit.detect._ids`).

Events merge into episodes keyed by ``(symbol, buy venue, sell venue)`` on the instrument's timeline, with the
rules of :mod:`arbkit.detect._episodes` (a run of consecutive timeline rows; closed once the timeline moves past
it; peak and row count order-free, so results are bit-identical however the input was split).

Integrity: a pair is evaluated only on usable quotes.  Where it *would* be profitable on quotes that are present
but stale, or flagged/invalid, the state counts a suppression (``suppressed_stale``, ``suppressed_flagged``);
rejected rows are counted by reason (:data:`arbkit.align.REASONS`).  Sizes are in units of the instrument's
base (linear instruments); ``profit_percentage`` is profit over the cost of the buy leg including its fee.

Examples
--------
>>> import polars as pl
>>> q = pl.DataFrame({
...     "ts_event": [1, 2, 3], "ts_recv": [1, 2, 3], "exchange": ["binance", "okx", "okx"],
...     "symbol": ["BTC/USDT"] * 3, "bid": [60_000.0, 60_300.0, 60_000.0], "bid_size": [1.0] * 3,
...     "ask": [60_010.0, 60_310.0, 60_010.0], "ask_size": [1.0] * 3})
>>> params = CrossExchangeParams(max_notional=60_010.0)
>>> out, state = detect_cross_exchange(q, CrossExchangeState.empty(), params)
>>> out.select("buy_exchange", "sell_exchange", "size", "rows", "status").rows()
[('binance', 'okx', 1.0, 1, 'expired')]
>>> round(out["profit"][0], 2)  # 60300 - 60010 - 0.001 * 60010 - 0.001 * 60300
169.69
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit import schema
from arbkit._intern import sorted_codes
from arbkit.align import REASONS, Clock, _known, _memo, max_age_ns
from arbkit.detect import _cross_kernels as kernels
from arbkit.detect._confidence import persistence
from arbkit.detect._depth import BookState, book_as_of, joint_walk, ladder_fill, update_books
from arbkit.detect._episodes import _FEW as _POLARS_SORTED
from arbkit.detect._episodes import episode_id
from arbkit.detect._ids import episode_values, hex_strings, start_id_order
from arbkit.instruments import Registry, UnknownInstrumentError, default_registry
from arbkit.schema import QuoteFlag

__all__ = ["CrossExchangeParams", "CrossExchangeState", "detect_cross_exchange", "finish_cross_exchange"]

KIND = "cross_exchange"
_F = npt.NDArray[np.float64]
_I = npt.NDArray[np.int64]
_NS_PER_MS = 1e6


@dataclass(frozen=True)
class CrossExchangeParams:
    """Parameters of the cross-exchange detector (all optional).

    Attributes
    ----------
    min_profit
        Smallest net profit (quote currency, at the computed size) worth reporting.  Default 0: anything above
        fees.
    max_notional
        Cap on the buy leg's notional (quote currency).  Default 10,000.
    max_age_ms
        Override of the venues' max quote age (one value or per venue); default: registry profiles.
    clock
        ``"ts_recv"`` (default) or ``"ts_event"``.
    taker_fees
        Per-venue taker fee overrides (fraction of notional), e.g. a VIP tier; default: registry.
    registry
        Instrument registry (fees, lots, min notional, latency, max age).
    """

    min_profit: float = 0.0
    max_notional: float = 10_000.0
    max_age_ms: float | Mapping[str, float] | None = None
    clock: Clock = "ts_recv"
    taker_fees: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    registry: Registry = field(default_factory=default_registry)


_CELL_FLOATS = ("bid", "ask", "bid_size", "ask_size")


@dataclass(frozen=True)
class QuoteCells:
    """The latest row of every ``(symbol, venue)`` cell, whatever its quality, as ``(symbols, venues)`` arrays.

    ``time`` is the chosen clock (-1: no quote yet), ``reason`` the row's :class:`arbkit.align.Reason` code (255:
    no quote yet); prices and sizes are NaN where there is no quote.
    """

    bid: _F
    ask: _F
    bid_size: _F
    ask_size: _F
    time: _I
    flags: _I
    reason: npt.NDArray[np.uint8]

    @classmethod
    def empty(cls, n_sym: int, n_ven: int) -> QuoteCells:
        shape = (n_sym, n_ven)
        nan = np.full(shape, np.nan)
        return cls(nan, nan.copy(), nan.copy(), nan.copy(), np.full(shape, -1, dtype=np.int64),
                   np.zeros(shape, dtype=np.int64), np.full(shape, 255, dtype=np.uint8))  # fmt: skip


@dataclass(frozen=True)
class CrossExchangeState:
    """Everything a step carries, on sorted ``symbols`` x ``venues`` grids (grown as new names appear).

    ``cells`` holds the latest quote per cell, ``next_seq`` every symbol timeline's row counter, ``open_i`` /
    ``open_f`` the open episode of every candidate ``(symbol, buy venue, sell venue)`` (flattened; columns
    :data:`~arbkit.detect._cross_kernels.OPEN_I` / ``OPEN_F``, ``rows == 0`` where none is open), ``counters``
    the rejected rows by reason and the suppressed candidates, ``book`` the latest book snapshots.
    """

    symbols: tuple[str, ...]
    venues: tuple[str, ...]
    cells: QuoteCells
    next_seq: _I
    open_i: _I
    open_f: _F
    counters: Mapping[str, int]
    book: BookState = field(default_factory=BookState.empty)

    @classmethod
    def empty(cls) -> CrossExchangeState:
        return cls((), (), QuoteCells.empty(0, 0), np.zeros(0, dtype=np.int64), *_open_arrays(0), {}, BookState.empty())

    def latest_quotes(self) -> pl.DataFrame:
        """The carried latest quotes as a frame (``exchange, symbol, bid, bid_size, ask, ask_size, time, flags,
        reason``), one row per cell that has seen a row, sorted by exchange then symbol."""
        s, v = np.nonzero(self.cells.time.T >= 0)[::-1]
        order = np.lexsort((s, v))
        s, v = s[order], v[order]
        c = self.cells
        return pl.DataFrame(
            {
                "exchange": [self.venues[i] for i in v.tolist()],
                "symbol": [self.symbols[i] for i in s.tolist()],
                "bid": c.bid[s, v], "bid_size": c.bid_size[s, v], "ask": c.ask[s, v], "ask_size": c.ask_size[s, v],
                "time": c.time[s, v], "flags": c.flags[s, v].astype(np.uint16), "reason": c.reason[s, v],
            },
        )  # fmt: skip


def _open_arrays(n_candidates: int) -> tuple[_I, _F]:
    return (
        np.zeros((n_candidates, len(kernels.OPEN_I)), dtype=np.int64),
        np.full((n_candidates, len(kernels.OPEN_F)), np.nan),
    )


def _grown(state: CrossExchangeState, symbols: tuple[str, ...], venues: tuple[str, ...]) -> CrossExchangeState:
    """A copy of ``state`` on the grids ``symbols`` x ``venues`` (supersets of the state's, sorted): the kernels
    update their inputs in place, so the caller's state is never touched."""
    c = state.cells
    if symbols == state.symbols and venues == state.venues:
        cells = QuoteCells(*(np.array(getattr(c, f)) for f in QuoteCells.__dataclass_fields__))
        return CrossExchangeState(symbols, venues, cells, state.next_seq.copy(), state.open_i.copy(),
                                  state.open_f.copy(), state.counters, state.book)  # fmt: skip
    n_sym, n_ven = len(symbols), len(venues)
    s_at = np.array([symbols.index(x) for x in state.symbols], dtype=np.int64)
    v_at = np.array([venues.index(x) for x in state.venues], dtype=np.int64)
    cells = QuoteCells.empty(n_sym, n_ven)
    for name in QuoteCells.__dataclass_fields__:
        getattr(cells, name)[np.ix_(s_at, v_at)] = getattr(c, name)
    next_seq = np.zeros(n_sym, dtype=np.int64)
    next_seq[s_at] = state.next_seq
    open_i, open_f = _open_arrays(n_sym * n_ven * n_ven)
    old = (len(state.symbols), len(state.venues), len(state.venues))
    grid = np.ix_(s_at, v_at, v_at)
    open_i.reshape(n_sym, n_ven, n_ven, -1)[grid] = state.open_i.reshape(*old, len(kernels.OPEN_I))
    open_f.reshape(n_sym, n_ven, n_ven, -1)[grid] = state.open_f.reshape(*old, len(kernels.OPEN_F))
    return CrossExchangeState(symbols, venues, cells, next_seq, open_i, open_f, state.counters, state.book)


_EMPTY_OPPORTUNITIES = schema.empty(schema.OPPORTUNITIES)


def _add(counters: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    out = dict(counters)
    for k, v in more.items():
        if v:
            out[k] = out.get(k, 0) + int(v)
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class _Tables:
    """Per (symbol, venue): taker fee, lot size, min notional (NaN where not listed), registry membership; per
    venue: max age (ns) and latency (ms)."""

    fee: _F
    lot: _F
    min_notional: _F
    known: npt.NDArray[np.bool_]
    limit: _I
    latency: _F


def _tables(symbols: tuple[str, ...], venues: tuple[str, ...], params: CrossExchangeParams) -> _Tables:
    memo = _memo(params.registry)
    override = params.max_age_ms if not isinstance(params.max_age_ms, Mapping) else tuple(params.max_age_ms.items())
    key = ("cross_exchange.tables", symbols, venues, tuple(sorted(params.taker_fees.items())), override)
    cached = memo.get(key)
    if cached is not None:
        return cast(_Tables, cached)
    shape = (len(symbols), len(venues))
    fee, lot, min_notional = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    known = np.zeros(shape, dtype=np.bool_)
    for s, symbol in enumerate(symbols):
        for v, venue in enumerate(venues):
            known[s, v] = _known(params.registry, venue, symbol)
            try:
                inst = params.registry.get(venue, symbol)
            except UnknownInstrumentError:
                continue
            fee[s, v] = params.taker_fees.get(venue, inst.taker_fee)
            lot[s, v] = inst.lot_size
            min_notional[s, v] = inst.min_notional
    registry = params.registry
    latency = np.array([registry.profile(v).latency_ms if v in registry.profiles else 0.0 for v in venues])
    tables = _Tables(fee, lot, min_notional, known, max_age_ns(venues, registry, params.max_age_ms), latency)
    memo[key] = tables
    return tables


def _float(series: pl.Series) -> _F:
    if series.dtype == pl.Float64 and series.null_count() == 0:
        values: _F = series.to_numpy()  # zero-copy for one chunk
        return values
    converted: _F = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
    return converted


def _int(series: pl.Series, dtype: pl.DataType | type[pl.DataType] = pl.Int64) -> npt.NDArray[Any]:
    """``cast(dtype).fill_null(0)`` as NumPy, without the cast or fill (Polars calls) when they change nothing."""
    if series.dtype != dtype:
        series = series.cast(dtype)
    if series.null_count():
        series = series.fill_null(0)
    return series.to_numpy()


@dataclass(frozen=True)
class _Chunk:
    """One slice of the batch's columns as NumPy arrays (zero-copy where the slice lies in one Polars chunk)."""

    offset: int
    clock: _I
    bid: _F
    ask: _F
    bid_size: _F
    ask_size: _F
    flags: npt.NDArray[np.uint16]

    @classmethod
    def of(cls, quotes: pl.DataFrame, clock: str, offset: int, length: int) -> _Chunk:
        part = quotes.slice(offset, length) if (offset, length) != (0, quotes.height) else quotes
        flags = (
            _int(part.get_column("flags"), pl.UInt16) if "flags" in part.columns else np.zeros(part.height, np.uint16)
        )
        bid, ask, bid_size, ask_size = (_float(part.get_column(n)) for n in _CELL_FLOATS)
        return cls(offset, _int(part.get_column(clock)), bid, ask, bid_size, ask_size, flags)

    @classmethod
    def concat(cls, chunks: list[_Chunk]) -> _Chunk:
        if len(chunks) == 1:
            return chunks[0]
        return cls(0, *(np.concatenate([getattr(c, f) for c in chunks]) for f in ("clock", *_CELL_FLOATS, "flags")))


def _chunk_bounds(quotes: pl.DataFrame) -> list[tuple[int, int]]:
    """``(offset, length)`` of the slices to scan: the Polars chunks of the price column (or the whole batch)."""
    lengths = quotes.get_column("bid").chunk_lengths()
    if len(lengths) <= 1:
        return [(0, quotes.height)]
    offsets = np.cumsum([0, *lengths[:-1]]).tolist()
    return list(zip(offsets, lengths, strict=True))


def detect_cross_exchange(
    quotes: pl.DataFrame, state: CrossExchangeState, params: CrossExchangeParams, book: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, CrossExchangeState]:
    """One step of the cross-exchange detector over a batch of quotes.

    Parameters
    ----------
    quotes
        Rows of the ``quotes`` table, any order (each symbol's rows are taken in canonical clock order); may
        contain bad rows, which are counted and never used.
    state
        Carried :class:`CrossExchangeState` (``CrossExchangeState.empty()`` to start).
    params
        :class:`CrossExchangeParams`.
    book
        Rows of the ``book`` table of the same batch (optional).  Where a leg has a usable snapshot at least as
        recent as its quote, the size is the joint depth walk's (:mod:`arbkit.detect._depth`).

    Returns
    -------
    tuple[pl.DataFrame, CrossExchangeState]
        Episodes that closed in this batch (:data:`arbkit.schema.OPPORTUNITIES`, status ``"expired"``) and the
        next state.  Call :func:`finish_cross_exchange` at the end of a run for the open ones.
    """
    batch_book = book if book is not None else _NO_BOOK
    if quotes.height == 0:
        if batch_book.height == 0:
            return _EMPTY_OPPORTUNITIES.clear(), state
        return _EMPTY_OPPORTUNITIES.clear(), _with_book(state, update_books(state.book, batch_book, params.clock))
    exchange, symbol = quotes.get_column("exchange"), quotes.get_column("symbol")
    if quotes.height >= _PARALLEL_ROWS and _CPUS > 1:  # the two columns coded at once (compiled, nogil)
        coded = _pool().submit(sorted_codes, exchange, state.venues)
        symbols, sym = sorted_codes(symbol, state.symbols)
        venues, ven = coded.result()
    else:
        venues, ven = sorted_codes(exchange, state.venues)
        symbols, sym = sorted_codes(symbol, state.symbols)
    tables = _tables(symbols, venues, params)
    chunks = [_Chunk.of(quotes, params.clock, o, n) for o, n in _chunk_bounds(quotes)]
    # Input order first (store files, live batches: each symbol's clock already non-decreasing); the scan gives
    # up at the first row out of order, and the batch is then scanned again in canonical order.
    scanned = _scan(state, symbols, venues, sym, ven, tables, params, [(c, _IN_ORDER) for c in chunks])
    if scanned is None:
        whole = _Chunk.concat(chunks)
        plan = [(whole, np.argsort(whole.clock, kind="stable").astype(np.int64))]
        scanned = _scan(state, symbols, venues, sym, ven, tables, params, plan)
        assert scanned is not None
    work, reasons, suppressed, parts_i, parts_f = scanned
    cells = work.cells
    counters = {REASONS[i]: int(c) for i, c in enumerate(reasons) if i > 0 and c}
    counters |= {"suppressed_stale": int(suppressed[0]), "suppressed_flagged": int(suppressed[1])}
    new_book = update_books(state.book, batch_book, params.clock) if batch_book.height else state.book
    closed = _EMPTY_OPPORTUNITIES.clear()
    if parts_i or (work.open_i[:, 4] > 0).any():
        hit_i = _stack(parts_i, (0, len(kernels.HIT_I)), np.int64)
        hit_f = _stack(parts_f, (0, len(kernels.HIT_F)), np.float64)
        walk = _NO_WALK
        if hit_i.shape[0] and (state.book.frame.height or batch_book.height):
            walk = _walk_books(work, params, (state.book, batch_book), sym, hit_i, hit_f, tables)
        n, candidate, ints, floats = kernels.fold(
            hit_i, hit_f, walk, sym, len(venues), tables.latency, tables.limit / _NS_PER_MS, float(params.min_profit),
            work.open_i, work.open_f, work.next_seq,
        )  # fmt: skip
        if n:
            closed = _episodes(work, candidate[:n], ints[:n], floats[:n], "expired")
    next_state = CrossExchangeState(
        symbols, venues, cells, work.next_seq, work.open_i, work.open_f, _add(state.counters, counters), new_book
    )
    return closed, next_state


_NO_WALK = np.zeros((0, 7))
_NO_BOOK = pl.DataFrame()
_IN_ORDER = np.zeros(0, dtype=np.int64)
_BLOCKING = QuoteFlag.blocking()
_I64_MIN = np.iinfo(np.int64).min


def _scan(
    state: CrossExchangeState,
    symbols: tuple[str, ...],
    venues: tuple[str, ...],
    sym: npt.NDArray[np.int32],
    ven: npt.NDArray[np.int32],
    tables: _Tables,
    params: CrossExchangeParams,
    plan: list[tuple[_Chunk, _I]],
) -> tuple[CrossExchangeState, _I, _I, list[_I], list[_F]] | None:
    """Run the compiled scan over ``plan`` on a fresh working copy of ``state``; ``None`` if a chunk given in
    input order turned out not to be in clock order per symbol.

    A big batch in input order is scanned by two threads at once, each owning a contiguous range of symbols with
    about half the rows (the kernel releases the GIL); their hits are merged back into row order, so the result
    is the one-thread scan's.
    """
    work = _grown(state, symbols, venues)
    in_order = all(order.size == 0 for _, order in plan)
    split = in_order and len(symbols) > 1 and sym.size >= _PARALLEL_ROWS and _CPUS > 1
    owner = _halves(sym, len(symbols)) if split else np.zeros(len(symbols), dtype=np.int8)

    def part(me: int, cells: QuoteCells, next_seq: _I) -> tuple[_I, _I, list[_I], list[_F]] | None:
        # Counters padded apart: the two threads' arrays must not share a cache line.
        reasons = np.zeros(64, dtype=np.int64)[: len(REASONS)]
        suppressed = np.zeros(64, dtype=np.int64)[:2]
        last_clock = np.full(len(symbols), _I64_MIN, dtype=np.int64)
        parts_i, parts_f = [], []
        for chunk, order in plan:
            rows = slice(chunk.offset, chunk.offset + chunk.clock.size)
            n_hits, hit_i, hit_f = kernels.scan(
                order, sym[rows], ven[rows], owner, me,
                chunk.clock, chunk.bid, chunk.ask, chunk.bid_size, chunk.ask_size, chunk.flags, chunk.offset,
                _BLOCKING, tables.known, tables.fee, tables.lot, tables.min_notional, tables.limit,
                float(params.max_notional), float(params.min_profit), cells.bid, cells.ask, cells.bid_size,
                cells.ask_size, cells.time, cells.flags, cells.reason, next_seq, reasons, suppressed, last_clock,
            )  # fmt: skip
            if n_hits < 0:
                return None
            if n_hits:
                parts_i.append(hit_i[:n_hits])
                parts_f.append(hit_f[:n_hits])
        return reasons, suppressed, parts_i, parts_f

    if not split:
        alone = part(0, work.cells, work.next_seq)
        return None if alone is None else (work, *alone)
    # The second thread updates private copies of the carried arrays (the cells of neighbouring symbols share
    # cache lines: writing them from two cores at once costs more than the second core gains), copied back after.
    cells_1 = QuoteCells(*(np.array(getattr(work.cells, f)) for f in _CELL_FIELDS))
    next_seq_1 = work.next_seq.copy()
    second = _pool().submit(part, 1, cells_1, next_seq_1)
    first = part(0, work.cells, work.next_seq)
    other = second.result()
    if first is None or other is None:
        return None
    mine = owner == 1
    for name in _CELL_FIELDS:
        getattr(work.cells, name)[mine] = getattr(cells_1, name)[mine]
    work.next_seq[mine] = next_seq_1[mine]
    parts_i, parts_f = first[2] + other[2], first[3] + other[3]
    if first[2] and other[2]:
        hit_i, hit_f = np.concatenate(parts_i), np.concatenate(parts_f)
        by_row = np.argsort(hit_i[:, 0], kind="stable")  # two sorted runs: a linear merge
        parts_i, parts_f = [hit_i[by_row]], [hit_f[by_row]]
    return work, first[0] + other[0], first[1] + other[1], parts_i, parts_f


_CELL_FIELDS = tuple(QuoteCells.__dataclass_fields__)
#: Below this many rows a batch is scanned by one thread (handing work to another costs ~0.1 ms).
_PARALLEL_ROWS = 1 << 19
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    """The helper thread's pool, made on first use (a forked child makes its own: the parent's thread is not
    there)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="arbkit-cross"))
    return _POOL[0]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOL.clear)


def _halves(sym: npt.NDArray[np.int32], n_sym: int) -> npt.NDArray[np.int8]:
    """Owner (0 or 1) of every symbol code: two contiguous ranges with about half the rows each (from a sample)."""
    counts = np.cumsum(np.bincount(sym[:: max(1, sym.size // 65_536)], minlength=n_sym))
    cut = min(max(int(np.searchsorted(counts, counts[-1] / 2)) + 1, 1), n_sym - 1)
    return (np.arange(n_sym) >= cut).astype(np.int8)


def _stack(parts: list[npt.NDArray[Any]], empty: tuple[int, int], dtype: type) -> npt.NDArray[Any]:
    if not parts:
        return np.zeros(empty, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _with_book(state: CrossExchangeState, book: BookState) -> CrossExchangeState:
    return CrossExchangeState(state.symbols, state.venues, state.cells, state.next_seq, state.open_i, state.open_f,
                              state.counters, book)  # fmt: skip


def _episodes(state: CrossExchangeState, candidate: _I, ints: _I, floats: _F, status: str) -> pl.DataFrame:
    """Episodes from candidate ids and OPEN_I/OPEN_F rows: strings are made here, once per episode."""
    n_ven = len(state.venues)
    f = {name: floats[:, j] for j, name in enumerate(kernels.OPEN_F)}
    i = {name: ints[:, j] for j, name in enumerate(kernels.OPEN_I)}
    if candidate.size <= _FEW_EPISODES:
        sym, rest = np.divmod(candidate, n_ven * n_ven)
        buy, sell = np.divmod(rest, n_ven)
        symbol = [state.symbols[k] for k in sym.tolist()]
        buy_ex = [state.venues[k] for k in buy.tolist()]
        sell_ex = [state.venues[k] for k in sell.tolist()]
        return _few_episodes(symbol, buy_ex, sell_ex, f, i, status)
    return _many_episodes(state, candidate, f, i, status)


def _many_episodes(
    state: CrossExchangeState, candidate: _I, f: Mapping[str, _F], i: Mapping[str, _I], status: str
) -> pl.DataFrame:
    """:func:`_episodes` column-wise, equal to :func:`~arbkit.detect._episodes.to_opportunities` of the episode
    frame: ids hashed in one compiled call (:mod:`arbkit.detect._ids`), rows put in ``(ts_start, id)`` order by
    NumPy on the ids' 64-bit values (Polars sorts only when two rows tie on both, to keep its order of ties)."""
    n_ven = len(state.venues)
    present, which = np.unique(candidate, return_inverse=True)
    keys = []
    for c in present.tolist():
        s, rest = divmod(c, n_ven * n_ven)
        keys.append(f"{state.symbols[s]}|{state.venues[rest // n_ven]}|{state.venues[rest % n_ven]}")
    ts_start = i["ts_start"]
    values = episode_values(KIND, keys, which.astype(np.int64), ts_start)
    order = start_id_order(ts_start, values)
    ordered = ts_start[order], values[order]
    # np.lexsort is stable, like the shared builder's sort of a few episodes; beyond, that builder sorts with
    # Polars, whose order of ties this reproduces by sorting the same frame.
    ties = candidate.size > _POLARS_SORTED and bool(
        ((ordered[0][1:] == ordered[0][:-1]) & (ordered[1][1:] == ordered[1][:-1])).any()
    )
    if ties:
        order = np.arange(candidate.size)
    n = order.size
    sym, rest = np.divmod(candidate[order], n_ven * n_ven)
    buy, sell = np.divmod(rest, n_ven)
    symbols = pl.Series(state.symbols, dtype=pl.String)
    venues = pl.Series(state.venues, dtype=pl.String)
    symbol = symbols.gather(sym)
    pair = np.repeat(order, 2)
    is_sell = np.tile(np.array([False, True]), n)
    size = f["size"][order]
    long = pl.DataFrame(
        [
            venues.gather(np.column_stack([buy, sell]).ravel()).alias("exchange"),
            symbols.gather(np.repeat(sym, 2)).alias("symbol"),
            _SIDES.gather(np.arange(2 * n) % 2),
            pl.Series("price", np.where(is_sell, f["sell_fill"][pair], f["buy_fill"][pair]), dtype=pl.Float64),
            pl.Series("size", np.repeat(size, 2), dtype=pl.Float64),
        ]
    )
    confidence = np.clip(f["confidence"][order] * persistence(i["rows"][order]), 0.0, 1.0)
    frame = pl.DataFrame(
        [
            hex_strings(values[order]),
            _constant("kind", KIND, n),
            *[pl.Series(name, i[name][order], dtype=pl.Int64) for name in ("ts_start", "ts_end")],
            symbol.alias("symbol"),
            long.to_struct("legs").reshape((n, 2)).cast(_LEGS),
            venues.gather(buy).alias("buy_exchange"),
            venues.gather(sell).alias("sell_exchange"),
            *[
                pl.Series(name, f[name][order], dtype=pl.Float64)
                for name in ("buy_price", "sell_price", "size", "profit", "peak_profit", "profit_percentage")
            ],
            pl.Series("confidence", confidence, dtype=pl.Float64),
            pl.Series("rows", i["rows"][order], dtype=pl.Int64),
            _constant("status", status, n),
        ]
    )
    return frame.sort("ts_start", "id") if ties else frame


_SIDES = pl.Series("side", ["buy", "sell"], dtype=pl.String)


def _constant(name: str, value: str, n: int) -> pl.Series:
    return pl.Series(name, [value], dtype=pl.String).new_from_index(0, n)


#: Up to this many episodes (a live micro-batch closes a handful) the frame is built from Python dicts in one
#: Polars call, already sorted by ``(ts_start, id)``; the column-wise build above costs ~30 Polars calls.
_FEW_EPISODES = 256


def _few_episodes(
    symbol: list[str], buy_ex: list[str], sell_ex: list[str], f: Mapping[str, _F], i: Mapping[str, _I], status: str
) -> pl.DataFrame:
    """:func:`_episodes` for a few episodes: same values as :func:`~arbkit.detect._episodes.to_opportunities`."""
    ts_start = i["ts_start"].tolist()
    ids = [episode_id(KIND, f"{s}|{b}|{a}", t) for s, b, a, t in zip(symbol, buy_ex, sell_ex, ts_start, strict=True)]
    confidence = np.clip(f["confidence"] * persistence(i["rows"]), 0.0, 1.0).tolist()
    ts_end, rows = i["ts_end"].tolist(), i["rows"].tolist()
    buy_price, sell_price, size = f["buy_price"].tolist(), f["sell_price"].tolist(), f["size"].tolist()
    buy_fill, sell_fill = f["buy_fill"].tolist(), f["sell_fill"].tolist()
    profit, peak, pct = f["profit"].tolist(), f["peak_profit"].tolist(), f["profit_percentage"].tolist()
    out = []
    for k in sorted(range(len(ids)), key=lambda k: (ts_start[k], ids[k])):
        legs = [
            {"exchange": buy_ex[k], "symbol": symbol[k], "side": "buy", "price": buy_fill[k], "size": size[k]},
            {"exchange": sell_ex[k], "symbol": symbol[k], "side": "sell", "price": sell_fill[k], "size": size[k]},
        ]
        out.append(
            {"id": ids[k], "kind": KIND, "ts_start": ts_start[k], "ts_end": ts_end[k], "symbol": symbol[k],
             "legs": legs, "buy_exchange": buy_ex[k], "sell_exchange": sell_ex[k], "buy_price": buy_price[k],
             "sell_price": sell_price[k], "size": size[k], "profit": profit[k], "peak_profit": peak[k],
             "profit_percentage": pct[k], "confidence": confidence[k], "rows": rows[k], "status": status}
        )  # fmt: skip
    return pl.from_dicts(out, schema=_OPPORTUNITY_SCHEMA)


_OPPORTUNITY_SCHEMA = schema.OPPORTUNITIES.polars
_LEGS = schema.OPPORTUNITIES.polars["legs"]


def _walk_books(
    state: CrossExchangeState,
    params: CrossExchangeParams,
    books: tuple[BookState, pl.DataFrame],
    sym_codes: npt.NDArray[np.int32],
    hit_i: _I,
    hit_f: _F,
    tables: _Tables,
) -> _F:
    """Joint depth walk for the hits where a leg has a usable book snapshot at least as recent as its quote.

    A leg without such a snapshot walks its top of book (one level: the quote's price and displayed size).
    Returns :data:`_NO_WALK` when no hit has a book, else one row per hit: ``(use, size, profit, cost, proceeds,
    buy depth, sell depth)``.
    """
    sym = sym_codes[hit_i[:, 0]].astype(np.int64)
    time, buy, sell, buy_time, sell_time = (hit_i[:, j] for j in range(2, 7))
    ask, bid, ask_size, bid_size, _, _, buy_fee, sell_fee = (hit_f[:, j] for j in range(8))
    n = sym.size
    symbols = pl.Series(state.symbols, dtype=pl.String).gather(sym)
    venues = pl.Series(state.venues, dtype=pl.String)
    book_state, batch_book = books
    # One as-of lookup for both legs (the snapshot index of the batch is built once).
    both = book_as_of(
        book_state, batch_book, venues.gather(np.concatenate([buy, sell])), pl.concat([symbols, symbols]),
        np.concatenate([time, time]), clock=params.clock,
    )  # fmt: skip
    bid_p, bid_s, ask_p, ask_s, snap_t = both
    buy_book = (bid_p[:n], bid_s[:n], ask_p[:n], ask_s[:n], snap_t[:n])
    sell_book = (bid_p[n:], bid_s[n:], ask_p[n:], ask_s[n:], snap_t[n:])
    # A snapshot counts for a leg only if it is as recent as the leg's quote and has a level on the side walked.
    buy_ok = (buy_book[4] >= buy_time) & np.isfinite(buy_book[2][:, 0])
    sell_ok = (sell_book[4] >= sell_time) & np.isfinite(sell_book[0][:, 0])
    use = buy_ok | sell_ok
    if not use.any():
        return _NO_WALK

    def ladder(ok: npt.NDArray[np.bool_], price: _F, size: _F, top: _F, top_size: _F) -> tuple[_F, _F]:
        one_price = np.full_like(price, np.nan)
        one_size = np.zeros_like(size)
        one_price[:, 0], one_size[:, 0] = top, top_size
        return np.where(ok[:, None], price, one_price), np.where(ok[:, None], size, one_size)

    buy_price, buy_size = ladder(buy_ok, buy_book[2], buy_book[3], ask, ask_size)
    sell_price, sell_size = ladder(sell_ok, sell_book[0], sell_book[1], bid, bid_size)
    size, profit = joint_walk(
        buy_price=buy_price,
        buy_size=buy_size,
        sell_price=sell_price,
        sell_size=sell_size,
        buy_fee=buy_fee,
        sell_fee=sell_fee,
        max_notional=np.full(n, params.max_notional),
        lot=np.fmax(tables.lot[sym, buy], tables.lot[sym, sell]),
        min_notional=np.fmax(tables.min_notional[sym, buy], tables.min_notional[sym, sell]),
    )
    cost = ladder_fill(buy_price, buy_size, size)
    proceeds = ladder_fill(sell_price, sell_size, size)
    walk = np.column_stack([use, size, profit, cost, proceeds, buy_size.sum(axis=1), sell_size.sum(axis=1)])
    return np.ascontiguousarray(walk, dtype=np.float64)


def finish_cross_exchange(state: CrossExchangeState, params: CrossExchangeParams) -> pl.DataFrame:
    """Episodes still open at the end of a run (status ``"active"``)."""
    del params
    candidate = np.flatnonzero(state.open_i[:, 4] > 0)
    if candidate.size == 0:
        return _EMPTY_OPPORTUNITIES.clear()
    return _episodes(state, candidate.astype(np.int64), state.open_i[candidate], state.open_f[candidate], "active")
