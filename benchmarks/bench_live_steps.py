"""Benchmark live-shaped stepping of the basis and options_parity pipelines, with a same-run baseline.

Generates a small market with the generator (:func:`arbkit.data.generate.generate_to_store`, all venues, the
option chain, funding) into a temporary store, cuts its history into micro-batches of 1,000 quote rows (each with
the funding and option-quote rows of the same ``ts_recv`` window, as the live micro-batcher would flush them),
and steps each pipeline over them with carried state.  Prints per pipeline: p50 / p99 / mean latency per
micro-batch and rows per second (all rows of the tables the pipeline reads), and the baseline measured in the
same run: one ``step`` over the whole history (the backtest path), as microseconds per row.

JIT compilation (the numba scans and evaluations) and the first micro-batches are warmed before timing.  Run:
``.venv/bin/python benchmarks/bench_live_steps.py [--days D] [--quick] [--store DIR] [--repeat N]`` (default 0.1
days, about a minute; ``--quick``: 0.02 days; ``--store``: read an existing store instead; ``--repeat N``: every
step runs N times from the same state and keeps its fastest run, which filters out other processes on a shared box;
the thread CPU time is printed too).
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


def _percentiles(ms: np.ndarray) -> str:
    return f"p50 {np.percentile(ms, 50):6.3f} ms  p99 {np.percentile(ms, 99):6.3f} ms  mean {ms.mean():6.3f} ms"


def bench(name: str, tables: dict[str, pl.DataFrame], batches: list[Batch], repeat: int) -> None:
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
    wall, cpu = [], []
    rows = 0
    for batch in batches[WARM_STEPS:]:
        best_wall = best_cpu = np.inf
        for _ in range(repeat):  # a step never changes its input state: each repeat is the same work
            start, start_cpu = time.perf_counter(), time.thread_time()
            _, after = strategy.step(batch, state, params)
            best_cpu = min(best_cpu, time.thread_time() - start_cpu)
            best_wall = min(best_wall, time.perf_counter() - start)
        state = after
        wall.append(best_wall)
        cpu.append(best_cpu)
        rows += sum(batch.frame(t).height for t in used)
    ms, cpu_ms = np.array(wall) * 1e3, np.array(cpu) * 1e3
    per_batch = rows / len(wall)
    best = f", best of {repeat}" if repeat > 1 else ""
    print(
        f"{name:15s} micro-batches {len(ms):5d} ({per_batch:,.0f} rows each{best}): {_percentiles(ms)}"
        f"  {rows / ms.sum() * 1e3:12,.0f} rows/s  ({ms.mean() * 1e3 / per_batch:.3f} us/row)"
    )
    print(f"{'':15s} thread CPU time per micro-batch: {_percentiles(cpu_ms)}")
    print(
        f"{'':15s} baseline, one step over the whole history: {whole_rows:,} rows in {whole_s:.2f} s"
        f"  {whole_rows / whole_s:12,.0f} rows/s  ({whole_s * 1e6 / whole_rows:.3f} us/row), {output.height} episodes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=0.1, help="market length in days")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a 0.02-day market")
    parser.add_argument("--store", type=Path, help="an existing store to read instead of generating one")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs of every step (a shared, noisy box)")
    parser.add_argument("--pipelines", default="basis,options_parity")
    args = parser.parse_args()
    days = 0.02 if args.quick else args.days
    if args.store is not None:
        tables = load(args.store)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "store"
            start = time.perf_counter()
            generate_to_store(root, MarketSpec(seed=args.seed, days=days))
            print(f"generated {days} days (seed {args.seed}) in {time.perf_counter() - start:.1f} s")
            tables = load(root)
    print("rows: " + ", ".join(f"{name} {frame.height:,}" for name, frame in tables.items()))
    batches = micro_batches(tables)
    for name in args.pipelines.split(","):
        bench(name, tables, batches, max(args.repeat, 1))


if __name__ == "__main__":
    main()
