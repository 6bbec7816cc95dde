"""JAX kernels of the risk engine: Monte Carlo scenario generation.

Shapes that vary per call (the number of scenarios) are static arguments, so each distinct size compiles
once; callers use a few fixed sizes (the default is 100,000 scenarios).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import NDArray

jax.config.update("jax_enable_x64", True)

__all__ = ["monte_carlo_factor_returns", "monte_carlo_normal_sample", "monte_carlo_portfolio_pnl"]


@partial(jax.jit, static_argnames=("n_scenarios",))
def _normal_sample(key: Any, mean: Any, scale: Any, n_scenarios: int) -> Any:
    return mean + scale * jax.random.normal(key, (n_scenarios,), dtype=jnp.float64)


@partial(jax.jit, static_argnames=("n_scenarios",))
def _factor_returns(key: Any, mean: Any, sqrt_cov: Any, n_scenarios: int) -> Any:
    shocks = jax.random.normal(key, (n_scenarios, sqrt_cov.shape[1]), dtype=jnp.float64)
    return mean + shocks @ sqrt_cov.T


@partial(jax.jit, static_argnames=("n_scenarios",))
def _portfolio_pnl(key: Any, mean: Any, sqrt_cov: Any, exposures: Any, n_scenarios: int) -> Any:
    # Exposure-first contraction: P&L = (mean + Z L^T) e = mean.e + Z (L^T e); never materialises the
    # (n_scenarios, n_factors) return matrix when the book is linear.
    shocks = jax.random.normal(key, (n_scenarios, sqrt_cov.shape[1]), dtype=jnp.float64)
    return mean @ exposures + shocks @ (sqrt_cov.T @ exposures)


def monte_carlo_normal_sample(mean: float, scale: float, n_scenarios: int, seed: int) -> NDArray[np.float64]:
    """Draw ``n_scenarios`` values from ``N(mean, scale**2)`` with a seeded JAX key."""
    key = jax.random.PRNGKey(seed)
    return np.asarray(_normal_sample(key, jnp.float64(mean), jnp.float64(scale), n_scenarios))


def monte_carlo_factor_returns(
    mean: NDArray[np.float64], sqrt_cov: NDArray[np.float64], n_scenarios: int, seed: int
) -> NDArray[np.float64]:
    """Correlated factor returns ``mean + Z @ sqrt_cov.T`` with ``Z`` standard normal, shape (S, N)."""
    key = jax.random.PRNGKey(seed)
    return np.asarray(_factor_returns(key, jnp.asarray(mean), jnp.asarray(sqrt_cov), n_scenarios))


def monte_carlo_portfolio_pnl(
    mean: NDArray[np.float64],
    sqrt_cov: NDArray[np.float64],
    exposures: NDArray[np.float64],
    n_scenarios: int,
    seed: int,
) -> NDArray[np.float64]:
    """Scenario P&L of a linear book; equal to ``monte_carlo_factor_returns(...) @ exposures``."""
    key = jax.random.PRNGKey(seed)
    return np.asarray(
        _portfolio_pnl(key, jnp.asarray(mean), jnp.asarray(sqrt_cov), jnp.asarray(exposures), n_scenarios)
    )
