"""The cross-exchange detector's column-wise episode builder against :func:`~arbkit.detect._episodes.to_opportunities`
(the shared builder, with hashlib ids and a Polars sort), ties of ``(ts_start, id)`` included."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arbkit.detect._cross_exchange as module
from arbkit.detect import _cross_kernels as kernels
from arbkit.detect._episodes import to_opportunities
from arbkit.schema import OPPORTUNITIES

STATE = module.CrossExchangeState.empty()
SYMBOLS = ("BTC/USDT", "BTC/USDT:USDT", "ETH/USDT")
VENUES = ("binance", "bybit", "okx")


def _reference(candidate: np.ndarray, ints: np.ndarray, floats: np.ndarray, status: str) -> pl.DataFrame:
    n_ven = len(VENUES)
    rows = []
    for c, row_i, row_f in zip(candidate.tolist(), ints.tolist(), floats.tolist(), strict=True):
        s, rest = divmod(c, n_ven * n_ven)
        buy, sell = VENUES[rest // n_ven], VENUES[rest % n_ven]
        i = dict(zip(kernels.OPEN_I, row_i, strict=True))
        f = dict(zip(kernels.OPEN_F, row_f, strict=True))
        legs = [
            {"exchange": buy, "symbol": SYMBOLS[s], "side": "buy", "price": f["buy_fill"], "size": f["size"]},
            {"exchange": sell, "symbol": SYMBOLS[s], "side": "sell", "price": f["sell_fill"], "size": f["size"]},
        ]
        rows.append(
            {"kind": module.KIND, "key": f"{SYMBOLS[s]}|{buy}|{sell}", "ts_start": i["ts_start"],
             "ts_end": i["ts_end"], "symbol": SYMBOLS[s], "legs": legs, "buy_exchange": buy, "sell_exchange": sell,
             **{k: f[k] for k in ("buy_price", "sell_price", "size", "profit", "peak_profit", "profit_percentage")},
             "confidence": f["confidence"], "rows": i["rows"]}
        )  # fmt: skip
    return to_opportunities(pl.DataFrame(rows), status)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(1, 60), status=st.sampled_from(["expired", "active"]))
def test_many_builder_equals_the_shared_one(data: st.DataObject, n: int, status: str) -> None:
    # Few candidates and few start times, so equal (ts_start, id) rows occur (episodes of one candidate that
    # start at the same clock: a burst of equal timestamps).
    candidate = np.array(data.draw(st.lists(st.integers(0, 26), min_size=n, max_size=n)), dtype=np.int64)
    ts = data.draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n))
    rows = data.draw(st.lists(st.integers(1, 70), min_size=n, max_size=n))
    ints = np.array([[k, k + r, t, t + r, r] for k, (t, r) in enumerate(zip(ts, rows, strict=True))], dtype=np.int64)
    floats = np.array(
        data.draw(st.lists(st.lists(st.floats(0.01, 1e6), min_size=9, max_size=9), min_size=n, max_size=n))
    )
    state = module.CrossExchangeState(SYMBOLS, VENUES, *(getattr(STATE, f) for f in ("cells", "next_seq")),
                                      STATE.open_i, STATE.open_f, {})  # fmt: skip
    got = module._many_episodes(
        state,
        candidate,
        {name: floats[:, j] for j, name in enumerate(kernels.OPEN_F)},
        {name: ints[:, j] for j, name in enumerate(kernels.OPEN_I)},
        status,
    )
    expected = _reference(candidate, ints, floats, status)
    assert got.schema == expected.schema == OPPORTUNITIES.polars
    assert got.equals(expected)


@pytest.mark.parametrize("ties", [False, True])
def test_many_builder_sorts_by_start_then_id(ties: bool) -> None:
    n = 3_000  # beyond the shared builder's Python sort: ties are ordered by Polars
    candidate = np.arange(n, dtype=np.int64) % 27
    ts = np.zeros(n, dtype=np.int64) if ties else np.arange(n, dtype=np.int64)[::-1] // 3
    ints = np.column_stack([np.arange(n), np.arange(n), ts, ts + 1, np.ones(n, dtype=np.int64)])
    floats = np.ones((n, 9))
    state = module.CrossExchangeState(SYMBOLS, VENUES, STATE.cells, STATE.next_seq, STATE.open_i, STATE.open_f, {})
    got = module._many_episodes(
        state,
        candidate,
        {name: floats[:, j] for j, name in enumerate(kernels.OPEN_F)},
        {name: ints[:, j] for j, name in enumerate(kernels.OPEN_I)},
        "expired",
    )
    assert got.equals(got.sort("ts_start", "id"))
    assert got.equals(_reference(candidate, ints, floats, "expired"))
