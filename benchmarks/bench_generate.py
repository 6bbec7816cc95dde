"""Throughput and peak memory of ``arbkit.data.generate`` written to the Parquet store.

Run ``.venv/bin/python benchmarks/bench_generate.py [--rows N]``.  The market is the "3 venues x 20 instruments"
reference (binance, okx, bybit; 10 assets with spot and linear perpetual each, plus the crosses the registry
tick allows), options off, at 4 quote updates per second; ``--rows`` sets the length of the market.  The baseline
writes the same number of rows, in the same chunk sizes, as a plain numpy random frame with the QUOTES schema
through ``pyarrow.parquet.write_table`` (no market model, no validation, no partitioning), measured in the same
run.  Peak RSS is the process high-water mark (``resource.getrusage``) taken right after the generator, before
the baseline runs.  Below 50M rows the 50M figures are linear extrapolations of the time; ``--rows 50000000``
measures them (about 3 minutes for the generator here).

Measured (2 vCPU, 2026-11-25, other jobs on the machine): 50,021,469 quote rows in 178.1 s = 280,795 rows/s,
peak RSS 403 MiB (the issue's bound: 4 GiB); baseline 1.67M rows/s.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from arbkit.data.generate import MarketSpec, generate
from arbkit.data.store import Store
from arbkit.schema import QUOTES

ASSETS = ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "AVAX", "LINK", "DOT", "LTC")
VENUES = ("binance", "okx", "bybit")
RATE = 4.0


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def run_generator(rows: int, root: Path) -> tuple[int, float, list[int]]:
    instruments = len(VENUES) * (2 * len(ASSETS) + 1)  # spot + perp per asset, ETH/BTC where the tick allows
    days = rows / (instruments * RATE * 86400.0)
    spec = MarketSpec(days=days, venues=VENUES, assets=ASSETS, rate=RATE, options=False, chunk_minutes=15.0)
    store = Store(root)
    written = 0
    chunks: list[int] = []
    t0 = time.perf_counter()
    for name, frame in generate(spec):
        store.append(name, frame)
        if name == "quotes":
            written += frame.height
            chunks.append(frame.height)
    return written, time.perf_counter() - t0, chunks


def run_baseline(chunks: list[int], root: Path) -> float:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for i, n in enumerate(chunks):
        ts = np.sort(rng.integers(1, 10**18, size=n))
        table = pa.table(
            {
                "ts_event": ts,
                "ts_recv": ts + 5_000_000,
                "exchange": rng.choice(np.array(VENUES), size=n),
                "symbol": rng.choice(np.array([f"{a}/USDT" for a in ASSETS]), size=n),
                "bid": rng.uniform(1, 100, size=n),
                "bid_size": rng.uniform(0, 10, size=n),
                "ask": rng.uniform(100, 200, size=n),
                "ask_size": rng.uniform(0, 10, size=n),
                "seq": np.zeros(n, dtype=np.int64),
                "flags": np.zeros(n, dtype=np.uint16),
            },
            schema=QUOTES.arrow,
        )
        pq.write_table(table, root / f"part-{i:05d}.parquet")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000, help="quote rows to generate (default 4M, ~1 min)")
    parser.add_argument("--quick", action="store_true", help="500k quote rows: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rows = 500_000
    with tempfile.TemporaryDirectory() as tmp:
        written, gen_s, chunks = run_generator(args.rows, Path(tmp) / "store")
        peak = _peak_rss_mib()
        base_dir = Path(tmp) / "baseline"
        base_dir.mkdir()
        base_s = run_baseline(chunks, base_dir)
    gen_rate, base_rate = written / gen_s, written / base_s
    what = "quote rows (+ trades, book, funding, labels)"
    print(f"generator : {written:,} {what} in {gen_s:.1f} s = {gen_rate:,.0f} rows/s")
    print(f"baseline  : {written:,} random rows -> pq.write_table in {base_s:.1f} s = {base_rate:,.0f} rows/s")
    print(f"ratio     : generator / baseline throughput = {gen_rate / base_rate:.2f}")
    print(f"peak RSS  : {peak:,.0f} MiB (chunks of {max(chunks):,} rows at most)")
    if written >= 50_000_000:
        print(f"50M rows  : measured, {gen_s:,.0f} s generator with a peak RSS of {peak / 1024:.2f} GiB (bound: 4 GiB)")
    else:
        estimate = f"~{50e6 / gen_rate:,.0f} s generator, ~{50e6 / base_rate:,.0f} s baseline"
        print(f"50M rows  : {estimate} (linear extrapolation)")


if __name__ == "__main__":
    main()
