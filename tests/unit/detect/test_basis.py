"""Basis detector against hand-computed profits and a brute-force as-of reference."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

import pipelines
from arbkit import schema
from arbkit.detect._basis import BasisParams, BasisState, evaluate_basis
from arbkit.detect._episodes import EpisodeState, finish_episodes, merge_episodes
from arbkit.instruments import default_registry
from arbkit.pipeline import Batch, canonical_sort
from arbkit.schema import QuoteFlag

BASIS = pipelines.get("basis")
_T0 = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC, a funding time
_MS = 1_000_000


def _quotes(rows: list[tuple[int, str, str, float, float, float, float, int]]) -> pl.DataFrame:
    ts, ex, sym, bid, bsz, ask, asz, flags = zip(*rows, strict=True)
    return pl.DataFrame(
        {
            "ts_event": ts,
            "ts_recv": ts,
            "exchange": ex,
            "symbol": sym,
            "bid": bid,
            "bid_size": bsz,
            "ask": ask,
            "ask_size": asz,
            "flags": flags,
        }
    )


def test_cash_and_carry_profit_matches_the_label_formula() -> None:
    q = _quotes(
        [
            (_T0 + 1 * _MS, "binance", "BTC/USDT", 59_990.0, 2.0, 60_000.0, 0.5, 0),
            (_T0 + 2 * _MS, "okx", "BTC/USDT:USDT", 60_300.0, 3.0, 60_310.0, 3.0, 0),
        ]
    )
    funding = pl.DataFrame(
        {
            "ts_event": [_T0],
            "ts_recv": [_T0],
            "exchange": ["okx"],
            "symbol": ["BTC/USDT:USDT"],
            "funding_rate": [0.0001],
            "predicted_rate": [0.0002],
            "next_funding_time": [_T0 + 8 * 3600 * 10**9],
            "mark_price": [60_305.0],
            "index_price": [60_000.0],
        }
    )
    out = BASIS.run(Batch.of(quotes=q, funding=funding), BasisParams())
    assert out.height == 1
    row = out.row(0, named=True)
    reg = default_registry()
    fee_s = reg.get("binance", "BTC/USDT").taker_fee
    fee_p = reg.get("okx", "BTC/USDT:USDT").taker_fee
    unit = (60_300.0 - 60_000.0) - 2 * (fee_s * 60_000.0 + fee_p * 60_300.0) + 0.0002 * 60_305.0
    assert math.isclose(row["profit"], unit * 0.5, rel_tol=1e-12)
    assert row["size"] == 0.5
    assert [(leg["exchange"], leg["symbol"], leg["side"]) for leg in row["legs"]] == [
        ("binance", "BTC/USDT", "buy"),
        ("okx", "BTC/USDT:USDT", "sell"),
    ]
    assert row["status"] == "active"
    assert 0.0 <= row["confidence"] <= 1.0


def test_reverse_pays_funding_and_borrow_to_the_next_funding_time() -> None:
    q = _quotes(
        [
            (_T0 + 3600 * 10**9, "binance", "BTC/USDT", 60_500.0, 1.0, 60_510.0, 1.0, 0),
            (_T0 + 3600 * 10**9, "binance", "BTC/USDT:USDT", 60_000.0, 1.0, 60_010.0, 1.0, 0),
        ]
    )
    params = BasisParams(borrow_rate=0.2)
    events, _, _ = evaluate_basis(Batch.of(quotes=q), BasisState.empty(), params)
    assert events.height == 1
    fee_s, fee_p = 0.001, 0.0005
    tau = 7 * 3600 / (365 * 24 * 3600)  # no funding row: the 8-hour grid gives the next funding at 08:00
    unit = (60_500.0 - 60_010.0) - 2 * (fee_p * 60_010.0 + fee_s * 60_500.0) - 0.2 * tau * 60_500.0
    assert math.isclose(events["profit"][0], unit, rel_tol=1e-12)
    assert events["legs"][0][0]["side"] == "buy"
    assert events["legs"][0][0]["symbol"] == "BTC/USDT:USDT"


def test_flagged_and_stale_quotes_are_suppressed_and_counted() -> None:
    base = [
        (_T0 + 1 * _MS, "binance", "BTC/USDT", 59_990.0, 1.0, 60_000.0, 1.0, 0),
        (_T0 + 2 * _MS, "okx", "BTC/USDT:USDT", 60_300.0, 1.0, 60_310.0, 1.0, int(QuoteFlag.UNVERIFIED)),
    ]
    state = BasisState.empty()
    out = BASIS.run(Batch.of(quotes=_quotes(base)), BasisParams())
    assert out.height == 0
    _, state = BASIS.step(Batch.of(quotes=_quotes(base)), state, BasisParams())
    assert state.counts["suppressed_flagged"] == 1
    stale = [base[0], (_T0 + 5_000 * _MS, "okx", "BTC/USDT:USDT", 60_300.0, 1.0, 60_310.0, 1.0, 0)]
    out, state = BASIS.step(Batch.of(quotes=_quotes(stale)), BasisState.empty(), BasisParams())
    assert out.height == 0
    assert BASIS.finish(state, BasisParams()).height == 0
    assert state.counts["suppressed_stale"] == 1


def test_bad_rows_are_counted_never_used() -> None:
    q = pl.DataFrame(
        {
            "ts_event": [1, 2, 3, 4],
            "ts_recv": [1, 2, 3, 4],
            "exchange": ["binance", "okx", "nowhere", "okx"],
            "symbol": ["BTC/USDT", "BTC/USDT:USDT", "BTC/USDT", "BTC/USDT:USDT"],
            "bid": [float("nan"), -1.0, 1.0, 61_000.0],
            "bid_size": [1.0] * 4,
            "ask": [1.0, 1.0, 2.0, 61_010.0],
            "ask_size": [1.0] * 4,
            "flags": [0, 0, 0, 0],
        },
        schema_overrides={"flags": pl.UInt16},
    )
    out, state = BASIS.step(
        Batch(quotes=q.cast({"ts_event": pl.Int64, "ts_recv": pl.Int64})), BasisState.empty(), BasisParams()
    )
    assert out.height == 0
    assert BASIS.finish(state, BasisParams()).height == 0
    assert state.counts["missing_price"] == 1
    assert state.counts["non_positive_price"] == 1
    assert state.counts["unknown_instrument"] == 1
    empty, state2 = BASIS.step(Batch(), state, BasisParams())
    assert empty.height == 0
    assert state2.counts == state.counts


def _brute_force(q: pl.DataFrame, max_age_ns: int) -> set[tuple[int, str]]:
    """Active (ts, buy symbol) rows of one spot/perp pair by a plain loop over the rows (no funding rows)."""
    last: dict[str, tuple[int, float, float, float, float, int]] = {}
    active: set[tuple[int, str]] = set()
    fee = {"BTC/USDT": 0.001, "BTC/USDT:USDT": 0.0005}
    for r in q.iter_rows(named=True):
        last[r["symbol"]] = (r["ts_recv"], r["bid"], r["bid_size"], r["ask"], r["ask_size"], r["flags"])
        if len(last) < 2:
            continue
        now = r["ts_recv"]
        if any(v[5] != 0 or now - v[0] > max_age_ns for v in last.values()):
            continue
        s, p = last["BTC/USDT"], last["BTC/USDT:USDT"]
        tau = ((now // (8 * 3600 * 10**9) + 1) * 8 * 3600 * 10**9 - now) / (365 * 24 * 3600 * 1e9)
        cc = (p[1] - s[3]) - 2 * (fee["BTC/USDT"] * s[3] + fee["BTC/USDT:USDT"] * p[1])
        rev = (s[1] - p[3]) - 2 * (fee["BTC/USDT:USDT"] * p[3] + fee["BTC/USDT"] * s[1]) - 0.1 * tau * s[1]
        if cc * min(s[4], p[2]) > 0:
            active.add((now, "BTC/USDT"))
        if rev * min(p[4], s[2]) > 0:
            active.add((now, "BTC/USDT:USDT"))
    return active


def test_events_match_a_brute_force_loop() -> None:
    rng = np.random.default_rng(7)
    n = 300
    ts = _T0 + np.cumsum(rng.integers(0, 400, n)) * _MS
    sym = rng.choice(["BTC/USDT", "BTC/USDT:USDT"], n)
    mid = 60_000.0 * (1 + rng.choice([0.0, 0.004, -0.004], n, p=[0.6, 0.2, 0.2]))
    flags = np.where(rng.random(n) < 0.1, int(QuoteFlag.STALE), 0)
    q = pl.DataFrame(
        {
            "ts_event": ts,
            "ts_recv": ts,
            "exchange": ["binance"] * n,
            "symbol": sym,
            "bid": mid - 5.0,
            "bid_size": rng.uniform(0.1, 2, n),
            "ask": mid + 5.0,
            "ask_size": rng.uniform(0.1, 2, n),
            "flags": flags.astype(np.uint16),
        }
    )
    events, _, _ = evaluate_basis(Batch.of(quotes=q), BasisState.empty(), BasisParams(borrow_rate=0.1))
    got = {(int(t), legs[0]["symbol"]) for t, legs in zip(events["ts"], events["legs"], strict=True)}
    expected = _brute_force(q, 1_000 * _MS)
    assert expected, "the market should contain opportunities"
    assert got == expected


def _market(seed: int, n: int) -> Batch:
    """Spot, linear and inverse perpetuals on three venues with dislocations, bad rows and funding rows."""
    rng = np.random.default_rng(seed)
    symbols = [("binance", "BTC/USDT"), ("okx", "BTC/USDT"), ("okx", "BTC/USDT:USDT"), ("bybit", "BTC/USDT:USDT"),
               ("deribit", "BTC/USD:BTC"), ("binance", "BTC/USDT:USDT")]  # fmt: skip
    pick = rng.integers(0, len(symbols), n)
    ts = _T0 + np.cumsum(rng.integers(0, 300, n)) * _MS
    mid = 60_000.0 * (1 + rng.choice([0.0, 0.004, -0.004], n, p=[0.6, 0.2, 0.2]))
    q = pl.DataFrame(
        {
            "ts_event": ts,
            "ts_recv": ts,
            "exchange": [symbols[i][0] for i in pick],
            "symbol": [symbols[i][1] for i in pick],
            "bid": np.where(rng.random(n) < 0.03, np.nan, mid - 5.0),
            "bid_size": rng.uniform(0.1, 2, n) * np.where(pick == 4, 60_000.0, 1.0),
            "ask": mid + 5.0,
            "ask_size": rng.uniform(0.1, 2, n) * np.where(pick == 4, 60_000.0, 1.0),
            "flags": np.where(rng.random(n) < 0.05, int(QuoteFlag.STALE), 0).astype(np.uint16),
        }
    )
    perps = q.filter(pl.col("symbol").str.contains(":") & pl.Series(rng.random(n) < 0.3))
    funding = pl.DataFrame(
        {
            "ts_event": perps["ts_event"],
            "ts_recv": perps["ts_recv"],
            "exchange": perps["exchange"],
            "symbol": perps["symbol"],
            "funding_rate": rng.normal(0.0, 0.001, perps.height),
            "predicted_rate": [None] * perps.height,
            "next_funding_time": [_T0 + 8 * 3600 * 10**9] * perps.height,
            "mark_price": [60_000.0] * perps.height,
            "index_price": [60_000.0] * perps.height,
        },
        schema_overrides={"predicted_rate": pl.Float64},
    )
    return Batch(quotes=q, funding=schema.validate(funding, schema.FUNDING))  # raw quotes: bad rows stay


def test_screened_step_matches_the_unscreened_events_merged_by_the_generic_merger() -> None:
    """The step screens out rows it estimates unprofitable and folds episodes in compiled code; the research path
    evaluates every row and the generic episode merger of ``_episodes`` merges its events: same episodes, same
    counters."""
    batch = _market(11, 2_000)
    params = BasisParams(max_notional=100_000.0)
    events, _, state = evaluate_basis(batch, BasisState.empty(), params)
    assert events.height > 0
    timelines = EpisodeState(
        EpisodeState.empty().open,
        pl.DataFrame({"timeline": state.timelines, "next_seq": state.next_seq}).sort("timeline"),
    )
    closed, episodes = merge_episodes(events, timelines)
    expected = canonical_sort(pl.concat([closed, finish_episodes(episodes)]))
    out, stepped = BASIS.step(batch, BasisState.empty(), params)
    got = canonical_sort(pl.concat([out, BASIS.finish(stepped, params)]))
    assert got.height > 1
    assert got.equals(expected)
    assert stepped.counts == state.counts
    assert stepped.counts.get("suppressed_stale", 0) + stepped.counts.get("suppressed_flagged", 0) > 0
