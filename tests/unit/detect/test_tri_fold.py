"""The compiled episode fold of the triangular detector against the NumPy runs-and-merge it replaced."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from arbkit.detect._confidence import depth_factor, freshness, row_confidence
from arbkit.detect._tri_kernels import fold_runs, group_runs

LEGS = 4
N_COLUMNS = 5


def _reference(
    hits: Any, time: Any, seq0: int, n_rows: int, per_column: Any, open_episodes: Any
) -> tuple[list[Any], list[Any]]:
    """Runs by group_runs and NumPy, then the merge with the open episodes, as the detector did before."""
    cycle, start, stop, amount, profit, growth, trade, column, price, size, displayed, quote_time = hits
    latency_ms, max_age_ms = per_column
    first, last, rows, peak = group_runs(cycle, start, stop, profit)
    first_row, last_row = start[first], stop[last] - 1
    t, c = trade[last], column[last]
    age_ms = (time[last_row][:, None] - quote_time[last]) / 1e6
    leg_fresh = np.where(t, freshness(age_ms, latency_ms[c], max_age_ms[c]), 1.0)
    leg_depth = np.where(t, depth_factor(size[last], displayed[last]), 1.0)
    runs = [
        cycle[first], seq0 + first_row, seq0 + last_row, time[first_row], time[last_row], rows, amount[last],
        profit[last], peak, 100.0 * (growth[last] - 1.0), row_confidence(leg_fresh.min(axis=1), leg_depth.min(axis=1)),
        np.where(t, price[last], 0.0), np.where(t, size[last], 0.0),
    ]  # fmt: skip
    o_cycle, o_seq_start, o_seq_last, o_ts_start, _, o_rows, _, _, o_peak, *_ = open_episodes
    continued = np.zeros(o_cycle.shape[0], dtype=np.bool_)
    for j in range(runs[0].shape[0]):
        (at,) = np.flatnonzero(o_cycle == runs[0][j])[:1].tolist() or [-1]
        if at >= 0 and o_seq_last[at] + 1 == runs[1][j]:
            continued[at] = True
            runs[1][j], runs[3][j], runs[5][j] = o_seq_start[at], o_ts_start[at], runs[5][j] + o_rows[at]
            runs[8][j] = max(o_peak[at], runs[8][j])
    reaches_end = runs[2] + 1 >= seq0 + n_rows
    still = [a[reaches_end] for a in runs]
    closed = [np.concatenate([a[~reaches_end], b[~continued]]) for a, b in zip(runs, open_episodes, strict=True)]
    return still, closed


@st.composite
def _batches(draw: st.DrawFn) -> tuple[Any, ...]:
    n_rows = draw(st.integers(1, 30))
    n_cycles = draw(st.integers(1, 5))
    seq0 = draw(st.integers(0, 50))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    time = np.sort(rng.integers(0, 10**10, n_rows))
    units = []
    for k in range(n_cycles):  # each cycle's rows cut into spans; some spans are hits
        cuts = np.unique(np.concatenate([[0, n_rows], rng.integers(0, n_rows + 1, rng.integers(0, 6))]))
        units += [(k, a, b) for a, b in itertools.pairwise(cuts.tolist()) if rng.random() < 0.6]
    if not units:
        units = [(0, 0, n_rows)]
    rng.shuffle(units)  # type: ignore[arg-type]
    u = len(units)
    cycle, start, stop = (np.array([x[i] for x in units], dtype=np.int64) for i in range(3))
    trade = rng.random((u, LEGS)) < 0.8
    trade[:, 0] = True
    displayed = np.where(rng.random((u, LEGS)) < 0.1, rng.choice([0.0, np.nan]), rng.exponential(2.0, (u, LEGS)))
    hits = (
        cycle, start, stop, rng.exponential(100.0, u), rng.normal(1.0, 1.0, u), 1 + rng.exponential(0.01, u),
        trade, rng.integers(0, N_COLUMNS, (u, LEGS)), rng.exponential(100.0, (u, LEGS)),
        rng.exponential(1.0, (u, LEGS)), displayed, time.min() - rng.integers(0, 5 * 10**9, (u, LEGS)),
    )  # fmt: skip
    per_column = (rng.uniform(0, 100, N_COLUMNS), np.where(rng.random(N_COLUMNS) < 0.2, 0.0, 1_000.0))
    o_cycle = np.flatnonzero(rng.random(n_cycles) < 0.5).astype(np.int64)
    m = o_cycle.shape[0]
    o_seq_last = seq0 - 1 - rng.integers(0, 2, m)  # some end right before the batch
    open_episodes = (
        o_cycle, o_seq_last - rng.integers(0, 5, m), o_seq_last, rng.integers(0, 10**10, m),
        rng.integers(0, 10**10, m), rng.integers(1, 9, m), *(rng.normal(1.0, 1.0, m) for _ in range(5)),
        rng.random((m, LEGS)), rng.random((m, LEGS)),
    )  # fmt: skip
    return hits, time, seq0, n_rows, per_column, open_episodes


@settings(max_examples=200, deadline=None)
@given(batch=_batches())
def test_fold_matches_numpy_runs_and_merge(batch: tuple[Any, ...]) -> None:
    still, closed = fold_runs(*batch)
    want_still, want_closed = _reference(*batch)
    for got, want in ((still, want_still), (closed, want_closed)):
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert a.dtype == b.dtype
            assert a.shape == b.shape
            assert a.tobytes() == b.tobytes()  # bit for bit, NaN included
