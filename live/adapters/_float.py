"""Decimal ``man * 10**exp10`` to float64, exactly, inside compiled (numba) parsers.

The compiled JSON readers decline a whole batch to the slow Python path when one number cannot be converted
exactly.  Clinger's fast path (mantissa <= 2**53, ``|exp10| <= 22``: one correctly rounded multiply or divide)
misses most shortest reprs of doubles ("199.95999999999998" has 17 digits, above 2**53), so this module adds the
Eisel-Lemire algorithm (Lemire, "Number Parsing at a Gigabyte per Second", 2021; Go's ``strconv.eiselLemire64``
and the fast_float library): the mantissa times a 128-bit approximation of ``10**exp10`` gives the correctly
rounded double, or says that it cannot decide (a possible halfway case, a subnormal or infinite result, an
exponent outside the table), in which case the caller keeps its exact slow path.  Whenever ``ok`` the value is
``float(text)`` bit for bit.

Examples
--------
>>> to_float(19995999999999998, -14, True, False, POW10)
(True, 199.95999999999998)
>>> eisel_lemire(np.uint64(17976931348623157), 292, True)
(True, -1.7976931348623157e+308)
>>> eisel_lemire(np.uint64(45035996273704965), -1, False)  # 2**52 + 0.5: halfway, and 10**-1 is inexact
(False, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numba
import numba.extending
import numpy as np
import numpy.typing as npt
from numba.cpython.unsafe.numbers import leading_zeros

__all__ = ["MAX_EXP10", "MIN_EXP10", "POW10", "eisel_lemire", "to_float"]

MIN_EXP10 = -342  # below, even 2**64 * 10**exp10 rounds to a subnormal or zero: declined anyway
MAX_EXP10 = 308  # above, even 1 * 10**exp10 overflows


def _power_table() -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """128-bit mantissas of ``5**q`` for ``q`` in ``[MIN_EXP10, MAX_EXP10]``, as (high, low) uint64 words.

    ``10**q = 5**q * 2**q``, and the power of two goes to the exponent, so only ``5**q`` needs a mantissa,
    normalized so that bit 127 is set.  ``q >= 0``: ``5**q`` shifted left to 128 bits, or truncated to its top 128
    bits.  ``q < 0``: ``2**b // 5**-q + 1`` (never exact, so this is the quotient rounded up) with ``b`` giving at
    least 128 bits, then truncated to 128.  This is the table of fast_float and Go's ``detailedPowersOfTen``; the
    algorithm's error bounds assume exactly these values.
    """
    hi = np.empty(MAX_EXP10 - MIN_EXP10 + 1, dtype=np.uint64)
    lo = np.empty_like(hi)
    mask = (1 << 64) - 1
    for q in range(MIN_EXP10, MAX_EXP10 + 1):
        if q >= 0:
            c = 5**q
            shift = c.bit_length() - 128
            c = c >> shift if shift > 0 else c << -shift
        else:
            power5 = 5**-q
            z = (power5 - 1).bit_length()  # smallest z with 2**z >= 5**-q
            c = (1 << (z + 127 if q >= -27 else 2 * z + 128)) // power5 + 1
            c >>= max(0, c.bit_length() - 128)
        hi[q - MIN_EXP10] = c >> 64
        lo[q - MIN_EXP10] = c & mask
    return hi, lo


_POW5_HI, _POW5_LO = _power_table()
# 2**(e - 1075) for a biased exponent e in [0, 2046]: m * _POW2[e] is the double with mantissa m (53 bits, hidden
# bit included) and biased exponent e, built by one exact multiply instead of a bit cast
_POW2 = np.array([2.0 ** (e - 1075) for e in range(2047)], dtype=np.float64)
POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)  # all exactly representable: Clinger's path

_TWO53 = np.uint64(1 << 53)
_M32 = np.uint64(0xFFFFFFFF)
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_LOW9 = np.uint64(0x1FF)
_EXACT_POW5 = 27  # 5**q < 2**64 up to here: the table's high word is 5**q exactly (shifted), its low word zero
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U3 = np.uint64(3)
_U9 = np.uint64(9)
_U10 = np.uint64(10)
_U32 = np.uint64(32)
_U63 = np.uint64(63)


def _clz_py(x: Any) -> int:
    """Leading zero bits of a nonzero uint64 (in Python; compiled code gets LLVM's ctlz, overloaded below)."""
    return 64 - int(x).bit_length()


def _clz_impl(x: Any) -> Callable[[Any], int]:
    # compiled code gets one instruction instead of Python's bit_length: Eisel-Lemire on 17-digit reprs ~18 -> ~12 ns
    def clz(x: Any) -> int:
        return int(leading_zeros(x))

    return clz


numba.extending.overload(_clz_py, inline="always")(_clz_impl)


def _mul128_py(a: Any, b: Any) -> tuple[Any, Any]:
    """(high, low) words of the 128-bit product of two uint64, from 32-bit halves (no sum here can wrap)."""
    a_lo = a & _M32
    a_hi = a >> _U32
    b_lo = b & _M32
    b_hi = b >> _U32
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    mid = (p0 >> _U32) + (p1 & _M32) + (p2 & _M32)
    low = ((mid & _M32) << _U32) | (p0 & _M32)
    high = a_hi * b_hi + (p1 >> _U32) + (p2 >> _U32) + (mid >> _U32)
    return high, low


def _eisel_lemire_py(man: Any, exp10: int, neg: bool) -> tuple[bool, float]:
    """(ok, value): value == float of ``man * 10**exp10`` (sign applied) bit for bit when ok.

    ``man`` is a uint64.  Not ok: a result that may lie exactly halfway between two doubles (a tie can only be
    told for ``0 <= exp10 <= 27``, where the product is exact), a subnormal or infinite result, or ``exp10``
    outside ``[MIN_EXP10, MAX_EXP10]``.  Every carry test is a comparison, never a wrapping sum, so the Python
    version raises no overflow warning and the compiled one relies on no wrap-around.
    """
    if man == _U0:
        return True, -0.0 if neg else 0.0
    if exp10 < MIN_EXP10 or exp10 > MAX_EXP10:
        return False, 0.0
    clz = _clz_py(man)
    man = man << np.uint64(clz)
    # floor(exp10 * log2(10)) + 64 + bias - clz: the exponent if the product's top bit is bit 127
    ret_exp2 = ((217706 * exp10) >> 16) + 64 + 1023 - clz
    x_hi, x_lo = _mul128(man, _POW5_HI[exp10 - MIN_EXP10])
    # the low 9 bits of x_hi are all ones and x_lo + man carries: the truncated table word may matter, widen
    if x_hi & _LOW9 == _LOW9 and x_lo > _M64 - man:
        y_hi, y_lo = _mul128(man, _POW5_LO[exp10 - MIN_EXP10])
        merged_hi = x_hi
        if y_hi > _M64 - x_lo:  # x_lo + y_hi carries
            merged_lo = y_hi - (_M64 - x_lo) - _U1
            merged_hi = merged_hi + _U1
        else:
            merged_lo = x_lo + y_hi
        if merged_hi & _LOW9 == _LOW9 and merged_lo == _M64 and y_lo > _M64 - man:
            return False, 0.0
        x_hi = merged_hi
        x_lo = merged_lo
    msb = x_hi >> _U63
    ret_mantissa = x_hi >> (msb + _U9)
    if msb == _U0:
        ret_exp2 -= 1
    # the dropped bits are all zero and the kept ones end in 01: maybe exactly halfway, round-to-even undecidable
    if x_lo == _U0 and x_hi & _LOW9 == _U0 and ret_mantissa & _U3 == _U1:
        if exp10 < 0 or exp10 > _EXACT_POW5:
            return False, 0.0
        # the table word is 5**exp10 itself, so the product is exact: a true tie if no dropped bit is set (with msb
        # set, bit 9 is dropped too), which rounds to even, i.e. down (fast_float does the same for exp10 <= 23)
        if x_hi & ((_U1 << (msb + _U9)) - _U1) == _U0:
            ret_mantissa = ret_mantissa - _U1
    ret_mantissa = (ret_mantissa + (ret_mantissa & _U1)) >> _U1  # 54 to 53 bits, rounding half up
    if ret_mantissa >> np.uint64(53) != _U0:
        ret_mantissa = ret_mantissa >> _U1
        ret_exp2 += 1
    if ret_exp2 <= 0 or ret_exp2 >= 0x7FF:  # subnormal, or infinite
        return False, 0.0
    value = float(ret_mantissa) * float(_POW2[ret_exp2])
    return True, -value if neg else value


def _to_float_py(man: Any, exp10: int, exact: bool, neg: bool, pow10: Any) -> tuple[bool, float]:
    """(ok, value) for the parsed decimal ``man * 10**exp10``: Clinger's one-operation path, else Eisel-Lemire.

    ``man`` (int64 or uint64, non-negative) must hold every digit (``exact``); a truncated one declines.
    ``pow10`` holds ``10.0**k`` for k in 0..22 (:data:`POW10`).
    """
    if not exact:
        return False, 0.0
    m = np.uint64(man)
    # no chained ``-22 <= exp10 <= 22``, and one multiply or one divide rather than ``v = x; if e > 0: v *= ..;
    # elif e < 0: v /= ..``: numba compiles either form to ~20 ns a number, this one to ~2 ns
    if m <= _TWO53 and exp10 >= -22 and exp10 <= 22:
        if exp10 >= 0:
            v = float(m) * pow10[exp10]
        else:
            v = float(m) / pow10[-exp10]
        return True, -v if neg else v
    ok, value = _eisel_lemire(m, exp10, neg)
    if not ok and exp10 < 0 and m % _U10 == _U0:
        # "23811754347708938.0": a tie, undecidable while 10**exp10 < 1 is inexact in the table; without the
        # trailing zeros the exponent may reach 0, where the product is exact and the tie is told
        while exp10 < 0 and m % _U10 == _U0:
            m = m // _U10
            exp10 += 1
        ok, value = _eisel_lemire(m, exp10, neg)
    return ok, value


def _jit(fn: Callable[..., Any], inline: str = "never") -> Callable[..., Any]:
    return cast(Callable[..., Any], numba.njit(cache=True, nogil=True, error_model="numpy", inline=inline)(fn))


_mul128 = _jit(_mul128_py, "always")
_eisel_lemire = _jit(_eisel_lemire_py)
# inlined into callers' kernels at numba IR level, like _fastjson's per-token helpers; Eisel-Lemire stays a call
eisel_lemire = _eisel_lemire
to_float = _jit(_to_float_py, "always")
