"""Benchmark of the backtest: full run vs detection alone, a 64-point sweep, and the sweep on Ray.

Usage::

    python benchmarks/bench_backtest.py            # 3 venues x 20 instruments, one hour (~0.4M quotes)
    python benchmarks/bench_backtest.py --quick    # 15 minutes (what `make bench` runs)
    python benchmarks/bench_backtest.py --full     # a whole reference day at 4 updates/s (~20M quotes)
    python benchmarks/bench_backtest.py --no-ray   # skip the Ray comparison

Figures (wall time, peak RSS above the starting RSS) are printed with their same-run baselines:

* backtest / detection: the full backtest (detection + risk checks + fills + metrics) over detection alone
  (``pipelines.detect_store``); target <= 1.5;
* sweep / backtest: 64 grid points over one backtest; target <= 8;
* Ray / in-process: the same sweep on a local 2-CPU Ray cluster (started before timing) over in-process.

JIT compilation is excluded: a tiny warm-up run compiles the risk and screening kernels first.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

import pipelines
from arbkit.data.generate import MarketSpec, generate_to_store
from backtest import BacktestConfig, run_backtest, run_sweep
from backtest.testing import write_sample_store

T = TypeVar("T")

ASSETS = ("BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "AVAX", "DOT", "LINK", "LTC")  # spot + perp: 20 instruments
GRID = {
    "min_profit": [0.0, 0.5, 1.0, 2.0],
    "fee_scale": [0.5, 0.75, 1.0, 1.5],
    "latency_scale": [1.0, 4.0],
    "max_notional": [5_000.0, 50_000.0],
}


def best_of(repeat: int, fn: Callable[[], T]) -> tuple[T, float, float]:
    """:func:`measure` ``repeat`` times; the fastest time (the machine may be shared) and the largest peak."""
    runs = [measure(fn) for _ in range(max(repeat, 1))]
    return runs[-1][0], min(r[1] for r in runs), max(r[2] for r in runs)


def measure(fn: Callable[[], T]) -> tuple[T, float, float]:
    """(result, seconds, peak RSS growth in MiB), sampling RSS every 5 ms on a thread."""
    proc = psutil.Process()
    start_rss = proc.memory_info().rss
    peak = start_rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - t0
        done.set()
        thread.join()
    return result, seconds, (peak - start_rss) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="15 minutes of market (make bench)")
    size.add_argument("--full", action="store_true", help="a whole day at 4 updates/s (~20M quotes)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray comparison")
    parser.add_argument("--pipeline", default="cross_exchange")
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; the fastest is reported")
    args = parser.parse_args()
    days, rate = (15 / 1440, 2.0) if args.quick else ((1.0, 4.0) if args.full else (1 / 24, 2.0))
    spec = MarketSpec(seed=11, days=days, venues=("binance", "okx", "bybit"), assets=ASSETS, rate=rate, options=False)
    config = BacktestConfig()
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        store = Path(tmp) / "store"
        summary, gen_s, _ = measure(lambda: generate_to_store(store, spec))
        quotes = int(summary.rows.get("quotes", 0))
        print(
            f"market: {len(spec.venues)} venues x 20 instruments, {days * 24:.2f} h, {quotes:,} quotes ({gen_s:.1f} s)"
        )

        warm = Path(tmp) / "warm"
        write_sample_store(warm, rows=2_000)  # many opportunities: every kernel is compiled once here
        run_backtest(warm, args.pipeline, config=config)
        run_sweep(warm, args.pipeline, GRID, config=config)

        repeat = 1 if args.full else args.repeat
        detected, detect_s, detect_mb = best_of(repeat, lambda: pipelines.detect_store(store, args.pipeline))
        result, backtest_s, backtest_mb = best_of(
            repeat, lambda: run_backtest(store, args.pipeline, Path(tmp) / "run", config=config)
        )
        sweep, sweep_s, sweep_mb = best_of(repeat, lambda: run_sweep(store, args.pipeline, GRID, config=config))
        rows: list[tuple[str, float, float, str]] = [
            ("detection alone", detect_s, detect_mb, f"{detected.height:,} opportunities"),
            ("backtest (all stages)", backtest_s, backtest_mb, f"{result.metrics['trades']:,} trades"),
            ("sweep, 64 points", sweep_s, sweep_mb, f"{len(sweep.points)} points"),
        ]
        ray_s: float | None = None
        if not args.no_ray:
            ray_s = _ray_sweep(store, args.pipeline, config, sweep)
            rows.append(("sweep on Ray (2 CPUs)", ray_s, float("nan"), "same results as in-process"))

    print(f"\n{'stage':<24}{'seconds':>10}{'peak MiB':>10}  note")
    for name, seconds, mb, note in rows:
        print(f"{name:<24}{seconds:>10.2f}{mb:>10.0f}  {note}")
    stages = result.timings
    print(
        f"\nbacktest stages: detect {stages['detect_s']:.2f} s, execute {stages['execute_s']:.2f} s, "
        f"total {stages['total_s']:.2f} s (storing the run and metrics: the rest)"
    )
    print(f"backtest / detection     = {backtest_s / detect_s:5.2f}x   (target <= 1.5)")
    print(f"sweep(64) / backtest     = {sweep_s / backtest_s:5.2f}x   (target <= 8)")
    if ray_s is not None:
        print(f"Ray / in-process sweep   = {ray_s / sweep_s:5.2f}x   (local 2-CPU cluster, start-up excluded)")


def _ray_sweep(store: Path, pipeline: str, config: BacktestConfig, reference: Any) -> float:
    import warnings

    import ray

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, address="local")
    try:
        run_sweep(store, pipeline, GRID, config=config, ray_address="auto")  # warm the workers (imports, JIT)
        remote, seconds, _ = measure(lambda: run_sweep(store, pipeline, GRID, config=config, ray_address="auto"))
        if not remote.points.equals(reference.points):
            raise SystemExit("Ray and in-process sweeps disagree")
        return seconds
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
