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
Every cycle's profitability is a log-rate sum over the as-of quotes (:mod:`arbkit.align`, one column per
``(venue, symbol)``)::

    profit per unit of start currency = exp(sum of log rates along the cycle) - 1

A cycle's sum only changes at rows that update one of its columns, and every row updates exactly one column, so
the sums are evaluated *incrementally*: all cycles at a batch's first row, then at each row only the cycles that
read the row's column (a CSR index column -> cycles, built once per topology), carried forward in between.  That
is exact and about ``columns / legs`` times less work than the full ``rows x cycles`` grid; the gather runs in
NumPy, which measured faster on CPU than the jitted JAX kernel (:func:`arbkit.detect.kernels.cycle_log_sums`,
kept for full grids and accelerators).  The screen only selects candidate ``(row, cycle)`` pairs; their growth
is then recomputed exactly (product of rates in leg order), so values never depend on the batch split.

A cycle starts (and its profit is counted) in a stablecoin (USDT, USD, USDC) when it passes through one, else in
its alphabetically first currency.  Its size is the largest start amount that every leg's displayed size allows
(a sell leg can take ``bid_size`` base, a buy leg can deliver ``ask_size`` base) and at most ``max_notional``
units of the start currency.  **Lot sizes**: every leg trades a whole number of its instrument's lots; the start
amount is scaled down by the worst leg's rounding so each rounded leg covers what flows through it (the
sub-lot remainder stays in the intermediate currency and is not counted), and every leg must reach its
instrument's ``min_notional``.  **Book depth**: when ``book`` rows are present (carried in state like the
cross-exchange detector's, :mod:`arbkit.detect._depth`), a leg whose usable snapshot visible at the row is at
least as recent as its quote walks that snapshot's levels (the others their top of book), and the start amount
is the one that maximizes net profit over all legs jointly (:func:`arbkit.detect._depth.cycle_walk`: advance
while the product of the legs' marginal rates exceeds 1), capped by ``max_notional``, scaled to whole lots and
walked again so profit and the legs' average prices are exact.

Legs, keys and names are built column-wise for the hits only (strings once per cycle).  Episodes are keyed by
the cycle on the global timeline (every row).

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

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit import schema
from arbkit.align import AlignedQuotes, Clock, LastQuotes, _known, _memo, align_quotes, check_quotes, count_reasons
from arbkit.detect._confidence import depth_factor, freshness, row_confidence
from arbkit.detect._depth import BookState, book_as_of, cycle_walk, update_books
from arbkit.detect._episodes import EVENT_SCHEMA, EpisodeState, advance_timeline_codes, finish_episodes, merge_episodes
from arbkit.instruments import InstrumentKind, Registry, UnknownInstrumentError, default_registry, parse_symbol

__all__ = [
    "Cycle",
    "Topology",
    "TriangularParams",
    "TriangularState",
    "build_topology",
    "detect_triangular",
    "finish_triangular",
]

KIND = "triangular"
_STABLE = ("USDT", "USD", "USDC")
_SEP = "|"


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
class TriangularState:
    """Latest quote per (venue, symbol) column, open episodes and counters."""

    quotes: LastQuotes
    episodes: EpisodeState
    counters: Mapping[str, int]
    book: BookState = field(default_factory=BookState.empty)

    @classmethod
    def empty(cls) -> TriangularState:
        return cls(LastQuotes.empty(), EpisodeState.empty(), {}, BookState.empty())


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
    registry = params.registry
    batch_book = book if book is not None else pl.DataFrame()
    reason = check_quotes(quotes, registry)
    # Only spot instruments form the graph; other rows are still counted (by reason) but not aligned.
    symbols = quotes.get_column("symbol").unique().to_list()
    spot = {s for s in symbols if _is_spot(s)}
    keep = quotes.get_column("symbol").is_in(list(spot)).to_numpy()
    counters = dict(count_reasons(reason))
    frame = quotes.filter(pl.Series(keep))
    frame_reason = reason[keep]
    cells = frame.select(
        (pl.col("exchange") + _SEP + pl.col("symbol")).alias("exchange"),
        pl.lit("*").alias("symbol"),
        *[c for c in frame.columns if c not in ("exchange", "symbol")],
    )
    cell_names = set(cells.get_column("exchange").unique().to_list()) | set(state.quotes.frame["exchange"].to_list())
    max_age: dict[str, float] = {}
    latency: dict[str, float] = {}
    for cell in cell_names:
        venue = cell.split(_SEP, 1)[0]
        try:
            profile = registry.profile(venue)
        except UnknownInstrumentError:
            max_age[cell], latency[cell] = 0.0, 0.0
            continue
        override = params.max_age_ms
        value = override.get(venue) if isinstance(override, Mapping) else override
        max_age[cell] = profile.max_age_ms if value is None else float(value)
        latency[cell] = profile.latency_ms
    view, last = align_quotes(
        cells, state.quotes, registry=registry, clock=params.clock, max_age_ms=max_age, reason=frame_reason
    )
    seq, episodes = advance_timeline_codes(state.episodes, ["*"], np.zeros(view.height, dtype=np.int64))
    columns: list[tuple[str, str]] = []
    column_index: list[int] = []
    for i, cell in enumerate(view.venues):
        venue, symbol = cell.split(_SEP, 1)
        if _known(registry, venue, symbol):
            columns.append((venue, symbol))
            column_index.append(i)
    events = pl.DataFrame(schema=EVENT_SCHEMA)
    if view.height and columns:
        topology = build_topology(tuple(columns), params.max_legs, tuple(sorted(params.transfers)))
        if topology.cycles:
            # Padded and unusable legs may hold 0 or NaN prices; they are masked out, so silence their warnings.
            with np.errstate(divide="ignore", invalid="ignore"):
                events, suppressed = _events(
                    view, column_index, topology, seq, params, latency, max_age, (state.book, batch_book)
                )
            for k, v in suppressed.items():
                counters[k] = counters.get(k, 0) + v
    closed, episodes = merge_episodes(events, episodes)
    merged = dict(state.counters)
    for k, v in counters.items():
        if v:
            merged[k] = merged.get(k, 0) + v
    books = update_books(state.book, batch_book, params.clock)
    return closed, TriangularState(last, episodes, dict(sorted(merged.items())), books)


def _is_spot(symbol: str) -> bool:
    try:
        return parse_symbol(symbol).kind is InstrumentKind.SPOT
    except ValueError:
        return False


@dataclass(frozen=True)
class _Static:
    """Per-topology arrays, built once: edges, the cycles using each column, names and keys of the cycles."""

    edge_column: npt.NDArray[np.int64]
    edge_sell: npt.NDArray[np.bool_]
    cycle_edges: npt.NDArray[np.int64]  # (cycles, legs), -1 padded
    column_cycles_ptr: npt.NDArray[np.int64]  # CSR: cycles that read column c are indices[ptr[c]:ptr[c + 1]]
    column_cycles: npt.NDArray[np.int64]
    names: pl.Series
    keys: pl.Series


@functools.lru_cache(maxsize=64)
def _static(topology: Topology, max_legs: int) -> _Static:
    edge_column = np.array([e[0] for e in topology.edges], dtype=np.int64)
    edge_sell = np.array([e[1] for e in topology.edges], dtype=np.bool_)
    cycle_edges = topology.cycle_index(max_legs).astype(np.int64)
    uses: list[set[int]] = [set() for _ in topology.columns]
    for k, cycle in enumerate(topology.cycles):
        for e in cycle.edges:
            if edge_column[e] >= 0:
                uses[int(edge_column[e])].add(k)
    ptr = np.concatenate([[0], np.cumsum([len(u) for u in uses])]).astype(np.int64)
    indices = np.array([k for u in uses for k in sorted(u)], dtype=np.int64)
    names = pl.Series([c.name for c in topology.cycles], dtype=pl.String)
    keys = pl.Series([";".join(_leg_text(topology, e) for e in c.edges) for c in topology.cycles], dtype=pl.String)
    return _Static(edge_column, edge_sell, cycle_edges, ptr, indices, names, keys)


def _instrument_table(
    topology: Topology, params: TriangularParams
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(taker fee, lot size, min notional) per topology column, cached per registry."""
    memo = _memo(params.registry)
    key = ("triangular.table", topology.columns, tuple(sorted(params.taker_fees.items())))
    if key not in memo:
        registry = params.registry
        memo[key] = (
            np.array([params.taker_fees.get(v, registry.get(v, s).taker_fee) for v, s in topology.columns]),
            np.array([registry.get(v, s).lot_size for v, s in topology.columns]),
            np.array([registry.get(v, s).min_notional for v, s in topology.columns]),
        )
    table: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]] = memo[key]
    return table


def _floor_lot(size: npt.NDArray[np.float64], lot: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # The relative epsilon keeps sizes that are exact multiples (1.0 / 0.1 = 9.999...) from losing a lot.
    return np.where(lot > 0, np.floor(size / np.where(lot > 0, lot, 1.0) * (1.0 + 1e-12)) * lot, size)


def _screen(
    view_bid: npt.NDArray[np.float64],
    view_ask: npt.NDArray[np.float64],
    own_column: npt.NDArray[np.int64],
    static: _Static,
    edge_log_fee: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(row, cycle) pairs whose log-rate sum is > 0 on present quotes, by incremental evaluation.

    A cycle's sum only changes at rows that update one of its columns (each row updates its own column), so it is
    evaluated for every cycle at the batch's first row and then only for the cycles reading the row's column;
    between evaluations it is carried forward.  Exact, and about ``columns / legs`` times less work than the full
    ``rows x cycles`` grid.
    """
    n = view_bid.shape[0]
    n_cycles = static.cycle_edges.shape[0]
    col = np.where(own_column[1:] >= 0, own_column[1:], 0)
    counts = np.where(own_column[1:] >= 0, np.diff(static.column_cycles_ptr)[col], 0)
    total = int(counts.sum())
    pair_row = np.concatenate([np.zeros(n_cycles, dtype=np.int64), np.repeat(np.arange(1, n, dtype=np.int64), counts)])
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    pair_cycle = np.concatenate(
        [
            np.arange(n_cycles, dtype=np.int64),
            static.column_cycles[np.repeat(static.column_cycles_ptr[col], counts) + within],
        ]
    )
    # Log of each column's sell and buy rate at every row (NaN where the quote is not a positive number), then one
    # flat gather per leg.
    n_columns = view_bid.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_bid = np.log(np.where(np.isfinite(view_bid) & (view_bid > 0), view_bid, np.nan)).ravel()
        log_ask = -np.log(np.where(np.isfinite(view_ask) & (view_ask > 0), view_ask, np.nan)).ravel()
    edge_log = np.append(edge_log_fee, 0.0)  # a last slot for padding and transfers: rate 1
    base = pair_row * n_columns
    log_sum = np.zeros(pair_row.size)
    for j in range(static.cycle_edges.shape[1]):
        edge = static.cycle_edges[pair_cycle, j]
        column = np.where(edge >= 0, static.edge_column[np.maximum(edge, 0)], -1)
        sell = static.edge_sell[np.maximum(edge, 0)]
        flat = base + np.maximum(column, 0)
        rate = np.where(sell, log_bid[flat], log_ask[flat]) + edge_log[np.where(column >= 0, edge, -1)]
        log_sum += np.where(column >= 0, rate, 0.0)
    # Carry each evaluation forward to the next evaluation of the same cycle (or the batch end).  Pairs are in row
    # order, so a stable sort by cycle (radix for small codes) orders them by (cycle, row).
    order = np.argsort(pair_cycle.astype(np.uint16 if n_cycles <= 65_536 else np.int64), kind="stable")
    r, k, positive = pair_row[order], pair_cycle[order], log_sum[order] > 0
    end = np.empty_like(r)
    end[:-1] = np.where(k[1:] == k[:-1], r[1:], n)
    end[-1:] = n
    keep = positive & (end > r)
    r, k, length = r[keep], k[keep], (end - r)[keep]
    rows = np.repeat(r, length) + (
        np.arange(int(length.sum()), dtype=np.int64) - np.repeat(np.cumsum(length) - length, length)
    )
    return rows, np.repeat(k, length)


def _events(
    view: AlignedQuotes,
    column_index: list[int],
    topology: Topology,
    seq: npt.NDArray[np.int64],
    params: TriangularParams,
    latency: Mapping[str, float],
    max_age: Mapping[str, float],
    books: tuple[BookState, pl.DataFrame] | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    cols = np.array(column_index, dtype=np.int64)
    static = _static(topology, params.max_legs)
    fees, lots, min_notional = _instrument_table(topology, params)
    edge_column, edge_sell, cycle_edges = static.edge_column, static.edge_sell, static.cycle_edges
    edge_fee = np.where(edge_column >= 0, fees[np.maximum(edge_column, 0)], 0.0)
    # Topology column of each row's own cell (-1: not in the graph).
    to_topology = np.full(len(view.venues) + 1, -1, dtype=np.int64)
    to_topology[cols] = np.arange(cols.size)
    own = to_topology[view.exchange.astype(np.int64)]
    rows, ks = _screen(view.bid[:, cols], view.ask[:, cols], own, static, np.log1p(-edge_fee))
    counters = {"suppressed_stale": 0, "suppressed_flagged": 0}
    if rows.size == 0:
        return pl.DataFrame(schema=EVENT_SCHEMA), counters
    edges = cycle_edges[ks]  # (hits, legs), -1 padded
    valid = edges >= 0
    e_safe = np.maximum(edges, 0)
    col = edge_column[e_safe]
    col_safe = np.maximum(col, 0)
    transfer = col < 0
    trade = valid & ~transfer
    view_col = cols[col_safe]
    r2 = rows[:, None]
    leg_bid, leg_ask = view.bid[r2, view_col], view.ask[r2, view_col]
    present = np.where(trade, np.isfinite(leg_bid) & np.isfinite(leg_ask) & (leg_bid > 0) & (leg_ask > 0), True).all(1)
    ok = np.where(trade, view.usable[r2, view_col], True).all(axis=1)
    any_stale = np.where(trade, view.stale[r2, view_col], False).any(axis=1)
    blocked = present & ~ok
    counters["suppressed_stale"] = int((blocked & any_stale).sum())
    counters["suppressed_flagged"] = int((blocked & ~any_stale).sum())
    hit = ok & present
    if not hit.any():
        return pl.DataFrame(schema=EVENT_SCHEMA), counters
    rows, ks, edges, col_safe, view_col = rows[hit], ks[hit], edges[hit], col_safe[hit], view_col[hit]
    transfer, trade = transfer[hit], trade[hit]
    e_safe = np.maximum(edges, 0)
    sell = edge_sell[e_safe]
    n_hit = rows.size
    r2 = rows[:, None]
    leg_bid, leg_ask = view.bid[r2, view_col], view.ask[r2, view_col]
    leg_bid_size, leg_ask_size = view.bid_size[r2, view_col], view.ask_size[r2, view_col]
    fee = np.where(transfer, 0.0, fees[col_safe])
    rate = np.where(~trade, 1.0, np.where(sell, leg_bid, 1.0 / leg_ask) * (1.0 - fee))
    before = np.cumprod(np.concatenate([np.ones((n_hit, 1)), rate[:, :-1]], axis=1), axis=1)
    capacity = np.where(~trade, np.inf, np.where(sell, leg_bid_size, leg_ask_size * leg_ask))
    start_amount = np.minimum((capacity / before).min(axis=1), params.max_notional)
    # Lot sizes: every leg trades a whole number of its lots (base units).  The start amount is scaled down by
    # the worst leg's rounding, so every leg's rounded size covers what flows through it; the sub-lot remainder
    # stays in the intermediate currency and is not counted as profit.
    base_per_start = np.where(sell, before, before / leg_ask)  # base units traded per unit of start amount
    lot = np.where(trade, lots[col_safe], 0.0)
    raw_size = start_amount[:, None] * base_per_start
    ratio = np.where(trade & (raw_size > 0), _floor_lot(raw_size, lot) / np.where(raw_size > 0, raw_size, 1.0), 1.0)
    start_amount = start_amount * ratio.min(axis=1)
    leg_size = np.where(trade, _floor_lot(start_amount[:, None] * base_per_start, lot), 0.0)
    leg_price = np.where(sell, leg_bid, leg_ask)
    notional_ok = np.where(trade, leg_size * leg_price >= min_notional[col_safe], True).all(axis=1)
    # Exact values from NumPy in leg order (the screen only selects): identical for any batch split.
    growth = np.prod(rate, axis=1)
    profit = start_amount * (growth - 1.0)
    displayed = np.where(sell, leg_bid_size, leg_ask_size)
    if books is not None and (books[0].frame.height or books[1].height):
        walked = _walk_cycles(
            view, topology, params, books, rows, col_safe, view_col, trade, sell, fee, lots,
            (leg_bid, leg_ask, leg_bid_size, leg_ask_size),
        )  # fmt: skip
        if walked is not None:
            use, w_start, w_profit, w_size, w_price, w_depth = walked
            start_amount = np.where(use, w_start, start_amount)
            profit = np.where(use, w_profit, profit)
            with np.errstate(invalid="ignore", divide="ignore"):
                growth = np.where(use, 1.0 + w_profit / w_start, growth)  # average growth of the walked amount
            leg_size = np.where(use[:, None], w_size, leg_size)
            leg_price = np.where(use[:, None] & trade, w_price, leg_price)
            displayed = np.where(use[:, None], w_depth, displayed)
            notional_ok = np.where(trade, leg_size * leg_price >= min_notional[col_safe], True).all(axis=1)
    keep = (growth > 1.0) & (start_amount > 0) & notional_ok & (profit >= params.min_profit) & np.isfinite(profit)
    if not keep.any():
        return pl.DataFrame(schema=EVENT_SCHEMA), counters
    rows, ks, start_amount, profit, growth = rows[keep], ks[keep], start_amount[keep], profit[keep], growth[keep]
    col_safe, sell, trade, view_col = col_safe[keep], sell[keep], trade[keep], view_col[keep]
    leg_price, leg_size = leg_price[keep], leg_size[keep]
    displayed = displayed[keep]
    # Confidence: weakest leg's freshness and depth use.
    column_names = [view.venues[c] for c in column_index]
    lat = np.array([latency.get(c, 0.0) for c in column_names])
    mage = np.array([max_age.get(c, 0.0) for c in column_names])
    age_ms = (view.time[rows][:, None] - view.quote_time[rows[:, None], view_col]) / 1e6
    leg_fresh = np.where(trade, freshness(age_ms, lat[col_safe], mage[col_safe]), 1.0)
    leg_depth = np.where(trade, depth_factor(leg_size, displayed), 1.0)
    confidence = row_confidence(leg_fresh.min(axis=1), leg_depth.min(axis=1))
    return _event_frame(topology, static, rows, ks, seq, view.time, trade, col_safe, sell, leg_price, leg_size,
                        start_amount, profit, growth, confidence), counters  # fmt: skip


_F = npt.NDArray[np.float64]


def _walk_cycles(
    view: AlignedQuotes,
    topology: Topology,
    params: TriangularParams,
    books: tuple[BookState, pl.DataFrame],
    rows: npt.NDArray[np.int64],
    column: npt.NDArray[np.int64],
    view_column: npt.NDArray[np.int64],
    trade: npt.NDArray[np.bool_],
    sell: npt.NDArray[np.bool_],
    fee: _F,
    lots: _F,
    top: tuple[_F, _F, _F, _F],
) -> tuple[npt.NDArray[np.bool_], _F, _F, _F, _F, _F] | None:
    """Joint depth walk of the hits where some leg has a usable book snapshot at least as recent as its quote.

    Legs without one walk their top of book.  The walked start amount is then scaled so every leg trades whole
    lots and walked again at that amount, so profit and average prices are exact for the reported start amount
    (leg sizes are floored to lots; the sub-lot remainder is not counted).  Returns ``None`` when no hit has a
    book, else ``(use, start, profit, leg size, leg average price, leg displayed depth)``.
    """
    n_hit, legs = trade.shape
    hit_of, leg_of = np.nonzero(trade)
    picked = column[hit_of, leg_of]
    venues = pl.Series([v for v, _ in topology.columns], dtype=pl.String).gather(picked)
    symbols = pl.Series([s for _, s in topology.columns], dtype=pl.String).gather(picked)
    bid_p, bid_s, ask_p, ask_s, snapshot_time = book_as_of(
        books[0], books[1], venues, symbols, view.time[rows][hit_of], clock=params.clock
    )
    leg_sell = sell[hit_of, leg_of]
    book_price = np.where(leg_sell[:, None], bid_p, ask_p)
    book_size = np.where(leg_sell[:, None], bid_s, ask_s)
    # A snapshot counts for a leg only if it is as recent as the leg's quote and has a level on the side walked.
    fresh = (snapshot_time >= view.quote_time[rows[hit_of], view_column[hit_of, leg_of]]) & np.isfinite(
        book_price[:, 0]
    )
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
    lot = np.where(trade, lots[column], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(trade & (base > 0), _floor_lot(base, lot) / base, 1.0).min(axis=1)
    start, profit, base, notional = cycle_walk(sell=sell, price=price, size=size, fee=fee, cap=start * ratio)
    with np.errstate(invalid="ignore", divide="ignore"):
        average = np.where(base > 0, notional / base, np.nan)
    return use, start, profit, np.where(trade, _floor_lot(base, lot), 0.0), average, size.sum(axis=2)


def _event_frame(
    topology: Topology,
    static: _Static,
    rows: npt.NDArray[np.int64],
    ks: npt.NDArray[np.int64],
    seq: npt.NDArray[np.int64],
    time: npt.NDArray[np.int64],
    trade: npt.NDArray[np.bool_],
    column: npt.NDArray[np.int64],
    sell: npt.NDArray[np.bool_],
    price: npt.NDArray[np.float64],
    size: npt.NDArray[np.float64],
    start_amount: npt.NDArray[np.float64],
    profit: npt.NDArray[np.float64],
    growth: npt.NDArray[np.float64],
    confidence: npt.NDArray[np.float64],
) -> pl.DataFrame:
    """Events of the hits; legs are built column-wise (one long frame, grouped back per hit), strings per cycle."""
    n_hit, n_legs = trade.shape
    venues = pl.Series([v for v, _ in topology.columns], dtype=pl.String)
    symbols = pl.Series([s for _, s in topology.columns], dtype=pl.String)
    hit_of, leg_of = np.nonzero(trade)  # row-major: legs in cycle order within each hit
    picked = column[hit_of, leg_of]
    long = pl.DataFrame(
        {
            "hit": hit_of,
            "exchange": venues.gather(picked),
            "symbol": symbols.gather(picked),
            "side": pl.Series(np.where(sell[hit_of, leg_of], "sell", "buy"), dtype=pl.String),
            "price": price[hit_of, leg_of],
            "size": size[hit_of, leg_of],
        }
    )
    legs = long.group_by("hit", maintain_order=True).agg(
        pl.struct("exchange", "symbol", "side", "price", "size").alias("legs"),
        pl.col("exchange").first().alias("buy_exchange"),
        pl.col("exchange").last().alias("sell_exchange"),
        pl.col("price").first().alias("buy_price"),
    )
    del n_legs
    return pl.DataFrame(
        {
            "kind": pl.repeat(KIND, n_hit, dtype=pl.String, eager=True),
            "key": static.keys.gather(ks),
            "timeline": pl.repeat("*", n_hit, dtype=pl.String, eager=True),
            "seq": seq[rows],
            "ts": time[rows],
            "symbol": static.names.gather(ks),
            "legs": legs["legs"],
            "buy_exchange": legs["buy_exchange"],
            "sell_exchange": legs["sell_exchange"],
            "buy_price": legs["buy_price"],
            "sell_price": pl.Series([None] * n_hit, dtype=pl.Float64),
            "size": start_amount,
            "profit": profit,
            "profit_percentage": 100.0 * (growth - 1.0),
            "confidence": confidence,
        }
    ).cast(EVENT_SCHEMA)  # type: ignore[arg-type]


def finish_triangular(state: TriangularState, params: TriangularParams) -> pl.DataFrame:
    """Episodes still open at the end of a run (status ``"active"``)."""
    del params
    out = finish_episodes(state.episodes)
    return out if out.height else schema.empty(schema.OPPORTUNITIES)
