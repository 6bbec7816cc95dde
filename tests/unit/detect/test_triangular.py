"""Triangular detector: cycle enumeration and profits against loops written here."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from arbkit.detect import kernels
from arbkit.detect._triangular import TriangularParams, TriangularState, build_topology, detect_triangular
from arbkit.detect._triangular import finish_triangular as finish
from arbkit.instruments import default_registry

REG = default_registry()
SYMBOLS = ("BTC/USDT", "ETH/USDT", "ETH/BTC")


def _frame(rows: list[tuple[int, str, str, float, float]], size: float = 5.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_event": [r[0] for r in rows],
            "ts_recv": [r[0] for r in rows],
            "exchange": [r[1] for r in rows],
            "symbol": [r[2] for r in rows],
            "bid": [r[3] for r in rows],
            "bid_size": [size] * len(rows),
            "ask": [r[4] for r in rows],
            "ask_size": [size] * len(rows),
        }
    )


def test_cycles_of_one_venue_triangle() -> None:
    topology = build_topology(tuple(("okx", s) for s in SYMBOLS), 4, ())
    # Two directions of the one triangle; 4-cycles would need a fourth instrument.
    assert len(topology.cycles) == 2
    assert all(c.start == "USDT" for c in topology.cycles)


def test_transfers_connect_venues() -> None:
    columns = tuple((v, s) for v in ("okx", "binance") for s in SYMBOLS)
    alone = build_topology(columns, 4, ())
    assert len(alone.cycles) == 4
    moved = build_topology(columns, 4, ("BTC", "USDT"))  # buy BTC here, move it, sell there, move USDT back
    assert len(moved.cycles) > 4
    assert any("binance,okx" in c.name for c in moved.cycles)


def _brute_profit(prices: dict[str, tuple[float, float]], fee: float) -> float:
    """Best of the two directions of the triangle, by explicit conversions."""
    btc_bid, btc_ask = prices["BTC/USDT"]
    eth_bid, eth_ask = prices["ETH/USDT"]
    cross_bid, cross_ask = prices["ETH/BTC"]
    keep = 1 - fee
    a = (1 / eth_ask * keep) * cross_bid * keep * btc_bid * keep  # USDT -> ETH -> BTC -> USDT
    b = (1 / btc_ask * keep) * (1 / cross_ask * keep) * eth_bid * keep  # USDT -> BTC -> ETH -> USDT
    return max(a, b) - 1


@settings(max_examples=40, deadline=None)
@given(
    btc=st.floats(20_000, 80_000),
    eth=st.floats(1_000, 5_000),
    skew=st.floats(-0.02, 0.02),
    spread=st.floats(0.0, 0.002),
)
def test_profit_matches_explicit_conversions(btc: float, eth: float, skew: float, spread: float) -> None:
    cross = eth / btc * (1 + skew)
    prices = {
        "BTC/USDT": (btc * (1 - spread), btc * (1 + spread)),
        "ETH/USDT": (eth * (1 - spread), eth * (1 + spread)),
        "ETH/BTC": (cross * (1 - spread), cross * (1 + spread)),
    }
    frame = _frame([(i + 1, "binance", s, *prices[s]) for i, s in enumerate(SYMBOLS)])
    params = TriangularParams(max_notional=100.0)
    out, state = detect_triangular(frame, TriangularState.empty(), params)
    out = pl.concat([out, finish(state, params)])
    expected = _brute_profit(prices, REG.get("binance", "BTC/USDT").taker_fee)
    if expected <= 1e-12:
        assert out.height == 0
        return
    assert out.height == 1
    assert math.isclose(out["profit_percentage"][0], 100 * expected, rel_tol=1e-9)
    assert out["size"][0] <= 100.0
    assert math.isclose(out["profit"][0], out["size"][0] * expected, rel_tol=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    rates=st.lists(st.floats(0.01, 100.0), min_size=3, max_size=3),
    spread=st.floats(0.0, 0.01),
    data=st.data(),
)
def test_consistent_cross_rates_give_nothing(rates: list[float], spread: float, data: st.DataObject) -> None:
    # Prices from one USD value per currency (so every cross rate is consistent), on two venues with transfers.
    value = {"AAA": rates[0], "BBB": rates[1], "CCC": rates[2], "USDT": 1.0}
    pairs = [("AAA", "USDT"), ("BBB", "USDT"), ("CCC", "USDT"), ("AAA", "BBB"), ("BBB", "CCC"), ("AAA", "CCC")]
    rows = []
    for t, (venue, (base, quote)) in enumerate(itertools.product(("okx", "bybit"), pairs)):
        mid = value[base] / value[quote]
        rows.append((t + 1, venue, f"{base}/{quote}", mid * (1 - spread), mid * (1 + spread)))
    order = data.draw(st.permutations(range(len(rows))))
    frame = _frame([(i + 1, *rows[j][1:]) for i, j in enumerate(order)])
    params = TriangularParams(transfers=("USDT", "AAA"))
    out, state = detect_triangular(frame, TriangularState.empty(), params)
    assert out.height + finish(state, params).height == 0


def test_kernel_compiles_once_per_bucket() -> None:
    rng = np.random.default_rng(0)
    before = kernels.trace_counts().get("cycle_log_sums", 0)
    for n in rng.integers(1, 60, 200):
        price = rng.uniform(1, 2, (n, 3))
        kernels.cycle_log_sums(
            bid=price,
            ask=price,
            usable=np.ones((n, 3), bool),
            stale=np.zeros((n, 3), bool),
            edge_column=np.array([0, 1, 2]),
            edge_sell=np.array([True, False, True]),
            edge_log_fee=np.zeros(3),
            cycle_edges=np.array([[0, 1, 2]]),
        )
    assert kernels.trace_counts()["cycle_log_sums"] - before <= 1


def test_flagged_leg_is_suppressed_and_counted() -> None:
    frame = _frame(
        [
            (1, "binance", "BTC/USDT", 60_000.0, 60_001.0),
            (2, "binance", "ETH/USDT", 3_000.0, 3_000.1),
            (3, "binance", "ETH/BTC", 0.0515, 0.0516),
        ]
    )
    flagged = frame.with_columns(pl.Series("flags", [0, 0, 8], dtype=pl.UInt16))
    params = TriangularParams()
    out, state = detect_triangular(flagged, TriangularState.empty(), params)
    assert out.height + finish(state, params).height == 0
    assert state.counters["flagged"] == 1
    assert state.counters["suppressed_flagged"] == 1


def test_incremental_scan_matches_the_full_grid() -> None:
    # Brute force: evaluate every cycle at every row from the as-of quotes, and compare with the spans of the
    # incremental scan (evaluate only cycles that read the row's column, carry forward); every span's sources
    # must point at the quotes its legs read.
    from arbkit.detect._tri_kernels import scan_cycles
    from arbkit.detect._triangular import TriangularParams, _layout

    rng = np.random.default_rng(7)
    columns = (("okx", "BTC/USDT"), ("okx", "ETH/BTC"), ("okx", "ETH/USDT"), ("okx", "SOL/BTC"), ("okx", "SOL/USDT"))
    cells = (*columns, ("okx", "NOPE/USDT"))  # the last cell is not in the graph (unknown instrument)
    layout = _layout(cells, TriangularParams(taker_fees={"okx": 0.0005}))
    topology = layout.topology
    n, c = 300, len(columns)
    own = rng.integers(0, c + 1, n)
    mids = np.array([60_000.0, 0.05, 3_000.0, 0.0025, 150.0, 1.0])
    quotes = mids * np.exp(rng.normal(0, 0.004, (n, c + 1)))
    carried = mids * np.where(rng.random(c + 1) < 0.8, 1.0, np.nan)
    row_price = quotes[np.arange(n), own]
    log_fee = np.log1p(-0.0005)
    cycle, start, end, source, cell_source = scan_cycles(
        row_cell=own, row_log_sell=np.log(row_price * (1 - 1e-4)), row_log_buy=-np.log(row_price * (1 + 1e-4)),
        cell_log_sell=np.log(carried * (1 - 1e-4)), cell_log_buy=-np.log(carried * (1 + 1e-4)),
        cell_column=layout.cell_column, column_cell=layout.column_cell, column_ptr=layout.column_ptr,
        column_cycles=layout.column_cycles, cycle_edges=layout.cycle_edges, edge_column=layout.edge_column,
        edge_sell=layout.edge_sell, edge_log_fee=layout.edge_log_fee, prepared=layout.prepared,
    )  # fmt: skip
    assert np.allclose(layout.edge_log_fee, log_fee)
    expected, where = set(), {}
    last, at = carried.copy(), np.arange(n, n + c + 1)
    for r in range(n):
        last[own[r]], at[own[r]] = row_price[r], r
        for k, cyc in enumerate(topology.cycles):
            total = 0.0
            for e in cyc.edges:
                column, sell, _, _ = topology.edges[e]
                total += math.log(last[column] * (1 - 1e-4)) if sell else -math.log(last[column] * (1 + 1e-4))
                total += log_fee
            if total > 0:
                expected.add((r, k))
                where[r, k] = [int(at[topology.edges[e][0]]) for e in cyc.edges]
    assert expected, "the random walk should produce some profitable cycles"
    got = {(r, int(k)) for k, a, b in zip(cycle, start, end, strict=True) for r in range(int(a), int(b))}
    assert got == expected
    for k, a, b, src in zip(cycle, start, end, source, strict=True):
        for r in range(int(a), int(b)):
            assert src[src >= 0].tolist() == where[r, int(k)]
    assert cell_source.tolist() == at.tolist()
    assert np.all(start < end)


def test_leg_sizes_are_whole_lots_and_the_start_amount_is_covered() -> None:
    frame = _frame(
        [
            (1, "binance", "BTC/USDT", 60_000.0, 60_001.0),
            (2, "binance", "ETH/USDT", 3_000.0, 3_000.1),
            (3, "binance", "ETH/BTC", 0.0515, 0.0516),
        ],
        size=0.77777,
    )
    params = TriangularParams(max_notional=1_000.0)
    _, state = detect_triangular(frame, TriangularState.empty(), params)
    out = finish(state, params)
    assert out.height == 1
    registry = params.registry
    for leg in out["legs"][0]:
        lot = registry.get(leg["exchange"], leg["symbol"]).lot_size
        assert math.isclose(leg["size"] / lot, round(leg["size"] / lot), abs_tol=1e-6)
    first = out["legs"][0][0]  # buy ETH/USDT (fee taken from the ETH received): the start amount pays for it
    assert first["side"] == "buy"
    assert out["size"][0] >= first["size"] * first["price"] * (1 - 1e-12)


def test_book_depth_sizes_the_cycle_by_a_joint_walk() -> None:
    # USDT -> ETH -> BTC -> USDT on binance; ETH/USDT has a 3-level ask book, the other legs are deep.
    asks = [(3_000.1, 0.5), (3_000.4, 1.0), (3_001.5, 4.0)]
    quotes = _frame(
        [
            (1, "binance", "BTC/USDT", 60_000.0, 60_001.0),
            (2, "binance", "ETH/USDT", 3_000.0, 3_000.1),
            (3, "binance", "ETH/BTC", 0.0515, 0.0516),
            (4, "binance", "BTC/USDT", 60_000.0, 60_001.0),
        ],
        size=50.0,
    ).with_columns(pl.when(pl.col("symbol") == "ETH/USDT").then(0.5).otherwise(pl.col("ask_size")).alias("ask_size"))
    book = pl.DataFrame(
        {
            "ts_event": [2] * 3, "ts_recv": [2] * 3, "exchange": ["binance"] * 3, "symbol": ["ETH/USDT"] * 3,
            "side": ["ask"] * 3, "level": pl.Series([0, 1, 2], dtype=pl.UInt16),
            "price": [p for p, _ in asks], "size": [s for _, s in asks], "seq": pl.Series([None] * 3, dtype=pl.Int64),
            "flags": pl.Series([0] * 3, dtype=pl.UInt16),
        }
    )  # fmt: skip
    params = TriangularParams(max_notional=1e6)
    out, state = detect_triangular(quotes, TriangularState.empty(), params, book)
    opp = pl.concat([out, finish(state, params)]).filter(pl.col("symbol") == "binance:USDT>ETH>BTC>USDT")
    top, top_state = detect_triangular(quotes, TriangularState.empty(), params)
    top_opp = pl.concat([top, finish(top_state, params)]).filter(pl.col("symbol") == "binance:USDT>ETH>BTC>USDT")
    assert opp.height == 1
    assert top_opp.height == 1
    assert opp["size"][0] > top_opp["size"][0]  # deeper than the 0.5 ETH on top of book
    # Independent check: convert the reported start amount through the ladders by hand.
    fee = 0.001
    left, eth = opp["size"][0], 0.0
    for price, size in asks:
        take = min(size * price, left)
        eth, left = eth + take / price, left - take
    assert left <= 1e-9
    usdt = eth * (1 - fee) * 0.0515 * (1 - fee) * 60_000.0 * (1 - fee)
    assert math.isclose(opp["profit"][0], usdt - opp["size"][0], rel_tol=1e-9)
    for leg in opp["legs"][0]:
        lot = params.registry.get(leg["exchange"], leg["symbol"]).lot_size
        assert math.isclose(leg["size"] / lot, round(leg["size"] / lot), abs_tol=1e-6)
