"""Cross-exchange arbitrage: buy an instrument at the ask on one venue, sell it at the bid on another.

For every row of an instrument's timeline (its quote updates, all venues merged) and every ordered venue pair
``(A, B)`` whose as-of quotes are usable (:mod:`arbkit.align`), the profit per unit, net of taker fees from the
instrument registry, is::

    profit_per_unit = (bid_B - ask_A) - fee_A * ask_A - fee_B * bid_B

and the size is limited by the displayed sizes and the notional cap, then rounded down to the coarser of the two
lot sizes::

    size = floor_lot(min(ask_size_A, bid_size_B, max_notional / ask_A))

A row is an *event* when ``profit_per_unit > 0``, ``size * ask_A`` reaches both venues' ``min_notional`` and
``profit = profit_per_unit * size >= min_profit``.  Events merge into episodes keyed by
``(symbol, buy venue, sell venue)`` on the instrument's timeline (:mod:`arbkit.detect._episodes`).

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

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit import schema
from arbkit.align import (
    AlignedQuotes,
    Clock,
    LastQuotes,
    align_quotes,
    check_quotes,
    count_reasons,
    max_age_ns,
)
from arbkit.detect._confidence import depth_factor, freshness, row_confidence
from arbkit.detect._episodes import (
    EVENT_SCHEMA,
    EpisodeState,
    advance_timelines,
    finish_episodes,
    merge_episodes,
)
from arbkit.instruments import Registry, UnknownInstrumentError, default_registry

__all__ = ["CrossExchangeParams", "CrossExchangeState", "detect_cross_exchange", "finish_cross_exchange"]

KIND = "cross_exchange"
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
    """Latest quotes, open episodes and counters (rejected rows by reason, suppressed candidates)."""

    quotes: LastQuotes
    episodes: EpisodeState
    counters: Mapping[str, int]

    @classmethod
    def empty(cls) -> CrossExchangeState:
        return cls(LastQuotes.empty(), EpisodeState.empty(), {})


def _add(counters: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    out = dict(counters)
    for k, v in more.items():
        if v:
            out[k] = out.get(k, 0) + int(v)
    return dict(sorted(out.items()))


def _instrument_table(
    view: AlignedQuotes, params: CrossExchangeParams
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(taker fee, lot size, min notional) per (symbol, venue); NaN where the registry does not list it."""
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
    return fee, lot, min_notional


def _floor_lot(size: npt.NDArray[np.float64], lot: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # The relative epsilon keeps sizes that are exact multiples (1.0 / 0.1 = 9.999...) from losing a lot.
    return np.floor(size / lot * (1.0 + 1e-12)) * lot


def _legs(buy_ex: str, sell_ex: str, symbol: str, buy: float, sell: float, size: float) -> list[dict[str, object]]:
    return [
        {"exchange": buy_ex, "symbol": symbol, "side": "buy", "price": buy, "size": size},
        {"exchange": sell_ex, "symbol": symbol, "side": "sell", "price": sell, "size": size},
    ]


def _events(
    view: AlignedQuotes, seq: npt.NDArray[np.int64], params: CrossExchangeParams
) -> tuple[pl.DataFrame, dict[str, int]]:
    fee_t, lot_t, min_t = _instrument_table(view, params)
    sym = view.symbol.astype(np.int64)
    fee, lot, min_notional = fee_t[sym], lot_t[sym], min_t[sym]
    n_ven = len(view.venues)
    latency = np.array(
        [params.registry.profile(v).latency_ms if v in params.registry.profiles else 0.0 for v in view.venues]
    )
    max_age_ms = max_age_ns(view.venues, params.registry, params.max_age_ms) / _NS_PER_MS
    age_ms = view.age_ns / _NS_PER_MS
    fresh = freshness(age_ms, latency[None, :], max_age_ms[None, :])
    present = ~np.isnan(view.bid) & ~np.isnan(view.ask)
    parts: list[dict[str, npt.NDArray[np.generic]]] = []
    suppressed_stale = 0
    suppressed_flagged = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        for a in range(n_ven):
            for b in range(n_ven):
                if a == b:
                    continue
                ask, bid = view.ask[:, a], view.bid[:, b]
                per_unit = (bid - ask) - fee[:, a] * ask - fee[:, b] * bid
                raw = np.minimum(np.minimum(view.ask_size[:, a], view.bid_size[:, b]), params.max_notional / ask)
                size = _floor_lot(raw, np.fmax(lot[:, a], lot[:, b]))
                profit = per_unit * size
                notional_ok = size * ask >= np.fmax(min_notional[:, a], min_notional[:, b])
                candidate = (per_unit > 0) & (size > 0) & notional_ok & (profit >= params.min_profit)
                usable = view.usable[:, a] & view.usable[:, b]
                blocked = candidate & present[:, a] & present[:, b] & ~usable
                stale = blocked & (view.stale[:, a] | view.stale[:, b])
                suppressed_stale += int(stale.sum())
                suppressed_flagged += int((blocked & ~stale).sum())
                hit = np.flatnonzero(candidate & usable)
                if hit.size == 0:
                    continue
                conf = row_confidence(
                    np.minimum(fresh[hit, a], fresh[hit, b]),
                    np.minimum(
                        depth_factor(size[hit], view.ask_size[hit, a]), depth_factor(size[hit], view.bid_size[hit, b])
                    ),
                )
                parts.append(
                    {
                        "row": hit,
                        "a": np.full(hit.size, a),
                        "b": np.full(hit.size, b),
                        "buy_price": ask[hit],
                        "sell_price": bid[hit],
                        "size": size[hit],
                        "profit": profit[hit],
                        "profit_percentage": 100.0 * per_unit[hit] / (ask[hit] * (1.0 + fee[hit, a])),
                        "confidence": conf,
                    }
                )
    counters = {"suppressed_stale": suppressed_stale, "suppressed_flagged": suppressed_flagged}
    if not parts:
        return pl.DataFrame(schema=EVENT_SCHEMA), counters
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    row = cols["row"].astype(np.int64)
    symbols = np.array(view.symbols, dtype=object)[view.symbol[row]]
    venues = np.array(view.venues, dtype=object)
    buy_ex, sell_ex = venues[cols["a"].astype(np.int64)], venues[cols["b"].astype(np.int64)]
    legs = [
        _legs(be, se, s, bp, sp, sz)
        for be, se, s, bp, sp, sz in zip(
            buy_ex,
            sell_ex,
            symbols,
            cols["buy_price"].tolist(),
            cols["sell_price"].tolist(),
            cols["size"].tolist(),
            strict=True,
        )
    ]
    frame = pl.DataFrame(
        {
            "kind": pl.Series([KIND] * row.size, dtype=pl.String),
            "key": pl.Series([f"{s}|{be}|{se}" for s, be, se in zip(symbols, buy_ex, sell_ex, strict=True)]),
            "timeline": pl.Series(symbols.tolist(), dtype=pl.String),
            "seq": seq[row],
            "ts": view.time[row],
            "symbol": pl.Series(symbols.tolist(), dtype=pl.String),
            "legs": pl.Series(legs, dtype=EVENT_SCHEMA["legs"]),
            "buy_exchange": pl.Series(buy_ex.tolist(), dtype=pl.String),
            "sell_exchange": pl.Series(sell_ex.tolist(), dtype=pl.String),
            "buy_price": cols["buy_price"],
            "sell_price": cols["sell_price"],
            "size": cols["size"],
            "profit": cols["profit"],
            "profit_percentage": cols["profit_percentage"],
            "confidence": cols["confidence"],
        },
        schema=EVENT_SCHEMA,
    )
    return frame, counters


def detect_cross_exchange(
    quotes: pl.DataFrame, state: CrossExchangeState, params: CrossExchangeParams
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

    Returns
    -------
    tuple[pl.DataFrame, CrossExchangeState]
        Episodes that closed in this batch (:data:`arbkit.schema.OPPORTUNITIES`, status ``"expired"``) and the
        next state.  Call :func:`finish_cross_exchange` at the end of a run for the open ones.
    """
    reason = check_quotes(quotes, params.registry)
    view, last = align_quotes(
        quotes, state.quotes, registry=params.registry, clock=params.clock, max_age_ms=params.max_age_ms, reason=reason
    )
    timeline = pl.Series(np.array(view.symbols, dtype=object)[view.symbol].tolist(), dtype=pl.String)
    seq, episodes = advance_timelines(state.episodes, timeline)
    events, suppressed = _events(view, seq, params)
    closed, episodes = merge_episodes(events, episodes)
    counters = _add(_add(state.counters, count_reasons(reason)), suppressed)
    return closed, CrossExchangeState(last, episodes, counters)


def finish_cross_exchange(state: CrossExchangeState, params: CrossExchangeParams) -> pl.DataFrame:
    """Episodes still open at the end of a run (status ``"active"``)."""
    del params
    out = finish_episodes(state.episodes)
    return out if out.height else schema.empty(schema.OPPORTUNITIES)
