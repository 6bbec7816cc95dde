"""Greeks against Hull's published values, closed forms written here, and finite differences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from arbkit.pricing import Greeks, black_scholes, greeks, kernels


def closed_form_greeks(spot, strike, t, rate, vol, dividend, is_call):
    """Hull (ch. 19) greeks with a dividend yield; theta is -dV/dt per year, vega and rho per 1.0."""
    sqrt_t = np.sqrt(t)
    d1 = (np.log(spot / strike) + (rate - dividend + 0.5 * vol**2) * t) / (vol * sqrt_t)
    d2 = d1 - vol * sqrt_t
    pdf = stats.norm.pdf(d1)
    eq = np.exp(-dividend * t)
    er = np.exp(-rate * t)
    common_theta = -spot * pdf * vol * eq / (2 * sqrt_t)
    call = {
        "delta": eq * stats.norm.cdf(d1),
        "theta": common_theta + dividend * spot * stats.norm.cdf(d1) * eq - rate * strike * er * stats.norm.cdf(d2),
        "rho": strike * t * er * stats.norm.cdf(d2),
    }
    put = {
        "delta": eq * (stats.norm.cdf(d1) - 1.0),
        "theta": common_theta - dividend * spot * stats.norm.cdf(-d1) * eq + rate * strike * er * stats.norm.cdf(-d2),
        "rho": -strike * t * er * stats.norm.cdf(-d2),
    }
    out = {name: np.where(is_call, call[name], put[name]) for name in call}
    out["gamma"] = pdf * eq / (spot * vol * sqrt_t)
    out["vega"] = spot * sqrt_t * pdf * eq
    return out


@pytest.mark.parametrize("method", ["autodiff", "analytic"])
def test_hull_example_greeks(method):
    # Hull example 19.1 and the following sections: S=49, K=50, r=5%, sigma=20%, T=20 weeks.
    g = greeks(49.0, 50.0, 20.0 / 52.0, 0.05, 0.20, method=method)
    assert isinstance(g, Greeks)
    assert round(g.price, 2) == pytest.approx(2.40)
    assert round(g.delta, 3) == pytest.approx(0.522)
    assert round(g.gamma, 3) == pytest.approx(0.066)
    assert round(g.vega, 1) == pytest.approx(12.1)
    assert round(g.theta, 2) == pytest.approx(-4.31)
    assert round(g.rho, 2) == pytest.approx(8.91)


@pytest.mark.parametrize("method", ["autodiff", "analytic"])
def test_greeks_match_closed_forms_on_random_batch(method):
    rng = np.random.default_rng(11)
    n = 2000
    spot = rng.uniform(5.0, 500.0, n)
    strike = spot * rng.uniform(0.6, 1.6, n)
    t = rng.uniform(0.02, 3.0, n)
    rate = rng.uniform(-0.02, 0.12, n)
    vol = rng.uniform(0.05, 1.5, n)
    dividend = rng.uniform(0.0, 0.08, n)
    is_call = rng.random(n) < 0.5
    got = greeks(spot, strike, t, rate, vol, dividend, is_call, method=method)
    expected = closed_form_greeks(spot, strike, t, rate, vol, dividend, is_call)
    for name, values in expected.items():
        scale = np.maximum(np.abs(values), 1e-3 * spot)
        assert np.max(np.abs(getattr(got, name) - values) / scale) < 1e-9, name


def test_greeks_match_central_finite_differences():
    spot, strike, t, rate, vol, dividend = 100.0, 95.0, 0.75, 0.04, 0.3, 0.015
    for is_call in (True, False):
        g = greeks(spot, strike, t, rate, vol, dividend, is_call)

        def price(s=spot, tt=t, r=rate, v=vol, c=is_call):
            return black_scholes(s, strike, tt, r, v, dividend, c)

        h = 1e-4
        assert g.delta == pytest.approx((price(s=spot + h) - price(s=spot - h)) / (2 * h), rel=1e-7)
        hs = 1e-2
        fd_gamma = (price(s=spot + hs) - 2 * price() + price(s=spot - hs)) / hs**2
        assert g.gamma == pytest.approx(fd_gamma, rel=1e-5)
        assert g.vega == pytest.approx((price(v=vol + h) - price(v=vol - h)) / (2 * h), rel=1e-7)
        assert g.rho == pytest.approx((price(r=rate + h) - price(r=rate - h)) / (2 * h), rel=1e-7)
        assert g.theta == pytest.approx(-(price(tt=t + h) - price(tt=t - h)) / (2 * h), rel=1e-7)


def test_autodiff_and_analytic_paths_agree():
    rng = np.random.default_rng(5)
    n = 3000
    args = (
        rng.uniform(1.0, 1000.0, n),
        rng.uniform(1.0, 1000.0, n),
        rng.uniform(0.001, 5.0, n),
        rng.uniform(-0.05, 0.2, n),
        rng.uniform(0.01, 3.0, n),
        rng.uniform(0.0, 0.1, n),
        rng.random(n) < 0.5,
    )
    auto = greeks(*args, method="autodiff")
    analytic = greeks(*args, method="analytic")
    for name in Greeks._fields:
        a, b = getattr(auto, name), getattr(analytic, name)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10 * np.max(np.abs(b)), err_msg=name)


def test_degenerate_and_invalid_greeks():
    # t == 0, in the money: V = S - K, so delta 1, gamma = vega = 0; theta = -dV/dt = q S - r K.
    g = greeks(110.0, 100.0, 0.0, 0.05, 0.2, 0.01, True)
    assert (g.price, g.delta, g.gamma, g.vega) == pytest.approx((10.0, 1.0, 0.0, 0.0))
    assert g.theta == pytest.approx(0.01 * 110.0 - 0.05 * 100.0)
    for method in ("autodiff", "analytic"):
        bad = greeks([100.0, -1.0], 100.0, 1.0, 0.05, [0.2, 0.2], method=method)
        assert all(math.isfinite(getattr(bad, name)[0]) for name in Greeks._fields)
        assert all(math.isnan(getattr(bad, name)[1]) for name in Greeks._fields)


def test_unknown_method_is_a_programming_error():
    with pytest.raises(ValueError, match="method"):
        greeks(100.0, 100.0, 1.0, 0.05, 0.2, method="bumps")  # type: ignore[call-overload]


def test_greek_kernels_vmap_over_vol_grid_and_jit():
    vols = jnp.linspace(0.1, 0.9, 9)
    per_vol = jax.jit(jax.vmap(lambda v: kernels.greeks_kernel(100.0, 105.0, 0.5, 0.03, v, 0.0, True).vega))(vols)
    expected = closed_form_greeks(100.0, 105.0, 0.5, 0.03, np.asarray(vols), 0.0, True)["vega"]
    np.testing.assert_allclose(np.asarray(per_vol), expected, rtol=1e-12)
    args = (jnp.array([90.0, 100.0]), 100.0, 0.5, 0.03, jnp.array([0.2, 0.4]), 0.0, jnp.array([True, False]))
    jitted = jax.jit(kernels.greeks_kernel)(*args)
    reference = closed_form_greeks(
        np.array([90.0, 100.0]), 100.0, 0.5, 0.03, np.array([0.2, 0.4]), 0.0, np.array([True, False])
    )
    for name, values in reference.items():
        np.testing.assert_allclose(np.asarray(getattr(jitted, name)), values, rtol=1e-11, err_msg=name)
