"""One time chunk of the synthetic market: episode plans, quote rows, funding rows and labels (private)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from arbkit.data._gen_extras import book_rows, trade_rows
from arbkit.data._gen_market import (
    DT_NS,
    FUNDING_EVERY_NS,
    NS,
    NS_PER_YEAR,
    FloatArray,
    IntArray,
    Latent,
    LatentState,
    Universe,
    black76,
    next_funding_ns,
    regular_times,
    round_quotes,
    round_sizes,
    simulate_latent,
    smile,
    strictly_increasing_recv,
)
from arbkit.schema import FUNDING, LABELS, OPTION_QUOTES

_P_CAP = 15e-4  # largest injected net edge (relative); neighbour budgets cap it further
_NOISE = 0.6  # smallest |edge| in units of the asset's base half-spread (about 2-6 sigma of quote noise)
_ALLOW = 0.85  # fraction of a neighbouring relationship's budget a single leg's shift may use
_OPTION_HALF_REL = 0.01  # option half-spread: 1% of premium ...
_OPTION_HALF_FWD = 0.5e-4  # ... plus 0.5 bp of the forward


@dataclass
class Knobs:
    """The parts of the spec a chunk needs."""

    seed: int
    rate: float
    episodes_per_hour: float
    outages_per_hour: float
    jumps_per_hour: float
    stale_fraction: float
    below_fee_fraction: float
    borrow_rate: float
    trade_rate: float = 0.0
    book: tuple[tuple[str, str], ...] = ()
    book_levels: int = 0


@dataclass
class Plan:
    """One injected episode (or plain outage) of a chunk, in the event clock."""

    kind: str  # cross_exchange | triangular | basis | parity | outage
    start: int
    end: int
    above: bool = True
    stale: bool = False
    edge: float = 0.0  # target net edge (relative for linear kinds, USD per unit for parity)
    shifts: list[tuple[int, float]] = field(default_factory=list)  # (vi, log shift) over [start, end)
    option_shift: tuple[int, float] | None = None  # (option index, additive shift in premium currency)
    freeze: tuple[int, int, int] | None = None  # (vi, from, thaw)
    ramp: tuple[int, int, int, float] | None = None  # (asset, from, to, log move)
    info: dict[str, Any] = field(default_factory=dict)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


class _Budgets:
    """Relative half-spread, fee and tick of each venue-instrument, and its cheapest same-symbol counterparts."""

    def __init__(self, u: Universe) -> None:
        self.u = u
        self.by_symbol: dict[str, list[int]] = {}
        for v in u.vis:
            self.by_symbol.setdefault(v.symbol, []).append(v.index)

    def low(self, i: int) -> float:
        v = self.u.vis[i]
        return v.half + v.inst.taker_fee

    def high(self, i: int) -> float:
        v = self.u.vis[i]
        return v.half + v.inst.taker_fee + v.tick_rel

    def others(self, i: int) -> list[int]:
        """Other venues quoting the same symbol, cheapest (lowest half-spread + fee) first."""
        sym = self.u.vis[i].symbol
        return sorted((j for j in self.by_symbol[sym] if j != i), key=self.low)

    def neighbour(self, i: int, skip_cycle: int = -1, skip_pair: tuple[int, int] | None = None) -> float:
        """Smallest no-arbitrage budget (relative) of every other basis, perp-perp or triangular relationship of i."""
        u = self.u
        v = u.vis[i]
        best = math.inf
        dated = ("perp", "iperp", "future")
        for w in u.vis:
            if w.asset != v.asset or w.index == i or w.quote_asset >= 0 or v.quote_asset >= 0:
                continue
            basis = (v.kind == "spot" and w.kind in dated) or (v.kind in dated and w.kind == "spot")
            perp_perp = v.kind in ("perp", "iperp") and w.kind in ("perp", "iperp") and w.venue != v.venue
            pair = (min(i, w.index), max(i, w.index))
            if (basis or perp_perp) and (skip_pair is None or pair != (min(skip_pair), max(skip_pair))):
                best = min(best, 2 * (v.inst.taker_fee + w.inst.taker_fee) + v.half + w.half - 3e-4)
        for c in u.vis:
            if c.kind != "cross" or c.venue != v.venue or c.index == skip_cycle:
                continue
            bu = u.by_key.get((c.venue, f"{u.assets[c.quote_asset]}/USDT"))
            xu = u.by_key.get((c.venue, f"{u.assets[c.asset]}/USDT"))
            legs = (bu, c.index, xu)
            if i in legs and None not in legs:
                best = min(best, sum(self.low(j) for j in legs if j is not None))
        return best

    def allowance(
        self, i: int, skip_cycle: int = -1, skip_pair: tuple[int, int] | None = None, exclude: int = -1
    ) -> float:
        """Largest shift of one leg that keeps it within fees of every other relationship it takes part in."""
        others = [j for j in self.others(i) if j != exclude]
        cross = self.low(i) + self.low(others[0]) if others else math.inf
        return _ALLOW * min(cross, self.neighbour(i, skip_cycle, skip_pair), 0.02)


def plan_chunk(u: Universe, t0: int, t1: int, rng: np.random.Generator, k: Knobs) -> list[Plan]:
    """Place episodes one after another (never overlapping) inside the chunk, away from its edges."""
    b = _Budgets(u)
    plans: list[Plan] = []
    rate = (k.episodes_per_hour + k.outages_per_hour) / 3600.0
    if rate <= 0 or not u.vis:  # nothing listed (e.g. deribit without BTC/ETH): nothing to plan
        return plans
    p_outage = k.outages_per_hour / (k.episodes_per_hour + k.outages_per_hour)
    t = t0 + 3 * NS
    while True:
        t += int(max(rng.exponential(1.0 / rate), 2.0) * NS)
        roll = rng.uniform()
        plan: Plan | None
        if roll < p_outage:
            plan = _plan_outage(u, t, rng)
        elif rng.uniform() < k.stale_fraction:
            plan = _plan_stale(u, b, t, rng, k)
        else:
            plan = _plan_live(u, b, t, rng, k)
        if plan is None:  # no episode fits this universe and outages are off: try again later
            if t > t1 - 5 * NS:
                break
            continue
        last = max(plan.end, plan.freeze[2] if plan.freeze else 0)
        if last > t1 - 5 * NS:
            break
        plans.append(plan)
        t = last + 2 * NS
    return plans


def _plan_outage(u: Universe, t: int, rng: np.random.Generator) -> Plan:
    i = int(rng.integers(len(u.vis)))
    v = u.vis[i]
    end = t + int(rng.uniform(1.5, 4.0) * v.max_age_ns)
    return Plan("outage", t, end, freeze=(i, t, end))


def _cross_candidates(u: Universe) -> list[int]:
    return [v.index for v in u.vis if v.kind in ("spot", "perp")]


def _plan_stale(u: Universe, b: _Budgets, t: int, rng: np.random.Generator, k: Knobs) -> Plan | None:
    cands = [i for i in _cross_candidates(u) if b.others(i)]
    if not cands:
        return _plan_live(u, b, t, rng, k)
    a = int(rng.choice(cands))
    va = u.vis[a]
    cp = b.others(a)[0]
    up = bool(rng.uniform() < 0.5)
    fees = va.inst.taker_fee + u.vis[cp].inst.taker_fee
    floor = _NOISE * float(u.h0[va.asset])
    above = bool(rng.uniform() >= k.below_fee_fraction)
    edge = (
        floor + float(rng.uniform()) * (_P_CAP - floor) if above else -max(floor, float(rng.uniform(0.3, 0.7)) * fees)
    )
    move = edge + b.high(a) + b.high(cp) - va.inst.taker_fee - u.vis[cp].inst.taker_fee + fees
    h0 = float(u.h0[va.asset])
    ramp_ns = int(np.clip(move * u.window_ns / (0.4 * h0), 3 * NS, 15 * NS))
    ramp_from = t + va.max_age_ns + NS // 2
    plateau = ramp_from + ramp_ns + 3 * NS // 2
    thaw = plateau + int(_log_uniform(rng, 0.5, 20.0) * NS)
    plan = Plan("cross_exchange", plateau, thaw, above=above, stale=True, edge=edge)
    plan.freeze = (a, t, thaw)
    plan.ramp = (va.asset, ramp_from, ramp_from + ramp_ns, move if up else -move)
    buy, sell = (a, cp) if up else (cp, a)
    plan.info = {"buy": buy, "sell": sell, "anchor": cp}
    return plan


def _plan_live(u: Universe, b: _Budgets, t: int, rng: np.random.Generator, k: Knobs) -> Plan | None:
    kinds = ["cross_exchange", "triangular", "basis"] + (["parity"] if u.options else [])
    order = list(rng.permutation(len(kinds)))
    dur = int(_log_uniform(rng, 0.05, 30.0) * NS)
    want_above = bool(rng.uniform() >= k.below_fee_fraction)
    planners = {"cross_exchange": _plan_cross, "triangular": _plan_tri, "basis": _plan_basis, "parity": _plan_parity}
    for above in (want_above, not want_above):
        for idx in order:
            plan = planners[kinds[idx]](u, b, t, t + dur, rng, above)
            if plan is not None:
                return plan
    # nothing fits (e.g. one instrument alone): an outage stands in, unless the spec asked for none
    return _plan_outage(u, t, rng) if k.outages_per_hour > 0 else None


def _target(
    rng: np.random.Generator, above: bool, need0: float, allow: float, fees: float, floor: float
) -> float | None:
    """Net edge for a dislocation whose legs may move ``allow`` in total and need ``need0`` to break even.

    Above fees: at least ``floor`` (several times the quote noise) and at most half the room left; below fees: by at
    least ``floor`` too, so neither class is ambiguous on any row of the episode.
    """
    room = allow - need0
    if above:
        cap = min(0.5 * room, _P_CAP)
        return None if cap < floor else floor + float(rng.uniform()) * (cap - floor)
    edge = -max(floor, float(rng.uniform(0.3, 0.7)) * fees)
    return None if need0 + edge > allow or need0 + edge <= 0 else edge


_TRIES = 40


def _plan_cross(u: Universe, b: _Budgets, t: int, end: int, rng: np.random.Generator, above: bool) -> Plan | None:
    """Move the sell venue up and the buy venue down: each within its budget against every other venue."""
    pairs = [(s, c) for s in _cross_candidates(u) for c in b.others(s)]
    for j in rng.permutation(len(pairs))[:_TRIES]:
        sell, buy = pairs[int(j)]
        allow = np.array([b.allowance(sell, exclude=buy), b.allowance(buy, exclude=sell)])
        fees = u.vis[sell].inst.taker_fee + u.vis[buy].inst.taker_fee
        floor = _NOISE * float(u.h0[u.vis[sell].asset])
        if u.vis[sell].kind == "perp":
            # two perpetuals are also a perp-perp basis pair (fees paid twice): keep that one below its fees
            allow = allow * min(1.0, (b.high(sell) + b.high(buy) + 0.7 * fees - 3e-4) / float(allow.sum()))
        edge = _target(rng, above, b.high(sell) + b.high(buy), float(allow.sum()), fees, floor)
        if edge is None:
            continue
        share = (b.high(sell) + b.high(buy) + edge) * allow / allow.sum()
        plan = Plan("cross_exchange", t, end, above=above, edge=edge)
        plan.shifts = [(sell, float(share[0])), (buy, -float(share[1]))]
        plan.info = {"buy": buy, "sell": sell}
        return plan
    return None


def _plan_tri(u: Universe, b: _Budgets, t: int, end: int, rng: np.random.Generator, above: bool) -> Plan | None:
    crosses = [v for v in u.vis if v.kind == "cross"]
    for j in rng.permutation(len(crosses))[:_TRIES]:
        x = crosses[int(j)]
        bu = u.by_key.get((x.venue, f"{u.assets[x.quote_asset]}/USDT"))
        xu = u.by_key.get((x.venue, f"{u.assets[x.asset]}/USDT"))
        if bu is None or xu is None:
            continue
        legs = [bu, x.index, xu]
        allow = np.array([b.allowance(i, skip_cycle=x.index) for i in legs])
        need0 = sum(b.high(i) for i in legs)
        fees = sum(u.vis[i].inst.taker_fee for i in legs)
        floor = 1.5 * _NOISE * float(max(u.h0[x.asset], u.h0[x.quote_asset]))
        edge = _target(rng, above, need0, float(allow.sum()), fees, floor)
        if edge is None:
            continue
        share = (need0 + edge) * allow / allow.sum()
        buy_cycle = bool(rng.uniform() < 0.5)  # USDT -> BTC -> X -> USDT, else USDT -> X -> BTC -> USDT
        signs = (-1.0, -1.0, 1.0) if buy_cycle else (1.0, 1.0, -1.0)
        plan = Plan("triangular", t, end, above=above, edge=edge)
        plan.shifts = [(i, sgn * float(m)) for i, sgn, m in zip(legs, signs, share, strict=True)]
        plan.info = {"bu": bu, "xb": x.index, "xu": xu, "buy_cycle": buy_cycle}
        return plan
    return None


def _plan_basis(u: Universe, b: _Budgets, t: int, end: int, rng: np.random.Generator, above: bool) -> Plan | None:
    pairs = [
        (s.index, p.index) for s in u.vis if s.kind == "spot" for p in u.vis if p.kind == "perp" and p.asset == s.asset
    ]
    for j in rng.permutation(len(pairs))[:_TRIES]:
        s, p = pairs[int(j)]
        fs, fp = u.vis[s].inst.taker_fee, u.vis[p].inst.taker_fee
        allow = np.array([b.allowance(s, skip_pair=(s, p)), b.allowance(p, skip_pair=(s, p))])
        need0 = b.high(s) + b.high(p) + fs + fp  # fees are paid twice (open and close)
        floor = 1.5 * _NOISE * float(u.h0[u.vis[s].asset])
        edge = _target(rng, above, need0, float(allow.sum()), 2 * (fs + fp), floor)
        if edge is None:
            continue
        share = (need0 + edge) * allow / allow.sum()
        carry = bool(rng.uniform() < 0.5)  # cash and carry: buy spot, sell perp
        sgn = (-1.0, 1.0) if carry else (1.0, -1.0)
        plan = Plan("basis", t, end, above=above, edge=edge)
        plan.shifts = [(s, sgn[0] * float(share[0])), (p, sgn[1] * float(share[1]))]
        plan.info = {"spot": s, "perp": p, "carry": carry}
        return plan
    return None


def _plan_parity(u: Universe, b: _Budgets, t: int, end: int, rng: np.random.Generator, above: bool) -> Plan | None:
    calls = [o for o in u.options if o.is_call]
    if not calls:
        return None
    c = calls[int(rng.integers(len(calls)))]
    put = next(
        o
        for o in u.options
        if not o.is_call and o.expiry_ns == c.expiry_ns and o.strike == c.strike and o.asset == c.asset
    )
    reversal = bool(rng.uniform() < 0.5)
    plan = Plan("parity", t, end)
    # the magnitude needs prices: resolved by finish_parity once the latent path exists
    plan.info = {
        "call": c.index,
        "put": put.index,
        "future": c.future,
        "reversal": reversal,
        "edge_draw": float(rng.uniform()),
    }
    plan.above = above
    return plan


def _option_fair(u: Universe, lat: Latent, opt_idx: IntArray, times: IntArray) -> tuple[FloatArray, ...]:
    """Fair option value in USD, vega, forward, index and implied vol at event times (Deribit's view)."""
    lag = int(u.vis[u.options[0].future].lag_ns)
    asset = np.array([u.options[i].asset for i in opt_idx], dtype=np.int64)
    expiry = np.array([u.options[i].expiry_ns for i in opt_idx], dtype=np.int64)
    strike = np.array([u.options[i].strike for i in opt_idx])
    is_call = np.array([u.options[i].is_call for i in opt_idx])
    log_s = np.empty(times.size)
    volm = np.empty(times.size)
    for a in np.unique(asset):
        m = asset == a
        log_s[m] = lat.log_price(int(a), times[m], lag)
        volm[m] = lat.vol_mult[a, (times[m] - lat.base_ns) // DT_NS]
    index = np.exp(log_s)
    tau = (expiry - times) / NS_PER_YEAR
    forward = index * np.exp(u.rate_r * tau)
    atm = u.vols[asset] * volm
    iv = smile(atm, forward, strike)
    price, vega = black76(forward, strike, tau, u.rate_r, iv, is_call)
    return price, vega, forward, index, iv


def finish_parity(u: Universe, lat: Latent, plan: Plan, k: Knobs) -> None:
    """Size a parity injection from the model prices at its start: raise the call (reversal) or the put."""
    info = plan.info
    legs = np.array([info["call"], info["put"]], dtype=np.int64)
    price, _, fwd, index, _ = _option_fair(u, lat, legs, np.array([plan.start, plan.start], dtype=np.int64))
    opt = u.options[int(info["call"])]
    half = _OPTION_HALF_REL * price + _OPTION_HALF_FWD * fwd + opt.inst.tick_size * index
    fut = u.vis[int(info["future"])]
    f_half = fut.half * fwd[0] + fut.inst.tick_size
    disc = math.exp(-u.rate_r * (opt.expiry_ns - plan.start) / NS_PER_YEAR)
    opt_fee = opt.inst.taker_fee * index[0]
    fees = 2 * opt_fee + fut.inst.taker_fee * fwd[0]
    need0 = float(half.sum() + f_half * disc + fees + fut.inst.taker_fee * f_half)
    if plan.above:
        edge = (1.5 + 1.5 * info["edge_draw"]) * float(u.h0[opt.asset] * fwd[0])
    else:
        edge = -max((0.5 + 0.4 * info["edge_draw"]) * fees, 1.5 * float(u.h0[opt.asset] * fwd[0]))
    plan.edge = edge
    raised = int(info["call"] if info["reversal"] else info["put"])
    plan.option_shift = (raised, (need0 + edge) / float(index[0]))


@dataclass
class Rows:
    """Per venue-instrument (or option) sorted arrays, used for as-of look-ups when labelling."""

    recv: dict[int, IntArray]
    cols: dict[int, dict[str, FloatArray]]

    def asof(self, key: int, t: int) -> int:
        i = int(np.searchsorted(self.recv[key], t, side="right")) - 1
        if i < 0:
            raise ValueError(f"no row of {key} at or before {t}")
        return i

    def first_at(self, key: int, t_event: int, events: dict[int, IntArray]) -> int:
        """ts_recv of the first row of ``key`` with ts_event >= ``t_event``."""
        i = int(np.searchsorted(events[key], t_event, side="left"))
        return int(self.recv[key][i])


def _instrument_rows(
    n: int, starts: Any, ends: Any, recv: IntArray, t_ev: IntArray, columns: dict[str, FloatArray]
) -> tuple[Rows, dict[int, IntArray]]:
    """Per-instrument views (``starts[i]:ends[i]``) of a chunk's columns and event times, for labelling."""
    rows = Rows(
        recv={i: recv[starts[i] : ends[i]] for i in range(n)},
        cols={i: {name: col[starts[i] : ends[i]] for name, col in columns.items()} for i in range(n)},
    )
    return rows, {i: t_ev[starts[i] : ends[i]] for i in range(n)}


def build_chunk(
    u: Universe, state: LatentState, t0: int, t1: int, k: Knobs, chunk_index: int
) -> dict[str, pl.DataFrame]:
    """Generate every table of ``[t0, t1)``; ``state`` is advanced in place."""
    rng = np.random.default_rng([k.seed, chunk_index])
    plans = plan_chunk(u, t0, t1, rng, k)
    ramps = [p.ramp for p in plans if p.ramp is not None]
    lat = simulate_latent(u, state, t0, t1, rng, k.jumps_per_hour, ramps)
    for p in plans:
        if p.kind == "parity":
            finish_parity(u, lat, p, k)
    n_vi = len(u.vis)
    # --- update times per venue-instrument: regular, jumps, episode edges; frozen windows removed
    forced: dict[int, list[IntArray]] = {i: [] for i in range(n_vi + len(u.options))}
    for v in u.vis:
        forced[v.index].append(lat.jump_times[v.asset])
        if v.quote_asset >= 0:
            forced[v.index].append(lat.jump_times[v.quote_asset])
    for o in u.options:
        forced[n_vi + o.index].append(lat.jump_times[o.asset])
    for p in plans:
        edges = np.array([p.start, p.end] + [p.start + (p.end - p.start) * q // 4 for q in (1, 2, 3)], dtype=np.int64)
        keys = [i for i, _ in p.shifts]
        if p.option_shift is not None:
            keys += [n_vi + int(p.info["call"]), n_vi + int(p.info["put"]), int(p.info["future"])]
        if p.stale:
            keys.append(int(p.info["anchor"]))
        for key in keys:
            forced[key].append(edges)
        if p.freeze is not None:
            forced[p.freeze[0]].append(np.array([p.freeze[2]], dtype=np.int64))
    freezes = [p.freeze for p in plans if p.freeze is not None]
    seg_times: list[IntArray] = []
    for key in range(n_vi + len(u.options)):
        gap = u.vis[key].gap_ns if key < n_vi else int(0.4 * u.vis[u.options[key - n_vi].future].max_age_ns)
        times = np.unique(np.concatenate([regular_times(t0, t1, gap, rng), *forced[key]]))
        times = times[(times >= t0) & (times < t1)]
        for vi, a, z in freezes:
            if vi == key:
                times = times[(times < a) | (times >= z)]
        seg_times.append(times)
    vi_times = seg_times[:n_vi]
    premium = _premium(state, rng)
    quotes, q_rows = _quote_rows(u, lat, state, vi_times, plans, t0, t1, rng, premium)
    options, o_rows = _option_rows(u, lat, state, seg_times[n_vi:], plans, t0, rng)
    funding, f_rows = _funding_rows(u, lat, t0, t1, rng, premium)
    labels = _labels(u, plans, q_rows, o_rows, f_rows, k)
    trades = trade_rows(u, quotes, state, t0, t1, k.trade_rate, rng) if k.trade_rate > 0 else None
    book = book_rows(u, quotes, k.book, k.book_levels, rng)
    out = {"quotes": quotes, "book": book, "option_quotes": options, "funding": funding, "labels": labels}
    if trades is not None:
        out["trades"] = trades
    return out


def _take(names: list[str], index: IntArray) -> pl.Series:
    """Strings by index without materialising a numpy string array (much faster for millions of rows)."""
    return pl.Series(names, dtype=pl.String).gather(pl.Series(index, dtype=pl.UInt32))


def _segments(times: list[IntArray]) -> tuple[IntArray, IntArray]:
    seg = np.concatenate([np.full(t.size, i, dtype=np.int64) for i, t in enumerate(times)])
    return np.concatenate(times).astype(np.int64), seg


def _premium(state: LatentState, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    start = state.premium.copy()
    end = np.clip(0.8 * start + rng.normal(0.0, 0.5e-4, size=start.size), -1.5e-4, 1.5e-4)
    state.premium = end
    return start, end


def _quote_rows(
    u: Universe,
    lat: Latent,
    state: LatentState,
    vi_times: list[IntArray],
    plans: list[Plan],
    t0: int,
    t1: int,
    rng: np.random.Generator,
    premium: tuple[FloatArray, FloatArray],
) -> tuple[pl.DataFrame, tuple[Rows, dict[int, IntArray]]]:
    t_ev, seg = _segments(vi_times)
    vis = u.vis
    lag = np.array([v.lag_ns for v in vis], dtype=np.int64)[seg]
    asset = np.array([v.asset for v in vis], dtype=np.int64)[seg]
    qa = np.array([v.quote_asset for v in vis], dtype=np.int64)[seg]
    log_base = np.empty(t_ev.size)
    log_quote = np.zeros(t_ev.size)
    for a in range(len(u.assets)):
        m = asset == a
        log_base[m] = lat.log_price(a, t_ev[m], lag[m])
        m2 = qa == a
        log_quote[m2] = lat.log_price(a, t_ev[m2], lag[m2])
    log_mid = log_base - log_quote
    kind = np.array([v.kind for v in vis])[seg]
    p_start, p_end = premium
    frac = (t_ev - t0) / (t1 - t0)
    prem = p_start[seg] + (p_end[seg] - p_start[seg]) * frac
    is_perp = (kind == "perp") | (kind == "iperp")
    log_mid = log_mid + np.where(is_perp, np.log1p(prem), 0.0)
    expiry = np.array([v.expiry_ns for v in vis], dtype=np.int64)[seg]
    is_fut = kind == "future"
    log_mid = log_mid + np.where(is_fut, u.rate_r * (expiry - t_ev) / NS_PER_YEAR, 0.0)
    starts = np.searchsorted(seg, np.arange(len(vis)), side="left")
    for p in plans:
        for i, s in p.shifts:
            lo = starts[i] + np.searchsorted(vi_times[i], p.start, side="left")
            hi = starts[i] + np.searchsorted(vi_times[i], p.end, side="left")
            log_mid[lo:hi] += s
    mid = np.exp(log_mid)
    half = np.array([v.half for v in vis])[seg]
    tick = np.array([v.inst.tick_size for v in vis])[seg]
    lot = np.array([v.inst.lot_size for v in vis])[seg]
    bid, ask = round_quotes(mid, half, tick)
    notional = np.array([v.notional for v in vis])[seg]
    usd_price = np.exp(log_base)
    inverse = (kind == "iperp") | is_fut
    contract = np.array([v.inst.contract_size for v in vis])[seg]
    raw_b = notional * rng.lognormal(0.0, 0.5, size=t_ev.size)
    raw_a = notional * rng.lognormal(0.0, 0.5, size=t_ev.size)
    scale = np.where(inverse, contract, usd_price)
    bid_size = round_sizes(raw_b / scale, lot)
    ask_size = round_sizes(raw_a / scale, lot)
    lat_ns = np.array([v.lat_ns for v in vis], dtype=np.int64)[seg]
    floor = state.last_recv[: len(vis)][seg]
    recv = strictly_increasing_recv(t_ev, seg, lat_ns, floor, t0, rng)
    ends = np.append(starts[1:], t_ev.size)
    # per venue-instrument sequence numbers, continuing across chunks (an exchange's book update id)
    seq = state.seq[seg] + np.arange(t_ev.size, dtype=np.int64) - starts[seg] + 1
    for i in range(len(vis)):
        if ends[i] > starts[i]:
            state.last_recv[i] = recv[ends[i] - 1]
            state.seq[i] = seq[ends[i] - 1]
    frame = pl.DataFrame(
        {
            "ts_event": t_ev,
            "ts_recv": recv,
            "exchange": _take([v.venue for v in vis], seg),
            "symbol": _take([v.symbol for v in vis], seg),
            "bid": bid,
            "bid_size": bid_size,
            "ask": ask,
            "ask_size": ask_size,
            "seq": seq,
            "flags": np.zeros(t_ev.size, dtype=np.uint16),
        }
    )
    columns = {"bid": bid, "ask": ask, "bid_size": bid_size, "ask_size": ask_size}
    return frame, _instrument_rows(len(vis), starts, ends, recv, t_ev, columns)


def _option_rows(
    u: Universe,
    lat: Latent,
    state: LatentState,
    times: list[IntArray],
    plans: list[Plan],
    t0: int,
    rng: np.random.Generator,
) -> tuple[pl.DataFrame, tuple[Rows, dict[int, IntArray]]]:
    if not u.options:
        return pl.DataFrame(schema=OPTION_QUOTES.polars), (Rows({}, {}), {})
    t_ev, seg = _segments(times)
    price, vega, fwd, index, iv = _option_fair(u, lat, seg, t_ev)
    opts = u.options
    tick = np.array([o.inst.tick_size for o in opts])[seg]
    lot = np.array([o.inst.lot_size for o in opts])[seg]
    prem = price / index  # premium currency (the base for Deribit's inverse options)
    half_abs = (_OPTION_HALF_REL * price + _OPTION_HALF_FWD * fwd) / index + 0.5 * tick
    starts = np.searchsorted(seg, np.arange(len(opts)), side="left")
    shifted = prem.copy()
    for p in plans:
        if p.option_shift is None:
            continue
        o, add = p.option_shift
        lo = starts[o] + np.searchsorted(times[o], p.start, side="left")
        hi = starts[o] + np.searchsorted(times[o], p.end, side="left")
        shifted[lo:hi] += add
    bid, ask = round_quotes(shifted, half_abs / shifted, tick)
    bid_size = round_sizes(rng.lognormal(math.log(5.0), 0.6, size=t_ev.size), lot)
    ask_size = round_sizes(rng.lognormal(math.log(5.0), 0.6, size=t_ev.size), lot)
    bid_iv = np.maximum(iv - (prem - bid) * index / np.maximum(vega, 1e-12), 0.0)
    ask_iv = np.maximum(iv + (ask - prem) * index / np.maximum(vega, 1e-12), 0.0)
    lat_ns = np.full(t_ev.size, u.vis[opts[0].future].lat_ns, dtype=np.int64)
    n_vi = len(u.vis)
    floor = state.last_recv[n_vi:][seg]
    recv = strictly_increasing_recv(t_ev, seg, lat_ns, floor, t0, rng)
    ends = np.append(starts[1:], t_ev.size)
    for i in range(len(opts)):
        if ends[i] > starts[i]:
            state.last_recv[n_vi + i] = recv[ends[i] - 1]
    frame = pl.DataFrame(
        {
            "ts_event": t_ev,
            "ts_recv": recv,
            "exchange": pl.Series(["deribit"] * t_ev.size, dtype=pl.String),
            "symbol": _take([o.symbol for o in opts], seg),
            "underlying": _take([f"{u.assets[o.asset]}/USD" for o in opts], seg),
            "expiry": np.array([o.expiry_ns for o in opts], dtype=np.int64)[seg],
            "strike": np.array([o.strike for o in opts])[seg],
            "option_type": _take(["C" if o.is_call else "P" for o in opts], seg),
            "bid": bid,
            "bid_size": bid_size,
            "ask": ask,
            "ask_size": ask_size,
            "bid_iv": bid_iv,
            "ask_iv": ask_iv,
            "mark_price": prem,
            "mark_iv": iv,
            "underlying_price": index,
            "flags": np.zeros(t_ev.size, dtype=np.uint16),
        }
    )
    columns = {"bid": bid, "ask": ask, "bid_size": bid_size, "ask_size": ask_size, "underlying_price": index}
    return frame, _instrument_rows(len(opts), starts, ends, recv, t_ev, columns)


def _funding_rows(
    u: Universe, lat: Latent, t0: int, t1: int, rng: np.random.Generator, premium: tuple[FloatArray, FloatArray]
) -> tuple[pl.DataFrame, Rows]:
    perps = [v for v in u.vis if v.kind in ("perp", "iperp")]
    if not perps:
        return pl.DataFrame(schema=FUNDING.polars), Rows({}, {})
    parts: list[pl.DataFrame] = []
    rows = Rows({}, {})
    for v in perps:
        phase = int(rng.integers(0, FUNDING_EVERY_NS))
        t = np.arange(t0 + phase, t1, FUNDING_EVERY_NS, dtype=np.int64)
        index = np.exp(lat.log_price(v.asset, t, v.lag_ns))
        p_start, p_end = float(premium[0][v.index]), float(premium[1][v.index])
        prem = p_start + (p_end - p_start) * (t - t0) / (t1 - t0)
        mark = index * (1.0 + prem)
        recv = t + v.lat_ns
        nxt = next_funding_ns(t, v.inst.funding_interval_hours or 8.0)
        rate = np.full(t.size, p_start)
        parts.append(
            pl.DataFrame(
                {
                    "ts_event": t,
                    "ts_recv": recv,
                    "exchange": pl.Series([v.venue] * t.size, dtype=pl.String),
                    "symbol": pl.Series([v.symbol] * t.size, dtype=pl.String),
                    "funding_rate": rate,
                    "predicted_rate": prem,
                    "next_funding_time": nxt,
                    "mark_price": mark,
                    "index_price": index,
                    "flags": np.zeros(t.size, dtype=np.uint16),
                }
            )
        )
        rows.recv[v.index] = recv
        rows.cols[v.index] = {"predicted_rate": prem, "mark_price": mark, "next": nxt.astype(np.float64)}
    return pl.concat(parts), rows


def episode_id(kind: str, ts_start: int, legs: list[dict[str, Any]]) -> str:
    """Deterministic id: a short hash of the kind, start time and legs (exchange, symbol, side)."""
    text = f"{kind}|{ts_start}|" + "|".join(f"{g['exchange']},{g['symbol']},{g['side']}" for g in legs)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _labels(
    u: Universe,
    plans: list[Plan],
    q: tuple[Rows, dict[int, IntArray]],
    o: tuple[Rows, dict[int, IntArray]],
    f: Rows,
    k: Knobs,
) -> pl.DataFrame:
    qrows, qev = q
    orows, oev = o
    out: list[dict[str, Any]] = []
    for p in plans:
        if p.kind == "outage":
            continue
        if p.stale:
            buy, sell = int(p.info["buy"]), int(p.info["sell"])
            anchor = int(p.info["anchor"])
            frozen = buy if anchor == sell else sell
            ts_start = qrows.first_at(anchor, p.start, qev)
            ts_end = qrows.first_at(frozen, p.end, qev)
        elif p.kind == "parity":
            keys_o = [int(p.info["call"]), int(p.info["put"])]
            raised = int(p.option_shift[0]) if p.option_shift else keys_o[0]
            ts_start = orows.first_at(raised, p.start, oev)
            ts_end = orows.first_at(raised, p.end, oev)
        else:
            ts_start = max(qrows.first_at(i, p.start, qev) for i, _ in p.shifts)
            ts_end = min(qrows.first_at(i, p.end, qev) for i, _ in p.shifts)
        row = _label_row(u, p, qrows, orows, f, ts_start, k)
        row.update(ts_start=ts_start, ts_end=ts_end, stale=p.stale)
        row["above_fees"] = bool(row["expected_profit"] > 0)
        row["episode_id"] = episode_id(p.kind, ts_start, row["legs"])
        out.append(row)
    if not out:
        return pl.DataFrame(schema=LABELS.polars)
    return pl.DataFrame(out, schema=LABELS.polars)


def _leg(exchange: str, symbol: str, side: str, price: float, size: float) -> dict[str, Any]:
    return {"exchange": exchange, "symbol": symbol, "side": side, "price": float(price), "size": float(size)}


def _label_row(u: Universe, p: Plan, q: Rows, o: Rows, f: Rows, t: int, k: Knobs) -> dict[str, Any]:
    def quote(i: int) -> dict[str, float]:
        j = q.asof(i, t)
        return {name: float(col[j]) for name, col in q.cols[i].items()}

    if p.kind == "cross_exchange":
        a, b = int(p.info["buy"]), int(p.info["sell"])
        va, vb = u.vis[a], u.vis[b]
        qa, qb = quote(a), quote(b)
        fa, fb = va.inst.taker_fee, vb.inst.taker_fee
        unit = (qb["bid"] - qa["ask"]) - fa * qa["ask"] - fb * qb["bid"]
        size = min(qa["ask_size"], qb["bid_size"])
        legs = [_leg(va.venue, va.symbol, "buy", qa["ask"], size), _leg(vb.venue, vb.symbol, "sell", qb["bid"], size)]
        return {
            "kind": p.kind,
            "symbol": va.symbol,
            "buy_exchange": va.venue,
            "sell_exchange": vb.venue,
            "legs": legs,
            "size": size,
            "expected_profit": unit * size,
        }
    if p.kind == "triangular":
        bu, xb, xu = (u.vis[int(p.info[n])] for n in ("bu", "xb", "xu"))
        qbu, qxb, qxu = quote(bu.index), quote(xb.index), quote(xu.index)
        f1, f2, f3 = bu.inst.taker_fee, xb.inst.taker_fee, xu.inst.taker_fee
        keep = (1 - f1) * (1 - f2) * (1 - f3)
        if p.info["buy_cycle"]:  # USDT -> BTC (buy BTC/USDT) -> X (buy X/BTC) -> USDT (sell X/USDT)
            gross = qxu["bid"] / (qbu["ask"] * qxb["ask"])
            notional = min(
                qbu["ask"] * qbu["ask_size"],
                qxb["ask"] * qxb["ask_size"] * qbu["ask"],
                qxu["bid_size"] * qxb["ask"] * qbu["ask"],
            )
            btc_amt = notional / qbu["ask"]
            x_amt = btc_amt / qxb["ask"]
            legs = [
                _leg(bu.venue, bu.symbol, "buy", qbu["ask"], btc_amt),
                _leg(xb.venue, xb.symbol, "buy", qxb["ask"], x_amt),
                _leg(xu.venue, xu.symbol, "sell", qxu["bid"], x_amt),
            ]
        else:  # USDT -> X (buy X/USDT) -> BTC (sell X/BTC) -> USDT (sell BTC/USDT)
            gross = qxb["bid"] * qbu["bid"] / qxu["ask"]
            notional = min(
                qxu["ask"] * qxu["ask_size"], qxb["bid_size"] * qxu["ask"], qbu["bid_size"] / qxb["bid"] * qxu["ask"]
            )
            x_amt = notional / qxu["ask"]
            btc_amt = x_amt * qxb["bid"]
            legs = [
                _leg(xu.venue, xu.symbol, "buy", qxu["ask"], x_amt),
                _leg(xb.venue, xb.symbol, "sell", qxb["bid"], x_amt),
                _leg(bu.venue, bu.symbol, "sell", qbu["bid"], btc_amt),
            ]
        return {
            "kind": p.kind,
            "symbol": xb.symbol,
            "buy_exchange": xb.venue,
            "sell_exchange": xb.venue,
            "legs": legs,
            "size": notional,
            "expected_profit": notional * (gross * keep - 1.0),
        }
    if p.kind == "basis":
        s, pp = u.vis[int(p.info["spot"])], u.vis[int(p.info["perp"])]
        qs, qp = quote(s.index), quote(pp.index)
        j = int(np.searchsorted(f.recv[pp.index], t, side="right")) - 1
        fund = {n: float(c[j]) for n, c in f.cols[pp.index].items()}
        carry_rate = fund["predicted_rate"] * fund["mark_price"]
        fs, fp = s.inst.taker_fee, pp.inst.taker_fee
        if p.info["carry"]:
            unit = (qp["bid"] - qs["ask"]) - 2 * (fs * qs["ask"] + fp * qp["bid"]) + carry_rate
            size = min(qs["ask_size"], qp["bid_size"] * pp.inst.contract_size)
            legs = [_leg(s.venue, s.symbol, "buy", qs["ask"], size), _leg(pp.venue, pp.symbol, "sell", qp["bid"], size)]
            buy, sell = s.venue, pp.venue
        else:
            tau = max(fund["next"] - t, 0.0) / NS_PER_YEAR
            unit = (qs["bid"] - qp["ask"]) - 2 * (fs * qs["bid"] + fp * qp["ask"]) - carry_rate
            unit -= k.borrow_rate * tau * qs["bid"]
            size = min(qs["bid_size"], qp["ask_size"] * pp.inst.contract_size)
            legs = [_leg(pp.venue, pp.symbol, "buy", qp["ask"], size), _leg(s.venue, s.symbol, "sell", qs["bid"], size)]
            buy, sell = pp.venue, s.venue
        return {
            "kind": p.kind,
            "symbol": f"{s.symbol} vs {pp.symbol}",
            "buy_exchange": buy,
            "sell_exchange": sell,
            "legs": legs,
            "size": size,
            "expected_profit": unit * size,
        }
    # parity
    c_opt, p_opt = u.options[int(p.info["call"])], u.options[int(p.info["put"])]
    fut = u.vis[int(p.info["future"])]
    jc, jp = o.asof(c_opt.index, t), o.asof(p_opt.index, t)
    qc = {n: float(col[jc]) for n, col in o.cols[c_opt.index].items()}
    qp = {n: float(col[jp]) for n, col in o.cols[p_opt.index].items()}
    qf = quote(fut.index)
    disc = math.exp(-u.rate_r * (c_opt.expiry_ns - t) / NS_PER_YEAR)
    strike = c_opt.strike

    def opt_fee(price_usd: float, index: float) -> float:
        cap = c_opt.inst.fee_cap if c_opt.inst.fee_cap is not None else math.inf
        return min(c_opt.inst.taker_fee * index, cap * price_usd)

    uc, up = qc["underlying_price"], qp["underlying_price"]
    if p.info["reversal"]:  # sell call at bid, buy put at ask, buy future at ask
        c_usd, p_usd, fpx = qc["bid"] * uc, qp["ask"] * up, qf["ask"]
        unit = c_usd - p_usd - (fpx - strike) * disc
        unit -= opt_fee(c_usd, uc) + opt_fee(p_usd, up) + fut.inst.taker_fee * fpx
        size = min(qc["bid_size"], qp["ask_size"], qf["ask_size"] * fut.inst.contract_size / fpx)
        legs = [
            _leg("deribit", c_opt.symbol, "sell", qc["bid"], size),
            _leg("deribit", p_opt.symbol, "buy", qp["ask"], size),
            _leg("deribit", fut.symbol, "buy", fpx, size),
        ]
    else:  # buy call at ask, sell put at bid, sell future at bid
        c_usd, p_usd, fpx = qc["ask"] * uc, qp["bid"] * up, qf["bid"]
        unit = p_usd - c_usd - (strike - fpx) * disc
        unit -= opt_fee(c_usd, uc) + opt_fee(p_usd, up) + fut.inst.taker_fee * fpx
        size = min(qc["ask_size"], qp["bid_size"], qf["bid_size"] * fut.inst.contract_size / fpx)
        legs = [
            _leg("deribit", c_opt.symbol, "buy", qc["ask"], size),
            _leg("deribit", p_opt.symbol, "sell", qp["bid"], size),
            _leg("deribit", fut.symbol, "sell", fpx, size),
        ]
    strike_text = c_opt.symbol.rsplit("-", 2)[1]
    return {
        "kind": "parity",
        "symbol": f"{fut.symbol}-{strike_text}",
        "buy_exchange": "deribit",
        "sell_exchange": "deribit",
        "legs": legs,
        "size": size,
        "expected_profit": unit * size,
    }
