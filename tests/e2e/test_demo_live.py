"""The demo's live step: a window of a generated market replayed by the simulator over loopback WebSockets, every
venue's feed parsed, micro-batched and recorded, then cross-exchange detection on the recording finds exactly the
opportunities (above fees) the generator injected in that window: the same strategy on history and on a live feed."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from arbkit.data.generate import MarketSpec, generate_to_store
from arbkit.data.store import Store
from arbkit_cli._live import record_from_simulator
from arbkit_cli.main import _detect, _live_window

pytestmark = pytest.mark.e2e

SPEED = 50.0
RECORD_S = 4.0


def test_live_replay_of_a_window_detects_its_injected_opportunities(tmp_path: Path) -> None:
    market = tmp_path / "market"
    generate_to_store(market, MarketSpec(seed=7, days=0.02))
    window, t0, (labelled, lasting_count) = _live_window(market, 0.8 * RECORD_S * SPEED)
    assert labelled >= lasting_count >= 1
    assert all(frame.get_column("ts_event").min() >= t0 for frame in window.values())

    summary = record_from_simulator(window, tmp_path / "live", duration_s=RECORD_S, speed=SPEED, loop=False)
    for name, stats in summary.connectors.items():
        assert stats.parse_errors == 0, name
        assert stats.internal_errors == 0, name
        assert stats.sequence_gaps == 0, name
    assert summary.rows["quotes"] > 1_000

    found = _detect(tmp_path / "live", "cross_exchange", None, None)["cross_exchange"]
    labels = (
        Store(market)
        .scan("labels")
        .filter((pl.col("kind") == "cross_exchange") & pl.col("above_fees") & (pl.col("ts_start") >= t0))
        .sort("ts_start")
        .head(labelled)
        .collect()
    )
    legs = ["symbol", "buy_exchange", "sell_exchange"]
    got = set(found.select(legs).rows())
    injected = set(labels.select(legs).rows())
    # 50x faster, an opportunity of 85 ms lasts 1.7 ms: shorter than a venue's ms clock; those lasting a second of
    # market time (20 ms live) must be found, and nothing but what was injected may be
    lasting = set(labels.filter(pl.col("ts_end") - pl.col("ts_start") >= 1_000_000_000).select(legs).rows())
    assert len(lasting) == lasting_count
    assert lasting <= got <= injected, (got, injected, lasting)
