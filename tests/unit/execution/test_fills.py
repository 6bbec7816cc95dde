from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbkit.execution import FillParams, LatencyModel, MarketView, simulate_fills
from arbkit.instruments import default_registry

REG = default_registry()
FEE_BIN = REG.get("binance", "BTC/USDT").taker_fee
FEE_OKX = REG.get("okx", "BTC/USDT").taker_fee
MS = 1_000_000


def quotes(rows: list[tuple[int, str, str, float, float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_event": [r[0] for r in rows],
            "ts_recv": [r[0] for r in rows],
            "exchange": [r[1] for r in rows],
            "symbol": [r[2] for r in rows],
            "bid": [r[3] for r in rows],
            "bid_size": [r[4] for r in rows],
            "ask": [r[5] for r in rows],
            "ask_size": [r[6] for r in rows],
            "flags": pl.Series([0] * len(rows), dtype=pl.UInt16),
        }
    )


def signal(ts: int, buy_px: float, sell_px: float, size: float, sid: str = "s1") -> pl.DataFrame:
    legs = [
        {"exchange": "binance", "symbol": "BTC/USDT", "side": "buy", "price": buy_px, "size": size},
        {"exchange": "okx", "symbol": "BTC/USDT", "side": "sell", "price": sell_px, "size": size},
    ]
    theo = size * (sell_px - buy_px) - size * buy_px * FEE_BIN - size * sell_px * FEE_OKX
    return pl.DataFrame(
        {
            "id": [sid],
            "kind": ["cross_exchange"],
            "ts": [ts],
            "legs": [legs],
            "hold_until": pl.Series([None], dtype=pl.Int64),
            "theoretical_profit": [theo],
        }
    )


BALANCES = {("binance", "USDT"): 1e6, ("okx", "USDT"): 1e6, ("binance", "BTC"): 10.0, ("okx", "BTC"): 10.0}
ZERO = FillParams(latency=LatencyModel(scale=0.0), match_clock="ts_recv", rebalance=False)


def test_zero_latency_infinite_size_captures_theoretical_profit() -> None:
    q = quotes(
        [
            (1_000, "binance", "BTC/USDT", 99_990.0, 0.01, 100_000.0, 0.01),
            (1_000, "okx", "BTC/USDT", 100_500.0, 0.01, 100_510.0, 0.01),
        ]
    )
    sig = signal(1_000, 100_000.0, 100_500.0, 2.0)
    params = FillParams(latency=LatencyModel(scale=0.0), match_clock="ts_recv", infinite_size=True, rebalance=False)
    res = simulate_fills(sig, MarketView.from_quotes(q, "ts_recv"), REG, params, BALANCES)
    expected = 2.0 * (100_500.0 - 100_000.0) - 2.0 * 100_000.0 * FEE_BIN - 2.0 * 100_500.0 * FEE_OKX
    assert res.trades["realized_pnl"][0] == pytest.approx(expected, rel=1e-12)
    assert res.trades["status"][0] == "filled"


def test_partial_fill_unwinds_the_excess_at_a_later_price() -> None:
    q = quotes(
        [
            (1_000, "binance", "BTC/USDT", 99_990.0, 1.0, 100_000.0, 0.5),
            (1_000, "okx", "BTC/USDT", 100_500.0, 1.0, 100_510.0, 1.0),
            (1_000 + 500 * MS, "okx", "BTC/USDT", 100_600.0, 1.0, 100_620.0, 1.0),
        ]
    )
    res = simulate_fills(
        signal(1_000, 100_000.0, 100_500.0, 1.0), MarketView.from_quotes(q, "ts_recv"), REG, ZERO, BALANCES
    )
    t = res.trades.row(0, named=True)
    assert t["status"] == "partial"
    assert t["leg_failed"]
    assert t["filled_fraction"] == pytest.approx(0.5)
    # by hand: buy 0.5 @100000 on binance, sell 1.0 @100500 on okx, buy back 0.5 @100620 on okx 500 ms later
    cash = -0.5 * 100_000 * (1 + FEE_BIN) + 1.0 * 100_500 * (1 - FEE_OKX) - 0.5 * 100_620 * (1 + FEE_OKX)
    assert t["realized_pnl"] == pytest.approx(cash, rel=1e-12)
    unwind = res.fills.filter(pl.col("purpose") == "unwind").row(0, named=True)
    assert (unwind["exchange"], unwind["side"], unwind["quantity"], unwind["price"]) == ("okx", "buy", 0.5, 100_620.0)


def test_latency_can_miss_the_opportunity() -> None:
    q = quotes(
        [
            (1_000, "binance", "BTC/USDT", 99_990.0, 1.0, 100_000.0, 1.0),
            (1_000, "okx", "BTC/USDT", 100_500.0, 1.0, 100_510.0, 1.0),
            (2 * MS, "binance", "BTC/USDT", 100_400.0, 1.0, 100_410.0, 1.0),
            (2 * MS, "okx", "BTC/USDT", 100_400.0, 1.0, 100_410.0, 1.0),
        ]
    )
    params = FillParams(latency=LatencyModel(scale=1.0, distribution="fixed"), match_clock="ts_recv", rebalance=False)
    res = simulate_fills(
        signal(1_000, 100_000.0, 100_500.0, 1.0), MarketView.from_quotes(q, "ts_recv"), REG, params, BALANCES
    )
    assert res.trades["status"][0] == "missed"
    assert res.trades["realized_pnl"][0] == 0.0
    assert res.fills.height == 0


def test_balances_scale_the_trade_down() -> None:
    q = quotes(
        [
            (1_000, "binance", "BTC/USDT", 99_990.0, 5.0, 100_000.0, 5.0),
            (1_000, "okx", "BTC/USDT", 100_500.0, 5.0, 100_510.0, 5.0),
        ]
    )
    balances = {("binance", "USDT"): 150_000.0, ("okx", "BTC"): 10.0}
    res = simulate_fills(
        signal(1_000, 100_000.0, 100_500.0, 3.0), MarketView.from_quotes(q, "ts_recv"), REG, ZERO, balances
    )
    bought = res.fills.filter(pl.col("side") == "buy")["quantity"][0]
    assert bought <= 150_000.0 / (100_000.0 * (1 + FEE_BIN))
    assert bought == pytest.approx(math.floor(150_000.0 / (100_000.0 * (1 + FEE_BIN)) / 1e-5) * 1e-5)
    assert res.balances[("binance", "USDT")] >= 0


def test_insufficient_balance_is_rejected_with_reason() -> None:
    q = quotes(
        [
            (1_000, "binance", "BTC/USDT", 99_990.0, 5.0, 100_000.0, 5.0),
            (1_000, "okx", "BTC/USDT", 100_500.0, 5.0, 100_510.0, 5.0),
        ]
    )
    res = simulate_fills(signal(1_000, 100_000.0, 100_500.0, 1.0), MarketView.from_quotes(q, "ts_recv"), REG, ZERO, {})
    assert res.trades.select("status", "reason").row(0) == ("rejected", "insufficient balance")


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.floats(0.01, 3.0), st.floats(0.01, 3.0)), min_size=1, max_size=8),
    spread=st.floats(10.0, 800.0),
)
def test_balances_reconcile_with_fills_and_fees(sizes: list[tuple[float, float]], spread: float) -> None:
    rows, sigs = [], []
    for k, (a_size, b_size) in enumerate(sizes):
        t = 1_000 + k * 10 * MS
        rows += [
            (t, "binance", "BTC/USDT", 99_990.0, 5.0, 100_000.0, a_size),
            (t, "okx", "BTC/USDT", 100_000.0 + spread, b_size, 100_010.0 + spread, 5.0),
            (t + 600 * MS, "okx", "BTC/USDT", 100_000.0, 5.0, 100_010.0, 5.0),
        ]
        sigs.append(signal(t, 100_000.0, 100_000.0 + spread, 1.0, sid=f"s{k}"))
    rows.sort(key=lambda r: r[0])
    res = simulate_fills(pl.concat(sigs), MarketView.from_quotes(quotes(rows), "ts_recv"), REG, ZERO, BALANCES)
    # independent reconciliation from the fills alone
    for venue in ("binance", "okx"):
        f = res.fills.filter(pl.col("exchange") == venue)
        sign = pl.when(pl.col("side") == "buy").then(1.0).otherwise(-1.0)
        base = f.select((sign * pl.col("quantity")).sum()).item()
        cash = f.select((-sign * pl.col("quantity") * pl.col("price") - pl.col("fee")).sum()).item()
        assert res.balances[(venue, "BTC")] == pytest.approx(BALANCES[(venue, "BTC")] + base, abs=1e-9)
        assert res.balances[(venue, "USDT")] == pytest.approx(BALANCES[(venue, "USDT")] + cash, rel=1e-12)
    # PnL = sum of cash flows + BTC inventory valued at the marks used
    assert res.equity["cum_pnl"][-1] == pytest.approx(res.trades["realized_pnl"].sum(), rel=1e-9, abs=1e-6)


def test_rebalancing_pays_the_withdrawal_fee_and_waits() -> None:
    q = quotes(
        [
            (1_000, "binance", "BTC/USDT", 99_990.0, 5.0, 100_000.0, 5.0),
            (1_000, "okx", "BTC/USDT", 100_500.0, 5.0, 100_510.0, 5.0),
        ]
    )
    balances = {("binance", "USDT"): 1e6, ("okx", "USDT"): 1e6, ("binance", "BTC"): 4.0, ("okx", "BTC"): 4.0}
    params = FillParams(latency=LatencyModel(scale=0.0), match_clock="ts_recv", rebalance=True, rebalance_low=0.5)
    res = simulate_fills(
        signal(1_000, 100_000.0, 100_500.0, 3.0), MarketView.from_quotes(q, "ts_recv"), REG, params, balances
    )
    tr = res.transfers.row(0, named=True)
    route = REG.transfer("BTC")
    assert (tr["asset"], tr["from_exchange"], tr["to_exchange"]) == ("BTC", "binance", "okx")
    assert tr["fee"] == route.fee
    assert tr["arrival"] == tr["ts"] + int(route.delay_s * 1e9)
    assert tr["cost_usd"] == pytest.approx(route.fee * 100_250.0, rel=0.01)  # fee valued at the BTC mark
    assert res.total_pnl == pytest.approx(res.trades["realized_pnl"].sum() - tr["cost_usd"])


def test_funding_settles_on_a_held_perpetual() -> None:
    eight_h = 8 * 3600 * 1_000_000_000
    t0 = eight_h - 60 * 1_000_000_000
    q = quotes(
        [
            (t0, "binance", "BTC/USDT", 99_990.0, 5.0, 100_000.0, 5.0),
            (t0, "binance", "BTC/USDT:USDT", 100_100.0, 5.0, 100_110.0, 5.0),
        ]
    )
    funding = pl.DataFrame(
        {
            "ts_event": [t0],
            "ts_recv": [t0],
            "exchange": ["binance"],
            "symbol": ["BTC/USDT:USDT"],
            "funding_rate": [0.0001],
            "predicted_rate": [0.0001],
            "next_funding_time": [eight_h],
            "mark_price": [100_105.0],
            "index_price": [100_000.0],
        }
    )
    legs = [
        {"exchange": "binance", "symbol": "BTC/USDT", "side": "buy", "price": 100_000.0, "size": 1.0},
        {"exchange": "binance", "symbol": "BTC/USDT:USDT", "side": "sell", "price": 100_100.0, "size": 1.0},
    ]
    sig = pl.DataFrame(
        {
            "id": ["b"],
            "kind": ["basis"],
            "ts": [t0],
            "legs": [legs],
            "hold_until": [eight_h + 1000],
            "theoretical_profit": [0.0],
        }
    )
    res = simulate_fills(sig, MarketView.from_quotes(q, "ts_recv"), REG, ZERO, BALANCES, funding=funding)
    assert res.trades["funding"][0] == pytest.approx(1.0 * 100_105.0 * 0.0001)
    assert set(res.fills["purpose"]) == {"entry", "exit"}
