"""The compiled exact evaluation of the basis and parity detectors against the JAX kernels of ``_b_kernels``.

The detectors price their screened rows in numba (:func:`arbkit.detect._b_scan.basis_events`,
:func:`~arbkit.detect._b_scan.parity_events`).  The reference here is the former evaluation, independent of that
code: the per-row gathers and carries in vectorized NumPy and the profit formulas in the JAX kernels
(:func:`arbkit.detect._b_kernels.two_leg_profit`, :func:`~arbkit.detect._b_kernels.parity_profit`).  XLA may fuse
multiply-adds, so values agree to a relative 1e-12, decisions exactly.  ``min_profit`` is very negative so that
nearly every usable row becomes an event and its values are compared.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from arbkit.data.generate import MarketSpec, generate
from arbkit.detect import _basis, _parity
from arbkit.detect._b_kernels import BUCKET_SIZES, bucket_size, parity_profit, trace_counts, two_leg_profit
from arbkit.detect._confidence import depth_factor, freshness, row_confidence
from arbkit.pipeline import Batch
from arbkit.schema import QuoteFlag

F = npt.NDArray[np.float64]
_NS_PER_YEAR = 365.0 * 24 * 3600 * 1e9
_RTOL = 1e-12


@pytest.fixture(scope="module")
def market() -> Batch:
    """Three minutes of the generator's market (all venues, funding, the option chain) with a few rows flagged
    and a few prices pushed up (0.6% for quotes, 30% for option premiums), so that both detectors find events."""
    parts: dict[str, list[pl.DataFrame]] = {}
    for name, frame in generate(MarketSpec(seed=5, days=3 / 1440)):
        parts.setdefault(name, []).append(frame)
    tables = {name: pl.concat(parts[name]) for name in ("quotes", "funding", "option_quotes")}
    rng = np.random.default_rng(5)
    for name, push in (("quotes", 1.006), ("option_quotes", 1.3)):
        n = tables[name].height
        flags = np.where(rng.random(n) < 0.02, int(QuoteFlag.STALE), 0).astype(np.uint16)
        factor = pl.Series(np.where(rng.random(n) < 0.05, push, 1.0))
        tables[name] = tables[name].with_columns(pl.Series("flags", flags), pl.col("bid", "ask") * factor)
    return Batch(**tables)


def _close(got: F, want: F, gross: F | None = None) -> None:
    """``got == want`` to a relative 1e-12, or to 1e-12 of ``gross`` (the magnitude of the terms summed, where a
    profit is a small difference of large prices)."""
    assert got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = np.isfinite(want)
    assert np.array_equal(got[~ok], want[~ok], equal_nan=True)
    bound = np.abs(want) if gross is None else np.maximum(np.abs(want), np.abs(gross))
    excess = np.abs(got - want)[ok] - _RTOL * bound[ok]
    assert excess.max(initial=0.0) <= 0.0, f"worst excess {excess.max()}"


def _close_events(got: F, want: F) -> None:
    """Event values: prices, size and confidence to a relative 1e-12; profit and percentage to 1e-12 of the
    traded notional."""
    gross = np.nansum(np.abs(want[:, 7:10]), axis=1)
    for column in range(want.shape[1]):
        scale = {3: want[:, 2] * gross, 4: want[:, 2] * gross, 5: 100.0 * gross / want[:, 0]}.get(column)
        _close(got[:, column], want[:, column], scale)


def _sorted(slot: npt.NDArray[np.int64], seq: npt.NDArray[np.int64], values: F) -> tuple[list[tuple[int, int]], F]:
    order = np.lexsort((seq, slot))
    return list(zip(slot[order].tolist(), seq[order].tolist(), strict=True)), values[order]


def _basis_reference(scanned: _basis._Scanned, params: _basis.BasisParams) -> tuple[F, dict[str, int], tuple]:
    """Per-row ``(profit_0, size_0, profit_1, size_1)``, the suppressed counters and the events, in NumPy + JAX."""
    tables, emit_i, emit_f = scanned.tables, scanned.emit_i, scanned.emit_f
    cand, now = emit_i[:, 0], emit_i[:, 2]
    legs = []
    for side, code in ((0, tables.cand_a[cand]), (1, tables.cand_b[cand])):
        q, fq = emit_f[:, 6 * side : 6 * side + 6], emit_f[:, 12 + 4 * side : 16 + 4 * side]
        to_usdt, contract, inverse = tables.key_f[code, 0], tables.key_f[code, 2], tables.inverse[code]
        bid, ask = q[:, 0] * to_usdt, q[:, 1] * to_usdt
        units = [
            np.where(inverse, q[:, c] * contract / (p / to_usdt), q[:, c] * contract) for c, p in ((2, bid), (3, ask))
        ]
        ok, fresh = q[:, 5] == 0, (now - emit_i[:, 3 + side]) <= tables.max_age[code]
        period = tables.period[code]
        grid = np.where(period > 0, ((now // np.maximum(period, 1)) + 1) * period, now).astype(np.float64)
        have = emit_i[:, 5 + side].astype(np.bool_) & tables.is_perp[code]
        mark = np.where(have & np.isfinite(fq[:, 2]), fq[:, 2] * to_usdt, (bid + ask) / 2.0)
        nft = np.where(have & np.isfinite(fq[:, 1]) & (fq[:, 1] > now), fq[:, 1], grid)
        funding_ok = ~have | ((np.nan_to_num(fq[:, 3]).astype(np.int64) & QuoteFlag.blocking()) == 0)
        flagged = ((q[:, 5] != 0) & np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask > 0)) | (ok & ~funding_ok)
        legs.append(
            {"bid": bid, "ask": ask, "bid_size": units[0], "ask_size": units[1], "usable": ok & fresh & funding_ok,
             "stale": ok & ~fresh, "flagged": flagged, "rate": np.where(have, fq[:, 0], 0.0), "mark": mark,
             "nft": nft, "fee": tables.key_f[code, 1], "time": emit_i[:, 3 + side],
             "latency": tables.key_f[code, 3], "age": tables.max_age[code] / 1e6}
        )  # fmt: skip
    la, lb = legs
    family = tables.family[cand]
    tau = np.maximum(lb["nft"] - now, 0.0) / _NS_PER_YEAR
    years = np.where(family == 1, (tables.expiry[tables.cand_b[cand]] - now) / _NS_PER_YEAR, 0.0)
    growth = np.expm1(params.rate * np.maximum(years, 0.0))
    pp = lb["rate"] * lb["mark"] - la["rate"] * la["mark"]
    carry0 = np.select([family == 0, family == 1], [lb["rate"] * lb["mark"], -la["ask"] * growth], pp)
    carry1 = np.select(
        [family == 0, family == 1],
        [-lb["rate"] * lb["mark"] - params.borrow_rate * tau * la["bid"],
         la["bid"] * growth - params.borrow_rate * np.maximum(years, 0.0) * la["bid"]],
        -pp,
    )  # fmt: skip
    alive = np.where(family == 1, years > 0, years >= 0)
    usable = la["usable"] & lb["usable"] & alive
    out = np.empty((cand.shape[0], 4))
    suppressed = {"suppressed_flagged": 0, "suppressed_stale": 0}
    slots, seqs, values = [], [], []
    for d, buy, sell, carry in ((0, la, lb, carry0), (1, lb, la, carry1)):
        unit = two_leg_profit(buy["ask"], sell["bid"], buy["fee"], sell["fee"], carry)
        size = np.minimum(np.minimum(buy["ask_size"], sell["bid_size"]), params.max_notional / buy["ask"])
        size = np.where(np.isfinite(size) & (size > 0), size, 0.0)
        profit = unit * size
        out[:, 2 * d], out[:, 2 * d + 1] = profit, size
        profitable = np.isfinite(profit) & (profit > params.min_profit) & (size > 0) & alive
        blocked = profitable & ~usable
        stale = blocked & (la["stale"] | lb["stale"]) & ~(la["flagged"] | lb["flagged"])
        suppressed["suppressed_stale"] += int(stale.sum())
        suppressed["suppressed_flagged"] += int((blocked & ~stale).sum())
        hit = np.flatnonzero(profitable & usable)
        fresh = np.minimum(
            freshness((now[hit] - buy["time"][hit]) / 1e6, buy["latency"][hit], buy["age"][hit]),
            freshness((now[hit] - sell["time"][hit]) / 1e6, sell["latency"][hit], sell["age"][hit]),
        )
        depth = np.minimum(
            depth_factor(size[hit], buy["ask_size"][hit]), depth_factor(size[hit], sell["bid_size"][hit])
        )
        bp, sp = buy["ask"][hit], sell["bid"][hit]
        values.append(np.column_stack([bp, sp, size[hit], profit[hit], profit[hit], 100.0 * unit[hit] / bp,
                                       row_confidence(fresh, depth), bp, sp, np.full(hit.size, np.nan)]))  # fmt: skip
        slots.append(2 * cand[hit] + d)
        seqs.append(emit_i[hit, 1])
    return out, suppressed, _sorted(np.concatenate(slots), np.concatenate(seqs), np.concatenate(values))


@pytest.mark.parametrize("min_profit", [0.0, -1e18])
def test_basis_evaluation_matches_the_numpy_and_jax_reference(market: Batch, min_profit: float) -> None:
    params = _basis.BasisParams(min_profit=min_profit, max_notional=100_000.0)
    scanned = _basis._scan(market, _basis.BasisState.empty(), params, screen=False)
    assert scanned.emit_i.shape[0] > 10_000
    (slot, seq, _, values), suppressed, rows = _basis._evaluated(scanned, params, detail=True)
    with np.errstate(all="ignore"):
        want_rows, want_suppressed, (want_keys, want_values) = _basis_reference(scanned, params)
    notional = np.nan_to_num(np.abs(scanned.emit_f[:, [0, 1, 6, 7]]).sum(axis=1))
    gross = np.column_stack(
        [rows[:, 1] * notional, np.zeros(len(notional)), rows[:, 3] * notional, np.zeros(len(notional))]
    )
    _close(rows[:, :4], want_rows, gross)
    assert suppressed == want_suppressed
    keys, got_values = _sorted(slot, seq, values)
    assert keys == want_keys
    assert len(keys) > (1_000 if min_profit < 0 else 0)
    _close_events(got_values, want_values)


def _parity_reference(scanned: _parity._Scanned, params: _parity.ParityParams) -> tuple[dict[str, int], tuple]:
    """The suppressed counters and the events of the emitted rows, in NumPy + JAX."""
    tables, emit_i, emit_f = scanned.tables, scanned.emit_i, scanned.emit_f
    cand, now = emit_i[:, 0], emit_i[:, 2]
    c, p, f = emit_f[:, 0:6], emit_f[:, 6:12], emit_f[:, 12:17]
    strike, option_fee, fee_cap, future_fee, f_contract, latency = tables.cand_f[cand].T
    max_age = tables.max_age[cand]
    cu, pu = c[:, 4], p[:, 4]
    c_mult = np.where(tables.in_base[tables.cand_call[cand]], cu, 1.0)
    p_mult = np.where(tables.in_base[tables.cand_put[cand]], pu, 1.0)
    call_bid, call_ask, put_bid, put_ask = c[:, 0] * c_mult, c[:, 1] * c_mult, p[:, 0] * p_mult, p[:, 1] * p_mult
    t = (tables.expiry[cand] - now) / _NS_PER_YEAR
    have = emit_i[:, 6].astype(np.bool_)
    times = emit_i[:, 3], emit_i[:, 4], emit_i[:, 5]
    synthetic = np.where(times[0] >= times[1], cu, pu) * np.exp((params.rate - params.dividend) * np.maximum(t, 0.0))
    f_bid, f_ask = np.where(have, f[:, 0], synthetic), np.where(have, f[:, 1], synthetic)
    rev, conv = parity_profit(call_bid, call_ask, put_bid, put_ask, cu, pu, f_bid, f_ask, strike,
                              np.maximum(t, 0.0), params.rate, option_fee, fee_cap, future_fee)  # fmt: skip
    ok = [leg[:, 5] == 0 for leg in (c, p)] + [f[:, 4] == 0]
    fresh = [(now - time) <= max_age for time in times]
    legs_ok = ok[0] & fresh[0] & ok[1] & fresh[1] & (~have | (ok[2] & fresh[2])) & (t > 0)
    any_stale = (ok[0] & ~fresh[0]) | (ok[1] & ~fresh[1]) | (have & ok[2] & ~fresh[2])

    def units(size: F, price: F) -> F:
        out: F = np.where(tables.future_inverse[cand], size * f_contract / price, size * f_contract)
        return out

    suppressed = {"suppressed_flagged": 0, "suppressed_stale": 0}
    slots, seqs, values = [], [], []
    for trade, unit, sizes, prices in (
        (0, rev, (c[:, 2], p[:, 3], np.where(have, units(f[:, 3], f_ask), np.inf)), (call_bid, put_ask, f_ask)),
        (1, conv, (c[:, 3], p[:, 2], np.where(have, units(f[:, 2], f_bid), np.inf)), (call_ask, put_bid, f_bid)),
    ):
        size = np.minimum(np.minimum(sizes[0], sizes[1]), np.minimum(sizes[2], params.max_notional / prices[2]))
        size = np.where(np.isfinite(size) & (size > 0), size, 0.0)
        profit = unit * size
        profitable = np.isfinite(profit) & (profit > params.min_profit) & (size > 0) & (t > 0)
        blocked = profitable & ~legs_ok
        suppressed["suppressed_stale"] += int((blocked & any_stale).sum())
        suppressed["suppressed_flagged"] += int((blocked & ~any_stale).sum())
        hit = np.flatnonzero(profitable & legs_ok)
        age = [freshness((now[hit] - time[hit]) / 1e6, latency[hit], max_age[hit] / 1e6) for time in times]
        depth = [depth_factor(size[hit], displayed[hit]) for displayed in sizes]
        least_fresh = np.where(have[hit], np.minimum(np.minimum(age[0], age[1]), age[2]), np.minimum(age[0], age[1]))
        least_depth = np.where(
            have[hit], np.minimum(np.minimum(depth[0], depth[1]), depth[2]), np.minimum(depth[0], depth[1])
        )
        buy = 1 - trade
        values.append(np.column_stack([prices[buy][hit], prices[1 - buy][hit], size[hit], profit[hit], profit[hit],
                                       100.0 * unit[hit] / prices[2][hit], row_confidence(least_fresh, least_depth),
                                       prices[0][hit], prices[1][hit], prices[2][hit]]))  # fmt: skip
        slots.append(2 * cand[hit] + trade)
        seqs.append(emit_i[hit, 1])
    return suppressed, _sorted(np.concatenate(slots), np.concatenate(seqs), np.concatenate(values))


@pytest.mark.parametrize("with_futures", [True, False])
@pytest.mark.parametrize("min_profit", [0.0, -1e18])
def test_parity_evaluation_matches_the_numpy_and_jax_reference(
    market: Batch, min_profit: float, with_futures: bool
) -> None:
    batch = market if with_futures else Batch(option_quotes=market.option_quotes)
    params = _parity.ParityParams(min_profit=min_profit, rate=0.04, dividend=0.01)
    scanned = _parity._scan(batch, _parity.ParityState.empty(), params, screen=False)
    assert scanned.emit_i.shape[0] > 10_000
    (slot, seq, _, values), suppressed = _parity._events(scanned, params)
    with np.errstate(all="ignore"):
        want_suppressed, (want_keys, want_values) = _parity_reference(scanned, params)
    assert suppressed == want_suppressed
    keys, got_values = _sorted(slot, seq, values)
    assert keys == want_keys
    assert len(keys) > (1_000 if min_profit < 0 else 0)
    _close_events(got_values, want_values)


def test_the_jax_reference_kernels_compile_once_per_bucket() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, BUCKET_SIZES[1] + 1, 200)
    before = trace_counts()
    for n in lengths:
        ones = np.ones(int(n))
        two_leg_profit(ones, ones, ones, ones, ones)
        parity_profit(*([ones] * 11))
    after = trace_counts()
    buckets = {bucket_size(int(n)) for n in lengths}
    for name in ("two_leg_profit", "parity_profit"):
        assert after.get(name, 0) - before.get(name, 0) <= len(buckets)
