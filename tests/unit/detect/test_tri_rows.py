"""The triangular detector's compiled row pass against arbkit.align's row checks and a NumPy selection."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from arbkit.align import _reason_codes
from arbkit.detect._tri_kernels import timeline_rows
from arbkit.schema import QuoteFlag

VALUES = [np.nan, np.inf, -np.inf, -1.0, 0.0, 0.5, 1.0, 2.0]


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 40), wide_flags=st.booleans())
def test_rows_match_align_checks(seed: int, n: int, wide_flags: bool) -> None:
    rng = np.random.default_rng(seed)
    bid, ask, bid_size, ask_size = (rng.choice(VALUES, n).astype(np.float64) for _ in range(4))
    flags: npt.NDArray[np.integer[Any]] = rng.choice([0, 1, 2, 4, 8, 16, 32, 64], n).astype(
        np.int64 if wide_flags else np.uint16
    )
    clock = rng.integers(0, 5, n).cumsum() - rng.integers(0, 2, n) * rng.integers(0, 3, n)  # mostly sorted
    n_pairs = 6
    pair = rng.integers(0, n_pairs, n)
    spot, known = rng.random(n_pairs) < 0.7, rng.random(n_pairs) < 0.8
    cell = rng.integers(-1, 4, n_pairs)
    blocking = int(QuoteFlag.blocking())
    reason, counts, take, ordered, columns, row_cell = timeline_rows(
        (bid, ask, bid_size, ask_size, flags, clock), blocking, pair, (spot, known, cell)
    )
    want = _reason_codes(bid, ask, bid_size, ask_size, flags, known[pair])
    assert reason.tolist() == want.tolist()
    assert counts.tolist() == np.bincount(want, minlength=counts.shape[0]).tolist()
    rows = np.flatnonzero(spot[pair])
    assert take.tolist() == rows.tolist()
    assert ordered == bool((np.diff(clock[rows]) >= 0).all())
    expected: tuple[npt.NDArray[Any], ...] = (bid, bid_size, ask, ask_size, clock, want)
    got_columns: tuple[npt.NDArray[Any], ...] = columns
    for got, values in zip(got_columns, expected, strict=True):
        assert got.tobytes() == values[rows].tobytes()
    assert row_cell.tolist() == cell[pair[rows]].tolist()
