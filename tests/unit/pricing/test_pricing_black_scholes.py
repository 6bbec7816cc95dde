"""Prices against published values, numerical integration, a SciPy reference and explicit edge cases."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from arbkit.pricing import black76, black_scholes, kernels


def reference_bsm(spot, strike, t, rate, vol, dividend, is_call):
    """Textbook Black-Scholes-Merton with scipy.stats.norm (Hull, eq. 17.4/17.5)."""
    d1 = (np.log(spot / strike) + (rate - dividend + 0.5 * vol**2) * t) / (vol * np.sqrt(t))
    d2 = d1 - vol * np.sqrt(t)
    call = spot * np.exp(-dividend * t) * stats.norm.cdf(d1) - strike * np.exp(-rate * t) * stats.norm.cdf(d2)
    put = strike * np.exp(-rate * t) * stats.norm.cdf(-d2) - spot * np.exp(-dividend * t) * stats.norm.cdf(-d1)
    return np.where(is_call, call, put)


def integrated_price(spot, strike, t, rate, vol, dividend, is_call):
    """e^{-rT} E[payoff(S_T)] with S_T lognormal, integrated numerically over the standard normal z."""
    drift = (rate - dividend - 0.5 * vol**2) * t
    z_star = (math.log(strike / spot) - drift) / (vol * math.sqrt(t))

    def payoff_density(z):
        terminal = spot * math.exp(drift + vol * math.sqrt(t) * z)
        payoff = terminal - strike if is_call else strike - terminal
        return max(payoff, 0.0) * math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)

    # Beyond 40 standard deviations past the kink the density is below 1e-340: finite limits avoid overflow.
    lower, upper = (z_star, max(z_star, 0.0) + 40.0) if is_call else (min(z_star, 0.0) - 40.0, z_star)
    value, _ = integrate.quad(payoff_density, lower, upper, epsabs=0.0, epsrel=1e-12, limit=200)
    return math.exp(-rate * t) * value


@pytest.mark.parametrize(
    ("args", "expected", "places"),
    [
        # Hull, Options, Futures and Other Derivatives, example 15.6: call 4.76, put 0.81.
        ((42.0, 40.0, 0.5, 0.10, 0.20, 0.0, True), 4.76, 2),
        ((42.0, 40.0, 0.5, 0.10, 0.20, 0.0, False), 0.81, 2),
        # Hull example 17.1: European index call, S=930, K=900, r=8%, q=3%, sigma=20%, two months: 51.83.
        ((930.0, 900.0, 2.0 / 12.0, 0.08, 0.20, 0.03, True), 51.83, 2),
        # Haug, The Complete Guide to Option Pricing Formulas (2007), generalized BSM: put 2.4648.
        ((100.0, 95.0, 0.5, 0.10, 0.20, 0.05, False), 2.4648, 4),
    ],
)
def test_black_scholes_matches_published_values(args, expected, places):
    assert round(black_scholes(*args), places) == pytest.approx(expected, abs=1e-12)


def test_black76_matches_published_values():
    # Haug (2007) section 1.1.2: F=19, K=19, T=0.75, r=10%, sigma=28%: call = put = 1.7011.
    assert black76(19.0, 19.0, 0.75, 0.10, 0.28) == pytest.approx(1.7011, abs=5e-5)
    assert black76(19.0, 19.0, 0.75, 0.10, 0.28, is_call=False) == pytest.approx(1.7011, abs=5e-5)
    # Hull example 18.8 (futures option): F=K=20, r=9%, sigma=25%, four months, put 1.12.
    assert round(black76(20.0, 20.0, 4.0 / 12.0, 0.09, 0.25, is_call=False), 2) == pytest.approx(1.12)


@pytest.mark.parametrize("is_call", [True, False])
@pytest.mark.parametrize(
    ("spot", "strike", "t", "rate", "vol", "dividend"),
    [
        (100.0, 100.0, 1.0, 0.05, 0.2, 0.0),
        (100.0, 130.0, 0.25, 0.01, 0.6, 0.02),
        (50.0, 35.0, 2.0, -0.01, 0.35, 0.04),
        (3000.0, 2500.0, 0.05, 0.08, 0.9, 0.0),
    ],
)
def test_price_equals_integral_of_discounted_payoff(spot, strike, t, rate, vol, dividend, is_call):
    expected = integrated_price(spot, strike, t, rate, vol, dividend, is_call)
    got = black_scholes(spot, strike, t, rate, vol, dividend, is_call)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-10)


def test_random_batch_matches_scipy_reference():
    rng = np.random.default_rng(7)
    n = 5000
    spot = rng.uniform(1.0, 1000.0, n)
    strike = spot * rng.uniform(0.5, 2.0, n)
    t = rng.uniform(0.01, 3.0, n)
    rate = rng.uniform(-0.02, 0.12, n)
    vol = rng.uniform(0.05, 2.0, n)
    dividend = rng.uniform(0.0, 0.08, n)
    is_call = rng.random(n) < 0.5
    got = black_scholes(spot, strike, t, rate, vol, dividend, is_call)
    expected = reference_bsm(spot, strike, t, rate, vol, dividend, is_call)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-11 * spot.max())


def test_black76_is_discounted_black_formula():
    forward, strike, t, rate, vol = 1.3, 1.1, 0.7, 0.03, 0.45
    s = vol * math.sqrt(t)
    d1 = math.log(forward / strike) / s + 0.5 * s
    d2 = d1 - s
    call = math.exp(-rate * t) * (forward * stats.norm.cdf(d1) - strike * stats.norm.cdf(d2))
    put = math.exp(-rate * t) * (strike * stats.norm.cdf(-d2) - forward * stats.norm.cdf(-d1))
    assert black76(forward, strike, t, rate, vol) == pytest.approx(call, rel=1e-13)
    assert black76(forward, strike, t, rate, vol, is_call=False) == pytest.approx(put, rel=1e-13)


def test_zero_time_gives_intrinsic_value():
    got = black_scholes([90.0, 110.0, 90.0, 110.0], 100.0, 0.0, 0.05, 0.3, 0.01, [True, True, False, False])
    np.testing.assert_array_equal(got, [0.0, 10.0, 10.0, 0.0])


def test_zero_vol_gives_discounted_intrinsic_of_forward():
    spot, strike, t, rate, dividend = 100.0, 101.0, 0.5, 0.06, 0.01
    forward = spot * math.exp((rate - dividend) * t)
    assert forward > strike  # the call is in the money on the forward although not on the spot
    call = black_scholes(spot, strike, t, rate, 0.0, dividend, True)
    put = black_scholes(spot, strike, t, rate, 0.0, dividend, False)
    assert call == pytest.approx(math.exp(-rate * t) * (forward - strike), rel=1e-14)
    assert put == 0.0
    assert black76(105.0, 100.0, 1.0, 0.05, 0.0) == pytest.approx(math.exp(-0.05) * 5.0, rel=1e-14)


def test_zero_spot_and_zero_strike_have_closed_values():
    assert black_scholes(0.0, 50.0, 1.0, 0.05, 0.2, 0.0, True) == 0.0
    assert black_scholes(0.0, 50.0, 1.0, 0.05, 0.2, 0.0, False) == pytest.approx(50.0 * math.exp(-0.05))
    assert black_scholes(80.0, 0.0, 1.0, 0.05, 0.2, 0.02, True) == pytest.approx(80.0 * math.exp(-0.02))


@pytest.mark.parametrize(
    "bad",
    [
        {"spot": -1.0},
        {"strike": -1.0},
        {"t": -0.1},
        {"vol": -0.2},
        {"spot": math.nan},
        {"rate": math.nan},
        {"dividend": math.inf},
        {"vol": math.inf},
    ],
)
def test_invalid_inputs_give_nan_not_exceptions(bad):
    args = {"spot": 100.0, "strike": 100.0, "t": 1.0, "rate": 0.05, "vol": 0.2, "dividend": 0.0}
    args.update(bad)
    assert math.isnan(black_scholes(**args))
    forward_args = {k: v for k, v in args.items() if k != "dividend"}
    forward_args["forward"] = forward_args.pop("spot")
    if "dividend" not in bad:
        assert math.isnan(black76(**forward_args))


def test_negative_rate_is_valid():
    assert black_scholes(100.0, 100.0, 1.0, -0.01, 0.2) == pytest.approx(
        float(reference_bsm(100.0, 100.0, 1.0, -0.01, 0.2, 0.0, True)), rel=1e-12
    )


def test_return_types_and_broadcasting():
    assert isinstance(black_scholes(42.0, 40.0, 0.5, 0.1, 0.2), float)
    grid = black_scholes(np.array([[40.0], [42.0]]), np.array([38.0, 40.0, 42.0]), 0.5, 0.1, 0.2)
    assert isinstance(grid, np.ndarray)
    assert grid.dtype == np.float64
    assert grid.shape == (2, 3)
    assert grid[1, 1] == pytest.approx(black_scholes(42.0, 40.0, 0.5, 0.1, 0.2), rel=1e-15)
    from_jax = black_scholes(jnp.array([42.0]), 40.0, 0.5, 0.1, 0.2)
    assert isinstance(from_jax, np.ndarray)
    assert from_jax[0] == pytest.approx(grid[1, 1], rel=1e-15)
    empty = black_scholes(np.array([]), 40.0, 0.5, 0.1, 0.2)
    assert empty.shape == (0,)


def test_jit_and_eager_kernels_agree():
    rng = np.random.default_rng(3)
    args = (
        jnp.asarray(rng.uniform(10, 200, 64)),
        jnp.asarray(rng.uniform(10, 200, 64)),
        jnp.asarray(rng.uniform(0.0, 2.0, 64)),
        jnp.asarray(rng.uniform(-0.01, 0.1, 64)),
        jnp.asarray(rng.uniform(0.0, 1.0, 64)),
        jnp.asarray(rng.uniform(0.0, 0.05, 64)),
        jnp.asarray(rng.random(64) < 0.5),
    )
    jitted = jax.jit(kernels.black_scholes_kernel)(*args)
    with jax.disable_jit():
        eager = kernels.black_scholes_kernel(*args)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-14, atol=1e-14)


def test_vmap_over_vol_grid_matches_pointwise_prices():
    vols = jnp.linspace(0.05, 1.0, 20)
    priced = jax.jit(jax.vmap(lambda v: kernels.black_scholes_kernel(100.0, 110.0, 0.75, 0.03, v, 0.01, False)))(vols)
    expected = reference_bsm(100.0, 110.0, 0.75, 0.03, np.asarray(vols), 0.01, False)
    np.testing.assert_allclose(np.asarray(priced), expected, rtol=1e-12)
    # A grid of strikes x vols, vmapped twice, for Black-76.
    strikes = jnp.array([90.0, 100.0, 110.0])
    surface = jax.jit(
        jax.vmap(lambda k: jax.vmap(lambda v: kernels.black76_kernel(100.0, k, 0.5, 0.02, v, True))(vols))
    )(strikes)
    assert surface.shape == (3, 20)
    assert bool(jnp.all(jnp.diff(surface, axis=1) > 0.0))  # price increases with volatility


def test_deep_out_of_the_money_keeps_relative_precision():
    # Far out of the money the direct formula keeps digits that parity-based puts would lose.
    got = black_scholes(100.0, 300.0, 0.1, 0.01, 0.2)
    expected = integrated_price(100.0, 300.0, 0.1, 0.01, 0.2, 0.0, True)
    assert 0.0 < got < 1e-60
    assert got == pytest.approx(expected, rel=1e-6)
