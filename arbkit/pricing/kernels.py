"""Pure JAX pricing kernels, for use inside user ``jax.jit`` / ``jax.vmap`` / ``jax.grad`` code.

The functions in :mod:`arbkit.pricing` take NumPy or JAX input, pad it to shape buckets and return NumPy.
These kernels are the functions they wrap: elementwise over broadcast JAX arrays, no padding, no host
transfer, all positional arguments (``is_call`` a boolean array or scalar). Float64 is enabled on import.

Examples
--------
Price one option over a volatility grid with ``jax.vmap``:

>>> import jax, jax.numpy as jnp
>>> from arbkit.pricing import kernels
>>> grid = jnp.array([0.1, 0.2])
>>> prices = jax.vmap(lambda v: kernels.black_scholes_kernel(42.0, 40.0, 0.5, 0.1, v, 0.0, True))(grid)
>>> [round(float(p), 2) for p in prices]
[4.06, 4.76]
"""

from arbkit.pricing._black_scholes import black76_kernel, black_scholes_kernel
from arbkit.pricing._greeks import greeks_analytic_kernel, greeks_kernel
from arbkit.pricing._implied_vol import implied_vol_black76_kernel, implied_vol_kernel

__all__ = [
    "black76_kernel",
    "black_scholes_kernel",
    "greeks_analytic_kernel",
    "greeks_kernel",
    "implied_vol_black76_kernel",
    "implied_vol_kernel",
]
