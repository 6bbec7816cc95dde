"""Benchmark live-shaped stepping of the basis and options_parity pipelines, with a same-run baseline.

Generates a small market with the generator (:func:`arbkit.data.generate.generate_to_store`, all venues, the
option chain, funding) into a temporary store, cuts its history into micro-batches of 1,000 quote rows (each with
the funding and option-quote rows of the same ``ts_recv`` window, as the live micro-batcher would flush them),
and steps each pipeline over them with carried state.  Prints per pipeline: p50 / p99 / mean latency per
micro-batch and rows per second (all rows of the tables the pipeline reads), and the baseline measured in the
same run: one ``step`` over the whole history (the backtest path), as microseconds per row.

JIT compilation (the numba scans and evaluations) and the first micro-batches are warmed before timing.  Run:
``.venv/bin/python benchmarks/bench_live_steps.py [--days D] [--quick]`` (default 0.1 days, about a minute;
``--quick``: 0.02 days).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

import pipelines
from arbkit.data.generate import MarketSpec, generate_to_store
from arbkit.data.store import Store
from arbkit.pipeline import Batch

TABLES = ("quotes", "funding", "option_quotes")
BATCH_ROWS = 1_000
WARM_STEPS = 20


def load(root: Path) -> dict[str, pl.DataFrame]:
    """The market tables in ``ts_recv`` order (stable: equal times keep the store's order)."""
    store = Store(root)
    return {name: store.scan(name, sort=False).collect().sort("ts_recv", maintain_order=True) for name in TABLES}


def micro_batches(tables: dict[str, pl.DataFrame]) -> list[Batch]:
    """Windows of 1,000 quote rows, each with the other tables' rows of the same ``ts_recv`` window."""
    ts = tables["quotes"].get_column("ts_recv").to_numpy()
    bounds = ts[::BATCH_ROWS]
    clocks = {name: frame.get_column("ts_recv").to_numpy() for name, frame in tables.items()}
    out = []
    for lo, hi in itertools.pairwise(bounds):
        parts = {}
        for name, frame in tables.items():
            a, b = np.searchsorted(clocks[name], [lo, hi], side="left")
            parts[name] = frame.slice(int(a), int(b - a))
        out.append(Batch(**parts))
    return out


def bench(name: str, tables: dict[str, pl.DataFrame], batches: list[Batch]) -> None:
    strategy = pipelines.get(name)
    params = strategy.params_type()
    used = [t for t in strategy.tables if t in TABLES]
    whole = Batch(**tables)
    strategy.run(whole, params)  # warm the compiled scans
    start = time.perf_counter()
    output = strategy.run(whole, params)
    whole_s = time.perf_counter() - start
    whole_rows = sum(tables[t].height for t in used)
    state = strategy.init(params)
    for batch in batches[:WARM_STEPS]:
        _, state = strategy.step(batch, state, params)
    latencies = []
    rows = 0
    for batch in batches[WARM_STEPS:]:
        start = time.perf_counter()
        _, state = strategy.step(batch, state, params)
        latencies.append(time.perf_counter() - start)
        rows += sum(batch.frame(t).height for t in used)
    ms = np.array(latencies) * 1e3
    per_batch = rows / len(latencies)
    print(
        f"{name:15s} micro-batches {len(ms):5d} ({per_batch:,.0f} rows each): p50 {np.percentile(ms, 50):6.3f} ms"
        f"  p99 {np.percentile(ms, 99):6.3f} ms  mean {ms.mean():6.3f} ms  {rows / ms.sum() * 1e3:12,.0f} rows/s"
        f"  ({ms.mean() * 1e3 / per_batch:.3f} us/row)"
    )
    print(
        f"{'':15s} baseline, one step over the whole history: {whole_rows:,} rows in {whole_s:.2f} s"
        f"  {whole_rows / whole_s:12,.0f} rows/s  ({whole_s * 1e6 / whole_rows:.3f} us/row), {output.height} episodes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=0.1, help="market length in days")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a 0.02-day market")
    args = parser.parse_args()
    days = 0.02 if args.quick else args.days
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        start = time.perf_counter()
        generate_to_store(root, MarketSpec(seed=args.seed, days=days))
        print(f"generated {days} days (seed {args.seed}) in {time.perf_counter() - start:.1f} s")
        tables = load(root)
    print("rows: " + ", ".join(f"{name} {frame.height:,}" for name, frame in tables.items()))
    batches = micro_batches(tables)
    for name in ("basis", "options_parity"):
        bench(name, tables, batches)


if __name__ == "__main__":
    main()
