"""The compiled decimal -> float64 conversion equals Python's ``float(text)`` bit for bit, or declines.

Python's ``float`` (David Gay's correctly rounded strtod) is the independent reference throughout.
"""

from __future__ import annotations

import math
import random
import struct
import sys
from collections.abc import Callable
from typing import Any, cast

import numba
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from live.adapters._float import (
    _POW5_HI,
    _POW5_LO,
    MAX_EXP10,
    MIN_EXP10,
    POW10,
    _eisel_lemire_py,
    _to_float_py,
    eisel_lemire,
    to_float,
)


def _decimal(text: str) -> tuple[int, int, bool]:
    """(mantissa, exp10, negative) of a decimal text, every digit kept while the mantissa fits a uint64."""
    neg = text.startswith("-")
    body, _, exp_text = text.lstrip("+-").lower().partition("e")
    whole, _, frac = body.partition(".")
    man = int(whole + frac)
    exp10 = (int(exp_text) if exp_text else 0) - len(frac)
    while man >= 1 << 64 and man % 10 == 0:
        man //= 10
        exp10 += 1
    assert man < 1 << 64, text
    return man, exp10, neg


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _check(text: str, ok: bool, value: float) -> None:
    if ok:
        assert _bits(value) == _bits(float(text)), (text, float(value).hex(), float(text).hex())
    else:
        assert value == 0.0


@st.composite
def _texts(draw: st.DrawFn) -> str:
    """Decimal texts with 1-19 significant digits, a random point, leading/trailing zeros, exponent -350..320."""
    n = draw(st.integers(1, 19))
    significant = str(draw(st.integers(10 ** (n - 1), 10**n - 1)))
    digits = "0" * draw(st.integers(0, 3)) + significant + "0" * draw(st.integers(0, 4))
    point = draw(st.integers(0, len(digits)))
    whole, frac = digits[:point] or "0", digits[point:]
    text = whole + ("." + frac if frac else "")
    if draw(st.booleans()):
        text += "e" + str(draw(st.integers(-350, 320)))
    return ("-" if draw(st.booleans()) else "") + text


@settings(max_examples=1000, deadline=None)
@given(text=_texts())
def test_random_decimals_convert_exactly_or_decline(text: str) -> None:
    man, exp10, neg = _decimal(text)
    ok, value = eisel_lemire(np.uint64(man), exp10, neg)
    _check(text, ok, value)
    if man < 1 << 63:  # the int64 mantissa the JSON readers hold
        ok2, value2 = to_float(man, exp10, True, neg, POW10)
        _check(text, ok2, value2)
        assert ok2 or not ok  # Clinger's path never loses a number Eisel-Lemire takes
    assert to_float(np.uint64(man), exp10, False, neg, POW10) == (False, 0.0)  # a truncated mantissa declines


@settings(max_examples=300, deadline=None)
@given(text=_texts())
def test_python_version_agrees_with_the_compiled_one(text: str) -> None:
    man, exp10, neg = _decimal(text)
    ok, value = _eisel_lemire_py(np.uint64(man), exp10, neg)
    compiled_ok, compiled_value = eisel_lemire(np.uint64(man), exp10, neg)
    assert (ok, _bits(value)) == (compiled_ok, _bits(compiled_value))
    _check(text, ok, value)
    if man < 1 << 63:
        ok2, value2 = _to_float_py(man, exp10, True, neg, POW10)
        _check(text, ok2, value2)


@settings(max_examples=500, deadline=None)
@given(data=st.data(), exp10=st.integers(-4, 23), neg=st.booleans())
def test_exact_ties_round_to_even_or_decline(data: st.DataObject, exp10: int, neg: bool) -> None:
    """Decimals exactly halfway between two doubles: an odd 54-bit integer times a power of two."""
    if exp10 >= 0:  # man * 5**exp10 odd and 54 bits wide
        lo, hi = -(-(1 << 53) // 5**exp10), ((1 << 54) - 1) // 5**exp10
        man = data.draw(st.integers(lo // 2, (hi - 1) // 2)) * 2 + 1
    else:  # man / 5**-exp10 odd and 54 bits wide
        man = (data.draw(st.integers(1 << 52, (1 << 53) - 1)) * 2 + 1) * 5**-exp10
    text = ("-" if neg else "") + f"{man}e{exp10}"
    ok, value = eisel_lemire(np.uint64(man), exp10, neg)
    _check(text, ok, value)
    assert ok or exp10 < 0  # where the product is exact, every tie is decided


def _convert_all_py(
    mants: npt.NDArray[np.int64], exps: npt.NDArray[np.int64], negs: npt.NDArray[np.bool_], pow10: Any
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """to_float called from other compiled code, as the JSON readers call it."""
    oks = np.empty(mants.shape[0], dtype=np.bool_)
    out = np.empty(mants.shape[0], dtype=np.float64)
    for i in range(mants.shape[0]):
        oks[i], out[i] = to_float(mants[i], exps[i], True, negs[i], pow10)
    return oks, out


_convert_all = cast(Callable[..., Any], numba.njit(cache=False)(_convert_all_py))


def _convert_texts(
    texts: list[str], dtype: type[np.integer[Any]] = np.int64
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    parsed = [_decimal(t) for t in texts]
    mants = np.array([p[0] for p in parsed], dtype=dtype)
    exps = np.array([p[1] for p in parsed], dtype=np.int64)
    negs = np.array([p[2] for p in parsed], dtype=np.bool_)
    oks, out = _convert_all(mants, exps, negs, POW10)
    return oks, out


def test_many_random_decimals_convert_exactly_and_almost_all_in_the_normal_range() -> None:
    """The hypothesis test's texts in bulk (seeded), through the compiled kernel with uint64 mantissas."""
    rng = random.Random(5)
    texts = []
    for _ in range(100_000):
        n = rng.randint(1, 19)
        digits = "0" * rng.randint(0, 3) + str(rng.randint(10 ** (n - 1), 10**n - 1)) + "0" * rng.randint(0, 4)
        point = rng.randint(0, len(digits))
        text = (digits[:point] or "0") + ("." + digits[point:] if digits[point:] else "")
        texts.append(text + f"e{rng.randint(-350, 320)}" if rng.random() < 0.5 else text)
    oks, out = _convert_texts(texts, np.uint64)
    expected = np.array([float(t) for t in texts], dtype=np.float64)
    assert out[oks].tobytes() == expected[oks].tobytes()
    normal = (np.abs(expected) >= sys.float_info.min) & np.isfinite(expected)  # no text here is zero
    assert normal.sum() > 50_000
    assert oks[normal].mean() >= 0.999
    assert not oks[~normal].any()  # zero (underflow), subnormal and infinite results always decline


def test_shortest_reprs_of_random_doubles_all_convert_exactly() -> None:
    """The simulator's and most venues' texts: ``repr`` of doubles, mostly 16-17 significant digits."""
    rng = np.random.default_rng(7)
    prices = zip(rng.uniform(0.0, 100_000.0, 20_000).tolist(), rng.integers(0, 9, 20_000).tolist(), strict=True)
    texts = [repr(v) for v in (10.0 ** rng.uniform(-8.0, 12.0, 100_000)).tolist()]
    texts += [repr(round(v, d)) for v, d in prices]  # price-like: few decimals, Clinger's path
    assert sum(len(t.replace(".", "").lstrip("0").partition("e")[0]) >= 17 for t in texts) > 10_000
    oks, out = _convert_texts(texts)
    assert oks.all()
    assert out.tobytes() == np.array([float(t) for t in texts], dtype=np.float64).tobytes()


def test_reprs_over_the_whole_normal_range_are_exact_where_taken() -> None:
    rng = np.random.default_rng(11)
    raw = rng.integers(0, 1 << 63, 50_000, dtype=np.uint64) | np.uint64(1 << 52)  # no zero/subnormal exponent
    values = raw.view(np.float64)
    values = values[np.isfinite(values)]
    texts = [repr(float(v)) for v in values]
    oks, out = _convert_texts(texts)
    assert oks.mean() >= 0.99
    expected = np.array([float(t) for t in texts], dtype=np.float64)
    assert out[oks].tobytes() == expected[oks].tobytes()


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("9007199254740993", True),  # 2**53 + 1: exactly halfway, ties to even (down), told by the exact product
        ("9007199254740995", True),  # halfway, ties to even (up)
        ("4503599627370496.5", False),  # halfway too, but 10**-1 is inexact in the table: undecided
        ("4503599627370497.5", True),  # halfway, rounding up: the approximation from above cannot mislead
        ("23811754347708938.0", True),  # a tie written with a trailing zero: told once the zero is stripped
        ("9007199254740994", True),
        ("2.2250738585072011e-308", False),  # just below the smallest normal: a subnormal result
        ("2.2250738585072014e-308", True),  # the smallest normal
        ("1.7976931348623157e308", True),  # the largest double
        ("1.7976931348623159e308", False),  # rounds to infinity
        ("4.9406564584124654e-324", False),  # the smallest subnormal
        ("1e23", True),  # 5**23 * 2**23, halfway; beyond Clinger's range, the classic misrounding of naive parsers
        ("8.98846567431158e307", True),  # 2**1023
        ("1e309", False),
        ("1e-400", False),
        ("0e999", True),
        ("-0.0", True),
        ("-0e-999", True),
        ("18446744073709551615", True),  # 2**64 - 1: the widest mantissa
        ("9007199254740991.9", True),  # rounds up to 2**53: the 54 -> 53 bit carry moves the exponent
        ("9999999999999999999e-19", True),
        ("0.30000000000000004", True),
        ("199.95999999999998", True),
    ],
)
def test_hard_cases_are_exact_or_declined(text: str, ok: bool) -> None:
    """``ok``: whether to_float decides; eisel_lemire alone may decline more (a tie written with zeros)."""
    man, exp10, neg = _decimal(text)
    el_ok, value = eisel_lemire(np.uint64(man), exp10, neg)
    _check(text, el_ok, value)
    got_ok, value = to_float(np.uint64(man), exp10, True, neg, POW10)
    assert got_ok == ok
    assert got_ok or not el_ok
    _check(text, got_ok, value)
    if man < 1 << 63:
        assert to_float(man, exp10, True, neg, POW10) == (got_ok, value)


def test_signed_zero() -> None:
    for man, exp10 in [(0, 0), (0, 5), (0, -400), (0, 400)]:
        ok, value = to_float(man, exp10, True, True, POW10)
        assert ok
        assert math.copysign(1.0, value) == -1.0
        ok, value = eisel_lemire(np.uint64(man), exp10, False)
        assert ok
        assert math.copysign(1.0, value) == 1.0


def test_power_table_matches_its_definition_and_published_entries() -> None:
    assert (int(_POW5_HI[0]), int(_POW5_LO[0])) == (0xEEF453D6923BD65A, 0x113FAA2906A13B3F)  # 5**-342, fast_float
    assert (int(_POW5_HI[-1 - MIN_EXP10]), int(_POW5_LO[-1 - MIN_EXP10])) == (0xCCCCCCCCCCCCCCCC, 0xCCCCCCCCCCCCCCCD)
    assert (int(_POW5_HI[-MIN_EXP10]), int(_POW5_LO[-MIN_EXP10])) == (1 << 63, 0)
    for q in range(MIN_EXP10, MAX_EXP10 + 1):
        c = int(_POW5_HI[q - MIN_EXP10]) << 64 | int(_POW5_LO[q - MIN_EXP10])
        assert c >> 127 == 1
        # c is 5**q * 2**k, k putting the top bit at 127: exact (q <= 55), truncated above, and for q < 0 within
        # one unit of it (the quotient rounded up, then truncated to 128 bits)
        if q >= 0:
            k = 128 - (5**q).bit_length()
            assert c == (5**q << k if k >= 0 else 5**q >> -k)
        else:
            p = 5**-q
            assert abs(c * p - (1 << (127 + p.bit_length()))) < p
