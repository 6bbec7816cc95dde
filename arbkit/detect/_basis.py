"""Basis and funding detector: spot vs perpetual, spot vs dated future, perpetual vs perpetual across venues.

Candidates
----------
For every base asset, from the instruments seen so far (the registry resolves each ``(exchange, symbol)``):

* ``spot_perp``: spot ``X/USDT`` on venue A (``spot_quotes`` widens the quote currencies) and a perpetual on venue
  B (A == B allowed): linear ``X/USDT:USDT`` or inverse ``X/USD:X`` (Deribit), whose USD prices are converted to
  USDT with the peg ``usd_per_usdt`` (USD value of one USDT, default 1.0).
* ``spot_future``: the same spot and a dated future ``X/USD:X-YYMMDD`` / ``X/USDT:USDT-YYMMDD`` before expiry.
* ``perp_perp``: two perpetuals of the same base on different venues (funding differential).

Each candidate is evaluated in both directions; a direction's legs are ``buy`` at the ask and ``sell`` at the bid.

Profit per base unit (in USDT), the agreed label formulas (see :func:`arbkit.detect._b_kernels.two_leg_profit`)::

    bid_sell - ask_buy - 2 * (fee_buy * ask_buy + fee_sell * bid_sell) + carry

``carry`` by candidate and direction (``rate`` is the perpetual's predicted funding rate, else its current one,
from its latest FUNDING row; ``mark`` its mark price, else the quote mid; ``tau`` the time to its next funding in
years, ``T`` the time to the future's expiry; ``r`` the risk-free rate; ``b`` the annual borrow rate):

==========================  =============================================  ======================================
candidate                   buy spot / buy leg 1 (cash and carry)          sell spot / sell leg 1 (reverse)
==========================  =============================================  ======================================
spot_perp                   ``+rate * mark`` (the short perp receives it)  ``-rate * mark - b * tau * bid_spot``
spot_future                 ``-ask_spot * (exp(r T) - 1)`` (financing)     ``+bid_spot * (exp(r T) - 1) - b T bid_spot``
perp_perp (1 long, 2 short)  ``rate_2 * mark_2 - rate_1 * mark_1``          the opposite sign
==========================  =============================================  ======================================

A perpetual with no funding row yet carries no funding; its next funding time falls on the venue's funding grid
(every ``funding_interval_hours`` from 00:00 UTC).  The annualized basis of a row is reported by
:func:`evaluate_basis` (``annualized_basis``: ``(mid_2 / mid_1 - 1) / T`` for futures, the perp premium times the
funding periods per year for perpetuals, and ``annualized_funding``), since the OPPORTUNITIES schema is fixed.

Sizing: the displayed sizes of both legs in base units (linear: ``size * contract_size``; inverse:
``size * contract_size / price``, contract sizes in USD) and ``max_notional / ask_buy``; ``profit`` is per-unit
profit times that size.  A row is *active* when its profit exceeds ``min_profit`` and every leg (quotes and the
funding rows used) is usable: passed the row checks of :func:`arbkit.align.check_quotes`, carries no blocking
flag and is no older than its venue's ``max_age``.  A profitable row on an unusable leg is *suppressed* and
counted (``suppressed_flagged`` / ``suppressed_stale``); it ends the episode.

Timeline: a candidate's rows are every quote row of its legs (and funding row of its perpetual legs) once both
legs have been quoted; consecutive active rows of one direction merge into an episode (:mod:`._episodes`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit.align import Clock, check_quotes, count_reasons, max_age_ns
from arbkit.detect._b_kernels import two_leg_profit
from arbkit.detect._b_timeline import Stream, build_stream, merged_order
from arbkit.detect._confidence import depth_factor, freshness, row_confidence
from arbkit.detect._episodes import (
    EpisodeState,
    advance_timelines,
    event_frame,
    finish_episodes,
    merge_episodes,
)
from arbkit.instruments import InstrumentKind, Registry, UnknownInstrumentError, default_registry, expiry_ns
from arbkit.pipeline import Batch
from arbkit.schema import QuoteFlag

__all__ = ["BasisParams", "BasisState", "evaluate_basis", "finish_basis", "step_basis"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_NS_PER_YEAR = 365.0 * 24 * 3600 * 1e9
_NS_PER_HOUR = 3600 * 10**9
_QUOTE_COLUMNS = ("bid", "bid_size", "ask", "ask_size", "flags", "reason")
_FUNDING_COLUMNS = ("rate", "next_funding_time", "mark", "flags")
CANDIDATES = ("spot_perp", "spot_future", "perp_perp")


@dataclass(frozen=True)
class BasisParams:
    """Parameters of the basis detector (all rates are fractions; annual rates are continuously compounded).

    Attributes
    ----------
    registry
        Fees, contract sizes, funding intervals and venue max ages.
    clock
        ``"ts_recv"`` (default: what the engine knew) or ``"ts_event"``.
    max_notional
        Cap on the bought leg's notional, in USDT.
    min_profit
        A row is profitable when its profit at size exceeds this (USDT).
    borrow_rate
        Annual cost of borrowing the spot asset sold short (reverse trades).
    rate
        Risk-free rate used to finance a dated-future carry.
    usd_per_usdt
        Peg: USD value of one USDT, to compare USD-quoted inverse contracts with USDT markets.
    spot_quotes
        Quote currencies of the spot markets used as the cash leg.
    use_predicted_rate
        Use the FUNDING row's predicted rate when present (else always the current rate).
    candidates
        Which candidate families to evaluate (subset of ``spot_perp``, ``spot_future``, ``perp_perp``).
    kind
        The ``kind`` written to the opportunities.
    max_age_ms
        Override of the venues' max quote age (ms); ``None`` uses the registry profiles.
    """

    registry: Registry = field(default_factory=default_registry)
    clock: Clock = "ts_recv"
    max_notional: float = 1_000_000.0
    min_profit: float = 0.0
    borrow_rate: float = 0.10
    rate: float = 0.05
    usd_per_usdt: float = 1.0
    spot_quotes: tuple[str, ...] = ("USDT",)
    use_predicted_rate: bool = True
    candidates: tuple[str, ...] = CANDIDATES
    kind: str = "basis"
    max_age_ms: float | None = None


_QUOTE_STATE = pl.Schema(
    {"exchange": pl.String, "symbol": pl.String, "time": pl.Int64} | dict.fromkeys(_QUOTE_COLUMNS, pl.Float64)
)
_FUNDING_STATE = pl.Schema(
    {"exchange": pl.String, "symbol": pl.String, "time": pl.Int64} | dict.fromkeys(_FUNDING_COLUMNS, pl.Float64)
)


@dataclass(frozen=True)
class BasisState:
    """Last quote and funding row per instrument, open episodes and the counters of rejected/suppressed rows."""

    quotes: pl.DataFrame
    funding: pl.DataFrame
    episodes: EpisodeState
    counts: Mapping[str, int]

    @classmethod
    def empty(cls) -> BasisState:
        return cls(pl.DataFrame(schema=_QUOTE_STATE), pl.DataFrame(schema=_FUNDING_STATE), EpisodeState.empty(), {})


@dataclass(frozen=True, slots=True)
class _Info:
    role: str  # spot | perp | future
    base: str
    exchange: str
    to_usdt: float  # multiply a price by this to get USDT
    inverse: bool
    contract_size: float
    taker_fee: float
    expiry: int  # ns, futures only (0 otherwise)
    funding_hours: float


def _classify(exchange: str, symbol: str, params: BasisParams) -> _Info | None:
    try:
        inst = params.registry.get(exchange, symbol)
    except UnknownInstrumentError:
        return None
    info = inst.info
    kind = inst.kind
    if kind is InstrumentKind.SPOT:
        if info.quote not in params.spot_quotes:
            return None
        role = "spot"
    elif kind in (InstrumentKind.SWAP, InstrumentKind.FUTURE):
        role = "perp" if kind is InstrumentKind.SWAP else "future"
    else:
        return None
    if info.quote == "USDT":
        to_usdt = 1.0
    elif info.quote == "USD":
        to_usdt = 1.0 / params.usd_per_usdt
    else:
        return None
    if role != "spot" and not (info.linear or info.inverse):
        return None
    hours = inst.funding_interval_hours or params.registry.profile(exchange).funding_interval_hours
    return _Info(
        role=role,
        base=info.base,
        exchange=exchange,
        to_usdt=to_usdt,
        inverse=info.inverse,
        contract_size=inst.contract_size,
        taker_fee=inst.taker_fee,
        expiry=expiry_ns(info.expiry) if info.expiry is not None else 0,
        funding_hours=hours,
    )


def _bump(counts: dict[str, int], more: Mapping[str, int]) -> None:
    for k, v in more.items():
        if v:
            counts[k] = counts.get(k, 0) + int(v)


def _f(frame: pl.DataFrame, name: str) -> FloatArray:
    return frame.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64, copy=False)


@dataclass
class _Legs:
    """Gathered values of one leg at the evaluation rows (prices in USDT)."""

    bid: FloatArray
    ask: FloatArray
    bid_size: FloatArray  # base units
    ask_size: FloatArray
    time: IntArray
    usable: npt.NDArray[np.bool_]
    stale: npt.NDArray[np.bool_]
    flagged: npt.NDArray[np.bool_]
    fee: FloatArray
    rate: FloatArray  # funding (perps), 0 otherwise
    mark: FloatArray
    next_funding: FloatArray  # ns
    funding_ok: npt.NDArray[np.bool_]
    latency_ms: FloatArray
    max_age_ms: FloatArray


def _gather(
    info: _Info,
    code: int,
    at: IntArray,
    now: IntArray,
    quotes: Stream,
    funding: Stream,
    params: BasisParams,
    max_age: int,
) -> _Legs:
    idx = quotes.latest(code, at)
    c = quotes.columns
    bid = c["bid"][idx] * info.to_usdt
    ask = c["ask"][idx] * info.to_usdt
    time = quotes.time[idx]

    def base_units(size: FloatArray, price: FloatArray) -> FloatArray:
        if info.inverse:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.asarray(size * info.contract_size / (price / info.to_usdt), dtype=np.float64)
        return np.asarray(size * info.contract_size, dtype=np.float64)

    reason = c["reason"][idx]
    fresh = (now - time) <= max_age
    ok = reason == 0
    flagged = (reason != 0) & np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask > 0)
    n = len(at)
    rate = np.zeros(n)
    mark = (bid + ask) / 2.0
    period = round(info.funding_hours * _NS_PER_HOUR)
    grid = ((now // period) + 1) * period if period > 0 else now
    next_funding: FloatArray = grid.astype(np.float64)
    funding_ok = np.ones(n, dtype=np.bool_)
    if info.role == "perp":
        fcode = funding.code(info.exchange, quotes.keys[code][1])
        fidx = funding.latest(fcode, at)
        have = ~funding.missing[fidx]
        fc = funding.columns
        rate = np.where(have, fc["rate"][fidx], 0.0)
        mark = np.where(have & np.isfinite(fc["mark"][fidx]), fc["mark"][fidx] * info.to_usdt, mark)
        nft = fc["next_funding_time"][fidx]
        next_funding = np.where(have & np.isfinite(nft) & (nft > now), nft, next_funding)
        fflags = np.nan_to_num(fc["flags"][fidx], nan=0.0).astype(np.int64)
        funding_ok = ~have | ((fflags & QuoteFlag.blocking()) == 0)
    profile = params.registry.profile(info.exchange)
    return _Legs(
        bid=bid,
        ask=ask,
        bid_size=base_units(c["bid_size"][idx], bid),
        ask_size=base_units(c["ask_size"][idx], ask),
        time=time,
        usable=ok & fresh & funding_ok,
        stale=ok & ~fresh,
        flagged=flagged | (ok & ~funding_ok),
        fee=np.full(n, info.taker_fee),
        rate=rate,
        mark=mark,
        next_funding=next_funding,
        funding_ok=funding_ok,
        latency_ms=np.full(n, profile.latency_ms),
        max_age_ms=np.full(n, max_age / 1e6),
    )


def _pairs(
    keys: tuple[tuple[str, str], ...], infos: Mapping[tuple[str, str], _Info], params: BasisParams
) -> list[tuple[str, int, int]]:
    by_role: dict[tuple[str, str], list[int]] = {}
    for code, key in enumerate(keys):
        info = infos[key]
        by_role.setdefault((info.base, info.role), []).append(code)
    out: list[tuple[str, int, int]] = []
    bases = sorted({b for b, _ in by_role})
    for base in bases:
        spots = by_role.get((base, "spot"), [])
        perps = by_role.get((base, "perp"), [])
        futures = by_role.get((base, "future"), [])
        if "spot_perp" in params.candidates:
            out.extend(("spot_perp", s, p) for s in spots for p in perps)
        if "spot_future" in params.candidates:
            out.extend(("spot_future", s, f) for s in spots for f in futures)
        if "perp_perp" in params.candidates:
            out.extend(
                ("perp_perp", a, b)
                for i, a in enumerate(perps)
                for b in perps[i + 1 :]
                if infos[keys[a]].exchange != infos[keys[b]].exchange
            )
    return out


def _leg_struct(exchange: str, symbol: str, side: str, price: float, size: float) -> dict[str, Any]:
    return {"exchange": exchange, "symbol": symbol, "side": side, "price": price, "size": size}


def evaluate_basis(
    batch: Batch, state: BasisState, params: BasisParams
) -> tuple[pl.DataFrame, pl.DataFrame, BasisState]:
    """Evaluate every basis candidate on every row of its timeline in ``batch``.

    Returns
    -------
    tuple
        ``(events, rows, state)``: the active events (the event schema of :mod:`arbkit.detect._episodes`), a
        per-row detail frame (``candidate, timeline, ts, direction, profit, size, annualized_basis,
        annualized_funding, usable``) for research, and the state advanced over the batch (episodes not yet
        merged: :func:`step_basis` does that).
    """
    counts = dict(state.counts)
    clock = params.clock
    quotes = batch.quotes
    funding = batch.funding
    reason = check_quotes(quotes, params.registry)
    infos: dict[tuple[str, str], _Info | None] = {}

    def info_of(key: tuple[str, str]) -> _Info | None:
        if key not in infos:
            infos[key] = _classify(key[0], key[1], params)
        return infos[key]

    q_ex = quotes.get_column("exchange").to_list()
    q_sym = quotes.get_column("symbol").to_list()
    q_keep = np.array([info_of(k) is not None for k in zip(q_ex, q_sym, strict=True)], dtype=np.bool_)
    _bump(counts, count_reasons(reason))
    _bump(counts, {"unused": int((~q_keep & (reason == 0)).sum())})
    f_ex = funding.get_column("exchange").to_list()
    f_sym = funding.get_column("symbol").to_list()
    f_info = [info_of(k) for k in zip(f_ex, f_sym, strict=True)]
    f_keep = np.array([i is not None and i.role == "perp" for i in f_info], dtype=np.bool_)
    _bump(counts, {"funding_unused": int((~f_keep).sum())})

    q_pos, f_pos = merged_order(
        [quotes.get_column(clock).to_numpy().astype(np.int64), funding.get_column(clock).to_numpy().astype(np.int64)]
    )
    qk = np.flatnonzero(q_keep)
    fk = np.flatnonzero(f_keep)
    q_cols = {
        "bid": _f(quotes, "bid")[qk],
        "bid_size": _f(quotes, "bid_size")[qk],
        "ask": _f(quotes, "ask")[qk],
        "ask_size": _f(quotes, "ask_size")[qk],
        "flags": _f(quotes, "flags")[qk],
        "reason": reason[qk].astype(np.float64),
    }
    qs = build_stream(
        [q_ex[i] for i in qk],
        [q_sym[i] for i in qk],
        quotes.get_column(clock).to_numpy().astype(np.int64)[qk],
        q_pos[qk],
        q_cols,
        state.quotes,
    )
    predicted = _f(funding, "predicted_rate")
    current = _f(funding, "funding_rate")
    rate = np.where(np.isfinite(predicted), predicted, current) if params.use_predicted_rate else current
    f_cols = {
        "rate": rate[fk],
        "next_funding_time": _f(funding, "next_funding_time")[fk],
        "mark": _f(funding, "mark_price")[fk],
        "flags": _f(funding, "flags")[fk],
    }
    fs = build_stream(
        [f_ex[i] for i in fk],
        [f_sym[i] for i in fk],
        funding.get_column(clock).to_numpy().astype(np.int64)[fk],
        f_pos[fk],
        f_cols,
        state.funding,
    )
    resolved = {k: info_of(k) for k in qs.keys}
    known = {k: v for k, v in resolved.items() if v is not None}
    ages = max_age_ns(tuple(sorted({k[0] for k in qs.keys})), params.registry, params.max_age_ms)
    age_of = dict(zip(sorted({k[0] for k in qs.keys}), ages.tolist(), strict=True))
    # timeline clock of every global position
    n_pos = quotes.height + funding.height
    pos_clock = np.zeros(n_pos, dtype=np.int64)
    pos_clock[q_pos] = quotes.get_column(clock).to_numpy()
    pos_clock[f_pos] = funding.get_column(clock).to_numpy()

    timelines: list[npt.NDArray[np.object_]] = []
    seq_order: list[IntArray] = []
    event_parts: list[dict[str, Any]] = []
    detail_parts: list[pl.DataFrame] = []
    suppressed_flagged = 0
    suppressed_stale = 0
    for candidate, a, b in _pairs(qs.keys, known, params):
        ka, kb = qs.keys[a], qs.keys[b]
        ia, ib = known[ka], known[kb]
        parts = [qs.positions(a), qs.positions(b)]
        for key, inf in ((ka, ia), (kb, ib)):
            if inf.role == "perp":
                parts.append(fs.positions(fs.code(*key)))
        at = np.unique(np.concatenate(parts))
        if len(at) == 0:
            continue
        both = ~qs.missing[qs.latest(a, at)] & ~qs.missing[qs.latest(b, at)]
        at = at[both]
        if len(at) == 0:
            continue
        now = pos_clock[at]
        la = _gather(ia, a, at, now, qs, fs, params, age_of[ka[0]])
        lb = _gather(ib, b, at, now, qs, fs, params, age_of[kb[0]])
        timeline = f"{params.kind}:{ka[0]}:{ka[1]}|{kb[0]}:{kb[1]}"
        timelines.append(np.full(len(at), timeline, dtype=object))
        seq_order.append(at)
        n = len(at)
        # Direction 0 buys leg a and sells leg b; direction 1 the reverse.
        if candidate == "spot_perp":
            tau = np.maximum(lb.next_funding - now, 0.0) / _NS_PER_YEAR
            carry0 = lb.rate * lb.mark
            carry1 = -lb.rate * lb.mark - params.borrow_rate * tau * la.bid
            expiry_t = np.zeros(n)
        elif candidate == "spot_future":
            expiry_t = (ib.expiry - now) / _NS_PER_YEAR
            growth = np.expm1(params.rate * np.maximum(expiry_t, 0.0))
            carry0 = -la.ask * growth
            carry1 = la.bid * growth - params.borrow_rate * np.maximum(expiry_t, 0.0) * la.bid
        else:
            carry0 = lb.rate * lb.mark - la.rate * la.mark
            carry1 = -carry0
            expiry_t = np.zeros(n)
        profit0 = two_leg_profit(la.ask, lb.bid, la.fee, lb.fee, carry0)
        profit1 = two_leg_profit(lb.ask, la.bid, lb.fee, la.fee, carry1)
        alive = expiry_t >= 0 if candidate != "spot_future" else expiry_t > 0
        usable = la.usable & lb.usable & alive
        mid_a = (la.bid + la.ask) / 2.0
        mid_b = (lb.bid + lb.ask) / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            premium = mid_b / mid_a - 1.0
            if candidate == "spot_future":
                annualized = premium / expiry_t
            else:
                annualized = premium * (8760.0 / ib.funding_hours)
        annual_funding = lb.rate * (8760.0 / ib.funding_hours) if ib.role == "perp" else np.zeros(n)
        for direction, profit_unit, buy, sell, buy_key, sell_key in (
            (0, profit0, la, lb, ka, kb),
            (1, profit1, lb, la, kb, ka),
        ):
            with np.errstate(invalid="ignore", divide="ignore"):
                size = np.minimum(np.minimum(buy.ask_size, sell.bid_size), params.max_notional / buy.ask)
            size = np.where(np.isfinite(size) & (size > 0), size, 0.0)
            profit = profit_unit * size
            profitable = np.isfinite(profit) & (profit > params.min_profit) & (size > 0) & alive
            active = profitable & usable
            blocked = profitable & ~usable
            stale_only = blocked & (la.stale | lb.stale) & ~(la.flagged | lb.flagged)
            suppressed_stale += int(stale_only.sum())
            suppressed_flagged += int((blocked & ~stale_only).sum())
            detail_parts.append(
                pl.DataFrame(
                    {
                        "candidate": [candidate] * n,
                        "timeline": [timeline] * n,
                        "ts": now,
                        "direction": np.full(n, direction, dtype=np.int8),
                        "profit": profit,
                        "size": size,
                        "annualized_basis": annualized,
                        "annualized_funding": annual_funding,
                        "usable": usable,
                    }
                )
            )
            hit = np.flatnonzero(active)
            if len(hit) == 0:
                continue
            fresh = np.minimum(
                freshness((now - buy.time) / 1e6, buy.latency_ms, buy.max_age_ms),
                freshness((now - sell.time) / 1e6, sell.latency_ms, sell.max_age_ms),
            )
            depth = np.minimum(depth_factor(size, buy.ask_size), depth_factor(size, sell.bid_size))
            conf = row_confidence(fresh, depth)
            bp, sp = buy.ask, sell.bid
            event_parts.append(
                {
                    "key": [f"{timeline}>{direction}"] * len(hit),
                    "timeline": [timeline] * len(hit),
                    "pos": at[hit],
                    "ts": now[hit],
                    "symbol": [f"{ka[1]} vs {kb[1]}"] * len(hit),
                    "legs": [
                        [
                            _leg_struct(buy_key[0], buy_key[1], "buy", float(bp[i]), float(size[i])),
                            _leg_struct(sell_key[0], sell_key[1], "sell", float(sp[i]), float(size[i])),
                        ]
                        for i in hit
                    ],
                    "buy_exchange": [buy_key[0]] * len(hit),
                    "sell_exchange": [sell_key[0]] * len(hit),
                    "buy_price": bp[hit],
                    "sell_price": sp[hit],
                    "size": size[hit],
                    "profit": profit[hit],
                    "profit_percentage": 100.0 * profit_unit[hit] / bp[hit],
                    "confidence": conf[hit],
                }
            )
    _bump(counts, {"suppressed_flagged": suppressed_flagged, "suppressed_stale": suppressed_stale})

    # Number every candidate row on its timeline (in timeline order), then attach seq to the events.
    episodes = state.episodes
    events = event_frame(kind=params.kind, key=[], timeline=[], seq=[], ts=[], profit=[])
    if timelines:
        all_tl = np.concatenate(timelines)
        all_pos = np.concatenate(seq_order)
        order = np.argsort(all_pos, kind="stable")
        seq_sorted, episodes = advance_timelines(episodes, pl.Series(all_tl[order].tolist(), dtype=pl.String))
        seq = np.empty_like(seq_sorted)
        seq[order] = seq_sorted
        lookup = pl.DataFrame(
            {"timeline": all_tl.tolist(), "pos": all_pos, "seq": seq},
            schema={"timeline": pl.String, "pos": pl.Int64, "seq": pl.Int64},
        )
        if event_parts:
            raw = pl.concat(
                [
                    pl.DataFrame(p, schema_overrides={"pos": pl.Int64, "ts": pl.Int64}, strict=False)
                    for p in event_parts
                ],
                how="vertical_relaxed",
            )
            raw = raw.join(lookup, on=["timeline", "pos"], how="left")
            events = event_frame(
                kind=params.kind,
                **{c: raw.get_column(c) for c in raw.columns if c != "pos"},
            )
    detail = (
        pl.concat(detail_parts)
        if detail_parts
        else pl.DataFrame(
            schema={
                "candidate": pl.String,
                "timeline": pl.String,
                "ts": pl.Int64,
                "direction": pl.Int8,
                "profit": pl.Float64,
                "size": pl.Float64,
                "annualized_basis": pl.Float64,
                "annualized_funding": pl.Float64,
                "usable": pl.Boolean,
            }
        )
    )
    new_state = BasisState(
        quotes=qs.state(_QUOTE_COLUMNS).cast(_QUOTE_STATE),
        funding=fs.state(_FUNDING_COLUMNS).cast(_FUNDING_STATE),
        episodes=episodes,
        counts=dict(sorted(counts.items())),
    )
    return events, detail, new_state


def step_basis(batch: Batch, state: BasisState, params: BasisParams) -> tuple[pl.DataFrame, BasisState]:
    """One strategy step: evaluate the batch, merge events into episodes, emit the closed ones.

    Examples
    --------
    A spot ask below a perp bid by more than the fees, with positive funding on the short perp:

    >>> import polars as pl
    >>> from arbkit.pipeline import Batch
    >>> q = pl.DataFrame({"ts_event": [1, 2], "ts_recv": [1, 2], "exchange": ["binance", "okx"],
    ...                   "symbol": ["BTC/USDT", "BTC/USDT:USDT"], "bid": [99.9, 102.0], "bid_size": [1.0, 2.0],
    ...                   "ask": [100.0, 102.1], "ask_size": [1.0, 2.0]})
    >>> out, state = step_basis(Batch.of(quotes=q), BasisState.empty(), BasisParams())
    >>> out.height, state.episodes.open.select("buy_exchange", "sell_exchange", "size").rows()
    (0, [('binance', 'okx', 1.0)])
    """
    events, _, state = evaluate_basis(batch, state, params)
    closed, episodes = merge_episodes(events, state.episodes)
    return closed, dataclasses.replace(state, episodes=episodes)


def finish_basis(state: BasisState, params: BasisParams) -> pl.DataFrame:
    """The episodes still open at the end of a run (status ``"active"``)."""
    del params
    return finish_episodes(state.episodes)
