"""Parity detector against the agreed reversal/conversion formulas, computed by hand."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

import pipelines
from arbkit.detect._episodes import EpisodeState, finish_episodes, merge_episodes
from arbkit.detect._parity import ParityParams, ParityState, evaluate_parity
from arbkit.pipeline import Batch, canonical_sort
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


def _market(seed: int, n_times: int) -> Batch:
    """Calls and puts around parity on a moving future, some pushed through it, some flagged, some stale gaps;
    the future is quoted only part of the time (the synthetic forward covers the rest)."""
    rng = np.random.default_rng(seed)
    times = _T0 + np.cumsum(rng.integers(0, 800, n_times)) * 1_000_000
    options, futures = [], []
    for i, ts in enumerate(times.tolist()):
        call = 0.058 * (1 + rng.choice([0.0, 0.15, -0.15], p=[0.6, 0.2, 0.2]))
        put = 0.05 * (1 + rng.choice([0.0, 0.15, -0.15], p=[0.6, 0.2, 0.2]))
        frame = _options((call, call + 0.001), (put, put + 0.001), int(QuoteFlag.STALE) if rng.random() < 0.05 else 0)
        options.append(frame.with_columns(pl.lit(ts).alias("ts_event"), pl.lit(ts).alias("ts_recv")))
        if i % 3 == 0:
            mid = 100_800.0 + float(rng.normal(0, 50))
            futures.append(
                _future(mid - 5.0, mid + 5.0).with_columns(pl.lit(ts).alias("ts_event"), pl.lit(ts).alias("ts_recv"))
            )
    return Batch.of(option_quotes=pl.concat(options), quotes=pl.concat(futures))


def test_screened_step_matches_the_unscreened_events_merged_by_the_generic_merger() -> None:
    """The step screens out rows it estimates unprofitable and folds episodes in compiled code; the research path
    evaluates every row and the generic merger of ``_episodes`` merges its events: same episodes and counters."""
    batch = _market(5, 400)
    params = ParityParams(rate=0.05)
    events, state = evaluate_parity(batch, ParityState.empty(), params)
    assert events.height > 0
    timelines = EpisodeState(
        EpisodeState.empty().open,
        pl.DataFrame({"timeline": state.timelines, "next_seq": state.next_seq}).sort("timeline"),
    )
    closed, episodes = merge_episodes(events, timelines)
    expected = canonical_sort(pl.concat([closed, finish_episodes(episodes)]))
    out, stepped = PARITY.step(batch, ParityState.empty(), params)
    got = canonical_sort(pl.concat([out, PARITY.finish(stepped, params)]))
    assert got.height > 1
    assert got.equals(expected)
    assert stepped.counts == state.counts
    assert stepped.counts.get("suppressed_stale", 0) + stepped.counts.get("suppressed_flagged", 0) > 0
