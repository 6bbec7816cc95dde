"""The same sweep in-process and on a local two-CPU Ray cluster gives the same numbers."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbkit.execution import FillParams, LatencyModel
from backtest import BacktestConfig, run_sweep
from backtest.testing import write_sample_store

ray = pytest.importorskip("ray")

pytestmark = [
    pytest.mark.slow,
    # Ray's own start-up warnings (its bundled libraries and subprocess handling), nothing of ours
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning:ray.*"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, address="local")
    try:
        yield
    finally:
        ray.shutdown()


def test_sweep_on_ray_matches_in_process(tmp_path: Path, cluster: None) -> None:
    store = tmp_path / "store"
    write_sample_store(store, (dt.date(2024, 1, 2), dt.date(2024, 1, 3)), rows=800, seed=11)
    config = BacktestConfig(fill=FillParams(latency=LatencyModel(scale=1.0)), limits=None)
    grid = {"min_profit": [0.0, 0.5], "fee_scale": [1.0, 0.5], "latency_scale": [1.0, 20.0]}
    local = run_sweep(store, "cross_exchange", grid, config=config)
    remote = run_sweep(store, "cross_exchange", grid, config=config, ray_address="auto")
    assert remote.backend.startswith("ray")
    assert local.backend == "in-process"
    assert remote.points.equals(local.points)
    assert remote.days.equals(local.days)
