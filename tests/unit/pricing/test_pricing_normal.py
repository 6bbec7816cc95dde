"""The Cody normal CDF used by every pricing kernel, against SciPy and an argument-exact reference."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from arbkit.pricing._normal import ndtr, norm_pdf


def exact_reference(x):
    # 0.5 erfc(-x / sqrt 2) with the rounding of -x / sqrt 2 corrected to first order (in long double), so
    # the reference does not carry the argument-rounding error that scipy.special.ndtr has in the tail.
    z = -(x.astype(np.longdouble) / np.sqrt(np.longdouble(2.0)))
    z_hi = z.astype(np.float64)
    dz = (z - z_hi).astype(np.float64)
    return 0.5 * special.erfc(z_hi) * (1.0 - (2.0 / np.sqrt(np.pi)) * dz / special.erfcx(z_hi))


def grid():
    rng = np.random.default_rng(7)
    return np.concatenate([np.linspace(-37.0, 9.0, 20001), rng.normal(0.0, 3.0, 20000), [0.0, 0.67448975, 5.65685]])


def test_matches_scipy_to_rounding():
    x = grid()
    got = np.asarray(jax.jit(ndtr)(jnp.asarray(x)))
    expected = special.ndtr(x)
    core = np.abs(x) <= 8.0
    np.testing.assert_allclose(got[core], expected[core], rtol=1.5e-14, atol=0.0)
    np.testing.assert_allclose(got, expected, rtol=3e-13, atol=1e-300)


def test_relative_accuracy_about_1e_15_and_no_worse_than_scipy():
    x = grid()
    truth = exact_reference(x)
    got = np.asarray(jax.jit(ndtr)(jnp.asarray(x)))
    rel = np.abs(got - truth) / truth
    scipy_rel = np.abs(special.ndtr(x) - truth) / truth
    assert rel[np.abs(x) <= 3.0].max() < 2e-15
    assert rel[np.abs(x) <= 8.0].max() < 5e-15
    # Far in the lower tail the reference itself is only good to ~1e-14; stay within SciPy's own error.
    assert rel.max() <= scipy_rel.max() + 1e-15


def test_special_values_and_symmetry():
    values = np.asarray(ndtr(jnp.array([-np.inf, np.inf, np.nan, 0.0, -40.0, 40.0])))
    np.testing.assert_array_equal(values[[0, 1, 3, 4, 5]], [0.0, 1.0, 0.5, 0.0, 1.0])
    assert np.isnan(values[2])
    x = jnp.linspace(-6.0, 6.0, 1001)
    np.testing.assert_allclose(np.asarray(ndtr(x) + ndtr(-x)), 1.0, rtol=0.0, atol=2e-16)


def test_derivative_is_the_exact_density():
    x = jnp.linspace(-10.0, 10.0, 2001)
    slope = jax.vmap(jax.grad(ndtr))(x)
    expected = np.exp(-0.5 * np.asarray(x) ** 2) / np.sqrt(2.0 * np.pi)
    np.testing.assert_allclose(np.asarray(slope), expected, rtol=1e-15, atol=0.0)
    np.testing.assert_allclose(np.asarray(norm_pdf(x)), expected, rtol=1e-15, atol=0.0)
