"""Implied volatility: round trips, textbook prices, no-arbitrage bounds and flags."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

from arbkit.pricing import (
    IVFlag,
    implied_vol,
    implied_vol_black76,
    implied_vol_black76_with_flags,
    implied_vol_with_flags,
    kernels,
)


def reference_price(spot, strike, t, rate, vol, dividend, is_call):
    d1 = (math.log(spot / strike) + (rate - dividend + 0.5 * vol**2) * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    if is_call:
        return spot * math.exp(-dividend * t) * stats.norm.cdf(d1) - strike * math.exp(-rate * t) * stats.norm.cdf(d2)
    return strike * math.exp(-rate * t) * stats.norm.cdf(-d2) - spot * math.exp(-dividend * t) * stats.norm.cdf(-d1)


def reference_prices(spot, strike, t, rate, vol, dividend, is_call):
    d1 = (np.log(spot / strike) + (rate - dividend + 0.5 * vol**2) * t) / (vol * np.sqrt(t))
    d2 = d1 - vol * np.sqrt(t)
    call = spot * np.exp(-dividend * t) * stats.norm.cdf(d1) - strike * np.exp(-rate * t) * stats.norm.cdf(d2)
    put = strike * np.exp(-rate * t) * stats.norm.cdf(-d2) - spot * np.exp(-dividend * t) * stats.norm.cdf(-d1)
    return np.where(is_call, call, put)


def test_recovers_hull_volatility():
    price = reference_price(42.0, 40.0, 0.5, 0.10, 0.20, 0.0, True)
    assert implied_vol(price, 42.0, 40.0, 0.5, 0.10) == pytest.approx(0.20, rel=1e-12)
    put = reference_price(100.0, 95.0, 0.5, 0.10, 0.20, 0.05, False)
    assert put == pytest.approx(2.4648, abs=5e-5)  # Haug's generalized BSM example
    assert implied_vol(put, 100.0, 95.0, 0.5, 0.10, 0.05, False) == pytest.approx(0.20, rel=1e-12)


def test_matches_brentq_on_a_grid():
    # An independent solver (scipy's Brent) on the scipy reference price, for prices spread across the
    # no-arbitrage range of each option.
    spot, t, rate, dividend = 100.0, 1.0, 0.02, 0.01
    for strike in (60.0, 90.0, 100.0, 115.0, 180.0):
        for is_call in (True, False):
            sign = 1.0 if is_call else -1.0
            lower = max(sign * (spot * math.exp(-dividend * t) - strike * math.exp(-rate * t)), 0.0)
            upper = spot * math.exp(-dividend * t) if is_call else strike * math.exp(-rate * t)
            for fraction in (0.01, 0.1, 0.4):
                price = lower + fraction * (upper - lower)
                expected = optimize.brentq(
                    lambda v, k=strike, c=is_call, p=price: reference_price(spot, k, t, rate, v, dividend, c) - p,
                    1e-3,
                    20.0,
                    xtol=1e-15,
                    rtol=1e-14,
                )
                got = implied_vol(price, spot, strike, t, rate, dividend, is_call)
                assert got == pytest.approx(expected, rel=1e-9), (strike, is_call, fraction)


def test_round_trip_over_wide_grid_within_price_tolerance():
    strikes = np.geomspace(0.25, 4.0, 41) * 100.0
    vols = np.geomspace(0.02, 4.0, 37)
    times = np.array([1 / 365, 0.1, 1.0, 5.0])
    k, v, t, c = np.meshgrid(strikes, vols, times, [True, False], indexing="ij")
    price = reference_prices(100.0, k, t, 0.03, v, 0.01, c)
    iv, flags = implied_vol_with_flags(price, 100.0, k, t, 0.03, 0.01, c)
    assert set(np.unique(flags)) <= {int(IVFlag.OK), int(IVFlag.AT_INTRINSIC), int(IVFlag.NOT_CONVERGED)}
    solved = flags == IVFlag.OK
    repriced = reference_prices(100.0, k[solved], t[solved], 0.03, iv[solved], 0.01, c[solved])
    assert np.max(np.abs(repriced - price[solved])) < 1e-10
    # Where the price is sensitive to vol, the vol itself comes back.
    vega = (
        100.0
        * np.exp(-0.01 * t)
        * np.sqrt(t)
        * stats.norm.pdf((np.log(100.0 / k) + (0.02 + 0.5 * v**2) * t) / (v * np.sqrt(t)))
    )
    sensitive = solved & (vega > 1e-3)
    np.testing.assert_allclose(iv[sensitive], v[sensitive], rtol=1e-8)
    # NOT_CONVERGED only where the time value underflows (prices below 1e-280 of the scale).
    assert np.all(price[flags == IVFlag.NOT_CONVERGED] < 1e-270)


def test_deep_out_of_the_money_tiny_prices_still_solve():
    price = reference_price(100.0, 250.0, 0.25, 0.0, 0.15, 0.0, True)
    assert 0.0 < price < 1e-30
    assert implied_vol(price, 100.0, 250.0, 0.25, 0.0) == pytest.approx(0.15, rel=1e-9)


def test_prices_outside_no_arbitrage_bounds_are_flagged_nan():
    spot, strike, t, rate = 100.0, 90.0, 1.0, 0.05
    forward = spot * math.exp(rate * t)
    intrinsic_call = math.exp(-rate * t) * (forward - strike)
    prices = [intrinsic_call - 0.01, spot, spot + 1.0, -1.0]
    iv, flags = implied_vol_with_flags(prices, spot, strike, t, rate)
    assert np.all(np.isnan(iv))
    assert list(flags) == [
        IVFlag.BELOW_INTRINSIC,
        IVFlag.ABOVE_UPPER_BOUND,
        IVFlag.ABOVE_UPPER_BOUND,
        IVFlag.INVALID_INPUT,
    ]
    # A put above the discounted strike is above its bound too.
    vol, flag = implied_vol_with_flags(90.0 * math.exp(-0.05) + 1e-6, 100.0, 90.0, 1.0, 0.05, 0.0, False)
    assert math.isnan(vol)
    assert flag is IVFlag.ABOVE_UPPER_BOUND
    assert math.isnan(implied_vol(intrinsic_call - 0.01, spot, strike, t, rate))


def test_price_at_intrinsic_has_zero_vol():
    forward = 100.0 * math.exp(0.05)
    at_intrinsic = math.exp(-0.05) * (forward - 90.0)
    vol, flag = implied_vol_with_flags(at_intrinsic, 100.0, 90.0, 1.0, 0.05)
    assert vol == 0.0
    assert flag is IVFlag.AT_INTRINSIC
    vol, flag = implied_vol_with_flags(0.0, 100.0, 150.0, 1.0, 0.05)  # worthless out-of-the-money call
    assert (vol, flag) == (0.0, IVFlag.AT_INTRINSIC)


@pytest.mark.parametrize(
    "bad",
    [{"t": 0.0}, {"spot": 0.0}, {"strike": -5.0}, {"price": math.nan}, {"rate": math.inf}, {"spot": -1.0}],
)
def test_invalid_inputs_are_flagged(bad):
    args = {"price": 5.0, "spot": 100.0, "strike": 100.0, "t": 1.0, "rate": 0.01}
    args.update(bad)
    vol, flag = implied_vol_with_flags(**args)
    assert math.isnan(vol)
    assert flag is IVFlag.INVALID_INPUT


def test_black76_round_trip_and_bounds():
    price = 1.7010507252362677  # Haug's Black-76 example, sigma = 28%
    assert implied_vol_black76(price, 19.0, 19.0, 0.75, 0.10) == pytest.approx(0.28, rel=1e-12)
    assert implied_vol_black76(price, 19.0, 19.0, 0.75, 0.10, is_call=False) == pytest.approx(0.28, rel=1e-12)
    vol, flags = implied_vol_black76_with_flags([price, 19.0], 19.0, 19.0, 0.75, 0.10)
    assert vol[0] == pytest.approx(0.28, rel=1e-12)
    assert math.isnan(vol[1])
    assert list(flags) == [IVFlag.OK, IVFlag.ABOVE_UPPER_BOUND]


def test_kernel_jit_vmap_and_eager_agree():
    vols = jnp.array([0.1, 0.3, 0.8])
    prices = jax.jit(jax.vmap(lambda v: kernels.black_scholes_kernel(100.0, 110.0, 0.5, 0.02, v, 0.0, True)))(vols)
    solve = jax.vmap(lambda p: kernels.implied_vol_kernel(p, 100.0, 110.0, 0.5, 0.02, 0.0, True))
    jitted, flags = jax.jit(solve)(prices)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(vols), rtol=1e-10)
    assert not np.any(np.asarray(flags))
    with jax.disable_jit():
        eager, _ = kernels.implied_vol_kernel(prices, 100.0, 110.0, 0.5, 0.02, 0.0, True)
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), rtol=1e-14)
