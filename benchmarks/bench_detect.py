"""Benchmark the cross-exchange and triangular detectors, with same-run baselines.

Prints:
* cross-exchange end to end from Parquet (read the columns + detect, the file in the store's order: symbol then
  time), rows/s, against four baselines on the same file in the same run: reading the same columns, a Polars
  ``join_asof`` as-of view (bid and ask of every venue), DuckDB's ASOF JOIN, and a plain NumPy forward-fill
  detector (the last three: as-of bid/ask per venue and a best-bid > best-ask test, no fees, sizes, episodes or
  integrity checks); plus the detector stepping the time-ordered history in 1M-row batches (same episodes);
* triangular: cycles x rows evaluated per second, on 3 venues x 20 USDT pairs plus their BTC crosses, priced
  consistently from the USDT pairs with a few injected dislocations (hits are rare, as in real data);
* live-shaped stepping: ``step`` over 1,000-row micro-batches with carried state, p50/p99 latency and rows/s, for
  both detectors.

The quote file is generated once per row count into ``$TMPDIR/arbkit-bench`` (minutes at 20M rows) and reused.
JIT compilation is warmed before timing.  Run: ``.venv/bin/python benchmarks/bench_detect.py [--rows N] [--quick]
[--only triangular|cross-exchange] [--repeat N]`` (default 4M rows, about a minute; the issue's figure is ``--rows
20000000``).  ``--repeat N`` reports each triangular live step's best of N passes (a shared box preempts steps).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

import pipelines
from arbkit import schema
from arbkit.pipeline import Batch

VENUES = ("binance", "okx", "bybit")
ASSETS = ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "DOT", "LTC", "BCH", "LINK",
          "AVAX", "ATOM", "UNI", "FIL", "TRX", "ETC", "XLM", "NEAR", "APT", "ARB")  # fmt: skip
STEP_ROWS = 1_000_000


def synthetic_quotes(rows: int, seed: int = 0) -> pl.DataFrame:
    """3 venues x 20 USDT instruments, noisy prices around a level with rare cross-venue dislocations."""
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


def triangular_quotes(rows: int, seed: int = 1, dislocations: int = 20) -> pl.DataFrame:
    """USDT pairs plus ``X/BTC`` crosses on 3 venues, crosses priced from the USDT mids (consistent), with a few
    injected cross dislocations of 1%."""
    rng = np.random.default_rng(seed)
    n_assets = len(ASSETS)
    ts = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(1, 200_000, rows)).astype(np.int64)
    levels = np.exp(rng.uniform(0, 10, n_assets))
    levels[0] = 60_000.0
    # Each row updates one (venue, asset) instrument: a USDT pair or (assets other than BTC) its BTC cross.
    asset = rng.integers(0, n_assets, rows)
    cross = (rng.random(rows) < 0.3) & (asset > 0)
    ven = rng.integers(0, len(VENUES), rows)
    drift = np.exp(np.cumsum(0.00002 * rng.standard_normal((rows, 1)), axis=0))[:, 0]  # a shared market factor
    usdt_mid = levels[asset] * drift * (1 + 0.00002 * rng.standard_normal(rows))
    btc_mid = levels[0] * drift
    mid = np.where(cross, usdt_mid / btc_mid, usdt_mid)
    spread = 0.0002
    bump = np.ones(rows)
    bump[rng.choice(np.flatnonzero(cross), size=min(dislocations, int(cross.sum())), replace=False)] = 1.01
    mid = mid * bump
    names = np.array([f"{a}/USDT" for a in ASSETS] + [f"{a}/BTC" for a in ASSETS])
    return pl.DataFrame(
        {
            "ts_event": ts - 1_000_000,
            "ts_recv": ts,
            "exchange": np.array(VENUES)[ven],
            "symbol": names[asset + np.where(cross, n_assets, 0)],
            "bid": mid * (1 - spread),
            "bid_size": rng.exponential(5.0, rows),
            "ask": mid * (1 + spread),
            "ask_size": rng.exponential(5.0, rows),
            "seq": np.arange(rows),
            "flags": np.zeros(rows, dtype=np.uint16),
        },
        schema=schema.QUOTES.polars,
    )


def numpy_ffill_detector(frame: pl.DataFrame) -> int:
    """Baseline: as-of bid/ask of every venue per symbol by forward fill, then count rows with best bid > best ask.

    Like the detector, it uses the file's order when that is already symbol-grouped and time-sorted (the store's
    layout), and sorts only otherwise.
    """
    sym = frame["symbol"].cast(pl.Categorical).to_physical().to_numpy()
    ven = frame["exchange"].cast(pl.Categorical).to_physical().to_numpy()
    ts = frame["ts_recv"].to_numpy()
    bid, ask = frame["bid"].to_numpy(), frame["ask"].to_numpy()
    change = np.r_[True, sym[1:] != sym[:-1]]
    grouped = np.unique(sym[change]).size == int(change.sum()) and bool((np.diff(ts)[~change[1:]] >= 0).all())
    if not grouped:
        order = np.lexsort((ts, sym))
        sym, ven, bid, ask = sym[order], ven[order], bid[order], ask[order]
        change = np.r_[True, sym[1:] != sym[:-1]]
    pos = np.arange(sym.size)
    group_start = np.maximum.accumulate(np.where(change, pos, 0))
    best_bid = np.full(sym.size, -np.inf)
    best_ask = np.full(sym.size, np.inf)
    for v in np.unique(ven):
        last = np.maximum.accumulate(np.where(ven == v, pos, -1))
        ok = last >= group_start
        idx = np.maximum(last, 0)
        best_bid = np.where(ok, np.maximum(best_bid, bid[idx]), best_bid)
        best_ask = np.where(ok, np.minimum(best_ask, ask[idx]), best_ask)
    return int((best_bid > best_ask).sum())


def duckdb_asof(path: Path) -> int:
    """Baseline: DuckDB ASOF JOIN of every venue's latest bid/ask onto each row, then best bid > best ask."""
    import duckdb

    joins, bids, asks = [], [], []
    for i, v in enumerate(VENUES):
        joins.append(
            f"ASOF LEFT JOIN (SELECT ts_recv, symbol, bid, ask FROM q WHERE exchange = '{v}') v{i} "
            f"ON t.symbol = v{i}.symbol AND t.ts_recv >= v{i}.ts_recv"
        )
        bids.append(f"v{i}.bid")
        asks.append(f"v{i}.ask")
    sql = (
        f"WITH q AS (SELECT ts_recv, exchange, symbol, bid, ask FROM read_parquet('{path}')) "
        f"SELECT count(*) FROM q t {' '.join(joins)} WHERE greatest({', '.join(bids)}) > least({', '.join(asks)})"
    )
    with duckdb.connect() as con:
        row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


#: Generated quote files are kept here between runs (the data is a pure function of the row count).
CACHE = Path(tempfile.gettempdir()) / "arbkit-bench"


def _quotes_file(rows: int) -> Path:
    """The cross-exchange benchmark's Parquet file (store order, 64k-row groups), generated once per row count."""
    path = CACHE / f"quotes-{rows}-seed0-v1.parquet"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{time.time_ns()}.tmp")
        synthetic_quotes(rows).write_parquet(partial, row_group_size=65_536)
        partial.replace(path)
    return path


def _timed(fn: object, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return best, out


def _latency(strategy: object, frame: pl.DataFrame, steps: int) -> npt.NDArray[np.float64]:
    params = strategy.params_type()  # type: ignore[attr-defined]
    state = strategy.init(params)  # type: ignore[attr-defined]
    out = []
    for i in range(steps):
        b = Batch(quotes=frame.slice(i * 1_000, 1_000))
        t = time.perf_counter()
        _, state = strategy.step(b, state, params)  # type: ignore[attr-defined]
        out.append(time.perf_counter() - t)
    return np.array(out[min(20, steps // 10) :]) * 1e3  # the first steps warm caches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--quick", action="store_true", help="500k rows")
    parser.add_argument("--tri-rows", type=int, default=200_000)
    parser.add_argument("--only", choices=("cross-exchange", "triangular"), help="run one detector's part")
    parser.add_argument("--repeat", type=int, default=1, help="triangular live steps: best of N passes per step")
    args = parser.parse_args()
    rows = 500_000 if args.quick else args.rows
    if args.only == "triangular":
        bench_triangular(args, rows)
        return
    path = _quotes_file(rows)
    cols = ["ts_recv", "exchange", "symbol", "bid", "bid_size", "ask", "ask_size", "flags"]
    print(f"cross-exchange: {rows:,} quote rows, {len(VENUES)} venues x {len(ASSETS)} instruments")

    t_read, _ = _timed(lambda: pl.read_parquet(path, columns=cols), repeat=3)
    print(f"  read columns:          {rows / t_read / 1e6:8.2f} M rows/s  ({t_read:.2f} s)")

    def asof() -> pl.DataFrame:
        frame = pl.read_parquet(path, columns=cols).sort("ts_recv")
        joined = frame.select("ts_recv", "symbol")
        for v in VENUES:
            side = frame.filter(pl.col("exchange") == v).select(
                "ts_recv", "symbol", pl.col("bid").alias(f"bid_{v}"), pl.col("ask").alias(f"ask_{v}")
            )
            joined = joined.join_asof(side, on="ts_recv", by="symbol", strategy="backward", check_sortedness=False)
        return joined

    t_asof, _ = _timed(asof)
    print(f"  polars join_asof:      {rows / t_asof / 1e6:8.2f} M rows/s  ({t_asof:.2f} s, read included)")
    t_np, _ = _timed(lambda: numpy_ffill_detector(pl.read_parquet(path, columns=cols)))
    print(f"  numpy forward-fill:    {rows / t_np / 1e6:8.2f} M rows/s  ({t_np:.2f} s, read included)")

    t_duck, _ = _timed(lambda: duckdb_asof(path))
    print(f"  duckdb ASOF JOIN:      {rows / t_duck / 1e6:8.2f} M rows/s  ({t_duck:.2f} s, read included)")

    cross = pipelines.get("cross_exchange")
    params = cross.params_type()
    cross.step(Batch(quotes=synthetic_quotes(2_000, seed=9)), cross.init(params), params)  # compile/warm-up

    def run_cross() -> int:
        # The store's file order (symbol, then time) is scanned as read: per-symbol clock order is all it needs.
        frame = pl.read_parquet(path, columns=cols)
        out, state = cross.step(Batch(quotes=frame), cross.init(params), params)
        return out.height + cross.finish(state, params).height

    t_cross, found = _timed(run_cross, repeat=2)
    print(
        f"  arbkit cross-exchange: {rows / t_cross / 1e6:8.2f} M rows/s  "
        f"({t_cross:.2f} s, read included, {found} episodes)"
    )
    print(f"    ratio to read:       {t_cross / t_read:8.2f} x   (target <= 3x)")
    print(
        f"    vs join_asof:        {t_asof / t_cross:8.2f} x faster;  vs numpy ffill: {t_np / t_cross:.2f} x faster;  "
        f"vs duckdb: {t_duck / t_cross:.2f} x faster"
    )

    timeline = pl.read_parquet(path).sort("ts_recv", maintain_order=True)

    def run_steps() -> int:
        state = cross.init(params)
        found = 0
        for lo in range(0, rows, STEP_ROWS):
            out, state = cross.step(Batch(quotes=timeline.slice(lo, STEP_ROWS)), state, params)
            found += out.height
        return found + cross.finish(state, params).height

    t_steps, found_steps = _timed(run_steps)
    print(
        f"  same, time-ordered history in 1M-row steps (in memory): {rows / t_steps / 1e6:.2f} M rows/s  "
        f"({t_steps:.2f} s, {found_steps} episodes: {'same' if found_steps == found else 'DIFFERENT'})"
    )

    steps = min(2_000, rows // 1_000)
    live = pl.read_parquet(path).sort("ts_recv", maintain_order=True)
    _print_latency("cross-exchange", _latency(cross, live, min(steps, live.height // 1_000)))
    if args.only is None:
        bench_triangular(args, rows)


def _print_latency(name: str, lat: npt.NDArray[np.float64]) -> None:
    print(
        f"live step {name} (1,000 rows): p50 {np.percentile(lat, 50):.2f} ms  p99 {np.percentile(lat, 99):.2f} ms  "
        f"{1_000 / np.mean(lat) * 1e3 / 1e6:.2f} M rows/s  (target p99 < 2 ms)"
    )


def bench_triangular(args: argparse.Namespace, rows: int) -> None:
    """Triangular cycle-rows/s over 100k-row steps, then live-shaped 1,000-row stepping latency."""
    tri = pipelines.get("triangular")
    tparams = tri.params_type()
    tri_frame = triangular_quotes(args.tri_rows if not args.quick else 50_000)
    tri.step(Batch(quotes=tri_frame.slice(0, 5_000)), tri.init(tparams), tparams)  # warm the JIT buckets

    def run_tri() -> int:
        state = tri.init(tparams)
        found = 0
        for lo in range(0, tri_frame.height, 100_000):
            out, state = tri.step(Batch(quotes=tri_frame.slice(lo, 100_000)), state, tparams)
            found += out.height
        return found + tri.finish(state, tparams).height

    from arbkit.detect._triangular import build_topology

    cells = tuple(sorted(set(zip(tri_frame["exchange"], tri_frame["symbol"], strict=True))))
    n_cycles = len(build_topology(cells, tparams.max_legs, ()).cycles)
    t_tri, tri_found = _timed(run_tri)
    print(
        f"triangular: {n_cycles} cycles x {tri_frame.height:,} rows: "
        f"{tri_frame.height * n_cycles / t_tri / 1e6:8.2f} M cycle-rows/s  ({t_tri:.2f} s, {tri_found} episodes)"
    )
    steps = min(2_000, rows // 1_000, tri_frame.height // 1_000)
    # On a shared box one preempted step is the p99 of a short run: --repeat N keeps each step's best of N passes.
    runs = [_latency(tri, tri_frame, steps) for _ in range(max(args.repeat, 1))]
    label = "triangular" if len(runs) == 1 else f"triangular, best of {len(runs)} per step"
    _print_latency(label, np.min(runs, axis=0))


if __name__ == "__main__":
    main()
