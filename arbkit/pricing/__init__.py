"""Option pricing on JAX: Black-Scholes-Merton, Black-76, greeks by autodiff, and implied volatility.

Every function broadcasts over NumPy or JAX arrays, returns a Python ``float`` for all-scalar input and a
float64 NumPy array otherwise, and returns NaN (never raises) for invalid inputs. Under the hood the
inputs are padded to a few fixed bucket sizes so jitted kernels compile once per bucket; call
:func:`warmup` at start-up to compile them all. The raw, traceable JAX kernels live in
:mod:`arbkit.pricing.kernels` for ``jax.vmap`` over parameter grids.

Conventions: ``t`` in years, ``rate`` and ``dividend`` continuously compounded per year, ``vol``
annualized; ``vega`` per 1.0 of vol, ``theta = -dV/dt`` per year, ``rho`` per 1.0 of rate.

Examples
--------
>>> from arbkit.pricing import black_scholes, implied_vol
>>> price = black_scholes(42.0, 40.0, 0.5, 0.10, 0.20)
>>> round(price, 2), round(implied_vol(price, 42.0, 40.0, 0.5, 0.10), 10)
(4.76, 0.2)
"""

from arbkit.pricing import kernels
from arbkit.pricing._black_scholes import black76, black_scholes
from arbkit.pricing._buckets import BUCKET_SIZES, bucket_size, trace_counts
from arbkit.pricing._greeks import Greeks, greeks
from arbkit.pricing._implied_vol import (
    IVFlag,
    implied_vol,
    implied_vol_black76,
    implied_vol_black76_with_flags,
    implied_vol_with_flags,
)
from arbkit.pricing._warmup import warmup

__all__ = [
    "BUCKET_SIZES",
    "Greeks",
    "IVFlag",
    "black76",
    "black_scholes",
    "bucket_size",
    "greeks",
    "implied_vol",
    "implied_vol_black76",
    "implied_vol_black76_with_flags",
    "implied_vol_with_flags",
    "kernels",
    "trace_counts",
    "warmup",
]
