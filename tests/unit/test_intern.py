"""String interning: codes must name the right strings on every path (views, Python, Polars)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
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


def _no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: Interner, series: pl.Series) -> None:
        raise AssertionError("took the Polars path")

    monkeypatch.setattr(Interner, "_from_polars", fail)


def test_long_strings_take_the_view_path_and_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_fallback(monkeypatch)
    interner = Interner()
    # Same length and 4-byte prefix (only the hash and the bytes tell them apart), and a 13-byte perpetual.
    options = ["BTC/USD:BTC-250606-96000-C", "BTC/USD:BTC-250606-96000-P", "BTC/USD:BTC-250606-94000-C"]
    _check(interner, pl.Series("s", [*options, "BTC/USDT:USDT", "okx"] * 40))
    # Later calls compare against the bytes the interner kept, not the first series' buffers.
    _check(interner, pl.Series("s", ["BTC/USD:BTC-250606-96000-P", "ETH/USDT:USDT", *options] * 30))
    assert sorted(interner.names) == sorted({*options, "BTC/USDT:USDT", "okx", "ETH/USDT:USDT"})


def test_long_strings_from_several_data_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_fallback(monkeypatch)
    interner = Interner()
    # Polars starts a new data buffer once one fills (8 KiB first), so long rows point into several buffers.
    values = [f"{'ETH' if i % 2 else 'BTC'}/USD:X-{i % 50:04d}-{'C' if i % 3 else 'P'}" for i in range(2_000)]
    series = pl.Series("s", values)
    assert len(series.to_arrow(compat_level=pl.CompatLevel.newest()).buffers()) > 3
    _check(interner, series)
    _check(interner, series.slice(777, 300))


def test_too_many_data_buffers_fall_back_exactly() -> None:
    interner = Interner()
    values = [f"instrument-{i:06d}-with-a-long-name" for i in range(20_000)]  # more than 4 data buffers
    _check(interner, pl.Series("s", values))


@settings(max_examples=40, deadline=None)
@given(n_names=st.integers(1, 400), seed=st.integers(0, 2**32 - 1), long=st.booleans())
def test_many_names_in_random_order_evict_cache_entries_exactly(n_names: int, seed: int, long: bool) -> None:
    # More distinct views than the kernel's per-call cache holds, in random order: entries collide and are
    # replaced, and every row must still get its own name's code.
    rng = np.random.default_rng(seed)
    names = [f"{'L' * 13 if long else ''}v{i}" for i in range(n_names)]
    values = [names[k] for k in rng.integers(0, n_names, 3_000).tolist()]
    interner = Interner(table=2048)
    _check(interner, pl.Series("s", values))
    _check(interner, pl.Series("s", values[::-1]))
