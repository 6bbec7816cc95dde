"""The standard normal CDF and density for the pricing kernels: fast, and accurate to about 1e-15 relative.

``jax.scipy.special.ndtr`` evaluates both ``erf`` and ``erfc`` on every lane and selects, which on XLA CPU
costs an order of magnitude more than the rest of a Black-Scholes price; ``0.5 * erfc(-x / sqrt 2)`` is
fast but rounds ``x / sqrt 2``, which costs relative accuracy in the lower tail. :func:`ndtr` is instead
W. J. Cody's rational Chebyshev approximation (Cody 1969, "Rational Chebyshev approximations for the
error function"; the ``ANORM`` routine of ACM TOMS algorithm 715, also used by R's ``pnorm``), evaluated
directly in ``x``:

* ``|x| <= 0.67448975``: ``1/2 + x R1(x^2)``;
* ``|x| <= sqrt 32``: ``exp(-x^2/2) R2(|x|)``;
* beyond: ``exp(-x^2/2) (1/sqrt(2 pi) - R3(1/x^2) / x^2) / |x|``;

with ``exp(-x^2/2)`` split as ``exp(-x0^2/2) exp(-(x - x0)(x + x0)/2)`` (``x0`` is ``x`` truncated to a
multiple of 1/16, so ``x0^2`` is exact) to keep full relative precision far into the tail, and the upper
tail taken as ``1 - lower tail`` of ``-x``. All three branches are evaluated branch-free and selected, one
division in all. Its derivative is defined (``jax.custom_jvp``) as the exact density, so autodiff greeks
never differentiate the rational approximation.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

__all__ = ["ndtr", "norm_pdf"]

INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

_SMALL = 0.67448975
_SQRT_32 = math.sqrt(32.0)
# Beyond this |x| the lower tail is below the smallest subnormal: clamp so inf inputs stay finite inside.
_CLAMP = 40.0

_A = (2.2352520354606839287, 161.02823106855587881, 1067.6894854603709582, 18154.981253343561249)
_A4 = 0.065682337918207449113
_B = (47.20258190468824187, 976.09855173777669322, 10260.932208618978205, 45507.789335026729956)
_C = (
    0.39894151208813466764,
    8.8831497943883759412,
    93.506656132177855979,
    597.27027639480026226,
    2494.5375852903726711,
    6848.1904505362823326,
    11602.651437647350124,
    9842.7148383839780218,
)
_C8 = 1.0765576773720192317e-8
_D = (
    22.266688044328115691,
    235.38790178262499861,
    1519.377599407554805,
    6485.558298266760755,
    18615.571640885098091,
    34900.952721145977266,
    38912.003286093271411,
    19685.429676859990727,
)
_P = (0.21589853405795699, 0.1274011611602473639, 0.022235277870649807, 0.001421619193227893466)
_P4 = 2.9112874951168792e-5
_P5 = 0.02307344176494017303
_Q = (1.28426009614491121, 0.468238212480865118, 0.0659881378689285515, 0.00378239633202758244)
_Q4 = 7.29751555083966205e-5


def norm_pdf(x: Any) -> Any:
    """Standard normal density ``exp(-x^2/2) / sqrt(2 pi)``."""
    return INV_SQRT_2PI * jnp.exp(-0.5 * x * x)


def _cody(x: Any) -> Any:
    y = jnp.minimum(jnp.abs(x), _CLAMP)
    # |x| <= 0.674: N(x) = 1/2 + x * R1(x^2).
    xsq = y * y
    num_s = _A4 * xsq
    den_s = xsq
    for a, b in zip(_A[:3], _B[:3], strict=True):
        num_s = (num_s + a) * xsq
        den_s = (den_s + b) * xsq
    num_s = (num_s + _A[3]) * x
    den_s = den_s + _B[3]
    # 0.674 < |x| <= sqrt(32): lower tail exp(-x^2/2) R2(|x|).
    num_m = _C8 * y
    den_m = y
    for c, d in zip(_C[:7], _D[:7], strict=True):
        num_m = (num_m + c) * y
        den_m = (den_m + d) * y
    num_m = num_m + _C[7]
    den_m = den_m + _D[7]
    # |x| > sqrt(32): lower tail exp(-x^2/2) (1/sqrt(2 pi) - R3(1/x^2) / x^2) / |x|.
    inv_sq = 1.0 / xsq
    num_t = _P5 * inv_sq
    den_t = inv_sq
    for p, q in zip(_P, _Q, strict=True):
        num_t = (num_t + p) * inv_sq
        den_t = (den_t + q) * inv_sq
    num_t = INV_SQRT_2PI * (den_t + _Q4) - inv_sq * (num_t + _P4)
    den_t = (den_t + _Q4) * y
    small = y <= _SMALL
    middle = y <= _SQRT_32
    ratio = jnp.where(small, num_s, jnp.where(middle, num_m, num_t)) / jnp.where(
        small, den_s, jnp.where(middle, den_m, den_t)
    )
    y0 = jnp.trunc(y * 16.0) / 16.0
    tail = jnp.exp(-0.5 * y0 * y0) * jnp.exp(-0.5 * (y - y0) * (y + y0)) * ratio
    return jnp.where(small, 0.5 + ratio, jnp.where(x > 0.0, 1.0 - tail, tail))


def _ndtr_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
    (x,) = primals
    (dx,) = tangents
    return _ndtr(x), norm_pdf(x) * dx


_ndtr: Any = jax.custom_jvp(_cody)
_ndtr.defjvp(_ndtr_jvp)


def ndtr(x: Any) -> Any:
    """Standard normal CDF ``N(x)``, elementwise, float64; its derivative is the exact density.

    Examples
    --------
    >>> round(float(ndtr(1.0)), 15)
    0.841344746068543
    """
    return _ndtr(x)
