"""Hypothesis invariants of the pricing engine: parity, bounds, monotonicity, implied-vol round trip."""

import math
from collections.abc import Iterator

import jax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbkit.pricing import IVFlag, black76, black_scholes, greeks, implied_vol_with_flags

jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True, scope="module")
def strict_jax() -> Iterator[None]:
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        yield


spots = st.floats(1.0, 1000.0)
moneyness = st.floats(0.2, 5.0)
times = st.floats(1.0 / 365.0, 5.0)
rates = st.floats(-0.05, 0.15)
dividends = st.floats(0.0, 0.10)
vols = st.floats(0.01, 3.0)


@settings(max_examples=200, deadline=None)
@given(spot=spots, m=moneyness, t=times, rate=rates, vol=vols, dividend=dividends)
def test_put_call_parity(spot, m, t, rate, vol, dividend):
    strike = spot * m
    call, put = black_scholes(spot, strike, t, rate, vol, dividend, [True, False])
    forward_value = spot * math.exp(-dividend * t) - strike * math.exp(-rate * t)
    assert call - put == pytest.approx(forward_value, abs=1e-11 * (spot + strike))


@settings(max_examples=200, deadline=None)
@given(spot=spots, m=moneyness, t=times, rate=rates, vol=vols, dividend=dividends, is_call=st.booleans())
def test_price_within_no_arbitrage_bounds_and_increasing_in_vol(spot, m, t, rate, vol, dividend, is_call):
    strike = spot * m
    discounted_spot = spot * math.exp(-dividend * t)
    discounted_strike = strike * math.exp(-rate * t)
    sign = 1.0 if is_call else -1.0
    lower = max(sign * (discounted_spot - discounted_strike), 0.0)
    upper = discounted_spot if is_call else discounted_strike
    low_vol, high_vol = black_scholes(spot, strike, t, rate, [vol, vol * 1.1], dividend, is_call)
    tolerance = 1e-12 * (spot + strike)
    assert lower - tolerance <= low_vol <= upper + tolerance
    assert high_vol >= low_vol - tolerance


@settings(max_examples=200, deadline=None)
@given(spot=spots, m=moneyness, t=times, rate=rates, vol=vols, dividend=dividends, is_call=st.booleans())
def test_implied_vol_round_trip(spot, m, t, rate, vol, dividend, is_call):
    strike = spot * m
    price = black_scholes(spot, strike, t, rate, vol, dividend, is_call)
    iv, flag = implied_vol_with_flags(price, spot, strike, t, rate, dividend, is_call)
    if flag is IVFlag.OK:
        repriced = black_scholes(spot, strike, t, rate, iv, dividend, is_call)
        assert repriced == pytest.approx(price, abs=1e-10 * max(1.0, spot / 100.0))
        vega = greeks(spot, strike, t, rate, vol, dividend, is_call, method="analytic").vega
        if vega > 1e-4 * spot:  # the price pins down the vol
            assert iv == pytest.approx(vol, rel=1e-8)
    elif flag is IVFlag.AT_INTRINSIC:
        sign = 1.0 if is_call else -1.0
        intrinsic = max(sign * (spot * math.exp(-dividend * t) - strike * math.exp(-rate * t)), 0.0)
        assert iv == 0.0
        assert price == pytest.approx(intrinsic, abs=1e-12 * (spot + strike))
    else:
        # Only an underflowing time value may fail to solve, never a representable one.
        assert flag is IVFlag.NOT_CONVERGED
        assert price < 1e-270 * (spot + strike) or price - (spot - strike) < 1e-270 * (spot + strike)


@settings(max_examples=100, deadline=None)
@given(spot=spots, m=moneyness, t=times, rate=rates, vol=vols, dividend=dividends, is_call=st.booleans())
def test_autodiff_and_closed_form_greeks_agree(spot, m, t, rate, vol, dividend, is_call):
    strike = spot * m
    auto = greeks(spot, strike, t, rate, vol, dividend, is_call)
    analytic = greeks(spot, strike, t, rate, vol, dividend, is_call, method="analytic")
    for a, b in zip(auto, analytic, strict=True):
        assert a == pytest.approx(b, rel=1e-8, abs=1e-10 * (spot + strike))


@settings(max_examples=100, deadline=None)
@given(spot=spots, m=moneyness, t=times, rate=rates, vol=vols)
def test_black76_is_black_scholes_with_carry_equal_to_rate(spot, m, t, rate, vol):
    # An option on a forward F is a BSM option on an asset with dividend yield = rate and spot F.
    strike = spot * m
    assert black76(spot, strike, t, rate, vol) == pytest.approx(
        black_scholes(spot, strike, t, rate, vol, rate), rel=1e-12, abs=1e-300
    )
