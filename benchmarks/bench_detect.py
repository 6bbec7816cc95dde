"""Benchmark the cross-exchange and triangular detectors.

Prints, with baselines measured in the same run:
* cross-exchange end to end from Parquet (read + canonical sort + detect, 1M-row steps with carried state), rows/s,
  against reading the same columns from the same file, and a Polars ``join_asof`` as-of baseline;
* triangular: cycles x rows evaluated per second;
* live-shaped stepping: ``step`` over 1,000-row micro-batches, p50/p99 latency and rows/s.

Run: ``.venv/bin/python benchmarks/bench_detect.py [--rows N] [--quick]`` (default 4M rows; the issue's figure
is ``--rows 20000000``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

import pipelines
from arbkit import schema
from arbkit.pipeline import Batch

VENUES = ("binance", "okx", "bybit")
ASSETS = ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "DOT", "LTC", "BCH", "LINK",
          "AVAX", "ATOM", "UNI", "FIL", "TRX", "ETC", "XLM", "NEAR", "APT", "ARB")  # fmt: skip


def synthetic_quotes(rows: int, seed: int = 0) -> pl.DataFrame:
    """3 venues x 20 USDT instruments, random walk prices with rare cross-venue dislocations."""
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(0, 200_000, rows)).astype(np.int64)
    sym = rng.integers(0, len(ASSETS), rows)
    ven = rng.integers(0, len(VENUES), rows)
    level = np.exp(rng.uniform(0, 10, len(ASSETS)))[sym]
    mid = level * (1 + 0.0005 * rng.standard_normal(rows))
    mid *= np.where(rng.random(rows) < 0.001, 1.01, 1.0)
    half = mid * 0.0001
    return pl.DataFrame(
        {
            "ts_event": ts - 1_000_000,
            "ts_recv": ts,
            "exchange": np.array(VENUES)[ven],
            "symbol": np.array([f"{a}/USDT" for a in ASSETS])[sym],
            "bid": mid - half,
            "bid_size": rng.exponential(1.0, rows),
            "ask": mid + half,
            "ask_size": rng.exponential(1.0, rows),
            "seq": np.arange(rows),
            "flags": np.zeros(rows, dtype=np.uint16),
        },
        schema=schema.QUOTES.polars,
    ).sort("symbol", "ts_recv")  # the store's file order


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--quick", action="store_true", help="500k rows")
    args = parser.parse_args()
    rows = 500_000 if args.quick else args.rows
    path = Path(tempfile.mkdtemp()) / "quotes.parquet"
    synthetic_quotes(rows).write_parquet(path, row_group_size=65_536)
    cols = ["ts_recv", "exchange", "symbol", "bid", "bid_size", "ask", "ask_size", "flags"]

    t = time.perf_counter()
    read = pl.read_parquet(path, columns=cols)
    t_read = time.perf_counter() - t
    print(f"read columns:            {rows / t_read / 1e6:8.2f} M rows/s  ({t_read:.2f} s)")

    t = time.perf_counter()
    frame = read.sort("ts_recv")
    venue_frames = [
        frame.filter(pl.col("exchange") == v).select("ts_recv", "symbol", pl.col("bid").alias(v)) for v in VENUES
    ]
    joined = frame.select("ts_recv", "symbol")
    for vf in venue_frames:
        joined = joined.join_asof(vf, on="ts_recv", by="symbol", strategy="backward", check_sortedness=False)
    t_asof = time.perf_counter() - t
    print(f"polars join_asof (bid):  {rows / t_asof / 1e6:8.2f} M rows/s  ({t_asof:.2f} s)")

    cross = pipelines.get("cross_exchange")
    params = cross.params_type()
    t = time.perf_counter()
    full = pl.read_parquet(path).sort("ts_recv", maintain_order=True)
    state = cross.init(params)
    found = 0
    for lo in range(0, rows, 1_000_000):
        out, state = cross.step(Batch(quotes=full.slice(lo, 1_000_000)), state, params)
        found += out.height
    found += cross.finish(state, params).height
    t_cross = time.perf_counter() - t
    print(f"cross-exchange e2e:      {rows / t_cross / 1e6:8.2f} M rows/s  ({t_cross:.2f} s, {found} episodes)")
    print(f"  ratio to read:         {t_cross / t_read:8.2f} x   (target <= 3x)")
    print(f"  ratio to join_asof:    {t_cross / t_asof:8.2f} x")

    # Triangular: one venue-set with cross pairs so cycles exist.
    tri = pipelines.get("triangular")
    tri_rows = min(rows, 20_000)  # synthetic crosses are inconsistent: most rows are events (slow Python legs)
    sample = full.slice(0, tri_rows)
    crosses = (
        sample.slice(0, tri_rows // 4)
        .with_columns(
            (pl.col("symbol").str.replace("/USDT", "/BTC")),
            pl.col("bid") / 30_000.0,
            pl.col("ask") / 30_000.0,
        )
        .filter(pl.col("symbol") != "BTC/BTC")
    )
    tri_batch = Batch(quotes=pl.concat([sample, crosses]).sort("ts_recv", maintain_order=True))
    tparams = tri.params_type()
    tri.step(Batch(quotes=tri_batch.quotes.slice(0, 1000)), tri.init(tparams), tparams)  # warm the JIT
    t = time.perf_counter()
    tri.step(tri_batch, tri.init(tparams), tparams)
    t_tri = time.perf_counter() - t
    from arbkit.detect._triangular import build_topology

    cells = tuple(sorted(set(zip(tri_batch.quotes["exchange"], tri_batch.quotes["symbol"], strict=True))))
    n_cycles = len(build_topology(cells, tparams.max_legs, ()).cycles)
    print(
        f"triangular:              {tri_batch.height * n_cycles / t_tri / 1e6:8.2f} M cycle-rows/s "
        f"({n_cycles} cycles x {tri_batch.height} rows in {t_tri:.2f} s)"
    )

    # Live-shaped stepping.
    state = cross.init(params)
    lat = []
    n_steps = min(2_000, rows // 1_000)
    for i in range(n_steps):
        b = Batch(quotes=full.slice(i * 1_000, 1_000))
        t = time.perf_counter()
        _, state = cross.step(b, state, params)
        lat.append(time.perf_counter() - t)
    arr = np.array(lat[10:]) * 1e3
    print(
        f"live step (1,000 rows):  p50 {np.percentile(arr, 50):.2f} ms  p99 {np.percentile(arr, 99):.2f} ms  "
        f"{1_000 / np.mean(arr) * 1e3 / 1e6:.2f} M rows/s  (target p99 < 2 ms)"
    )


if __name__ == "__main__":
    main()
