"""Implied volatility: a vectorized, bracketed Newton solver that never raises and never guesses.

The undiscounted price is reduced to the normalized out-of-the-money price ``beta = time value / sqrt(F K)``
at log-moneyness ``x = -|ln(F/K)| <= 0``, which is the normalized call ``b(x, s)`` with total deviation
``s = vol sqrt(t)``::

    b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2),    db/ds = exp(-x²/(2s²) - s²/8) / sqrt(2 pi)

``b`` is increasing in ``s``, convex below ``s_c = sqrt(2|x|)`` and concave above (Manaster and Koehler,
1982). The solver therefore splits at ``s_c``:

* above ``s_c`` it runs Newton on ``b`` itself, started at ``s_c``, which converges monotonically;
* below ``s_c`` it runs Newton on ``ln b`` (with ``b`` written via ``erfcx`` so tiny prices neither
  underflow nor cancel), started at ``|x| / sqrt(-2 ln(2 beta))``, a provable lower bound of the root.

Each step is kept inside a bracket that shrinks every iteration and falls back to bisection if Newton
leaves it, and the loop stops when every lane has converged (relative step below ``1e-13``) or after
``_MAX_ITERATIONS``. Prices come back within about ``1e-12`` relative (far inside the ``1e-10`` target).

Every lane also gets a bit flag (:class:`IVFlag`) saying why no volatility exists: invalid inputs,
a price below the discounted intrinsic value of the forward or at/above the no-arbitrage upper bound,
or no convergence. A price at intrinsic value (for in-the-money options to within ``32 eps (F + K)`` of
rounding, the error of computing it) has implied
volatility 0 (flagged ``AT_INTRINSIC``, not an error): its time value carries no information.
"""

from __future__ import annotations

import math
from enum import IntFlag
from typing import Any, overload

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from jax.scipy.special import erfcx

from arbkit.pricing._buckets import bucket_jit, run_bucketed

jax.config.update("jax_enable_x64", True)

__all__ = [
    "IVFlag",
    "implied_vol",
    "implied_vol_black76",
    "implied_vol_black76_with_flags",
    "implied_vol_kernel",
    "implied_vol_with_flags",
]


class IVFlag(IntFlag):
    """Why an implied volatility is missing or special; flags combine bitwise.

    Examples
    --------
    >>> IVFlag(6) == IVFlag.BELOW_INTRINSIC | IVFlag.ABOVE_UPPER_BOUND
    True
    >>> bool(IVFlag.NOT_CONVERGED & IVFlag.ERRORS)
    True
    """

    OK = 0
    #: NaN or infinite input; negative price, spot, strike or time; zero spot, strike or time (the
    #: volatility is not identifiable there).
    INVALID_INPUT = 1
    #: Price below the discounted intrinsic value of the forward (beyond rounding): an arbitrage, no
    #: volatility exists.
    BELOW_INTRINSIC = 2
    #: Price at or above the upper bound (discounted forward for calls, discounted strike for puts).
    ABOVE_UPPER_BOUND = 4
    #: Price equal to intrinsic value within rounding: implied volatility 0 (informational, not an error).
    AT_INTRINSIC = 8
    #: No volatility could be resolved: ``vol * sqrt(t)`` beyond 50, or a time value below ``1e-280``
    #: of ``sqrt(F K)`` (at the floating-point underflow limit).
    NOT_CONVERGED = 16
    #: The flags that make :func:`implied_vol` return NaN.
    ERRORS = 1 | 2 | 4 | 16


_MAX_ITERATIONS = 64
_MAX_TOTAL_DEVIATION = 50.0
_REL_TOLERANCE = 1e-13
_STEP_TOLERANCE = 1e-9
_MIN_NORMALIZED_PRICE = 1e-280
_EPS = float(np.finfo(np.float64).eps)
_ROUNDING_ULPS = 32.0
_LN_HALF = math.log(0.5)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _objective(s: Any, x: Any, beta: Any, ln_beta: Any, exp_half_x: Any, lower: Any) -> tuple[Any, Any, Any, Any]:
    """Objective ``f`` (``ln b - ln beta`` below ``s_c``, ``b - beta`` above), ``f1 = df/ds``, ``f2/f1``, ``f3/f1``.

    ``fk`` is the k-th derivative. With ``h = d ln b1 / ds = x^2/s^3 - s/4``: ``b2/b1 = h`` and
    ``b3/b1 = h^2 - 3x^2/s^4 - 1/4``; for ``ln b``, with ``g = b1/b``: ``f2/f1 = h - g`` and
    ``f3/f1 = b3/b1 - 3 h g + 2 g^2``.
    """
    inv_s = 1.0 / s
    x_over_s = x * inv_s
    d1 = x_over_s + 0.5 * s
    d2 = d1 - s  # always <= 0 because x <= 0
    q = 0.5 * x_over_s * x_over_s + 0.125 * s * s
    envelope = jnp.exp(-q)
    ex1 = erfcx(jnp.abs(d1) * _INV_SQRT_2)
    ex2 = erfcx(-d2 * _INV_SQRT_2)
    # N(d) = exp(-d^2/2) erfcx(-d/sqrt 2) / 2, and e^{x/2 - d1^2/2} = e^{-x/2 - d2^2/2} = envelope.
    spread = ex1 - ex2
    log_value = _LN_HALF - q + jnp.log(jnp.where(spread > 0.0, spread, 0.0))
    log_slope = _SQRT_2_OVER_PI / spread
    value = jnp.where(d1 <= 0.0, 0.5 * envelope * spread, exp_half_x - 0.5 * envelope * (ex1 + ex2))
    slope = _INV_SQRT_2PI * envelope
    x2_over_s3 = x_over_s * x_over_s * inv_s
    h = x2_over_s3 - 0.25 * s
    h3 = h * h - 3.0 * x2_over_s3 * inv_s - 0.25
    residual = jnp.where(lower, log_value - ln_beta, value - beta)
    derivative = jnp.where(lower, log_slope, slope)
    ratio2 = jnp.where(lower, h - log_slope, h)
    ratio3 = jnp.where(lower, h3 - log_slope * (3.0 * h - 2.0 * log_slope), h3)
    return residual, derivative, ratio2, ratio3


def _solve_normalized(x: Any, beta: Any, active: Any) -> tuple[Any, Any]:
    """Solve ``b(x, s) = beta`` for ``s`` on every lane where ``active``; returns ``(s, converged)``."""
    safe_beta = jnp.where(active, beta, 0.1)
    safe_x = jnp.where(active, x, -1.0)
    s_c = jnp.sqrt(-2.0 * safe_x)
    exp_half_x = jnp.exp(0.5 * safe_x)
    ln_beta = jnp.log(safe_beta)
    # b at the inflection point, from the erfcx form (d1 = 0 there).
    s_c_safe = jnp.maximum(s_c, 1e-300)
    q_c = 0.5 * (safe_x / s_c_safe) ** 2 + 0.125 * s_c_safe * s_c_safe
    b_c = 0.5 * jnp.exp(-q_c) * (1.0 - erfcx(-(safe_x / s_c_safe - 0.5 * s_c_safe) * _INV_SQRT_2))
    lower = safe_beta < b_c
    # Two lower bounds of the root below s_c: the tail bound (sharp for tiny prices) and the chord of the
    # convex b from (0, 0) to (s_c, b_c) (sharp near the money); start at the larger.
    guess_lower = -safe_x / jnp.sqrt(-2.0 * (ln_beta + math.log(2.0)))
    guess_chord = s_c * (safe_beta / b_c)
    s0 = jnp.where(lower, jnp.minimum(jnp.maximum(guess_lower, guess_chord), s_c), s_c_safe)
    lo = jnp.where(lower, 0.0, s_c)
    hi = jnp.where(lower, s_c, _MAX_TOTAL_DEVIATION)

    def body(state: tuple[Any, ...]) -> tuple[Any, ...]:
        iteration, s, lo, hi, done = state
        residual, derivative, ratio2, ratio3 = _objective(s, safe_x, safe_beta, ln_beta, exp_half_x, lower)
        lo = jnp.where(residual < 0.0, s, lo)
        hi = jnp.where(residual > 0.0, s, hi)
        # Householder's third-order step (cubic convergence), with Newton's step as the fallback.
        nu = residual / derivative
        newton = s - nu
        householder = s - nu * (1.0 - 0.5 * nu * ratio2) / (1.0 - nu * (ratio2 - nu * ratio3 * (1.0 / 6.0)))
        step = jnp.where(jnp.isfinite(householder) & (householder > lo) & (householder < hi), householder, newton)
        # Converged when the step is small enough that taking it lands on the root to rounding; test it
        # before the bracket, because at the root the step rounds onto a bracket end and would otherwise
        # trigger a needless bisection.
        converged = (jnp.abs(step - s) <= _STEP_TOLERANCE * s) | ((hi - lo) <= _REL_TOLERANCE * hi)
        inside = jnp.isfinite(step) & (step > lo) & (step < hi)
        candidate = jnp.where(inside | converged, step, 0.5 * (lo + hi))
        candidate = jnp.where(jnp.isfinite(candidate), candidate, s)
        s = jnp.where(done, s, candidate)
        return iteration + 1, s, lo, hi, done | converged

    def cond(state: tuple[Any, ...]) -> Any:
        iteration, _, _, _, done = state
        return (iteration < _MAX_ITERATIONS) & ~jnp.all(done)

    _, s, _, _, done = jax.lax.while_loop(cond, body, (0, s0, lo, hi, ~active))
    return s, done & active


def _implied_vol_undiscounted(
    undiscounted: Any, forward: Any, strike: Any, t: Any, is_call: Any, invalid: Any
) -> tuple[Any, Any]:
    sign = jnp.where(is_call, 1.0, -1.0)
    intrinsic = jnp.maximum(sign * (forward - strike), 0.0)
    upper = jnp.where(is_call, forward, strike)
    time_value = undiscounted - intrinsic
    # A time value within rounding of zero (a few ulps of F + K) is intrinsic value, not an arbitrage:
    # the engine's own deep in-the-money prices land on either side of intrinsic by that much.
    # Out of the money there is no subtraction, so no tolerance.
    rounding = jnp.where(intrinsic > 0.0, _ROUNDING_ULPS * _EPS * (jnp.abs(forward) + jnp.abs(strike)), 0.0)
    below = ~invalid & (time_value < -rounding)
    above = ~invalid & ~below & (undiscounted >= upper)
    at_intrinsic = ~invalid & ~below & ~above & (time_value <= rounding)
    active = ~(invalid | below | above | at_intrinsic)
    safe_forward = jnp.where(active, forward, 1.0)
    safe_strike = jnp.where(active, strike, 1.0)
    x = -jnp.abs(jnp.log(safe_forward / safe_strike))
    beta = time_value / jnp.sqrt(safe_forward * safe_strike)
    # The normalized bound e^{x/2} can be hit by rounding even when the raw price was inside it.
    above = above | (active & (beta >= jnp.exp(0.5 * x)))
    # Time values this far below the scale of the forward are at the underflow limit: neither the price
    # nor the volatility behind it is resolvable, so report NOT_CONVERGED instead of iterating on noise.
    unresolvable = active & ~above & (beta < _MIN_NORMALIZED_PRICE)
    active = active & ~above & ~unresolvable
    s, converged = _solve_normalized(x, beta, active)
    not_converged = unresolvable | (active & ~converged)
    safe_t = jnp.where(invalid, 1.0, t)
    vol = jnp.where(at_intrinsic, 0.0, s / jnp.sqrt(safe_t))
    flags = (
        jnp.where(invalid, int(IVFlag.INVALID_INPUT), 0)
        | jnp.where(below, int(IVFlag.BELOW_INTRINSIC), 0)
        | jnp.where(above, int(IVFlag.ABOVE_UPPER_BOUND), 0)
        | jnp.where(at_intrinsic, int(IVFlag.AT_INTRINSIC), 0)
        | jnp.where(not_converged, int(IVFlag.NOT_CONVERGED), 0)
    ).astype(jnp.int32)
    vol = jnp.where((flags & int(IVFlag.ERRORS)) != 0, jnp.nan, vol)
    return vol, flags


def _finite(*values: Any) -> Any:
    ok = jnp.isfinite(values[0])
    for value in values[1:]:
        ok = ok & jnp.isfinite(value)
    return ok


def implied_vol_kernel(
    price: Any, spot: Any, strike: Any, t: Any, rate: Any, dividend: Any, is_call: Any
) -> tuple[Any, Any]:
    """Black-Scholes-Merton implied volatility and :class:`IVFlag` bits, as a pure JAX function.

    Arguments broadcast; returns ``(vol, flags)`` with ``vol`` NaN wherever ``flags`` has an error bit.

    Examples
    --------
    >>> vol, flags = implied_vol_kernel(4.759422392871537, 42.0, 40.0, 0.5, 0.10, 0.0, True)
    >>> round(float(vol), 12), int(flags)
    (0.2, 0)
    """
    invalid = ~_finite(price, spot, strike, t, rate, dividend)
    invalid = invalid | (price < 0.0) | (spot <= 0.0) | (strike <= 0.0) | (t <= 0.0)
    forward = spot * jnp.exp((rate - dividend) * t)
    undiscounted = price * jnp.exp(rate * t)
    return _implied_vol_undiscounted(undiscounted, forward, strike, t, is_call, invalid)


def implied_vol_black76_kernel(
    price: Any, forward: Any, strike: Any, t: Any, rate: Any, is_call: Any
) -> tuple[Any, Any]:
    """Black-76 implied volatility and :class:`IVFlag` bits, as a pure JAX function."""
    invalid = ~_finite(price, forward, strike, t, rate)
    invalid = invalid | (price < 0.0) | (forward <= 0.0) | (strike <= 0.0) | (t <= 0.0)
    undiscounted = price * jnp.exp(rate * t)
    return _implied_vol_undiscounted(undiscounted, forward, strike, t, is_call, invalid)


_implied_vol_bucketed = bucket_jit("implied_vol", implied_vol_kernel)


@overload
def implied_vol_with_flags(  # type: ignore[overload-overlap]
    price: float,
    spot: float,
    strike: float,
    t: float,
    rate: float,
    dividend: float = ...,
    is_call: bool = ...,
) -> tuple[float, IVFlag]: ...
@overload
def implied_vol_with_flags(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend: npt.ArrayLike = ...,
    is_call: npt.ArrayLike = ...,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32]]: ...
def implied_vol_with_flags(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend: npt.ArrayLike = 0.0,
    is_call: npt.ArrayLike = True,
) -> tuple[float, IVFlag] | tuple[npt.NDArray[np.float64], npt.NDArray[np.int32]]:
    """Black-Scholes-Merton implied volatility together with a flag saying why it may be missing.

    Parameters
    ----------
    price
        Option price (same currency as ``spot`` and ``strike``).
    spot, strike, t, rate, dividend, is_call
        As in :func:`arbkit.pricing.black_scholes`; all broadcast.

    Returns
    -------
    (vol, flags)
        ``vol``: annualized implied volatility, NaN where ``flags & IVFlag.ERRORS``; ``0.0`` where the
        price equals intrinsic value (``IVFlag.AT_INTRINSIC``). ``flags``: :class:`IVFlag` bits. For
        scalar input a ``(float, IVFlag)`` pair, else float64 and int32 NumPy arrays.

    Examples
    --------
    >>> vol, flag = implied_vol_with_flags(4.759422392871537, 42.0, 40.0, 0.5, 0.10)
    >>> round(vol, 10), flag
    (0.2, <IVFlag.OK: 0>)
    >>> implied_vol_with_flags([1.0, 50.0], 42.0, 40.0, 0.5, 0.10)
    (array([nan, nan]), array([2, 4], dtype=int32))
    """
    (vol, flags), scalar = run_bucketed(_implied_vol_bucketed, (price, spot, strike, t, rate, dividend), is_call)
    if scalar:
        return float(vol), IVFlag(int(flags))
    return vol, flags


@overload
def implied_vol(  # type: ignore[overload-overlap]
    price: float,
    spot: float,
    strike: float,
    t: float,
    rate: float,
    dividend: float = ...,
    is_call: bool = ...,
) -> float: ...
@overload
def implied_vol(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend: npt.ArrayLike = ...,
    is_call: npt.ArrayLike = ...,
) -> npt.NDArray[np.float64]: ...
def implied_vol(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    dividend: npt.ArrayLike = 0.0,
    is_call: npt.ArrayLike = True,
) -> float | npt.NDArray[np.float64]:
    """Black-Scholes-Merton implied volatility; NaN where none exists.

    Same as :func:`implied_vol_with_flags` without the flags: prices outside the no-arbitrage bounds,
    invalid inputs and (astronomical) non-converged volatilities give NaN, never an exception.

    Examples
    --------
    >>> round(implied_vol(0.8085993729000942, 42.0, 40.0, 0.5, 0.10, is_call=False), 10)
    0.2
    >>> implied_vol([4.759422392871537, 100.0], 42.0, 40.0, 0.5, 0.10).round(10)
    array([0.2, nan])
    """
    vol, _ = implied_vol_with_flags(price, spot, strike, t, rate, dividend, is_call)
    return vol


@overload
def implied_vol_black76_with_flags(  # type: ignore[overload-overlap]
    price: float, forward: float, strike: float, t: float, rate: float, is_call: bool = ...
) -> tuple[float, IVFlag]: ...
@overload
def implied_vol_black76_with_flags(
    price: npt.ArrayLike,
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike = ...,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32]]: ...
def implied_vol_black76_with_flags(
    price: npt.ArrayLike,
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike = True,
) -> tuple[float, IVFlag] | tuple[npt.NDArray[np.float64], npt.NDArray[np.int32]]:
    """Black-76 implied volatility (options on forwards and futures) with :class:`IVFlag` bits.

    Conventions as :func:`implied_vol_with_flags`, with ``forward`` in place of spot and dividend.

    Examples
    --------
    >>> vol, flag = implied_vol_black76_with_flags(1.7010507252362677, 19.0, 19.0, 0.75, 0.10)
    >>> round(vol, 10), flag
    (0.28, <IVFlag.OK: 0>)
    """
    # Black-76 is Black-Scholes-Merton with the carry equal to the rate (the forward ``F e^{(r - r) t}`` is
    # exactly ``F``, and the validity checks are the same), so one compiled kernel serves both models.
    (vol, flags), scalar = run_bucketed(_implied_vol_bucketed, (price, forward, strike, t, rate, rate), is_call)
    if scalar:
        return float(vol), IVFlag(int(flags))
    return vol, flags


@overload
def implied_vol_black76(  # type: ignore[overload-overlap]
    price: float, forward: float, strike: float, t: float, rate: float, is_call: bool = ...
) -> float: ...
@overload
def implied_vol_black76(
    price: npt.ArrayLike,
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike = ...,
) -> npt.NDArray[np.float64]: ...
def implied_vol_black76(
    price: npt.ArrayLike,
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    is_call: npt.ArrayLike = True,
) -> float | npt.NDArray[np.float64]:
    """Black-76 implied volatility; NaN where none exists (see :func:`implied_vol_black76_with_flags`).

    Examples
    --------
    >>> round(implied_vol_black76(1.7010507252362677, 19.0, 19.0, 0.75, 0.10, is_call=False), 10)
    0.28
    """
    vol, _ = implied_vol_black76_with_flags(price, forward, strike, t, rate, is_call)
    return vol
