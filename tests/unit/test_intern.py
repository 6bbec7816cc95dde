"""String interning: codes must name the right strings on every path (views, Python, Polars)."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from arbkit._intern import Interner

# Short (inline in an Arrow view), exactly 12 and 13 bytes, multi-byte UTF-8, empty.
NAMES = st.sampled_from(["okx", "binance", "BTC/USDT", "ABCDEFGHIJKL", "BTC/USDT:USDT", "ÉTH/€", "", "x" * 40])


def _check(interner: Interner, series: pl.Series) -> None:
    codes = interner.codes(series)
    expected = [v if v is not None else "" for v in series.to_list()]
    assert [interner.names[c] for c in codes.tolist()] == expected
    assert len(set(interner.names)) == len(interner.names)


@settings(max_examples=80, deadline=None)
@given(
    parts=st.lists(st.lists(NAMES, min_size=0, max_size=200), min_size=1, max_size=4),
    repeat=st.integers(1, 300),
)
def test_codes_name_the_values_whatever_the_path(parts: list[list[str]], repeat: int) -> None:
    interner = Interner(table=64)
    for values in parts:
        # Multi-chunk series (not rechunked) and long runs exercise the view path chunk by chunk.
        series = pl.concat([pl.Series("s", values * repeat, dtype=pl.String), pl.Series("s", values)], rechunk=False)
        _check(interner, series)


def test_codes_are_stable_across_calls_and_paths() -> None:
    interner = Interner()
    small = pl.Series("s", ["okx", "binance"])  # Python path
    big = pl.Series("s", ["binance", "kraken", "okx"] * 1000)  # view path
    first = interner.codes(small).tolist()
    assert interner.codes(big)[:3].tolist() == [first[1], 2, first[0]]
    assert interner.codes(small).tolist() == first


def test_long_strings_nulls_and_other_dtypes_fall_back_exactly() -> None:
    interner = Interner()
    _check(interner, pl.Series("s", ["BTC/USDT:USDT", "ETH/USDT"] * 100))  # 13 bytes: not inline
    _check(interner, pl.Series("s", ["okx", None] * 100))
    codes = interner.codes(pl.Series("s", ["okx", "okx"] * 50, dtype=pl.Categorical))
    assert {interner.names[c] for c in codes.tolist()} == {"okx"}
    # The view table still works after a fallback.
    _check(interner, pl.Series("s", ["okx", "ETH/USDT", "new"] * 100))


def test_a_full_table_falls_back_and_keeps_codes() -> None:
    interner = Interner(table=16)  # fast path for at most 8 names
    values = [f"n{i}" for i in range(50)] * 3
    _check(interner, pl.Series("s", values))
    _check(interner, pl.Series("s", values[::-1]))


def test_lut_maps_codes_to_positions_in_sorted_names() -> None:
    interner = Interner()
    ids = interner.codes(pl.Series("s", ["okx", "binance", "kraken"] * 30))
    names = ("binance", "bybit", "kraken", "okx")
    lut = interner.lut(names)
    assert [names[i] for i in lut[ids][:3].tolist()] == ["okx", "binance", "kraken"]
    assert interner.lut(("okx",)).tolist() == [0, -1, -1]
    assert np.array_equal(interner.lut(names), lut)
