"""Book depth: the joint walk against a brute-force search over lot multiples, and as-of snapshots."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from arbkit.detect._depth import BookState, book_as_of, joint_walk, ladder_fill, update_books


def _ladder(data: st.DataObject, top: float, sign: float) -> tuple[list[float], list[float]]:
    levels = data.draw(st.integers(1, 4))
    steps = data.draw(st.lists(st.floats(0.0, 0.5), min_size=levels, max_size=levels))
    sizes = data.draw(st.lists(st.sampled_from([0.3, 0.5, 1.0, 1.7, 2.5]), min_size=levels, max_size=levels))
    prices = list(top + sign * np.cumsum([0.0, *steps[1:]]))
    return prices, sizes


def _brute(bp, bs, sp, ss, fee_b, fee_s, cap, lot, min_notional):  # type: ignore[no-untyped-def]
    def fill(prices: list[float], sizes: list[float], q: float) -> float:
        total, left = 0.0, q
        for p, s in zip(prices, sizes, strict=True):
            take = min(s, left)
            total += take * p
            left -= take
        return total if left <= 1e-9 else float("nan")

    best_size, best = 0.0, 0.0
    k = 1
    while True:
        q = k * lot
        cost, proceeds = fill(bp, bs, q), fill(sp, ss, q)
        if not (np.isfinite(cost) and np.isfinite(proceeds)) or cost > cap * (1 + 1e-12):
            break
        profit = proceeds * (1 - fee_s) - cost * (1 + fee_b)
        if cost >= min_notional and profit > best + 1e-12:
            best_size, best = q, profit
        k += 1
    return best_size, best


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    skew=st.floats(-0.5, 1.5),
    lot=st.sampled_from([0.1, 0.25, 0.3]),
    cap=st.floats(50.0, 800.0),
    min_notional=st.sampled_from([0.0, 5.0, 150.0]),
)
def test_joint_walk_matches_brute_force(
    data: st.DataObject, skew: float, lot: float, cap: float, min_notional: float
) -> None:
    bp, bs = _ladder(data, 100.0, 1.0)  # asks rise
    sp, ss = _ladder(data, 100.0 + skew, -1.0)  # bids fall
    fee = 0.001
    levels = 4

    def pad(values: list[float], fill: float) -> np.ndarray:
        return np.array([values + [fill] * (levels - len(values))])

    size, profit = joint_walk(
        buy_price=pad(bp, np.nan),
        buy_size=pad(bs, 0.0),
        sell_price=pad(sp, np.nan),
        sell_size=pad(ss, 0.0),
        buy_fee=np.array([fee]),
        sell_fee=np.array([fee]),
        max_notional=np.array([cap]),
        lot=np.array([lot]),
        min_notional=np.array([min_notional]),
    )
    expected_size, expected = _brute(bp, bs, sp, ss, fee, fee, cap, lot, min_notional)
    assert np.isclose(profit[0], expected, rtol=1e-9, atol=1e-9)
    if expected > 1e-9:
        assert np.isclose(size[0], expected_size, rtol=1e-9)
        assert ladder_fill(pad(bp, np.nan), pad(bs, 0.0), size)[0] <= cap * (1 + 1e-9)
    else:
        assert size[0] == 0.0


def _book(rows: list[tuple[int, str, str, int, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_event": [r[0] for r in rows],
            "ts_recv": [r[0] for r in rows],
            "exchange": ["okx"] * len(rows),
            "symbol": [r[1] for r in rows],
            "side": [r[2] for r in rows],
            "level": pl.Series([r[3] for r in rows], dtype=pl.UInt16),
            "price": [r[4] for r in rows],
            "size": [r[5] for r in rows],
            "flags": pl.Series([0] * len(rows), dtype=pl.UInt16),
        }
    )


def test_snapshot_visible_strictly_before_and_whole_across_a_split() -> None:
    book = _book(
        [
            (10, "BTC/USDT", "ask", 0, 100.0, 1.0),
            (10, "BTC/USDT", "ask", 1, 101.0, 2.0),
            (20, "BTC/USDT", "ask", 0, 102.0, 1.0),
            (20, "BTC/USDT", "ask", 1, 103.0, 2.0),
        ]
    )
    ex, sym = pl.Series(["okx"] * 3), pl.Series(["BTC/USDT"] * 3)
    times = np.array([10, 11, 21])
    whole = book_as_of(BookState.empty(), book, ex, sym, times)
    assert whole[4].tolist() == [-1, 10, 20]
    assert whole[2][1].tolist() == [100.0, 101.0]
    # Split inside the snapshot at 20: the carried half plus the batch half give the same ladders.
    state = update_books(BookState.empty(), book.slice(0, 3))
    split = book_as_of(state, book.slice(3), ex, sym, times)
    assert split[4][2] == 20
    assert split[2][2].tolist() == [102.0, 103.0]
    assert update_books(state, book.slice(3)).frame.equals(update_books(BookState.empty(), book).frame)


def _convert(amount: float, sell: bool, ladder: list[tuple[float, float]], fee: float) -> float:
    """Sequentially convert ``amount`` through one leg's ladder (NaN if the ladder runs out)."""
    out, left = 0.0, amount
    for price, size in ladder:
        capacity = size if sell else size * price
        take = min(capacity, left)
        out += take * price if sell else take / price
        left -= take
    return out * (1 - fee) if left <= 1e-12 * max(amount, 1.0) else float("nan")


@settings(max_examples=80, deadline=None)
@given(data=st.data(), skew=st.floats(-0.01, 0.03), cap=st.floats(10.0, 5_000.0))
def test_cycle_walk_is_optimal_against_a_grid(data: st.DataObject, skew: float, cap: float) -> None:
    from arbkit.detect._depth import cycle_walk

    # USDT -> ETH (buy ETH/USDT) -> BTC (sell ETH/BTC) -> USDT (sell BTC/USDT), consistent up to ``skew``.
    eth, btc, fee, levels = 3_000.0, 60_000.0, 0.0005, 3

    def ladder(top: float, sign: float) -> list[tuple[float, float]]:
        steps = data.draw(st.lists(st.floats(0.0, 0.002), min_size=levels, max_size=levels))
        sizes = data.draw(st.lists(st.floats(0.01, 0.5), min_size=levels, max_size=levels))
        return [(top * (1 + sign * sum(steps[1 : i + 1])), s) for i, s in enumerate(sizes)]

    legs = [
        (False, ladder(eth, 1.0)),  # asks of ETH/USDT, sizes in ETH
        (True, ladder(eth / btc * (1 + skew), -1.0)),  # bids of ETH/BTC
        (True, [(p, s / 10) for p, s in ladder(btc, -1.0)]),  # bids of BTC/USDT, sizes in BTC
    ]
    start, profit, base, _ = cycle_walk(
        sell=np.array([[s for s, _ in legs]]),
        price=np.array([[[p for p, _ in lad] for _, lad in legs]]),
        size=np.array([[[q for _, q in lad] for _, lad in legs]]),
        fee=np.full((1, 3), fee),
        cap=np.array([cap]),
    )

    def net(x: float) -> float:
        amount = x
        for sell, lad in legs:
            amount = _convert(amount, sell, lad, fee)
        return amount - x

    assert start[0] <= cap * (1 + 1e-12)
    if start[0] > 0:
        assert np.isclose(profit[0], net(start[0]), rtol=1e-9, atol=1e-9)
        assert np.isclose(base[0, 0], _convert(start[0], False, legs[0][1], 0.0), rtol=1e-9)
    best = max((net(x) for x in np.linspace(0.0, cap, 400)), key=lambda v: v if np.isfinite(v) else -np.inf)
    assert profit[0] >= (best if np.isfinite(best) else 0.0) - 1e-9
