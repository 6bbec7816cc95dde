"""Store scan with a symbol + time-range filter vs plain pyarrow (read the same files, then filter).

Builds a synthetic quotes store (20 symbols x 3 exchanges over 2 days), then times, after one warm-up each:
* ``Store.scan(table, symbol=..., start=..., end=...)`` (day pruning + row-group statistics), and
* ``pyarrow.parquet.read_table(files)`` followed by a compute filter on the same predicate.

Run: ``.venv/bin/python benchmarks/bench_store.py [--rows N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq

from arbkit.data.store import Store

DAY = 86_400 * 1_000_000_000
T0 = 1_714_521_600 * 1_000_000_000


def build(rows: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    symbols = [f"C{i:02d}/USDT" for i in range(20)]
    exchanges = ["binance", "okx", "bybit"]
    ts = np.sort(rng.integers(T0, T0 + 2 * DAY, rows))
    mid = 100.0 + rng.standard_normal(rows).cumsum() * 0.01
    mid = np.abs(mid) + 50.0
    return pl.DataFrame(
        {
            "ts_event": ts - 1_000_000,
            "ts_recv": ts,
            "exchange": np.array(exchanges)[rng.integers(0, 3, rows)],
            "symbol": np.array(symbols)[rng.integers(0, 20, rows)],
            "bid": mid,
            "bid_size": rng.random(rows) + 0.1,
            "ask": mid + 0.01,
            "ask_size": rng.random(rows) + 0.1,
        }
    )


def best(fn: object, repeat: int) -> tuple[float, int]:
    assert callable(fn)
    fn()  # warm-up
    times = []
    n = 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t)
    return min(times), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="300k rows")
    args = parser.parse_args()
    rows = 300_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        frame = build(rows)
        t = time.perf_counter()
        store.write("quotes", frame)
        print(f"wrote {rows:,} rows in {time.perf_counter() - t:.2f} s")
        files = [str(p) for p in sorted(store.root.rglob("part-*.parquet"))]
        symbol, lo, hi = "C07/USDT", T0 + DAY + 3_600 * 10**9, T0 + DAY + 5 * 3_600 * 10**9

        def ours() -> int:
            return store.scan("quotes", symbol=symbol, start=lo, end=hi).collect().height

        def baseline() -> int:
            table = pq.read_table(files, partitioning=None)
            mask = pc.and_(
                pc.equal(table["symbol"], symbol),
                pc.and_(pc.greater_equal(table["ts_recv"], lo), pc.less(table["ts_recv"], hi)),
            )
            return table.filter(mask).num_rows

        t_ours, n_ours = best(ours, args.repeat)
        t_base, n_base = best(baseline, args.repeat)
        assert n_ours == n_base, (n_ours, n_base)
        print(f"rows matched: {n_ours:,} of {rows:,} ({len(files)} files)")
        print(f"Store.scan (symbol + 4h range): {t_ours * 1e3:8.1f} ms")
        print(f"pyarrow read_table + filter   : {t_base * 1e3:8.1f} ms")
        print(f"speed-up vs pyarrow baseline  : {t_base / t_ours:8.1f}x")


if __name__ == "__main__":
    main()
