"""Parity detector against the agreed reversal/conversion formulas, computed by hand."""

from __future__ import annotations

import math

import polars as pl

import pipelines
from arbkit.detect._parity import ParityParams, ParityState, evaluate_parity
from arbkit.pipeline import Batch
from arbkit.schema import QuoteFlag

PARITY = pipelines.get("options_parity")
_T0 = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC
_EXPIRY_NS = 1_774_598_400_000_000_000  # 2026-03-27 08:00 UTC


def _options(call: tuple[float, float], put: tuple[float, float], flags: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_event": [_T0, _T0],
            "ts_recv": [_T0, _T0],
            "exchange": ["deribit"] * 2,
            "symbol": ["BTC/USD:BTC-260327-100000-C", "BTC/USD:BTC-260327-100000-P"],
            "underlying": ["BTC/USD"] * 2,
            "expiry": [_EXPIRY_NS] * 2,
            "strike": [100_000.0] * 2,
            "option_type": ["C", "P"],
            "bid": [call[0], put[0]],
            "bid_size": [2.0, 3.0],
            "ask": [call[1], put[1]],
            "ask_size": [2.0, 3.0],
            "underlying_price": [100_000.0, 100_000.0],
            "flags": [flags, 0],
        }
    )


def _future(bid: float, ask: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_event": [_T0],
            "ts_recv": [_T0],
            "exchange": ["deribit"],
            "symbol": ["BTC/USD:BTC-260327"],
            "bid": [bid],
            "bid_size": [1_000_000.0],
            "ask": [ask],
            "ask_size": [1_000_000.0],
        }
    )


def test_reversal_with_the_future_matches_the_formula() -> None:
    batch = Batch.of(option_quotes=_options((0.065, 0.066), (0.05, 0.051)), quotes=_future(100_900.0, 101_000.0))
    events, _ = evaluate_parity(batch, ParityState.empty(), ParityParams(rate=0.05))
    rev = events.filter(pl.col("key").str.ends_with("reversal"))
    assert rev.height == 1
    t = (_EXPIRY_NS - _T0) / (365 * 24 * 3600 * 1e9)
    c_bid, p_ask = 0.065 * 100_000.0, 0.051 * 100_000.0
    fees = min(0.0003 * 100_000.0, 0.125 * c_bid) + min(0.0003 * 100_000.0, 0.125 * p_ask) + 0.0005 * 101_000.0
    unit = c_bid - p_ask - (101_000.0 - 100_000.0) * math.exp(-0.05 * t) - fees
    assert unit > 0
    assert math.isclose(rev["profit"][0], unit * 2.0, rel_tol=1e-12)  # call bid size 2 < put ask size 3
    assert [(leg["symbol"], leg["side"]) for leg in rev["legs"][0]] == [
        ("BTC/USD:BTC-260327-100000-C", "sell"),
        ("BTC/USD:BTC-260327-100000-P", "buy"),
        ("BTC/USD:BTC-260327", "buy"),
    ]


def test_conversion_and_the_premium_fee_cap() -> None:
    # Cheap call: buying it, selling the put and the future pays; the call fee is capped at 12.5% of premium.
    batch = Batch.of(option_quotes=_options((0.0001, 0.0002), (0.05, 0.051)), quotes=_future(100_000.0, 100_100.0))
    events, _ = evaluate_parity(batch, ParityState.empty(), ParityParams(rate=0.0))
    conv = events.filter(pl.col("key").str.ends_with("conversion"))
    c_ask, p_bid = 0.0002 * 100_000.0, 0.05 * 100_000.0
    fees = 0.125 * c_ask + min(30.0, 0.125 * p_bid) + 0.0005 * 100_000.0
    unit = p_bid - c_ask - (100_000.0 - 100_000.0) - fees
    assert math.isclose(conv["profit"][0], unit * 2.0, rel_tol=1e-12)


def test_a_flagged_leg_is_suppressed_and_counted() -> None:
    batch = Batch.of(
        option_quotes=_options((0.065, 0.066), (0.05, 0.051), int(QuoteFlag.RESYNCING)),
        quotes=_future(100_900.0, 101_000.0),
    )
    out, state = PARITY.step(batch, PARITY.init(ParityParams()), ParityParams())
    assert out.height == 0
    assert PARITY.finish(state, ParityParams()).height == 0
    assert state.counts["suppressed_flagged"] >= 1
    assert state.counts["flagged"] == 1
