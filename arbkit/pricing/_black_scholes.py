"""Black-Scholes-Merton and Black-76 prices: traceable JAX kernels and the bucketed NumPy-facing wrappers.

Both models reduce to one undiscounted Black formula on the forward ``F`` with total deviation
``s = vol * sqrt(t)``::

    call = df * (F N(d1) - K N(d2)),   put = df * (K N(-d2) - F N(-d1)),   d1,2 = ln(F/K)/s ± s/2

with ``F = spot * exp((rate - dividend) t)`` for Black-Scholes-Merton and ``df = exp(-rate t)``. Calls and
puts are each evaluated directly (not via parity) so deep out-of-the-money prices keep their relative
precision.

Edge cases are explicit, never exceptions:

* ``t == 0`` or ``vol == 0`` (or ``F == 0``, ``K == 0``): the discounted intrinsic value of the forward,
  ``df * max(±(F - K), 0)``; for ``t == 0`` this is the plain intrinsic value.
* Negative spot, forward, strike, time or volatility, and any NaN or infinite input: NaN. ``rate`` and
  ``dividend`` may be negative (negative rates exist) but must be finite.
"""

from __future__ import annotations

from typing import Any, overload

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt

from arbkit.pricing._buckets import bucket_jit, run_bucketed
from arbkit.pricing._normal import ndtr

jax.config.update("jax_enable_x64", True)

__all__ = ["black76", "black76_kernel", "black_scholes", "black_scholes_kernel"]


def _sign(is_call: Any) -> Any:
    return jnp.where(is_call, 1.0, -1.0)


def _black_undiscounted(forward: Any, strike: Any, t: Any, vol: Any, is_call: Any) -> Any:
    """Undiscounted Black price; inputs already validated (non-negative, finite)."""
    degenerate = (t <= 0.0) | (vol <= 0.0) | (forward <= 0.0) | (strike <= 0.0)
    # "Double where": the regular branch only ever sees safe values, so neither its value nor its
    # reverse-mode gradient (sqrt'(0) = inf, log(0) = -inf) can leak NaN into the selected branch.
    safe_t = jnp.where(degenerate, 1.0, t)
    safe_vol = jnp.where(degenerate, 1.0, vol)
    safe_forward = jnp.where(degenerate, 1.0, forward)
    safe_strike = jnp.where(degenerate, 1.0, strike)
    s = safe_vol * jnp.sqrt(safe_t)
    d1 = jnp.log(safe_forward / safe_strike) / s + 0.5 * s
    d2 = d1 - s
    sign = _sign(is_call)
    regular = sign * (safe_forward * ndtr(sign * d1) - safe_strike * ndtr(sign * d2))
    intrinsic = jnp.maximum(sign * (forward - strike), 0.0)
    return jnp.where(degenerate, intrinsic, regular)


def _all_finite(*values: Any) -> Any:
    ok = jnp.isfinite(values[0])
    for value in values[1:]:
        ok = ok & jnp.isfinite(value)
    return ok


def black_scholes_kernel(spot: Any, strike: Any, t: Any, rate: Any, vol: Any, dividend: Any, is_call: Any) -> Any:
    """Black-Scholes-Merton price as a pure, elementwise JAX function (jit-, vmap- and grad-able).

    Same conventions as :func:`black_scholes`, but takes and returns JAX arrays (all arguments must
    broadcast; ``is_call`` is a boolean array) and does no padding, so it composes inside user code
    such as ``jax.vmap`` over a volatility grid.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> grid = jnp.array([0.1, 0.2, 0.3])
    >>> prices = jax.vmap(lambda v: black_scholes_kernel(42.0, 40.0, 0.5, 0.1, v, 0.0, True))(grid)
    >>> [round(float(p), 4) for p in prices]
    [4.0551, 4.7594, 5.7147]
    """
    valid = (
        _all_finite(spot, strike, t, rate, vol, dividend) & (spot >= 0.0) & (strike >= 0.0) & (t >= 0.0) & (vol >= 0.0)
    )
    forward = spot * jnp.exp((rate - dividend) * t)
    discount = jnp.exp(-rate * t)
    price = discount * _black_undiscounted(forward, strike, t, vol, is_call)
    return jnp.where(valid, price, jnp.nan)


def black76_kernel(forward: Any, strike: Any, t: Any, rate: Any, vol: Any, is_call: Any) -> Any:
    """Black-76 price of an option on a forward or future, as a pure elementwise JAX function.

    Examples
    --------
    >>> round(float(black76_kernel(19.0, 19.0, 0.75, 0.10, 0.28, True)), 4)
    1.7011
    """
    valid = _all_finite(forward, strike, t, rate, vol) & (forward >= 0.0) & (strike >= 0.0)
    valid = valid & (t >= 0.0) & (vol >= 0.0)
    price = jnp.exp(-rate * t) * _black_undiscounted(forward, strike, t, vol, is_call)
    return jnp.where(valid, price, jnp.nan)


_black_scholes_bucketed = bucket_jit(
    "black_scholes",
    lambda spot, strike, t, rate, vol, dividend, is_call: (
        black_scholes_kernel(spot, strike, t, rate, vol, dividend, is_call),
    ),
)


@overload
def black_scholes(  # type: ignore[overload-overlap]
    spot: float,
    strike: float,
    t: float,
    rate: float,
    vol: float,
    dividend: float = ...,
    is_call: bool = ...,
) -> float: ...
@overload
def black_scholes(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    vol: npt.ArrayLike,
    dividend: npt.ArrayLike = ...,
    is_call: npt.ArrayLike = ...,
) -> npt.NDArray[np.float64]: ...
def black_scholes(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    vol: npt.ArrayLike,
    dividend: npt.ArrayLike = 0.0,
    is_call: npt.ArrayLike = True,
) -> float | npt.NDArray[np.float64]:
    """Price European options under Black-Scholes-Merton with a continuous dividend (or carry) yield.

    Parameters
    ----------
    spot, strike
        Underlying price and strike (``>= 0``).
    t
        Time to expiry in years (``>= 0``; ``0`` gives the intrinsic value).
    rate
        Continuously compounded risk-free rate (may be negative).
    vol
        Annualized volatility (``>= 0``; ``0`` gives the discounted intrinsic value of the forward).
    dividend
        Continuous dividend yield (or, for crypto, the borrow/funding carry of the underlying).
    is_call
        ``True`` for calls, ``False`` for puts; broadcasts like the other arguments.

    Returns
    -------
    float or numpy.ndarray
        A Python ``float`` when every argument is a scalar, else a float64 NumPy array in the broadcast
        shape (NumPy, not JAX, because callers feed Polars and NumPy code; use
        :func:`black_scholes_kernel` inside JAX code). Invalid inputs (negative spot, strike, time or
        volatility; NaN or infinite values) give NaN rather than an exception, so one bad quote cannot
        stop a batch.

    Notes
    -----
    Inputs are padded to fixed bucket sizes before the jitted kernel runs, so batches of any length
    reuse a handful of compilations (see :func:`arbkit.pricing.warmup`).

    Examples
    --------
    Hull's example 15.6 (S=42, K=40, r=10%, sigma=20%, six months):

    >>> round(black_scholes(42.0, 40.0, 0.5, 0.10, 0.20), 2)
    4.76
    >>> round(black_scholes(42.0, 40.0, 0.5, 0.10, 0.20, is_call=False), 2)
    0.81
    >>> black_scholes([42.0, -1.0], 40.0, 0.0, 0.10, 0.20)
    array([ 2., nan])
    """
    (price,), scalar = run_bucketed(_black_scholes_bucketed, (spot, strike, t, rate, vol, dividend), is_call)
    return float(price) if scalar else price


@overload
def black76(  # type: ignore[overload-overlap]
    forward: float, strike: float, t: float, rate: float, vol: float, is_call: bool = ...
) -> float: ...
@overload
def black76(
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike = ...,
) -> npt.NDArray[np.float64]: ...
def black76(
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike = True,
) -> float | npt.NDArray[np.float64]:
    """Price European options on a forward or future with Black's 1976 model.

    Parameters
    ----------
    forward
        Forward (or futures) price for the option's expiry (``>= 0``).
    strike, t, rate, vol, is_call
        As in :func:`black_scholes`; ``rate`` only discounts the payoff.

    Returns
    -------
    float or numpy.ndarray
        Same conventions as :func:`black_scholes` (float for scalar input, NaN for invalid input).

    Examples
    --------
    Haug (2007), section 1.1.2: F=19, K=19, T=0.75, r=10%, sigma=28%:

    >>> round(black76(19.0, 19.0, 0.75, 0.10, 0.28), 4)
    1.7011
    >>> round(black76(19.0, 19.0, 0.75, 0.10, 0.28, is_call=False), 4)
    1.7011
    """
    # Black-76 is Black-Scholes-Merton with the carry equal to the rate: the forward ``F e^{(r - r) t}`` is
    # exactly ``F`` and every validity check is the same, so one compiled kernel serves both models.
    (price,), scalar = run_bucketed(_black_scholes_bucketed, (forward, strike, t, rate, vol, rate), is_call)
    return float(price) if scalar else price
