"""Scoring rules on hand-made cases, and the detectors against the generator's labels end to end."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import pipelines
from arbkit.detect import score

LEG = {"exchange": "okx", "symbol": "ETH/BTC", "side": "sell", "price": 0.05, "size": 1.0}


def _frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows)


def test_cross_matching_needs_same_venues_and_overlap() -> None:
    base = {"kind": "cross_exchange", "symbol": "BTC/USDT", "buy_exchange": "okx", "sell_exchange": "binance"}
    det = _frame(
        [
            {**base, "ts_start": 100, "ts_end": 200, "legs": [LEG]},
            {**base, "buy_exchange": "binance", "sell_exchange": "okx", "ts_start": 100, "ts_end": 200, "legs": [LEG]},
            {**base, "ts_start": 10_000_000_000, "ts_end": 10_000_000_001, "legs": [LEG]},
        ]
    )
    lab = _frame(
        [
            {**base, "ts_start": 150, "ts_end": 300, "above_fees": True, "stale": False},
            {**base, "ts_start": 5_000_000_000, "ts_end": 6_000_000_000, "above_fees": True, "stale": False},
        ]
    )
    result = score(det, lab)["cross_exchange"]
    assert result["matched_detections"] == 1
    assert result["precision"] == pytest.approx(1 / 3)
    assert result["recall"] == pytest.approx(1 / 2)


def test_tolerance_is_the_venue_latency() -> None:
    base = {"kind": "cross_exchange", "symbol": "BTC/USDT", "buy_exchange": "okx", "sell_exchange": "binance"}
    lab = _frame([{**base, "ts_start": 100_000_000, "ts_end": 200_000_000, "above_fees": True, "stale": False}])
    near = _frame([{**base, "ts_start": 207_000_000, "ts_end": 210_000_000, "legs": [LEG]}])  # okx latency 8 ms
    far = _frame([{**base, "ts_start": 209_000_000, "ts_end": 210_000_000, "legs": [LEG]}])
    assert score(near, lab)["cross_exchange"]["recall"] == 1.0
    assert score(far, lab)["cross_exchange"]["recall"] == 0.0


def test_triangular_matches_on_a_leg_and_stale_labels_count_against() -> None:
    tri = {"kind": "triangular", "symbol": "ETH/BTC", "buy_exchange": "okx", "sell_exchange": "okx"}
    det = _frame([{**tri, "symbol": "okx:USDT>ETH>BTC>USDT", "ts_start": 100, "ts_end": 200, "legs": [LEG]}])
    good = _frame([{**tri, "ts_start": 150, "ts_end": 300, "above_fees": True, "stale": False}])
    stale = _frame([{**tri, "ts_start": 150, "ts_end": 300, "above_fees": True, "stale": True}])
    assert score(det, good)["triangular"]["precision"] == 1.0
    result = score(det, stale)["triangular"]
    assert (result["precision"], result["stale_detected"], result["labels"]) == (0.0, 1, 0)


@pytest.mark.parametrize("seed", [3, 11])
def test_detectors_find_the_generated_episodes(tmp_path: Path, seed: int) -> None:
    from arbkit.data.generate import MarketSpec, generate_to_store
    from arbkit.data.store import Store

    generate_to_store(tmp_path, MarketSpec(seed=seed, days=1 / 96, options=False, assets=("BTC", "ETH")))
    labels = Store(tmp_path).scan("labels").collect()
    for name in ("cross_exchange", "triangular"):
        result = score(pipelines.detect_store(tmp_path, name), labels).get(name)
        if result is None:
            continue
        assert result["precision"] >= 0.99, (name, result)
        assert result["recall"] >= 0.99, (name, result)
        assert result["stale_detected"] == 0
