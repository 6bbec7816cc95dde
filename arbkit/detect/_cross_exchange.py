"""Cross-exchange arbitrage: buy an instrument at the ask on one venue, sell it at the bid on another.

For every row of an instrument's timeline (its quote updates, all venues merged) and every ordered venue pair
``(A, B)`` whose as-of quotes are usable (:mod:`arbkit.align`), the profit per unit, net of taker fees from the
instrument registry, is::

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

Speed: rows are first screened venue by venue in the as-of view's symbol-grouped order (contiguous index arrays,
one fee run per symbol; best fee-adjusted bid against best fee-adjusted ask, loose by 1e-9 relative); only
passing rows get their ``(rows, venues)`` view and are evaluated pair by pair, and events are built column-wise
with integer candidate ids whose key strings are made once per candidate (a few events, as in a live
micro-batch: straight from Series, without lazy Polars queries).

Events merge into episodes keyed by ``(symbol, buy venue, sell venue)`` on the instrument's timeline
(:mod:`arbkit.detect._episodes`).

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

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import cast

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit import schema
from arbkit.align import (
    AlignedQuotes,
    Clock,
    LastQuotes,
    _align_lazy,
    _check,
    _LazyView,
    _memo,
    count_reasons,
    max_age_ns,
)
from arbkit.detect._confidence import depth_factor, freshness, row_confidence
from arbkit.detect._depth import BookState, book_as_of, joint_walk, ladder_fill, update_books
from arbkit.detect._episodes import (
    EVENT_SCHEMA,
    EpisodeState,
    advance_timeline_codes,
    finish_episodes,
    merge_episodes,
)
from arbkit.instruments import Registry, UnknownInstrumentError, default_registry

__all__ = ["CrossExchangeParams", "CrossExchangeState", "detect_cross_exchange", "finish_cross_exchange"]

KIND = "cross_exchange"
_F = npt.NDArray[np.float64]
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


@dataclass(frozen=True)
class CrossExchangeState:
    """Latest quotes, open episodes, counters (rejected rows by reason, suppressed candidates), latest books."""

    quotes: LastQuotes
    episodes: EpisodeState
    counters: Mapping[str, int]
    book: BookState = field(default_factory=BookState.empty)

    @classmethod
    def empty(cls) -> CrossExchangeState:
        return cls(LastQuotes.empty(), EpisodeState.empty(), {}, BookState.empty())


_EMPTY_EVENTS = pl.DataFrame(schema=EVENT_SCHEMA)
_EMPTY_OPPORTUNITIES = schema.empty(schema.OPPORTUNITIES)


def _add(counters: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    out = dict(counters)
    for k, v in more.items():
        if v:
            out[k] = out.get(k, 0) + int(v)
    return dict(sorted(out.items()))


def _instrument_table(
    view: AlignedQuotes | _LazyView, params: CrossExchangeParams
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(taker fee, lot size, min notional) per (symbol, venue); NaN where the registry does not list it."""
    memo = _memo(params.registry)
    key = ("cross_exchange.table", view.symbols, view.venues, tuple(sorted(params.taker_fees.items())))
    cached = memo.get(key)
    if cached is not None:
        return cast(tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]], cached)
    shape = (len(view.symbols), len(view.venues))
    fee, lot, min_notional = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for s, symbol in enumerate(view.symbols):
        for v, venue in enumerate(view.venues):
            try:
                inst = params.registry.get(venue, symbol)
            except UnknownInstrumentError:
                continue
            fee[s, v] = params.taker_fees.get(venue, inst.taker_fee)
            lot[s, v] = inst.lot_size
            min_notional[s, v] = inst.min_notional
    memo[key] = (fee, lot, min_notional)
    return fee, lot, min_notional


def _floor_lot(size: npt.NDArray[np.float64], lot: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # The relative epsilon keeps sizes that are exact multiples (1.0 / 0.1 = 9.999...) from losing a lot.
    return np.floor(size / lot * (1.0 + 1e-12)) * lot


def _screen(
    bid: npt.NDArray[np.float64], ask: npt.NDArray[np.float64], fee: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Rows that can hold a profitable pair: the best fee-adjusted bid beats the best fee-adjusted ask over the
    row's present quotes.  Loose (relative 1e-9): the exact per-pair test decides, so no row is lost to rounding;
    in real data only a tiny fraction of rows pass."""
    with np.errstate(invalid="ignore"):
        bid_net, ask_net = bid * (1.0 - fee), ask * (1.0 + fee)
        net_bid, net_ask = bid_net[:, 0], ask_net[:, 0]
        for v in range(1, bid.shape[1]):  # column by column: faster than a reduce over a short axis
            net_bid, net_ask = np.fmax(net_bid, bid_net[:, v]), np.fmin(net_ask, ask_net[:, v])
        return np.flatnonzero(net_bid > net_ask * (1.0 - 1e-9))


def _screen_grouped(lazy: _LazyView, fee_table: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """:func:`_screen` over every row, evaluated per venue in the view's symbol-grouped order (contiguous index
    arrays, the fee a run per symbol), without gathering the ``(rows, venues)`` arrays; returns timeline rows."""
    bid, ask, counts = lazy.ext["bid"], lazy.ext["ask"], lazy.group_counts
    with np.errstate(invalid="ignore"):
        for v in range(len(lazy.venues)):
            fee = np.repeat(fee_table[:, v], counts)
            src = lazy.src_g[v]
            bid_net, ask_net = np.take(bid, src) * (1.0 - fee), np.take(ask, src) * (1.0 + fee)
            if v == 0:
                net_bid, net_ask = bid_net, ask_net
            else:
                net_bid, net_ask = np.fmax(net_bid, bid_net), np.fmin(net_ask, ask_net)
        passing = np.flatnonzero(net_bid > net_ask * (1.0 - 1e-9))
    return np.sort(lazy.grouped[passing])


def _events(
    view: AlignedQuotes,
    seq: npt.NDArray[np.int64],
    params: CrossExchangeParams,
    books: tuple[BookState, pl.DataFrame] | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    fee_t, lot_t, min_t = _instrument_table(view, params)
    n_ven = len(view.venues)
    counters = {"suppressed_stale": 0, "suppressed_flagged": 0}
    if view.height == 0 or n_ven < 2:
        return _EMPTY_EVENTS.clear(), counters
    sym = view.symbol.astype(np.int64)
    rows = _screen(view.bid, view.ask, np.take(fee_t, sym, axis=0))
    if rows.size == 0:
        return _EMPTY_EVENTS.clear(), counters
    sym_r = sym[rows]
    fee, lot, min_notional = fee_t[sym_r], lot_t[sym_r], min_t[sym_r]
    bid_r, ask_r = view.bid[rows], view.ask[rows]
    bid_size_r, ask_size_r = view.bid_size[rows], view.ask_size[rows]
    usable_r, stale_r = view.usable[rows], view.stale[rows]
    present = ~np.isnan(bid_r) & ~np.isnan(ask_r)
    parts: list[tuple[npt.NDArray[np.int64], int, int]] = []
    per_unit_all = np.full((rows.size, n_ven, n_ven), np.nan)
    size_all = np.zeros((rows.size, n_ven, n_ven))
    with np.errstate(invalid="ignore", divide="ignore"):
        for a in range(n_ven):
            for b in range(n_ven):
                if a == b:
                    continue
                ask, bid = ask_r[:, a], bid_r[:, b]
                per_unit = (bid - ask) - fee[:, a] * ask - fee[:, b] * bid
                raw = np.minimum(np.minimum(ask_size_r[:, a], bid_size_r[:, b]), params.max_notional / ask)
                size = _floor_lot(raw, np.fmax(lot[:, a], lot[:, b]))
                profit = per_unit * size
                notional_ok = size * ask >= np.fmax(min_notional[:, a], min_notional[:, b])
                candidate = (per_unit > 0) & (size > 0) & notional_ok & (profit >= params.min_profit)
                usable = usable_r[:, a] & usable_r[:, b]
                blocked = candidate & present[:, a] & present[:, b] & ~usable
                stale = blocked & (stale_r[:, a] | stale_r[:, b])
                counters["suppressed_stale"] += int(stale.sum())
                counters["suppressed_flagged"] += int((blocked & ~stale).sum())
                hit = np.flatnonzero(candidate & usable)
                if hit.size:
                    parts.append((hit, a, b))
                    per_unit_all[hit, a, b] = per_unit[hit]
                    size_all[hit, a, b] = size[hit]
    if not parts:
        return _EMPTY_EVENTS.clear(), counters
    hit = np.concatenate([p[0] for p in parts])  # positions in ``rows``
    a_idx = np.concatenate([np.full(p[0].size, p[1], dtype=np.int64) for p in parts])
    b_idx = np.concatenate([np.full(p[0].size, p[2], dtype=np.int64) for p in parts])
    row = rows[hit]
    buy_price, sell_price = ask_r[hit, a_idx], bid_r[hit, b_idx]
    per_unit = per_unit_all[hit, a_idx, b_idx]
    size = size_all[hit, a_idx, b_idx]
    fee_a = fee[hit, a_idx]
    profit = per_unit * size
    cost = buy_price * size
    percentage = 100.0 * per_unit / (buy_price * (1.0 + fee_a))
    buy_fill, sell_fill = buy_price, sell_price
    displayed_buy, displayed_sell = ask_size_r[hit, a_idx], bid_size_r[hit, b_idx]
    if books is not None and (books[0].frame.height or books[1].height):
        walked = _walk_books(
            view, params, books, row, a_idx, b_idx, fee_a, fee[hit, b_idx], lot[hit], min_notional[hit]
        )
        if walked is not None:
            use, w_size, w_profit, w_cost, w_proceeds, w_buy_depth, w_sell_depth = walked
            keep = ~use | ((w_size > 0) & (w_profit > 0) & (w_profit >= params.min_profit))
            size, profit = np.where(use, w_size, size), np.where(use, w_profit, profit)
            cost = np.where(use, w_cost, cost)
            with np.errstate(invalid="ignore", divide="ignore"):
                percentage = np.where(use, 100.0 * w_profit / (w_cost * (1.0 + fee_a)), percentage)
            with np.errstate(invalid="ignore", divide="ignore"):
                buy_fill = np.where(use, w_cost / w_size, buy_price)
                sell_fill = np.where(use, w_proceeds / w_size, sell_price)
            displayed_buy = np.where(use, w_buy_depth, displayed_buy)
            displayed_sell = np.where(use, w_sell_depth, displayed_sell)
            if not keep.all():
                row, a_idx, b_idx, hit = row[keep], a_idx[keep], b_idx[keep], hit[keep]
                buy_price, sell_price, size, profit, cost = (
                    buy_price[keep],
                    sell_price[keep],
                    size[keep],
                    profit[keep],
                    cost[keep],
                )
                buy_fill, sell_fill, percentage = buy_fill[keep], sell_fill[keep], percentage[keep]
                displayed_buy, displayed_sell = displayed_buy[keep], displayed_sell[keep]
            if row.size == 0:
                return _EMPTY_EVENTS.clear(), counters
    latency = np.array(
        [params.registry.profile(v).latency_ms if v in params.registry.profiles else 0.0 for v in view.venues]
    )
    max_age_ms = max_age_ns(view.venues, params.registry, params.max_age_ms) / _NS_PER_MS
    age_ms = (view.time[row][:, None] - view.quote_time[row]) / _NS_PER_MS
    fresh = freshness(age_ms, latency[None, :], max_age_ms[None, :])
    pick = np.arange(row.size)
    confidence = row_confidence(
        np.minimum(fresh[pick, a_idx], fresh[pick, b_idx]),
        np.minimum(depth_factor(size, displayed_buy), depth_factor(size, displayed_sell)),
    )
    frame = _event_frame(
        view,
        row=row,
        buy=a_idx,
        sell=b_idx,
        seq=seq[row],
        buy_price=buy_price,
        sell_price=sell_price,
        buy_fill=buy_fill,
        sell_fill=sell_fill,
        size=size,
        profit=profit,
        profit_percentage=percentage,
        confidence=confidence,
    )
    return frame, counters


def _walk_books(
    view: AlignedQuotes,
    params: CrossExchangeParams,
    books: tuple[BookState, pl.DataFrame],
    row: npt.NDArray[np.int64],
    buy: npt.NDArray[np.int64],
    sell: npt.NDArray[np.int64],
    buy_fee: npt.NDArray[np.float64],
    sell_fee: npt.NDArray[np.float64],
    lot: npt.NDArray[np.float64],
    min_notional: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.bool_], _F, _F, _F, _F, _F, _F] | None:
    """Joint depth walk for the hits where a leg has a usable book snapshot at least as recent as its quote.

    A leg without such a snapshot walks its top of book (one level: the quote's price and displayed size).
    Returns ``None`` when no hit has a book, else ``(use, size, profit, cost, proceeds, buy depth, sell depth)``.
    """
    n = row.size
    symbols = pl.Series(view.symbols, dtype=pl.String).gather(view.symbol[row].astype(np.int64))
    venues = pl.Series(view.venues, dtype=pl.String)
    state, batch_book = books
    time = view.time[row]
    buy_book = book_as_of(state, batch_book, venues.gather(buy), symbols, time, clock=params.clock)
    sell_book = book_as_of(state, batch_book, venues.gather(sell), symbols, time, clock=params.clock)
    # A snapshot counts for a leg only if it is as recent as the leg's quote and has a level on the side walked.
    buy_ok = (buy_book[4] >= view.quote_time[row, buy]) & np.isfinite(buy_book[2][:, 0])
    sell_ok = (sell_book[4] >= view.quote_time[row, sell]) & np.isfinite(sell_book[0][:, 0])
    use = buy_ok | sell_ok
    if not use.any():
        return None
    ask, ask_size = view.ask[row, buy], view.ask_size[row, buy]
    bid, bid_size = view.bid[row, sell], view.bid_size[row, sell]

    def ladder(
        ok: npt.NDArray[np.bool_], price: npt.NDArray[np.float64], size: npt.NDArray[np.float64],
        top: npt.NDArray[np.float64], top_size: npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:  # fmt: skip
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
        lot=np.fmax(lot[np.arange(n), buy], lot[np.arange(n), sell]),
        min_notional=np.fmax(min_notional[np.arange(n), buy], min_notional[np.arange(n), sell]),
    )
    cost = ladder_fill(buy_price, buy_size, size)
    proceeds = ladder_fill(sell_price, sell_size, size)
    return use, size, profit, cost, proceeds, buy_size.sum(axis=1), sell_size.sum(axis=1)


def _event_frame(
    view: AlignedQuotes,
    *,
    row: npt.NDArray[np.int64],
    buy: npt.NDArray[np.int64],
    sell: npt.NDArray[np.int64],
    **values: npt.NDArray[np.generic],
) -> pl.DataFrame:
    """Events from integer (row, buy venue, sell venue) hits: strings are made once per candidate, not per row."""
    n_ven = len(view.venues)
    sym = view.symbol[row].astype(np.int64)
    if row.size <= _FEW_EVENTS:
        return _few_events_frame(view, row=row, sym=sym, buy=buy, sell=sell, **values)
    candidate = (sym * n_ven + buy) * n_ven + sell
    unique, inverse = np.unique(candidate, return_inverse=True)
    names = [divmod(int(c), n_ven * n_ven) for c in unique]
    keys = pl.Series(
        [f"{view.symbols[s]}|{view.venues[p // n_ven]}|{view.venues[p % n_ven]}" for s, p in names], dtype=pl.String
    )
    symbols = pl.Series(view.symbols, dtype=pl.String)
    venues = pl.Series(view.venues, dtype=pl.String)
    base = pl.DataFrame(
        {
            "key": keys.gather(inverse.ravel()),
            "timeline": symbols.gather(sym),
            "ts": view.time[row],
            "buy_exchange": venues.gather(buy),
            "sell_exchange": venues.gather(sell),
            **values,
        }
    )

    # Legs: one long frame with the buy and sell leg of each event interleaved, reshaped to (events, 2) (much
    # faster than concatenating struct columns into lists).
    n = row.size
    pair = np.arange(2 * n) // 2
    is_sell = np.arange(2 * n) % 2 == 1
    fills = np.where(is_sell, np.asarray(values["sell_fill"])[pair], np.asarray(values["buy_fill"])[pair])
    long = pl.DataFrame(
        {
            "exchange": venues.gather(np.where(is_sell, sell[pair], buy[pair])),
            "symbol": symbols.gather(sym[pair]),
            "side": pl.Series(np.where(is_sell, "sell", "buy"), dtype=pl.String),
            "price": fills,
            "size": np.asarray(values["size"])[pair],
        }
    )
    legs = long.select(pl.struct(pl.all()).alias("legs")).to_series().reshape((n, 2)).arr.to_list()
    return base.select(
        pl.lit(KIND, dtype=pl.String).alias("kind"),
        "key",
        "timeline",
        "seq",
        "ts",
        pl.col("timeline").alias("symbol"),
        legs,
        "buy_exchange",
        "sell_exchange",
        "buy_price",
        "sell_price",
        "size",
        "profit",
        "profit_percentage",
        "confidence",
    ).cast(EVENT_SCHEMA)  # type: ignore[arg-type]


#: Up to this many events, the event frame is built from Python lists in one Polars call (a live micro-batch has
#: a handful): the column-wise build below costs a dozen Polars calls whatever the count.
_FEW_EVENTS = 256


def _few_events_frame(
    view: AlignedQuotes,
    *,
    row: npt.NDArray[np.int64],
    sym: npt.NDArray[np.int64],
    buy: npt.NDArray[np.int64],
    sell: npt.NDArray[np.int64],
    **values: npt.NDArray[np.generic],
) -> pl.DataFrame:
    """:func:`_event_frame` for a few events, from Series made directly (names as Python lists, numbers as
    NumPy arrays) and the legs through one struct frame: same values, a tenth of the Polars calls."""
    n = row.size
    symbol = [view.symbols[s] for s in sym.tolist()]
    buy_ex = [view.venues[b] for b in buy.tolist()]
    sell_ex = [view.venues[b] for b in sell.tolist()]
    size = np.asarray(values["size"], dtype=np.float64)
    pair = np.arange(2 * n) // 2
    is_sell = np.arange(2 * n) % 2 == 1
    fills = np.where(is_sell, np.asarray(values["sell_fill"])[pair], np.asarray(values["buy_fill"])[pair])
    long = pl.DataFrame(
        [
            pl.Series("exchange", [x for b, a in zip(buy_ex, sell_ex, strict=True) for x in (b, a)], dtype=pl.String),
            pl.Series("symbol", [s for s in symbol for _ in range(2)], dtype=pl.String),
            pl.Series("side", ["buy", "sell"] * n, dtype=pl.String),
            pl.Series("price", fills, dtype=pl.Float64),
            pl.Series("size", size[pair], dtype=pl.Float64),
        ]
    )
    legs = long.to_struct("legs").reshape((n, 2)).cast(EVENT_SCHEMA["legs"])
    names = pl.Series("timeline", symbol, dtype=pl.String)
    columns = [
        pl.Series("kind", [KIND] * n, dtype=pl.String),
        pl.Series("key", [f"{s}|{b}|{a}" for s, b, a in zip(symbol, buy_ex, sell_ex, strict=True)], dtype=pl.String),
        names,
        pl.Series("seq", np.asarray(values["seq"]), dtype=pl.Int64),
        pl.Series("ts", view.time[row], dtype=pl.Int64),
        names.alias("symbol"),
        legs,
        pl.Series("buy_exchange", buy_ex, dtype=pl.String),
        pl.Series("sell_exchange", sell_ex, dtype=pl.String),
        *[
            pl.Series(name, np.asarray(values[name]), dtype=pl.Float64)
            for name in ("buy_price", "sell_price", "size", "profit", "profit_percentage", "confidence")
        ],
    ]
    return pl.DataFrame(columns)


def detect_cross_exchange(
    quotes: pl.DataFrame, state: CrossExchangeState, params: CrossExchangeParams, book: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, CrossExchangeState]:
    """One step of the cross-exchange detector over a batch of quotes.

    Parameters
    ----------
    quotes
        Rows of the ``quotes`` table, any order (canonical clock order is applied); may contain bad rows, which
        are counted and never used.
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
    checked = _check(quotes, params.registry)
    reason = checked.reason
    lazy, last = _align_lazy(
        quotes, state.quotes, checked, registry=params.registry, clock=params.clock, max_age_ms=params.max_age_ms
    )
    seq, episodes = advance_timeline_codes(state.episodes, lazy.symbols, lazy.symbol)
    batch_book = book if book is not None else pl.DataFrame()
    # Only the bid and ask of every row are gathered, to screen; the full view is built for passing rows only.
    if lazy.height and len(lazy.venues) > 1:
        rows = _screen_grouped(lazy, _instrument_table(lazy, params)[0])
    else:
        rows = np.zeros(0, dtype=np.int64)
    events, suppressed = _events(lazy.view(rows), seq[rows], params, (state.book, batch_book))
    closed, episodes = merge_episodes(events, episodes)
    counters = _add(_add(state.counters, count_reasons(reason)), suppressed)
    return closed, CrossExchangeState(last, episodes, counters, update_books(state.book, batch_book, params.clock))


def finish_cross_exchange(state: CrossExchangeState, params: CrossExchangeParams) -> pl.DataFrame:
    """Episodes still open at the end of a run (status ``"active"``)."""
    del params
    out = finish_episodes(state.episodes)
    return out if out.height else _EMPTY_OPPORTUNITIES.clear()
