"""Signals from opportunities: timing per kind, USD theoretical profit, re-pricing at ts_start, the risk screen."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from arbkit.execution import MarketView
from arbkit.instruments import default_registry
from arbkit.risk import RiskLimits
from backtest._market import DayMarket, market_symbols, usd_marks
from backtest._signals import check_signals, reprice_legs, to_signals

REG = default_registry()


def quotes(rows: list[tuple[int, str, str, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_event": [r[0] for r in rows],
            "ts_recv": [r[0] for r in rows],
            "exchange": [r[1] for r in rows],
            "symbol": [r[2] for r in rows],
            "bid": [r[3] for r in rows],
            "bid_size": [5.0] * len(rows),
            "ask": [r[4] for r in rows],
            "ask_size": [5.0] * len(rows),
            "flags": pl.Series([0] * len(rows), dtype=pl.UInt16),
        }
    )


def market(rows: list[tuple[int, str, str, float, float]]) -> DayMarket:
    view = MarketView.from_quotes(quotes(rows), "ts_recv")
    return DayMarket(view, None, usd_marks(view), "ts_recv")


def opportunity(kind: str, legs: list[dict[str, object]], start: int = 100, end: int = 500) -> pl.DataFrame:
    return pl.DataFrame({"id": [kind], "kind": [kind], "ts_start": [start], "ts_end": [end], "legs": [legs]})


def leg(exchange: str, symbol: str, side: str, price: float, size: float) -> dict[str, object]:
    return {"exchange": exchange, "symbol": symbol, "side": side, "price": price, "size": size}


def test_holding_kinds_hold_until_ts_end_and_round_trips_are_instantaneous() -> None:
    legs = [leg("binance", "BTC/USDT", "buy", 100.0, 1.0), leg("okx", "BTC/USDT", "sell", 101.0, 1.0)]
    frames = [opportunity(k, legs) for k in ("cross_exchange", "triangular", "basis", "parity")]
    signals = to_signals(pl.concat(frames), REG, None)
    assert signals["hold_until"].to_list() == [None, None, 500, 500]
    assert signals["ts"].to_list() == [100] * 4


def test_theoretical_profit_is_converted_to_usd_at_the_mark() -> None:
    # ETH/BTC priced in BTC: the profit in BTC times the BTC/USDT mid at ts_start
    m = market([(50, "binance", "BTC/USDT", 59_990.0, 60_010.0), (150, "binance", "BTC/USDT", 1.0, 2.0)])
    legs = [leg("binance", "ETH/BTC", "buy", 0.05, 2.0), leg("okx", "ETH/BTC", "sell", 0.051, 2.0)]
    signals = to_signals(opportunity("cross_exchange", legs), REG, m)
    fee_b, fee_o = REG.get("binance", "ETH/BTC").taker_fee, REG.get("okx", "ETH/BTC").taker_fee
    in_btc = 2.0 * (0.051 - 0.05) - 2.0 * 0.05 * fee_b - 2.0 * 0.051 * fee_o
    assert signals["theoretical_profit"][0] == pytest.approx(in_btc * 60_000.0, rel=1e-12)


def test_legs_are_repriced_at_ts_start_on_the_book_they_face() -> None:
    m = market(
        [
            (90, "binance", "BTC/USDT", 99.0, 100.0),
            (95, "okx", "BTC/USDT", 102.0, 103.0),
            (300, "okx", "BTC/USDT", 104.0, 105.0),  # later: must not leak into the signal
        ]
    )
    legs = [
        leg("binance", "BTC/USDT", "buy", 100.5, 1.0),
        leg("okx", "BTC/USDT", "sell", 104.0, 1.0),
        leg("bybit", "BTC/USDT", "sell", 7.0, 1.0),
    ]
    repriced = reprice_legs(opportunity("cross_exchange", legs), m.view)
    prices = [x["price"] for x in repriced["legs"][0]]
    assert prices == [100.0, 102.0, 7.0]  # ask for the buy, bid for the sell, unknown book keeps its price


def test_market_symbols_adds_usd_books() -> None:
    assert market_symbols(["SOL/USDT:USDT"], ["SOL", "USDT"]) == ["SOL/USD", "SOL/USDC", "SOL/USDT", "SOL/USDT:USDT"]


def test_risk_screen_rejects_oversized_candidates_with_code_4002() -> None:
    rows = [
        (t, v, "BTC/USDT", 60_000.0 + (t % 7), 60_010.0 + (t % 7))
        for t in range(0, 600, 60)
        for v in ("binance", "okx")
    ]
    m = market(rows)
    small = [leg("binance", "BTC/USDT", "buy", 60_010.0, 0.1), leg("okx", "BTC/USDT", "sell", 60_000.0, 0.1)]
    large = [leg("binance", "BTC/USDT", "buy", 60_010.0, 2.0), leg("okx", "BTC/USDT", "sell", 60_000.0, 2.0)]
    opps = pl.concat([opportunity("cross_exchange", small, 100), opportunity("cross_exchange", large, 200)])
    opps = opps.with_columns(id=pl.Series(["small", "large"]))
    signals = to_signals(opps, REG, m)
    limits = RiskLimits(
        max_var=1e12,
        max_leverage=10.0,
        max_concentration=10.0,
        max_drawdown=0.5,
        stop_loss=1e6,
        default_max_instrument_notional=50_000.0,
    )
    balances = {("binance", "USDT"): 1e6, ("okx", "USDT"): 1e6, ("binance", "BTC"): 0.0, ("okx", "BTC"): 0.0}
    accepted, rejected = check_signals(signals, m, REG, limits, balances)
    assert accepted.tolist() == [True, False]
    assert rejected["id"].to_list() == ["large"]
    assert rejected["code"].to_list() == [4002]
    # the leg notional at the execution price is what breaks the cap
    assert rejected["value"][0] == pytest.approx(2.0 * 60_010.0)
    assert np.isclose(rejected["limit"][0], 50_000.0)
