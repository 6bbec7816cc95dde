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
On every row of the merged timeline (all venues and instruments), every cycle is evaluated from the as-of quotes
(:mod:`arbkit.align`, one column per ``(venue, symbol)``) as a log-rate sum in one jitted JAX gather
(:func:`arbkit.detect.kernels.cycle_log_sums`)::

    profit per unit of start currency = prod(rates along the cycle) - 1

A cycle starts (and its profit is counted) in a stablecoin (USDT, USD, USDC) when it passes through one, else in
its alphabetically first currency.  Its size is the largest start amount that every leg's displayed size allows
(a sell leg can take ``bid_size`` base, a buy leg can deliver ``ask_size`` base) and at most ``max_notional``
units of the start currency.  Episodes are keyed by the cycle on the global timeline (every row).  Lot sizes are
not applied to cycles (the legs' sizes are reported unrounded).

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
from arbkit.align import AlignedQuotes, Clock, LastQuotes, align_quotes, check_quotes, count_reasons
from arbkit.detect._confidence import depth_factor, freshness, row_confidence
from arbkit.detect._episodes import EVENT_SCHEMA, EpisodeState, advance_timelines, finish_episodes, merge_episodes
from arbkit.detect.kernels import cycle_log_sums
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

    @classmethod
    def empty(cls) -> TriangularState:
        return cls(LastQuotes.empty(), EpisodeState.empty(), {})


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
    quotes: pl.DataFrame, state: TriangularState, params: TriangularParams
) -> tuple[pl.DataFrame, TriangularState]:
    """One step of the triangular detector over a batch of quotes (see module docstring).

    Returns the episodes closed in this batch (:data:`arbkit.schema.OPPORTUNITIES`, ``"expired"``) and the next
    state; :func:`finish_triangular` gives the open ones.
    """
    registry = params.registry
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
    seq, episodes = advance_timelines(state.episodes, pl.Series(["*"] * view.height, dtype=pl.String))
    columns: list[tuple[str, str]] = []
    column_index: list[int] = []
    for i, cell in enumerate(view.venues):
        venue, symbol = cell.split(_SEP, 1)
        if (venue, symbol) in registry:
            columns.append((venue, symbol))
            column_index.append(i)
    events = pl.DataFrame(schema=EVENT_SCHEMA)
    if view.height and columns:
        topology = build_topology(tuple(columns), params.max_legs, tuple(sorted(params.transfers)))
        if topology.cycles:
            # Padded and unusable legs may hold 0 or NaN prices; they are masked out, so silence their warnings.
            with np.errstate(divide="ignore", invalid="ignore"):
                events, suppressed = _events(view, column_index, topology, seq, params, latency, max_age)
            for k, v in suppressed.items():
                counters[k] = counters.get(k, 0) + v
    closed, episodes = merge_episodes(events, episodes)
    merged = dict(state.counters)
    for k, v in counters.items():
        if v:
            merged[k] = merged.get(k, 0) + v
    return closed, TriangularState(last, episodes, dict(sorted(merged.items())))


def _is_spot(symbol: str) -> bool:
    try:
        return parse_symbol(symbol).kind is InstrumentKind.SPOT
    except ValueError:
        return False


def _events(
    view: AlignedQuotes,
    column_index: list[int],
    topology: Topology,
    seq: npt.NDArray[np.int64],
    params: TriangularParams,
    latency: Mapping[str, float],
    max_age: Mapping[str, float],
) -> tuple[pl.DataFrame, dict[str, int]]:
    cols = np.array(column_index, dtype=np.int64)
    bid, ask = view.bid[:, cols], view.ask[:, cols]
    bid_size, ask_size = view.bid_size[:, cols], view.ask_size[:, cols]
    usable, stale = view.usable[:, cols], view.stale[:, cols]
    fees = np.array(
        [
            params.taker_fees.get(v, params.registry.get(v, s).taker_fee)
            for v, s in topology.columns  # columns align with cols by construction
        ]
    )
    edge_column = np.array([e[0] for e in topology.edges], dtype=np.int64)
    edge_sell = np.array([e[1] for e in topology.edges], dtype=np.bool_)
    edge_fee = np.where(edge_column >= 0, fees[np.maximum(edge_column, 0)], 0.0)
    cycle_edges = topology.cycle_index(params.max_legs)
    log_sum, ok, present, any_stale = cycle_log_sums(
        bid=bid,
        ask=ask,
        usable=usable,
        stale=stale,
        edge_column=edge_column,
        edge_sell=edge_sell,
        edge_log_fee=np.log1p(-edge_fee),
        cycle_edges=cycle_edges,
    )
    profitable = log_sum > 0
    blocked = profitable & present & ~ok
    counters = {
        "suppressed_stale": int((blocked & any_stale).sum()),
        "suppressed_flagged": int((blocked & ~any_stale).sum()),
    }
    rows, ks = np.nonzero(profitable & ok)
    if rows.size == 0:
        return pl.DataFrame(schema=EVENT_SCHEMA), counters
    # Sizing and legs on the (few) profitable (row, cycle) pairs, leg by leg.
    n_hit, legs_max = rows.size, cycle_edges.shape[1]
    edges = cycle_edges[ks]  # (hits, legs), -1 padded
    valid = edges >= 0
    e_safe = np.maximum(edges, 0)
    col = edge_column[e_safe]
    col_safe = np.maximum(col, 0)
    transfer = col < 0
    sell = edge_sell[e_safe]
    r2 = rows[:, None]
    leg_bid, leg_ask = bid[r2, col_safe], ask[r2, col_safe]
    leg_bid_size, leg_ask_size = bid_size[r2, col_safe], ask_size[r2, col_safe]
    fee = np.where(transfer, 0.0, fees[col_safe])
    rate = np.where(transfer | ~valid, 1.0, np.where(sell, leg_bid, 1.0 / leg_ask) * (1.0 - fee))
    before = np.cumprod(np.concatenate([np.ones((n_hit, 1)), rate[:, :-1]], axis=1), axis=1)
    capacity = np.where(transfer | ~valid, np.inf, np.where(sell, leg_bid_size, leg_ask_size * leg_ask))
    start_amount = np.minimum((capacity / before).min(axis=1), params.max_notional)
    # Exact values from NumPy in leg order (the kernel's sum only screens): identical for any batch split.
    growth = np.prod(rate, axis=1)
    profit = start_amount * (growth - 1.0)
    keep = (growth > 1.0) & (start_amount > 0) & (profit >= params.min_profit) & np.isfinite(profit)
    if not keep.any():
        return pl.DataFrame(schema=EVENT_SCHEMA), counters
    rows, ks, start_amount, profit, growth = rows[keep], ks[keep], start_amount[keep], profit[keep], growth[keep]
    col, col_safe, sell, valid, transfer = col[keep], col_safe[keep], sell[keep], valid[keep], transfer[keep]
    leg_bid, leg_ask, before = leg_bid[keep], leg_ask[keep], before[keep]
    leg_bid_size, leg_ask_size = leg_bid_size[keep], leg_ask_size[keep]
    amount_in = start_amount[:, None] * before
    leg_price = np.where(sell, leg_bid, leg_ask)
    leg_size = np.where(sell, amount_in, amount_in / leg_ask)  # base units traded
    # Confidence: weakest leg's freshness and depth use.
    column_names = [view.venues[c] for c in column_index]
    lat = np.array([latency.get(c, 0.0) for c in column_names])
    mage = np.array([max_age.get(c, 0.0) for c in column_names])
    age_ms = (view.time[rows][:, None] - view.quote_time[rows][:, cols][np.arange(rows.size)[:, None], col_safe]) / 1e6
    leg_fresh = np.where(transfer | ~valid, 1.0, freshness(age_ms, lat[col_safe], mage[col_safe]))
    leg_depth = np.where(transfer | ~valid, 1.0, depth_factor(leg_size, np.where(sell, leg_bid_size, leg_ask_size)))
    confidence = row_confidence(leg_fresh.min(axis=1), leg_depth.min(axis=1))
    legs: list[list[dict[str, object]]] = []
    names: list[str] = []
    keys: list[str] = []
    buy_ex: list[str] = []
    sell_ex: list[str] = []
    for h in range(rows.size):
        cycle = topology.cycles[int(ks[h])]
        entries: list[dict[str, object]] = []
        for j in range(legs_max):
            if not valid[h, j] or transfer[h, j]:
                continue
            venue, symbol = topology.columns[int(col[h, j])]
            entries.append(
                {
                    "exchange": venue,
                    "symbol": symbol,
                    "side": "sell" if sell[h, j] else "buy",
                    "price": float(leg_price[h, j]),
                    "size": float(leg_size[h, j]),
                }
            )
        legs.append(entries)
        names.append(cycle.name)
        keys.append(";".join(_leg_text(topology, e) for e in cycle.edges))
        buy_ex.append(str(entries[0]["exchange"]))
        sell_ex.append(str(entries[-1]["exchange"]))
    first_price = [float(entries_h[0]["price"]) for entries_h in legs]  # type: ignore[arg-type]  # first trade, not a transfer
    frame = pl.DataFrame(
        {
            "kind": [KIND] * rows.size,
            "key": keys,
            "timeline": ["*"] * rows.size,
            "seq": seq[rows],
            "ts": view.time[rows],
            "symbol": names,
            "legs": pl.Series(legs, dtype=EVENT_SCHEMA["legs"]),
            "buy_exchange": buy_ex,
            "sell_exchange": sell_ex,
            "buy_price": first_price,
            "sell_price": np.full(rows.size, None, dtype=object).tolist(),
            "size": start_amount,
            "profit": profit,
            "profit_percentage": 100.0 * (growth - 1.0),
            "confidence": confidence,
        },
        schema=EVENT_SCHEMA,
    )
    return frame, counters


def finish_triangular(state: TriangularState, params: TriangularParams) -> pl.DataFrame:
    """Episodes still open at the end of a run (status ``"active"``)."""
    del params
    out = finish_episodes(state.episodes)
    return out if out.height else schema.empty(schema.OPPORTUNITIES)
