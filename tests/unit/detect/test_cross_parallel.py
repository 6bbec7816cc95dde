"""The two-thread scan of big batches (each thread owns a range of symbols) against the one-thread scan."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arbkit.detect._cross_exchange as module
from arbkit.detect._cross_exchange import CrossExchangeParams, CrossExchangeState, detect_cross_exchange
from arbkit.detect._cross_exchange import finish_cross_exchange as finish
from arbkit.pipeline import states_equal
from arbkit.testing import quote_frames

PARAMS = CrossExchangeParams(max_notional=50_000.0)
SYMBOLS = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 150.0, "BTC/USDT:USDT": 60_010.0}


def _run(frames: list[pl.DataFrame]) -> tuple[pl.DataFrame, CrossExchangeState]:
    state = CrossExchangeState.empty()
    outs = []
    for frame in frames:
        out, state = detect_cross_exchange(frame, state, PARAMS)
        outs.append(out)
    return pl.concat([*outs, finish(state, PARAMS)]), state


@settings(max_examples=60, deadline=None)
@given(
    frame=quote_frames(max_rows=120, invalid=True, symbols=SYMBOLS, max_gap_ms=300, dislocation=0.01),
    by_symbol=st.booleans(),
    cut=st.integers(0, 120),
    shuffled=st.booleans(),
)
def test_two_threads_equal_one(frame: pl.DataFrame, by_symbol: bool, cut: int, shuffled: bool) -> None:
    if by_symbol:  # a store file's order
        frame = frame.sort("symbol", maintain_order=True)
    if shuffled:  # out of clock order: both threads give up and the batch is scanned in canonical order
        frame = frame.sample(fraction=1.0, shuffle=True, seed=cut)
    frames = [frame.head(cut), frame.slice(cut)]
    one, one_state = _run(frames)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "_PARALLEL_ROWS", 1)
        patch.setattr(module, "_CPUS", 2)
        two, two_state = _run(frames)
    assert one.equals(two)
    assert states_equal(one_state, two_state)


def test_halves_split_the_rows() -> None:
    import numpy as np

    sym = np.repeat(np.arange(4, dtype=np.int32), [10, 10, 10, 10])
    assert module._halves(sym, 4).tolist() == [0, 0, 1, 1]
    assert module._halves(np.zeros(100, dtype=np.int32), 3).tolist() == [0, 1, 1]  # never an empty side
    assert module._halves(np.repeat(np.arange(2, dtype=np.int32), [99, 1]), 2).tolist() == [0, 1]


def _child_submits() -> None:
    assert module._pool().submit(int, "7").result(timeout=60) == 7


def test_a_forked_child_gets_its_own_helper_thread() -> None:
    # (Polars itself is not fork-safe, so the child only uses the pool.)
    import multiprocessing

    _child_submits()  # the parent's pool and its thread exist now
    child = multiprocessing.get_context("fork").Process(target=_child_submits)
    child.start()
    child.join(timeout=120)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
