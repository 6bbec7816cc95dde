"""Tardis quotes import throughput vs ``pyarrow.csv.read_csv`` of the same file.

Generates a Tardis-format ``quotes`` CSV (``--rows``, 1M by default; 10M is the reference size, ~4 min here), then
times ``import_tardis`` (parse, map symbols, validate, write Parquet, compact) and, as the baseline, a plain typed
``pyarrow.csv.read_csv`` of the file (parsing only).

Run: ``.venv/bin/python benchmarks/bench_import.py [--rows N] [--quick]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.csv as pacsv

from arbkit.data.importers import import_tardis
from arbkit.data.store import Store

HEADER = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"


def generate(path: Path, rows: int, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    ts = 1_714_521_600_000_000 + np.sort(rng.integers(0, 86_400_000_000, rows))
    mid = np.round(60_000 + rng.standard_normal(rows).cumsum(), 1)
    symbols = np.array(["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"])[rng.integers(0, 4, rows)]
    frame = pl.DataFrame(
        {
            "exchange": ["binance-futures"] * rows,
            "symbol": symbols,
            "timestamp": ts,
            "local_timestamp": ts + rng.integers(100, 5_000, rows),
            "ask_amount": np.round(rng.random(rows) * 5 + 0.001, 3),
            "ask_price": mid + 0.1,
            "bid_price": mid,
            "bid_amount": np.round(rng.random(rows) * 5 + 0.001, 3),
        }
    )
    frame.write_csv(path)
    assert path.read_text(encoding="ascii")[: len(HEADER)] == HEADER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="200k rows")
    parser.add_argument("--chunk-rows", type=int, default=500_000)
    args = parser.parse_args()
    rows = 200_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as root:
        csv = Path(root) / "binance-futures_quotes_2024-05-01_BTCUSDT.csv"
        generate(csv, rows)
        size = csv.stat().st_size
        t = time.perf_counter()
        table = pacsv.read_csv(csv)
        t_base = time.perf_counter() - t
        assert table.num_rows == rows
        del table
        t = time.perf_counter()
        report = import_tardis([csv], Store(Path(root) / "store"), chunk_rows=args.chunk_rows)
        t_ours = time.perf_counter() - t
        assert report.rows_written == {"quotes": rows}, report.rows_written
        print(f"file: {rows:,} rows, {size / 1e6:.0f} MB")
        print(f"pyarrow.csv.read_csv (parse only)  : {t_base:6.2f} s  {rows / t_base / 1e6:6.2f} M rows/s")
        print(f"import_tardis (parse..write+compact): {t_ours:6.2f} s  {rows / t_ours / 1e6:6.2f} M rows/s")
        print(f"importer time / baseline time        : {t_ours / t_base:6.2f}x")


if __name__ == "__main__":
    main()
