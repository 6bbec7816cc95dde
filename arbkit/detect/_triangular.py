"""Triangular (synthetic) arbitrage: cycles of conversions over the currency graph of the instruments seen.

Graph
-----
Nodes are ``(venue, currency)``.  Every spot instrument ``BASE/QUOTE`` quoted on a venue gives two edges:
*sell* ``BASE -> QUOTE`` at the bid and *buy* ``QUOTE -> BASE`` at the ask, each net of the venue's taker fee::

    rate_sell = bid * (1 - fee)          rate_buy = (1 / ask) * (1 - fee)

Assets listed in ``transfers`` may also move between venues (rate 1; the fixed withdrawal fee is not charged
per unit and is left to sizing downstream).  Cycles of 3 to ``max_legs`` (default 4) edges are enumerated once
per topology (each rotation once; both directions are distinct cycles; no edge reused, no two transfers in a
row).  The "synthetic vs direct" case (ETH/BTC against ETH/USDT and BTC/USDT) is the 3-cycle
``USDT -> ETH -> BTC -> USDT`` and its reverse.

Evaluation
----------
Every cycle's profitability is a log-rate sum over the as-of quotes of its legs (the latest quote per
``(venue, symbol)`` cell, DESIGN.md section 4)::

    profit per unit of start currency = exp(sum of log rates along the cycle) - 1

Every timeline row updates exactly one cell, so a cycle's sum only changes at rows that update one of its
columns.  The batch is scanned once in clock order by a compiled loop (:func:`arbkit.detect._tri_kernels.
scan_cycles`): all cycles at the batch's first row, then at each row only the cycles that read the row's column
(a CSR index column -> cycles, built once per topology).  A positive evaluation is a *span* of rows during which
no leg changes, so sizing, fees and profit are computed once per span; only staleness moves inside a span (a
suffix of it, found by a binary search on the clock).  That is exact and the work is proportional to the rows
and the cycles each row touches, not to ``rows x cycles``; the jitted JAX grid
(:func:`arbkit.detect.kernels.cycle_log_sums`) is kept for full grids and accelerators.  The screen only selects
spans; their growth is then recomputed exactly (product of rates in leg order), so values never depend on the
batch split.

A cycle starts (and its profit is counted) in a stablecoin (USDT, USD, USDC) when it passes through one, else in
its alphabetically first currency.  Its size is the largest start amount that every leg's displayed size allows
(a sell leg can take ``bid_size`` base, a buy leg can deliver ``ask_size`` base) and at most ``max_notional``
units of the start currency.  **Lot sizes**: every leg trades a whole number of its instrument's lots; the start
amount is scaled down by the worst leg's rounding so each rounded leg covers what flows through it (the
sub-lot remainder stays in the intermediate currency and is not counted), and every leg must reach its
instrument's ``min_notional``.  **Book depth**: when ``book`` rows are present (carried in state like the
cross-exchange detector's, :mod:`arbkit.detect._depth`), spans are evaluated row by row (a snapshot may arrive
inside a span); a leg whose usable snapshot visible at the row is at least as recent as its quote walks that
snapshot's levels (the others their top of book), and the start amount is the one that maximizes net profit
over all legs jointly (:func:`arbkit.detect._depth.cycle_walk`: advance while the product of the legs' marginal
rates exceeds 1), capped by ``max_notional``, scaled to whole lots and walked again so profit and the legs'
average prices are exact.

Episodes
--------
Episodes are keyed by the cycle on the global timeline (every spot row), as :mod:`arbkit.detect._episodes`
defines them: a run of consecutive rows where the cycle stays profitable.  Runs are formed from spans directly
(one fragment per run, not one event per row) and folded into the open episodes by a compiled pass
(:func:`arbkit.detect._tri_kernels.fold_runs`); the state carries them column-wise (:class:`OpenEpisodes`: a
cycle's legs are fixed, so only their prices and sizes are kept).  A frame is built only for the episodes that
close, column by column from those arrays and the layout's per-cycle strings, in one Arrow-to-Polars conversion;
a quiet micro-batch makes no Polars call beyond reading its columns.

Latency: a live step is a few compiled passes (row checks, scan, sizing, fold) plus NumPy glue, so its cost is
dominated by fixed per-call overheads, not by the rows; steps that close many episodes add one frame build.

Examples
--------
>>> import polars as pl
>>> q = pl.DataFrame({
...     "ts_event": [1, 2, 3], "ts_recv": [1, 2, 3], "exchange": ["binance"] * 3,
...     "symbol": ["BTC/USDT", "ETH/USDT", "ETH/BTC"],
...     "bid": [60_000.0, 3_000.0, 0.0515], "bid_size": [10.0] * 3,
...     "ask": [60_001.0, 3_000.1, 0.0516], "ask_size": [10.0] * 3})
>>> out, state = detect_triangular(q, TriangularState.empty(), TriangularParams(max_notional=1_000.0))
>>> opp = finish_triangular(state, TriangularParams())
>>> opp["symbol"].to_list()
['binance:USDT>ETH>BTC>USDT']
>>> [(leg["symbol"], leg["side"]) for leg in opp["legs"][0]]
[('ETH/USDT', 'buy'), ('ETH/BTC', 'sell'), ('BTC/USDT', 'sell')]
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from arbkit import schema
from arbkit._intern import sorted_codes
from arbkit.align import REASONS, Clock, _float, _int_column, _known, _memo
from arbkit.detect._confidence import persistence
from arbkit.detect._depth import BookState, _floor_lot, book_as_of, cycle_walk, update_books
from arbkit.detect._episodes import EpisodeIds
from arbkit.detect._tri_kernels import (
    Episodes,
    TextTable,
    episode_columns,
    fold_runs,
    prepare_scan,
    scan_cycles,
    size_spans,
    timeline_rows,
)
from arbkit.instruments import InstrumentKind, Registry, UnknownInstrumentError, default_registry, parse_symbol
from arbkit.schema import QuoteFlag

__all__ = [
    "Cycle",
    "OpenEpisode",
    "OpenEpisodes",
    "QuoteCells",
    "Topology",
    "TriangularParams",
    "TriangularState",
    "build_topology",
    "detect_triangular",
    "finish_triangular",
]

KIND = "triangular"
_STABLE = ("USDT", "USD", "USDC")

_F = npt.NDArray[np.float64]
_I = npt.NDArray[np.int64]
_B = npt.NDArray[np.bool_]
_Values = tuple[_F, _F, _F, _F, _I, npt.NDArray[np.uint8]]  # bid, bid_size, ask, ask_size, time, reason


@dataclass(frozen=True)
class TriangularParams:
    """Parameters of the triangular detector.

    Attributes
    ----------
    min_profit
        Smallest net profit worth reporting, in units of the cycle's start currency.  Default 0.
    max_notional
        Cap on the start amount, in units of the start currency.  Default 10,000.
    max_legs
        Longest cycle enumerated (3 or 4).  Default 4.
    transfers
        Assets that may move between venues inside a cycle (e.g. ``("USDT",)``).  Default: none, cycles stay
        within one venue.
    max_age_ms, clock, taker_fees, registry
        As for :class:`arbkit.detect.CrossExchangeParams`.
    """

    min_profit: float = 0.0
    max_notional: float = 10_000.0
    max_legs: int = 4
    transfers: tuple[str, ...] = ()
    max_age_ms: float | Mapping[str, float] | None = None
    clock: Clock = "ts_recv"
    taker_fees: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    registry: Registry = field(default_factory=default_registry)


@dataclass(frozen=True)
class QuoteCells:
    """The latest quote of every spot ``(venue, symbol)`` cell seen, whatever its quality (the latest wins, even
    when rejected: an older quote must not come back), sorted by cell.  ``time`` is the chosen clock (ns) and
    ``reason`` the row's :class:`arbkit.align.Reason` code (0: usable).  NumPy arrays, so a step reads and
    writes them without Polars."""

    cells: tuple[tuple[str, str], ...]
    bid: _F
    bid_size: _F
    ask: _F
    ask_size: _F
    time: _I
    reason: npt.NDArray[np.uint8]

    @classmethod
    def empty(cls) -> QuoteCells:
        f, i = np.zeros(0), np.zeros(0, dtype=np.int64)
        return cls((), f, f, f, f, i, np.zeros(0, dtype=np.uint8))

    @cached_property
    def index(self) -> dict[tuple[str, str], int]:
        return {cell: i for i, cell in enumerate(self.cells)}

    def values(self) -> _Values:
        return self.bid, self.bid_size, self.ask, self.ask_size, self.time, self.reason

    def lookup(self, exchanges: tuple[str, ...], symbols: tuple[str, ...], registry: Registry) -> tuple[_B, _B, _I]:
        """For every (exchange, symbol) name pair (``exchange code * len(symbols) + symbol code``): spot, known to
        the registry, and its cell (-1: not a cell).  Memoized: micro-batches repeat the same names."""
        lookups = self._lookups
        found = lookups.get((exchanges, symbols))
        if found is None or found[0] is not registry:
            if len(lookups) > 64:
                lookups.clear()
            pairs = [(e, s) for e in exchanges for s in symbols]
            kinds = [_cell_kind(registry, e, s) for e, s in pairs]
            spot = np.array([k[0] for k in kinds], dtype=np.bool_)
            known = np.array([k[1] for k in kinds], dtype=np.bool_)
            cell = np.array([self.index.get(p, -1) if k[0] else -1 for p, k in zip(pairs, kinds, strict=True)])
            found = lookups[exchanges, symbols] = (registry, spot, known, cell.astype(np.int64))
        return found[1], found[2], found[3]

    @cached_property
    def _lookups(self) -> dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[Registry, _B, _B, _I]]:
        # A cache, not state: kept out of the dataclass fields so states compare by their quotes only.
        return {}

    @cached_property
    def names(self) -> dict[str, tuple[str, ...]]:
        """A cache, not state: the sorted venue and symbol names of the last batch (a micro-batch's names mostly
        repeat, and coding rows against known names is one compiled pass)."""
        return {}

    def carry(self, values: _Values) -> QuoteCells:
        """The same cells with new values, sharing the name caches."""
        out = QuoteCells(self.cells, *values)
        out.__dict__["_lookups"] = self._lookups
        out.__dict__["names"] = self.names
        return out

    def with_cells(self, new: Sequence[tuple[str, str]]) -> QuoteCells:
        """These cells plus ``new`` ones (no quote yet: NaN prices, clock -1, reason 255), re-sorted."""
        cells = tuple(sorted({*self.cells, *new}))
        at = np.array([self.index.get(c, -1) for c in cells], dtype=np.int64)
        seen = at >= 0

        def spread(values: npt.NDArray[Any], fill: Any) -> npt.NDArray[Any]:
            out = np.full(len(cells), fill, dtype=values.dtype)
            out[seen] = values[at[seen]]
            return out

        return QuoteCells(
            cells, spread(self.bid, np.nan), spread(self.bid_size, np.nan), spread(self.ask, np.nan),
            spread(self.ask_size, np.nan), spread(self.time, -1), spread(self.reason, 255),
        )  # fmt: skip


class OpenEpisode(NamedTuple):
    """One open episode as a readable record (:meth:`TriangularState.open_episodes`): its start, the payload of its
    last row, peak and rows.  ``legs`` holds the traded legs ``(exchange, symbol, side, price, size)`` in cycle
    order."""

    key: str
    name: str
    seq_start: int
    seq_last: int
    ts_start: int
    ts_end: int
    legs: tuple[tuple[str, str, str, float, float], ...]
    size: float
    profit: float
    peak_profit: float
    profit_percentage: float
    confidence: float
    rows: int


@dataclass(frozen=True)
class OpenEpisodes:
    """Episodes column-wise, one entry per episode, sorted by cycle (the open ones of a state, or a batch's runs).

    ``cycle`` indexes the cycles of the layout of the state's cells and parameters (cycles sorted by name; a batch
    that adds cells re-indexes the open episodes by key).  ``price`` and ``leg_size`` are per cycle leg
    (``(episodes, max_legs)``; 0 on transfers and pads): a cycle's traded legs (venue, symbol, side) are fixed, so
    only their prices and sizes are carried.  NumPy arrays, so a step folds its runs in without a Python object
    per episode and builds the frame of the closed ones column-wise.
    """

    cycle: _I
    seq_start: _I
    seq_last: _I
    ts_start: _I
    ts_end: _I
    rows: _I
    size: _F
    profit: _F
    peak_profit: _F
    profit_percentage: _F
    confidence: _F
    price: _F
    leg_size: _F

    @classmethod
    def empty(cls) -> OpenEpisodes:
        return _NO_EPISODES

    @classmethod
    def of(cls, arrays: Episodes) -> OpenEpisodes:
        """From :data:`arbkit.detect._tri_kernels.Episodes` arrays (the canonical empty value when none)."""
        return cls(*arrays) if arrays[0].shape[0] else _NO_EPISODES

    def __len__(self) -> int:
        return int(self.cycle.shape[0])

    def take(self, index: npt.NDArray[np.integer[Any]] | _B) -> OpenEpisodes:
        """The episodes at ``index`` (positions or a mask); the canonical empty value when none."""
        picked = OpenEpisodes(*(getattr(self, f.name)[index] for f in _EPISODE_FIELDS))
        return picked if len(picked) else _NO_EPISODES


_EPISODE_FIELDS = dataclasses.fields(OpenEpisodes)


def _episode_arrays(episodes: OpenEpisodes) -> Episodes:
    e = episodes
    return (
        e.cycle, e.seq_start, e.seq_last, e.ts_start, e.ts_end, e.rows, e.size, e.profit, e.peak_profit,
        e.profit_percentage, e.confidence, e.price, e.leg_size,
    )  # fmt: skip


_NONE_I, _NONE_F, _NONE_LEGS = np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((0, 0))
_NO_EPISODES = OpenEpisodes(*(_NONE_I,) * 6, *(_NONE_F,) * 5, _NONE_LEGS, _NONE_LEGS)


@dataclass(frozen=True)
class TriangularState:
    """Latest quote per cell, open episodes (by cycle of the cells' layout), rows seen on the timeline, counters
    and books."""

    quotes: QuoteCells
    episodes: OpenEpisodes
    next_seq: int
    counters: Mapping[str, int]
    book: BookState = field(default_factory=BookState.empty)

    @classmethod
    def empty(cls) -> TriangularState:
        return cls(QuoteCells.empty(), OpenEpisodes.empty(), 0, {}, BookState.empty())

    def open_episodes(self, params: TriangularParams) -> tuple[OpenEpisode, ...]:
        """The open episodes as records, sorted by key (``params`` must be those the state was stepped with)."""
        e = self.episodes
        if not len(e):
            return ()
        layout = _layout(self.quotes.cells, params)
        out = []
        for i, k in enumerate(e.cycle.tolist()):
            trade = layout.cycle_trade[k]
            legs = zip(
                layout.cycle_column[k][trade].tolist(), layout.cycle_sell[k][trade].tolist(),
                e.price[i][trade].tolist(), e.leg_size[i][trade].tolist(), strict=True,
            )  # fmt: skip
            named = tuple((*layout.leg_names[c][sell], price, size) for c, sell, price, size in legs)
            record = OpenEpisode(
                layout.keys[k], layout.names[k], int(e.seq_start[i]), int(e.seq_last[i]), int(e.ts_start[i]),
                int(e.ts_end[i]), named, float(e.size[i]), float(e.profit[i]), float(e.peak_profit[i]),
                float(e.profit_percentage[i]), float(e.confidence[i]), int(e.rows[i]),
            )  # fmt: skip
            out.append(record)
        return tuple(sorted(out, key=lambda r: r.key))


@dataclass(frozen=True)
class Cycle:
    """A cycle: its edges (indices into ``Topology.edges``), start currency and readable name."""

    edges: tuple[int, ...]
    start: str
    name: str


@dataclass(frozen=True)
class Topology:
    """Static graph: columns (venue, symbol), edges ``(column or -1, sell, from node, to node)``, cycles."""

    columns: tuple[tuple[str, str], ...]
    edges: tuple[tuple[int, bool, tuple[str, str], tuple[str, str]], ...]
    cycles: tuple[Cycle, ...]

    def cycle_index(self, max_legs: int) -> npt.NDArray[np.int32]:
        out = np.full((len(self.cycles), max_legs), -1, dtype=np.int32)
        for i, c in enumerate(self.cycles):
            out[i, : len(c.edges)] = c.edges
        return out


def _rotate(nodes: list[tuple[str, str]], edges: list[int]) -> tuple[list[tuple[str, str]], list[int]]:
    currencies = [n[1] for n in nodes]
    for stable in _STABLE:
        if stable in currencies:
            i = currencies.index(stable)
            break
    else:
        i = currencies.index(min(currencies))
    return nodes[i:] + nodes[:i], edges[i:] + edges[:i]


@functools.lru_cache(maxsize=64)
def build_topology(columns: tuple[tuple[str, str], ...], max_legs: int, transfers: tuple[str, ...]) -> Topology:
    """Enumerate the cycles of the graph of ``columns`` (spot instruments per venue).

    Examples
    --------
    >>> t = build_topology((("okx", "BTC/USDT"), ("okx", "ETH/BTC"), ("okx", "ETH/USDT")), 4, ())
    >>> sorted(c.name for c in t.cycles)
    ['okx:USDT>BTC>ETH>USDT', 'okx:USDT>ETH>BTC>USDT']
    """
    edges: list[tuple[int, bool, tuple[str, str], tuple[str, str]]] = []
    for i, (venue, symbol) in enumerate(columns):
        info = parse_symbol(symbol)
        edges.append((i, True, (venue, info.base), (venue, info.quote)))
        edges.append((i, False, (venue, info.quote), (venue, info.base)))
    venues = sorted({v for v, _ in columns})
    nodes = {e[2] for e in edges} | {e[3] for e in edges}
    for asset in transfers:
        for a in venues:
            for b in venues:
                if a != b and (a, asset) in nodes and (b, asset) in nodes:
                    edges.append((-1, True, (a, asset), (b, asset)))
    out_edges: dict[tuple[str, str], list[int]] = {}
    for j, e in enumerate(edges):
        out_edges.setdefault(e[2], []).append(j)
    cycles: list[Cycle] = []
    order = sorted(nodes)
    rank = {n: i for i, n in enumerate(order)}

    def walk(start: tuple[str, str], node: tuple[str, str], path: list[int], seen: set[tuple[str, str]]) -> None:
        for j in out_edges.get(node, []):
            column, _, _, dst = edges[j]
            if column < 0 and path and edges[path[-1]][0] < 0:
                continue
            if dst == start and len(path) + 1 >= 3:
                full = [*path, j]
                if edges[full[0]][0] < 0 and column < 0:
                    continue
                visited = [edges[x][2] for x in full]
                rotated_nodes, rotated_edges = _rotate(visited, full)
                venues_in = sorted({n[0] for n in rotated_nodes})
                name = ",".join(venues_in) + ":" + ">".join(n[1] for n in rotated_nodes) + ">" + rotated_nodes[0][1]
                cycles.append(Cycle(tuple(rotated_edges), rotated_nodes[0][1], name))
            elif dst not in seen and rank[dst] > rank[start] and len(path) + 1 < max_legs:
                walk(start, dst, [*path, j], seen | {dst})

    for start in order:
        walk(start, start, [], {start})
    cycles.sort(key=lambda c: (c.name, c.edges))
    return Topology(columns, tuple(edges), tuple(cycles))


def _leg_text(topology: Topology, edge: int) -> str:
    column, sell, src, dst = topology.edges[edge]
    if column < 0:
        return f"transfer:{src[1]}:{src[0]}>{dst[0]}"
    venue, symbol = topology.columns[column]
    return f"{venue}:{symbol}:{'sell' if sell else 'buy'}"


def detect_triangular(
    quotes: pl.DataFrame, state: TriangularState, params: TriangularParams, book: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, TriangularState]:
    """One step of the triangular detector over a batch of quotes (see module docstring).

    Returns the episodes closed in this batch (:data:`arbkit.schema.OPPORTUNITIES`, ``"expired"``) and the next
    state; :func:`finish_triangular` gives the open ones.
    """
    batch_book = book if book is not None else _NO_BOOK
    rows, row_cell, cells, counters = _timeline(quotes, state.quotes, params)
    layout = _layout(cells.cells, params)
    n = row_cell.shape[0]
    m = cells.bid.shape[0]
    # Unusable quotes may hold 0 or NaN prices; they are masked out, so silence their warnings.
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = _log(np.concatenate([rows[0], rows[2], cells.bid, cells.ask]))  # one call: each op costs microseconds
        cycle, start, end, source, cell_source = scan_cycles(
            row_cell=row_cell, row_log_sell=logs[:n], row_log_buy=-logs[n : 2 * n],
            cell_log_sell=logs[2 * n : 2 * n + m], cell_log_buy=-logs[2 * n + m :], cell_column=layout.cell_column,
            column_cell=layout.column_cell, column_ptr=layout.column_ptr, column_cycles=layout.column_cycles,
            cycle_edges=layout.cycle_edges, edge_column=layout.edge_column, edge_sell=layout.edge_sell,
            edge_log_fee=layout.edge_log_fee, prepared=layout.prepared,
        )  # fmt: skip
        ext: _Values = tuple(np.concatenate([a, b]) for a, b in zip(rows, cells.values(), strict=True))  # type: ignore[assignment]
        books = (state.book, batch_book)
        if books[0].frame.height or batch_book.height:  # a snapshot may arrive inside a span: one unit per row
            length = end - start
            cycle, source = np.repeat(cycle, length), np.repeat(source, length, axis=0)
            start = np.repeat(start, length) + _within(length)
            end = start + 1
            hits, suppressed = _evaluate(layout, params, (cycle, start, end, source), ext, rows[4], books)
        else:
            hits, suppressed = _evaluate(layout, params, (cycle, start, end, source), ext, rows[4], None)
    for name, count in suppressed.items():
        counters[name] = counters.get(name, 0) + count
    carried = state.episodes
    if cells is not state.quotes and len(carried):
        carried = _reindex(carried, _layout(state.quotes.cells, params), layout)
    closed, episodes = _fold_episodes(layout, hits, rows[4], state.next_seq, n, carried)
    merged = dict(state.counters)
    for k, v in counters.items():
        if v:
            merged[k] = merged.get(k, 0) + v
    new_cells = cells.carry(tuple(values[cell_source] for values in ext))  # type: ignore[arg-type]
    next_state = TriangularState(
        new_cells, episodes, state.next_seq + n, dict(sorted(merged.items())),
        update_books(state.book, batch_book, params.clock),
    )  # fmt: skip
    return _opportunities(layout, closed, "expired"), next_state


_NO_BOOK = pl.DataFrame()


def _log(values: _F) -> _F:
    return np.log(np.where(np.isfinite(values) & (values > 0), values, np.nan))


def _within(length: _I) -> _I:
    """``0, 1, .., length[i] - 1`` for every ``i``, concatenated."""
    return np.arange(int(length.sum()), dtype=np.int64) - np.repeat(np.cumsum(length) - length, length)


def _is_spot(symbol: str) -> bool:
    try:
        return parse_symbol(symbol).kind is InstrumentKind.SPOT
    except (ValueError, TypeError, AttributeError):
        return False


def _cell_kind(registry: Registry, exchange: str, symbol: str) -> tuple[bool, bool]:
    """(spot, known to the registry) of a cell, memoized per registry."""
    memo = _memo(registry)
    key = ("triangular.cell", exchange, symbol)
    if key not in memo:
        memo[key] = (_is_spot(symbol), _known(registry, exchange, symbol))
    kind: tuple[bool, bool] = memo[key]
    return kind


def _name_codes(series: pl.Series, prior: tuple[str, ...] = ()) -> tuple[tuple[str, ...], _I]:
    """Sorted names of a string column (with the ``prior`` ones) and each row's code into them
    (:func:`arbkit._intern.sorted_codes`)."""
    names, codes = sorted_codes(series, prior)
    return names, codes.astype(np.int64)


def _flags(quotes: pl.DataFrame) -> npt.NDArray[np.integer[Any]] | None:
    """The flags column as NumPy: zero-copy when it is the schema's UInt16 without nulls, else cast to Int64."""
    if "flags" not in quotes.columns:
        return None
    series = quotes.get_column("flags")
    if series.dtype == pl.UInt16 and not series.null_count():
        values: npt.NDArray[np.uint16] = series.to_numpy()
        return values
    return _int_column(quotes, "flags", pl.Int64)


def _timeline(
    quotes: pl.DataFrame, cells: QuoteCells, params: TriangularParams
) -> tuple[_Values, _I, QuoteCells, dict[str, int]]:
    """The batch's spot rows in timeline order (values, and the cell each updates), the cells with any new ones
    added, and the rows counted by :class:`arbkit.align.Reason` (every row, spot or not).

    Only spot instruments form the graph; other rows are counted but not on the timeline.  Rows are in the
    canonical order of :mod:`arbkit.pipeline` (stable by clock; a batch already in clock order is not sorted).
    """
    registry = params.registry
    if quotes.height == 0:
        f, i = np.zeros(0), np.zeros(0, dtype=np.int64)
        return (f, f, f, f, i, np.zeros(0, dtype=np.uint8)), i, cells, {}
    known_names = cells.names
    exchanges, ex_code = _name_codes(quotes.get_column("exchange"), known_names.get("exchange", ()))
    symbols, sym_code = _name_codes(quotes.get_column("symbol"), known_names.get("symbol", ()))
    known_names["exchange"], known_names["symbol"] = exchanges, symbols
    pair = ex_code * len(symbols) + sym_code
    spot, known, pair_cell = cells.lookup(exchanges, symbols, registry)
    if (spot & (pair_cell < 0)).any():  # new cells: seen spot pairs not carried yet
        n_sym = len(symbols)
        fresh = np.flatnonzero(np.bincount(pair, minlength=spot.shape[0]).astype(np.bool_) & spot & (pair_cell < 0))
        if fresh.size:
            cells = cells.with_cells([(exchanges[int(p) // n_sym], symbols[int(p) % n_sym]) for p in fresh])
            spot, known, pair_cell = cells.lookup(exchanges, symbols, registry)
    bid, ask = _float(quotes, "bid"), _float(quotes, "ask")
    bid_size, ask_size = _float(quotes, "bid_size"), _float(quotes, "ask_size")
    flags = _flags(quotes)
    clock = quotes.get_column(params.clock).to_numpy().astype(np.int64, copy=False)
    reason, counts, take, ordered, columns, row_cell = timeline_rows(
        (bid, ask, bid_size, ask_size, flags if flags is not None else np.zeros(quotes.height, np.uint16), clock),
        _BLOCKING, pair, (spot, known, pair_cell),
    )  # fmt: skip
    counters = {REASONS[i]: c for i, c in enumerate(counts.tolist()) if i > 0 and c > 0}
    if not ordered:  # stable by clock
        take = take[np.argsort(clock[take], kind="stable")]
        columns = tuple(c[take] for c in (bid, bid_size, ask, ask_size, clock, reason))  # type: ignore[assignment]
        row_cell = pair_cell[pair[take]]
    return columns, row_cell, cells, counters


_BLOCKING = int(QuoteFlag.blocking())


@dataclass(frozen=True)
class _Layout:
    """Everything static for one set of cells and parameters: the graph, its CSR index, per-column fees, lots,
    ages and latencies, and the names and keys of the cycles."""

    topology: Topology
    cell_column: _I  # cell -> graph column (-1: not in the graph)
    column_cell: _I
    column_ptr: _I  # CSR: cycles that read column c are column_cycles[column_ptr[c]:column_ptr[c + 1]]
    column_cycles: _I
    cycle_edges: _I  # (cycles, legs), -1 padded
    edge_column: _I
    edge_sell: _B
    edge_log_fee: _F
    fee: _F  # per column
    lot: _F
    min_notional: _F
    limit_ns: _I  # max quote age per column
    latency_ms: _F
    max_age_ms: _F
    venue: pl.Series  # per column
    symbol: pl.Series
    venue_names: tuple[str, ...]
    symbol_names: tuple[str, ...]
    names: tuple[str, ...]  # per cycle
    keys: tuple[str, ...]
    leg_names: tuple[tuple[tuple[str, str, str], tuple[str, str, str]], ...]  # per column: (venue, symbol, side)
    prepared: tuple[_I, _I, _I]  # prepare_scan of the graph
    key_index: Mapping[str, int]  # cycle key -> cycle
    cycle_trade: _B  # (cycles, legs): the leg trades (not a transfer or pad)
    cycle_column: _I  # (cycles, legs): the leg's column (0 where it does not trade)
    cycle_sell: _B  # (cycles, legs)
    first_trade: _I  # per cycle: its first trading leg (the buy price's)
    cycle_text: tuple[TextTable, TextTable, TextTable]  # per cycle: name, first and last traded leg's venue
    leg_text: tuple[TextTable, TextTable, TextTable]  # per traded leg, cycle after cycle: exchange, symbol, side
    leg_start: _I  # cycle k's traded legs are leg_text rows leg_start[k]:leg_start[k + 1]
    ids: EpisodeIds


def _layout(cells: tuple[tuple[str, str], ...], params: TriangularParams) -> _Layout:
    last = _LAST_LAYOUT.get(id(params))
    if last is not None and last[0] is params and last[1] is cells:  # steps carry the same objects: no hashing
        return last[2]
    layout = _memo_layout(cells, params)
    if len(_LAST_LAYOUT) > 8:
        _LAST_LAYOUT.clear()
    _LAST_LAYOUT[id(params)] = (params, cells, layout)
    return layout


_LAST_LAYOUT: dict[int, tuple[TriangularParams, tuple[tuple[str, str], ...], _Layout]] = {}


def _memo_layout(cells: tuple[tuple[str, str], ...], params: TriangularParams) -> _Layout:
    registry = params.registry
    override = params.max_age_ms
    age_key = tuple(sorted(override.items())) if isinstance(override, Mapping) else override
    key = (
        "triangular.layout", cells, age_key, tuple(sorted(params.taker_fees.items())), params.max_legs,
        tuple(sorted(params.transfers)),
    )  # fmt: skip
    memo = _memo(registry)
    if key not in memo:
        memo[key] = _build_layout(cells, params)
    layout: _Layout = memo[key]
    return layout


def _build_layout(cells: tuple[tuple[str, str], ...], params: TriangularParams) -> _Layout:
    registry = params.registry
    cell_column = np.full(len(cells), -1, dtype=np.int64)
    columns: list[tuple[str, str]] = []
    for i, (venue, symbol) in enumerate(cells):
        if _known(registry, venue, symbol):
            cell_column[i] = len(columns)
            columns.append((venue, symbol))
    topology = build_topology(tuple(columns), params.max_legs, tuple(sorted(params.transfers)))
    edge_column = np.array([e[0] for e in topology.edges], dtype=np.int64)
    edge_sell = np.array([e[1] for e in topology.edges], dtype=np.bool_)
    uses: list[set[int]] = [set() for _ in columns]
    for k, cycle in enumerate(topology.cycles):
        for e in cycle.edges:
            if edge_column[e] >= 0:
                uses[int(edge_column[e])].add(k)
    ptr = np.concatenate([[0], np.cumsum([len(u) for u in uses])]).astype(np.int64)
    fee = np.array([params.taker_fees.get(v, registry.get(v, s).taker_fee) for v, s in columns], dtype=np.float64)
    max_age_ms = np.zeros(len(columns))
    latency_ms = np.zeros(len(columns))
    for j, (venue, _) in enumerate(columns):
        try:
            profile = registry.profile(venue)
        except UnknownInstrumentError:
            continue
        override = params.max_age_ms
        value = override.get(venue) if isinstance(override, Mapping) else override
        max_age_ms[j] = profile.max_age_ms if value is None else float(value)
        latency_ms[j] = profile.latency_ms
    edge_fee = np.where(edge_column >= 0, fee[np.maximum(edge_column, 0)] if columns else 0.0, 0.0)
    column_cycles = np.array([k for u in uses for k in sorted(u)], dtype=np.int64)
    cycle_edges = np.ascontiguousarray(topology.cycle_index(params.max_legs), dtype=np.int64)
    # Per cycle leg: its column where it trades; the names of the traded legs, cycle after cycle.
    leg_edge_column = np.where(cycle_edges >= 0, edge_column[np.maximum(cycle_edges, 0)], -1)
    trade = leg_edge_column >= 0
    leg_column = np.maximum(leg_edge_column, 0)
    venues = np.array([v for v, _ in columns] or [""], dtype=object)
    symbols = np.array([s for _, s in columns] or [""], dtype=object)
    first_trade = np.argmax(trade, axis=1).astype(np.int64)
    every = np.arange(len(topology.cycles))
    last_trade = trade.shape[1] - 1 - np.argmax(trade[:, ::-1], axis=1)
    names = [c.name for c in topology.cycles]
    keys = [";".join(_leg_text(topology, e) for e in c.edges) for c in topology.cycles]
    flat = leg_column[trade]
    sides = np.where(edge_sell[np.maximum(cycle_edges, 0)][trade], "sell", "buy")
    cycle_text = (
        TextTable.of(names), TextTable.of(venues[leg_column[every, first_trade]].tolist()),
        TextTable.of(venues[leg_column[every, last_trade]].tolist()),
    )  # fmt: skip
    leg_text = (TextTable.of(venues[flat].tolist()), TextTable.of(symbols[flat].tolist()), TextTable.of(sides.tolist()))
    return _Layout(
        topology=topology,
        cell_column=cell_column,
        column_cell=np.flatnonzero(cell_column >= 0).astype(np.int64),
        column_ptr=ptr,
        column_cycles=column_cycles,
        cycle_edges=cycle_edges,
        edge_column=edge_column,
        edge_sell=edge_sell,
        edge_log_fee=np.log1p(-edge_fee),
        fee=fee,
        lot=np.array([registry.get(v, s).lot_size for v, s in columns], dtype=np.float64),
        min_notional=np.array([registry.get(v, s).min_notional for v, s in columns], dtype=np.float64),
        limit_ns=np.array([round(a * 1_000_000) for a in max_age_ms.tolist()], dtype=np.int64),
        latency_ms=latency_ms,
        max_age_ms=max_age_ms,
        venue=pl.Series([v for v, _ in columns], dtype=pl.String),
        symbol=pl.Series([s for _, s in columns], dtype=pl.String),
        venue_names=tuple(v for v, _ in columns),
        symbol_names=tuple(s for _, s in columns),
        names=tuple(names),
        keys=tuple(keys),
        leg_names=tuple(((v, s, "buy"), (v, s, "sell")) for v, s in columns),
        prepared=prepare_scan(ptr, column_cycles, cycle_edges, edge_column, edge_sell),
        key_index={key: k for k, key in enumerate(keys)},
        cycle_trade=trade,
        cycle_column=leg_column,
        cycle_sell=edge_sell[np.maximum(cycle_edges, 0)],
        first_trade=first_trade,
        cycle_text=cycle_text,
        leg_text=leg_text,
        leg_start=np.concatenate([[0], np.cumsum(trade.sum(axis=1))]).astype(np.int64),
        ids=EpisodeIds(KIND),
    )


@dataclass(frozen=True)
class _Hits:
    """Units (spans, or rows with books) that pass every check, with their sizing; rows ``[start, stop)``."""

    cycle: _I
    start: _I
    stop: _I
    amount: _F  # start amount (size)
    profit: _F
    growth: _F
    trade: _B  # (units, legs)
    column: _I
    sell: _B
    price: _F
    size: _F
    displayed: _F
    quote_time: _I


def _evaluate(
    layout: _Layout,
    params: TriangularParams,
    units: tuple[_I, _I, _I, _I],
    ext: _Values,
    time: _I,
    books: tuple[BookState, pl.DataFrame] | None,
) -> tuple[_Hits | None, dict[str, int]]:
    """Check and size every unit ``(cycle, start, end, leg sources)``; count the rows suppressed by a stale or
    flagged leg.  Inside a unit the legs' quotes are fixed, so only staleness moves: it starts at the first row
    whose clock passes the earliest leg deadline (``quote time + max age``) and lasts to the unit's end.

    Sizing is compiled (:func:`arbkit.detect._tri_kernels.size_spans`); with books the units it passes are then
    walked through the depth here and filtered on the walked values.
    """
    (
        unit, stop, amount, profit, growth, notional_ok, trade, col_safe, sell, fee, leg_price, leg_size,
        displayed, quote_time, suppressed,
    ) = size_spans(
        units, ext, time,
        (layout.cycle_edges, layout.edge_column, layout.edge_sell, layout.fee, layout.lot, layout.min_notional,
         layout.limit_ns),
        params.max_notional, params.min_profit, keep_only=books is None,
    )  # fmt: skip
    counters = {"suppressed_stale": int(suppressed[0]), "suppressed_flagged": int(suppressed[1])}
    if unit.size == 0:
        return None, counters
    cycle, start = units[0][unit], units[1][unit]
    if books is not None:
        src = np.maximum(units[3][unit], 0)
        leg_bid, leg_ask = ext[0][src], ext[2][src]
        walked = _walk_cycles(
            layout, params, books, time[start], col_safe, quote_time, trade, sell, fee,
            (leg_bid, leg_ask, ext[1][src], ext[3][src]),
        )  # fmt: skip
        if walked is not None:
            use, w_start, w_profit, w_size, w_price, w_depth = walked
            amount = np.where(use, w_start, amount)
            profit = np.where(use, w_profit, profit)
            growth = np.where(use, 1.0 + w_profit / w_start, growth)  # average growth of the walked amount
            leg_size = np.where(use[:, None], w_size, leg_size)
            leg_price = np.where(use[:, None] & trade, w_price, leg_price)
            displayed = np.where(use[:, None], w_depth, displayed)
            min_notional = layout.min_notional[col_safe]
            notional_ok = np.asarray(np.where(trade, leg_size * leg_price >= min_notional, True).all(axis=1))
    hits = _Hits(
        cycle, start, stop, amount, profit, growth, trade, col_safe, sell, leg_price, leg_size, displayed, quote_time,
    )  # fmt: skip
    if books is not None:
        keep = (growth > 1.0) & (amount > 0) & notional_ok & (profit >= params.min_profit) & np.isfinite(profit)
        if not keep.any():
            return None, counters
        hits = _Hits(*(getattr(hits, f.name)[keep] for f in dataclasses.fields(_Hits)))
    return hits, counters


def _walk_cycles(
    layout: _Layout,
    params: TriangularParams,
    books: tuple[BookState, pl.DataFrame],
    row_time: _I,
    column: _I,
    quote_time: _I,
    trade: _B,
    sell: _B,
    fee: _F,
    top: tuple[_F, _F, _F, _F],
) -> tuple[_B, _F, _F, _F, _F, _F] | None:
    """Joint depth walk of the hits where some leg has a usable book snapshot at least as recent as its quote.

    Legs without one walk their top of book.  The walked start amount is then scaled so every leg trades whole
    lots and walked again at that amount, so profit and average prices are exact for the reported start amount
    (leg sizes are floored to lots; the sub-lot remainder is not counted).  Returns ``None`` when no hit has a
    book, else ``(use, start, profit, leg size, leg average price, leg displayed depth)``.
    """
    n_hit, legs = trade.shape
    hit_of, leg_of = np.nonzero(trade)
    picked = column[hit_of, leg_of]
    bid_p, bid_s, ask_p, ask_s, snapshot_time = book_as_of(
        books[0], books[1], layout.venue.gather(picked), layout.symbol.gather(picked), row_time[hit_of],
        clock=params.clock,
    )  # fmt: skip
    leg_sell = sell[hit_of, leg_of]
    book_price = np.where(leg_sell[:, None], bid_p, ask_p)
    book_size = np.where(leg_sell[:, None], bid_s, ask_s)
    # A snapshot counts for a leg only if it is as recent as the leg's quote and has a level on the side walked.
    fresh = (snapshot_time >= quote_time[hit_of, leg_of]) & np.isfinite(book_price[:, 0])
    use = np.zeros(n_hit, dtype=np.bool_)
    use[hit_of[fresh]] = True
    if not use.any():
        return None
    leg_bid, leg_ask, leg_bid_size, leg_ask_size = (x[hit_of, leg_of] for x in top)
    levels = bid_p.shape[1]
    one_price, one_size = np.full((hit_of.size, levels), np.nan), np.zeros((hit_of.size, levels))
    one_price[:, 0] = np.where(leg_sell, leg_bid, leg_ask)
    one_size[:, 0] = np.where(leg_sell, leg_bid_size, leg_ask_size)
    price, size = np.full((n_hit, legs, levels), np.nan), np.zeros((n_hit, legs, levels))
    price[hit_of, leg_of] = np.where(fresh[:, None], book_price, one_price)
    size[hit_of, leg_of] = np.where(fresh[:, None], book_size, one_size)
    start, _, base, _ = cycle_walk(sell=sell, price=price, size=size, fee=fee, cap=np.full(n_hit, params.max_notional))
    lot = np.where(trade, layout.lot[column], 0.0)
    ratio = np.where(trade & (base > 0), _floor_lot(base, lot) / base, 1.0).min(axis=1)
    start, profit, base, notional = cycle_walk(sell=sell, price=price, size=size, fee=fee, cap=start * ratio)
    average = np.where(base > 0, notional / base, np.nan)
    return use, start, profit, np.where(trade, _floor_lot(base, lot), 0.0), average, size.sum(axis=2)


def _fold_episodes(
    layout: _Layout, hits: _Hits | None, time: _I, seq0: int, n: int, carried: OpenEpisodes
) -> tuple[OpenEpisodes, OpenEpisodes]:
    """Fold the batch's hits into the open episodes: ``(closed, still open)``
    (:func:`arbkit.detect._tri_kernels.fold_runs`).

    One fragment per run of consecutive profitable rows of a cycle (hits of one cycle chain when one starts on
    the row where the previous one stopped): its start from its first hit, the payload (legs, size, profit, and
    the confidence at its last row) from its last, the maximum profit and the row count over all of them, as
    merging one event per row would give.  A run starting on the batch's first row continues the cycle's open
    episode; every episode that does not reach the batch's last row closes (its timeline moved on without it).
    """
    if n == 0:
        return OpenEpisodes.empty(), carried
    if hits is None:  # the timeline moved on: every open episode closes
        return carried, OpenEpisodes.empty()
    units = (
        hits.cycle, hits.start, hits.stop, hits.amount, hits.profit, hits.growth, hits.trade, hits.column, hits.price,
        hits.size, hits.displayed, hits.quote_time,
    )  # fmt: skip
    still, closed = fold_runs(
        units, time, seq0, n, (layout.latency_ms, layout.max_age_ms), _episode_arrays(carried)
    )  # fmt: skip
    return OpenEpisodes.of(closed), OpenEpisodes.of(still)


def _reindex(episodes: OpenEpisodes, before: _Layout, after: _Layout) -> OpenEpisodes:
    """Open episodes of ``before``'s cycles as ``after``'s (new cells only add cycles; keys name them)."""
    if before is after or not len(episodes):
        return episodes
    keys, index = before.keys, after.key_index
    cycle = np.array([index[keys[k]] for k in episodes.cycle.tolist()], dtype=np.int64)
    order = np.argsort(cycle, kind="stable")
    return dataclasses.replace(episodes.take(order), cycle=cycle[order])


def _opportunities(layout: _Layout, episodes: OpenEpisodes, status: str) -> pl.DataFrame:
    """Episodes as an :data:`arbkit.schema.OPPORTUNITIES` frame, as
    :func:`arbkit.detect._episodes.to_opportunities` makes them (deterministic id, confidence weighted by
    persistence, sorted by ``(ts_start, id)``).

    Built column-wise as one Arrow record batch and converted once (each Polars call costs tens of
    microseconds, a Python object per leg more): per-cycle strings (name, exchanges, the legs' venues, symbols
    and sides) are gathered from the layout's tables, numbers come straight from the episodes' arrays.
    """
    n = len(episodes)
    if n == 0:
        return _EMPTY.clear()
    ts_start = episodes.ts_start.tolist()
    keys = layout.keys
    ids = layout.ids.many([keys[k] for k in episodes.cycle.tolist()], ts_start)
    order = sorted(range(n), key=lambda i: (ts_start[i], ids[i]))
    ints, floats, offsets, leg_price, leg_size, texts = episode_columns(
        np.array(order, dtype=np.int64), _episode_arrays(episodes), persistence(episodes.rows),
        (layout.cycle_trade, layout.leg_start, layout.first_trade), layout.cycle_text, layout.leg_text,
    )  # fmt: skip
    name, buy, sell, *leg_text = texts
    legs = pa.StructArray.from_buffers(
        _LEG, len(leg_price), [None], children=[*leg_text, *map(pa.array, (leg_price, leg_size))]
    )
    ids_text = pa.py_buffer("".join(ids[i] for i in order).encode())  # ids are 16 hex digits
    columns = [
        pa.Array.from_buffers(_TEXT, n, [None, pa.py_buffer(_id_offsets(n)), ids_text]),
        _constant(KIND, n),
        pa.array(ints[0]),
        pa.array(ints[1]),
        name,
        pa.LargeListArray.from_buffers(_LEGS, n, [None, pa.py_buffer(offsets)], children=[legs]),
        buy,
        sell,
        pa.array(floats[0]),
        _nulls(n),
        *map(pa.array, floats[1:]),
        pa.array(ints[2]),
        _constant(status, n),
    ]
    # Arrow's string, int64, float64 and list of struct convert to exactly the schema's Polars types (tested).
    return pl.DataFrame(pa.RecordBatch.from_arrays(columns, names=_NAMES))


def _constant(text: str, n: int) -> pa.Array:
    """``n`` copies of ``text`` as a zero-copy slice of a cached array."""
    cached = _CONSTANTS.get(text)
    if cached is None or len(cached) < n:
        cached = _CONSTANTS[text] = pa.array([text] * max(n, 1_024), type=pa.string())
    return cached.slice(0, n)


def _nulls(n: int) -> pa.Array:
    """``n`` null float64 values (the sell price, which a cycle does not have)."""
    cached = _CONSTANTS.get(None)
    if cached is None or len(cached) < n:
        cached = _CONSTANTS[None] = pa.nulls(max(n, 1_024), type=pa.float64())
    return cached.slice(0, n)


_CONSTANTS: dict[str | None, pa.Array] = {}


def _id_offsets(n: int) -> _I:
    """String offsets of ``n`` ids of 16 characters: ``0, 16, .., 16 n``."""
    if _ID_OFFSETS[0].shape[0] <= n:
        _ID_OFFSETS[0] = np.arange(0, 16 * (max(n, 1_024) + 1), 16, dtype=np.int64)
    return _ID_OFFSETS[0][: n + 1]


_ID_OFFSETS = [np.zeros(0, dtype=np.int64)]
_ARROW = schema.OPPORTUNITIES.arrow
_NAMES = _ARROW.names
_TEXT = pa.large_string()
_LEG = pa.struct(
    [
        (f.name, _TEXT if f.type == pa.string() else f.type)
        for f in schema.OPPORTUNITIES.arrow.field("legs").type.value_type
    ]
)
_LEGS = pa.large_list(_LEG)
_EMPTY = schema.empty(schema.OPPORTUNITIES)


def finish_triangular(state: TriangularState, params: TriangularParams) -> pl.DataFrame:
    """Episodes still open at the end of a run (status ``"active"``); ``params`` are those of the steps."""
    if not len(state.episodes):
        return _EMPTY.clear()
    return _opportunities(_layout(state.quotes.cells, params), state.episodes, "active")
