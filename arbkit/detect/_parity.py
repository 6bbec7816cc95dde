"""Put-call parity detector: call minus put against the discounted forward, after fees and spreads.

Candidates are the ``(exchange, expiry, strike)`` groups of an option chain (OPTION_QUOTES rows) where both the
call and the put have been quoted.  The forward hedge is the future of the same expiry on the same venue
(``BASE/USD:SETTLE-YYMMDD`` in the quotes table) when it has been quoted; otherwise a synthetic forward
``index * exp((rate - dividend) * T)`` from the latest option row's ``underlying_price`` (bid = ask, no spread).
Option prices are in the premium currency (:attr:`arbkit.instruments.Instrument.premium_currency`: the base for
Deribit's inverse options) and are converted to USD with each row's own ``underlying_price``.

Two trades per candidate and row (:func:`arbkit.detect._b_kernels.parity_profit`):

* ``reversal``: sell the call at its bid, buy the put at its ask, buy the future at its ask;
* ``conversion``: buy the call at its ask, sell the put at its bid, sell the future at its bid;

each option leg pays ``min(taker_fee * underlying_price, fee_cap * premium_usd)``, the future ``taker_fee * F``.
``T`` is the time to the expiry (08:00 UTC on the expiry date) in years of 365 days.

Size (in units of the base asset): the displayed size of every leg on the side traded (option amounts are in
the base; inverse futures in USD contracts, converted with ``contract_size / price``) and ``max_notional / F``.
A row is active when the profit at size exceeds ``min_profit`` and every leg used is usable (row checks of
:func:`arbkit.align.check_quotes`, no blocking flag, no older than the venue's max age); a profitable row on an
unusable leg is counted as suppressed and ends the episode.  A candidate's timeline is every row of its call,
put and future once call and put have both been quoted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit.align import Clock, check_quotes, count_reasons, max_age_ns
from arbkit.detect._b_kernels import parity_profit
from arbkit.detect._b_timeline import Stream, build_stream, merged_order
from arbkit.detect._confidence import depth_factor, freshness, row_confidence
from arbkit.detect._episodes import (
    EpisodeState,
    advance_timelines,
    event_frame,
    finish_episodes,
    merge_episodes,
)
from arbkit.instruments import (
    InstrumentKind,
    Registry,
    SymbolInfo,
    UnknownInstrumentError,
    default_registry,
    format_symbol,
    parse_symbol,
)
from arbkit.instruments import expiry_ns as expiry_instant
from arbkit.pipeline import Batch

__all__ = ["ParityParams", "ParityState", "evaluate_parity", "finish_parity", "step_parity"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_NS_PER_YEAR = 365.0 * 24 * 3600 * 1e9
_OPTION_COLUMNS = ("bid", "bid_size", "ask", "ask_size", "underlying_price", "reason")
_FUTURE_COLUMNS = ("bid", "bid_size", "ask", "ask_size", "reason")


@dataclass(frozen=True)
class ParityParams:
    """Parameters of the parity detector.

    Attributes
    ----------
    registry
        Fees, fee caps, premium currencies, contract sizes and venue max ages.
    clock
        ``"ts_recv"`` (default) or ``"ts_event"``.
    rate
        Continuously compounded risk-free rate (the generator writes it to ``<store>/meta.json``).
    dividend
        Continuous yield of the underlying, used only for the synthetic forward.
    max_notional
        Cap on the forward notional ``size * F`` (USD).
    min_profit
        A row is profitable when its profit at size exceeds this (USD).
    kind
        The ``kind`` written to the opportunities.
    max_age_ms
        Override of the venues' max quote age (ms); ``None`` uses the registry profiles.
    """

    registry: Registry = field(default_factory=default_registry)
    clock: Clock = "ts_recv"
    rate: float = 0.05
    dividend: float = 0.0
    max_notional: float = 1_000_000.0
    min_profit: float = 0.0
    kind: str = "parity"
    max_age_ms: float | None = None


def _state_schema(columns: tuple[str, ...]) -> pl.Schema:
    return pl.Schema(
        {"exchange": pl.String, "symbol": pl.String, "time": pl.Int64} | dict.fromkeys(columns, pl.Float64)
    )


@dataclass(frozen=True)
class ParityState:
    """Last option and future row per instrument, open episodes, and counters of rejected/suppressed rows."""

    options: pl.DataFrame
    futures: pl.DataFrame
    episodes: EpisodeState
    counts: dict[str, int]

    @classmethod
    def empty(cls) -> ParityState:
        return cls(
            pl.DataFrame(schema=_state_schema(_OPTION_COLUMNS)),
            pl.DataFrame(schema=_state_schema(_FUTURE_COLUMNS)),
            EpisodeState.empty(),
            {},
        )


@dataclass(frozen=True, slots=True)
class _Option:
    group: tuple[str, str, str, float]  # exchange, chain prefix (BASE/QUOTE:SETTLE-YYMMDD), strike text, strike
    call: bool
    premium_in_base: bool
    taker_fee: float
    fee_cap: float
    expiry: int
    future_symbol: str


def _classify(exchange: str, symbol: str, registry: Registry) -> _Option | None:
    try:
        inst = registry.get(exchange, symbol)
    except UnknownInstrumentError:
        return None
    if inst.kind is not InstrumentKind.OPTION or inst.expiry is None or inst.strike is None:
        return None
    info = inst.info
    future = format_symbol(SymbolInfo(info.base, info.quote, info.settle, info.expiry))
    return _Option(
        group=(exchange, future, symbol.rsplit("-", 2)[1], float(inst.strike)),
        call=info.option_type == "C",
        premium_in_base=inst.premium_currency == info.base,
        taker_fee=inst.taker_fee,
        fee_cap=inst.fee_cap if inst.fee_cap is not None else 1.0,
        expiry=expiry_instant(inst.expiry),
        future_symbol=future,
    )


def _f(frame: pl.DataFrame, name: str) -> FloatArray:
    return frame.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64, copy=False)


def _bump(counts: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        if v:
            counts[k] = counts.get(k, 0) + int(v)


def _leg(exchange: str, symbol: str, side: str, price: float, size: float) -> dict[str, Any]:
    return {"exchange": exchange, "symbol": symbol, "side": side, "price": price, "size": size}


def _usable(
    stream: Stream, idx: IntArray, now: IntArray, max_age: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(usable, stale-but-otherwise-fine) of the rows ``idx`` at times ``now``."""
    ok = stream.columns["reason"][idx] == 0
    fresh = (now - stream.time[idx]) <= max_age
    return ok & fresh, ok & ~fresh


def _future_units(size: FloatArray, price: FloatArray, contract: float, inverse: bool) -> FloatArray:
    """Displayed future size in base units (inverse contracts are worth ``contract`` USD each)."""
    if not inverse:
        return np.asarray(size * contract, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(size * contract / price, dtype=np.float64)


def evaluate_parity(batch: Batch, state: ParityState, params: ParityParams) -> tuple[pl.DataFrame, ParityState]:
    """Evaluate every put-call parity candidate on every row of its timeline in ``batch``.

    Returns the active events (the event schema of :mod:`arbkit.detect._episodes`) and the advanced state
    (episodes not yet merged: :func:`step_parity` does that).
    """
    counts = dict(state.counts)
    registry = params.registry
    clock = params.clock
    options = batch.option_quotes
    quotes = batch.quotes
    o_ex = options.get_column("exchange").to_list()
    o_sym = options.get_column("symbol").to_list()
    cache: dict[tuple[str, str], _Option | None] = {}
    for key in zip(o_ex, o_sym, strict=True):
        if key not in cache:
            cache[key] = _classify(key[0], key[1], registry)
    o_reason = check_quotes(options, registry)
    o_keep = np.array([cache[k] is not None for k in zip(o_ex, o_sym, strict=True)], dtype=np.bool_)
    _bump(counts, count_reasons(o_reason[o_keep]))
    _bump(counts, {"unused": int((~o_keep & (o_reason == 0)).sum())})
    _bump(counts, {"unknown_instrument": int((~o_keep & (o_reason != 0)).sum())})

    # Futures that can hedge a chain seen so far (in the state or this batch).
    q_ex = quotes.get_column("exchange").to_list()
    q_sym = quotes.get_column("symbol").to_list()

    def is_future(symbol: str) -> bool:
        try:
            return parse_symbol(symbol).kind is InstrumentKind.FUTURE
        except ValueError:
            return False

    # Every dated future is kept (not only those of chains seen so far), so a split cannot change what is known.
    q_keep = np.array([is_future(s) for s in q_sym], dtype=np.bool_)
    q_reason = check_quotes(quotes.filter(pl.Series(q_keep)), registry) if q_keep.any() else np.zeros(0, np.uint8)
    _bump(counts, {f"future_{k}": v for k, v in count_reasons(q_reason).items()})

    o_pos, q_pos = merged_order(
        [
            quotes.get_column(clock).to_numpy().astype(np.int64),
            options.get_column(clock).to_numpy().astype(np.int64),
        ]
    )[::-1]
    ok_rows = np.flatnonzero(o_keep)
    qk = np.flatnonzero(q_keep)
    o_clock = options.get_column(clock).to_numpy().astype(np.int64)
    q_clock = quotes.get_column(clock).to_numpy().astype(np.int64)
    os_ = build_stream(
        [o_ex[i] for i in ok_rows],
        [o_sym[i] for i in ok_rows],
        o_clock[ok_rows],
        o_pos[ok_rows],
        {
            "bid": _f(options, "bid")[ok_rows],
            "bid_size": _f(options, "bid_size")[ok_rows],
            "ask": _f(options, "ask")[ok_rows],
            "ask_size": _f(options, "ask_size")[ok_rows],
            "underlying_price": _f(options, "underlying_price")[ok_rows],
            "reason": o_reason[ok_rows].astype(np.float64),
        },
        state.options,
    )
    fs = build_stream(
        [q_ex[i] for i in qk],
        [q_sym[i] for i in qk],
        q_clock[qk],
        q_pos[qk],
        {
            "bid": _f(quotes, "bid")[qk],
            "bid_size": _f(quotes, "bid_size")[qk],
            "ask": _f(quotes, "ask")[qk],
            "ask_size": _f(quotes, "ask_size")[qk],
            "reason": q_reason.astype(np.float64),
        },
        state.futures,
    )
    pos_clock = np.zeros(options.height + quotes.height, dtype=np.int64)
    pos_clock[o_pos] = o_clock
    pos_clock[q_pos] = q_clock

    # Group the known option keys into (call, put) pairs.
    groups: dict[tuple[str, str, str, float], list[int]] = {}
    infos: dict[int, _Option] = {}
    for code, key in enumerate(os_.keys):
        opt = cache.get(key)
        if opt is None:
            opt = _classify(key[0], key[1], registry)
        if opt is None:
            continue
        infos[code] = opt
        pair = groups.setdefault(opt.group, [-1, -1])
        pair[0 if opt.call else 1] = code
    venues = tuple(sorted({g[0] for g in groups}))
    ages = dict(zip(venues, max_age_ns(venues, registry, params.max_age_ms).tolist(), strict=True))

    timelines: list[npt.NDArray[np.object_]] = []
    positions: list[IntArray] = []
    parts: list[dict[str, Any]] = []
    suppressed = {"suppressed_flagged": 0, "suppressed_stale": 0}
    for group in sorted(groups):
        c_code, p_code = groups[group]
        if c_code < 0 or p_code < 0:
            continue
        exchange, future_symbol, _, strike = group
        copt = infos[c_code]
        f_code = fs.code(exchange, future_symbol)
        at = np.unique(np.concatenate([os_.positions(c_code), os_.positions(p_code), fs.positions(f_code)]))
        if len(at) == 0:
            continue
        ci = os_.latest(c_code, at)
        pi = os_.latest(p_code, at)
        both = ~os_.missing[ci] & ~os_.missing[pi]
        at, ci, pi = at[both], ci[both], pi[both]
        if len(at) == 0:
            continue
        fi = fs.latest(f_code, at)
        now = pos_clock[at]
        max_age = ages[exchange]
        profile = registry.profile(exchange)
        c = os_.columns
        cu, pu = c["underlying_price"][ci], c["underlying_price"][pi]
        c_mult = cu if copt.premium_in_base else np.ones(len(at))
        p_mult = pu if infos[p_code].premium_in_base else np.ones(len(at))
        call_bid, call_ask = c["bid"][ci] * c_mult, c["ask"][ci] * c_mult
        put_bid, put_ask = c["bid"][pi] * p_mult, c["ask"][pi] * p_mult
        t = (copt.expiry - now) / _NS_PER_YEAR
        have_future = ~fs.missing[fi]
        index = np.where(os_.time[ci] >= os_.time[pi], cu, pu)
        synthetic = index * np.exp((params.rate - params.dividend) * np.maximum(t, 0.0))
        fc = fs.columns
        f_bid = np.where(have_future, fc["bid"][fi], synthetic)
        f_ask = np.where(have_future, fc["ask"][fi], synthetic)
        try:
            fut = registry.get(exchange, future_symbol)
            future_fee, f_contract, f_inverse = fut.taker_fee, fut.contract_size, fut.info.inverse
        except UnknownInstrumentError:
            future_fee, f_contract, f_inverse = 0.0, 1.0, False
        rev, conv = parity_profit(
            call_bid,
            call_ask,
            put_bid,
            put_ask,
            cu,
            pu,
            f_bid,
            f_ask,
            strike,
            np.maximum(t, 0.0),
            params.rate,
            copt.taker_fee,
            copt.fee_cap,
            future_fee,
        )

        c_ok, c_stale = _usable(os_, ci, now, max_age)
        p_ok, p_stale = _usable(os_, pi, now, max_age)
        f_ok, f_stale = _usable(fs, fi, now, max_age)
        f_ok = np.where(have_future, f_ok, True)
        f_stale = have_future & f_stale
        legs_ok = c_ok & p_ok & f_ok & (t > 0)
        any_stale = c_stale | p_stale | f_stale

        timeline = f"{params.kind}:{exchange}:{future_symbol}-{group[2]}"
        call_symbol, put_symbol = os_.keys[c_code][1], os_.keys[p_code][1]
        hedge_symbol = future_symbol
        timelines.append(np.full(len(at), timeline, dtype=object))
        positions.append(at)
        for name, profit_unit, sides, opt_sizes, fut_size, prices in (
            (
                "reversal",
                rev,
                ("sell", "buy", "buy"),
                (c["bid_size"][ci], c["ask_size"][pi]),
                np.where(have_future, _future_units(fc["ask_size"][fi], f_ask, f_contract, f_inverse), np.inf),
                (call_bid, put_ask, f_ask),
            ),
            (
                "conversion",
                conv,
                ("buy", "sell", "sell"),
                (c["ask_size"][ci], c["bid_size"][pi]),
                np.where(have_future, _future_units(fc["bid_size"][fi], f_bid, f_contract, f_inverse), np.inf),
                (call_ask, put_bid, f_bid),
            ),
        ):
            with np.errstate(invalid="ignore", divide="ignore"):
                size = np.minimum(
                    np.minimum(opt_sizes[0], opt_sizes[1]), np.minimum(fut_size, params.max_notional / prices[2])
                )
            size = np.where(np.isfinite(size) & (size > 0), size, 0.0)
            profit = profit_unit * size
            profitable = np.isfinite(profit) & (profit > params.min_profit) & (size > 0) & (t > 0)
            active = profitable & legs_ok
            blocked = profitable & ~legs_ok
            suppressed["suppressed_stale"] += int((blocked & any_stale).sum())
            suppressed["suppressed_flagged"] += int((blocked & ~any_stale).sum())
            hit = np.flatnonzero(active)
            if len(hit) == 0:
                continue
            fresh = np.minimum(
                freshness((now - os_.time[ci]) / 1e6, profile.latency_ms, max_age / 1e6),
                freshness((now - os_.time[pi]) / 1e6, profile.latency_ms, max_age / 1e6),
            )
            fresh = np.where(
                have_future,
                np.minimum(fresh, freshness((now - fs.time[fi]) / 1e6, profile.latency_ms, max_age / 1e6)),
                fresh,
            )
            depth = np.minimum(depth_factor(size, opt_sizes[0]), depth_factor(size, opt_sizes[1]))
            depth = np.where(have_future, np.minimum(depth, depth_factor(size, fut_size)), depth)
            conf = row_confidence(fresh, depth)
            symbols = (call_symbol, put_symbol, hedge_symbol)
            buy_leg = 1 if name == "reversal" else 0
            sell_leg = 1 - buy_leg
            parts.append(
                {
                    "key": [f"{timeline}>{name}"] * len(hit),
                    "timeline": [timeline] * len(hit),
                    "pos": at[hit],
                    "ts": now[hit],
                    "symbol": [f"{future_symbol}-{group[2]}"] * len(hit),
                    "legs": [
                        [_leg(exchange, symbols[j], sides[j], float(prices[j][i]), float(size[i])) for j in range(3)]
                        for i in hit
                    ],
                    "buy_exchange": [exchange] * len(hit),
                    "sell_exchange": [exchange] * len(hit),
                    "buy_price": prices[buy_leg][hit],
                    "sell_price": prices[sell_leg][hit],
                    "size": size[hit],
                    "profit": profit[hit],
                    "profit_percentage": 100.0 * profit_unit[hit] / prices[2][hit],
                    "confidence": conf[hit],
                }
            )
    _bump(counts, suppressed)

    episodes = state.episodes
    events = event_frame(kind=params.kind, key=[], timeline=[], seq=[], ts=[], profit=[])
    if timelines:
        all_tl = np.concatenate(timelines)
        all_pos = np.concatenate(positions)
        order = np.argsort(all_pos, kind="stable")
        seq_sorted, episodes = advance_timelines(episodes, pl.Series(all_tl[order].tolist(), dtype=pl.String))
        seq = np.empty_like(seq_sorted)
        seq[order] = seq_sorted
        if parts:
            lookup = pl.DataFrame(
                {"timeline": all_tl.tolist(), "pos": all_pos, "seq": seq},
                schema={"timeline": pl.String, "pos": pl.Int64, "seq": pl.Int64},
            )
            raw = pl.concat(
                [pl.DataFrame(p, schema_overrides={"pos": pl.Int64, "ts": pl.Int64}, strict=False) for p in parts],
                how="vertical_relaxed",
            ).join(lookup, on=["timeline", "pos"], how="left")
            events = event_frame(kind=params.kind, **{col: raw.get_column(col) for col in raw.columns if col != "pos"})
    new_state = ParityState(
        options=os_.state(_OPTION_COLUMNS).cast(_state_schema(_OPTION_COLUMNS)),
        futures=fs.state(_FUTURE_COLUMNS).cast(_state_schema(_FUTURE_COLUMNS)),
        episodes=episodes,
        counts=dict(sorted(counts.items())),
    )
    return events, new_state


def step_parity(batch: Batch, state: ParityState, params: ParityParams) -> tuple[pl.DataFrame, ParityState]:
    """One strategy step: evaluate the batch, merge events into episodes, emit the closed ones.

    Examples
    --------
    A call priced 100 USD above parity against the future: selling it (reversal) pays after fees.

    >>> import polars as pl
    >>> from arbkit.pipeline import Batch
    >>> T = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC
    >>> opt = pl.DataFrame({
    ...     "ts_event": [T, T], "ts_recv": [T, T], "exchange": ["deribit"] * 2,
    ...     "symbol": ["BTC/USD:BTC-260327-100000-C", "BTC/USD:BTC-260327-100000-P"],
    ...     "underlying": ["BTC/USD"] * 2, "expiry": [1_774_598_400_000_000_000] * 2, "strike": [100000.0] * 2,
    ...     "option_type": ["C", "P"], "bid": [0.0530, 0.0490], "bid_size": [1.0, 1.0], "ask": [0.0540, 0.0500],
    ...     "ask_size": [1.0, 1.0], "underlying_price": [100000.0] * 2})
    >>> out, state = step_parity(Batch.of(option_quotes=opt), ParityState.empty(), ParityParams(rate=0.0))
    >>> state.episodes.open.select("symbol", "buy_exchange").rows()
    [('BTC/USD:BTC-260327-100000', 'deribit')]
    """
    events, state = evaluate_parity(batch, state, params)
    closed, episodes = merge_episodes(events, state.episodes)
    return closed, dataclasses.replace(state, episodes=episodes)


def finish_parity(state: ParityState, params: ParityParams) -> pl.DataFrame:
    """The episodes still open at the end of a run (status ``"active"``)."""
    del params
    return finish_episodes(state.episodes)
