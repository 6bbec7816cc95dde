"""Risk engine benchmarks, each against a plain numpy/scipy baseline measured in the same run.

    .venv/bin/python benchmarks/bench_risk.py [--quick]

1. Historical + parametric VaR/ES, 100 positions x 2 years of daily returns: p50/p99 latency per call.
2. Monte Carlo VaR, 100k scenarios x 100 assets: wall time (JIT warm-up excluded).
3. Vectorized pre-trade checks (2-leg arbitrages): checks per second vs a Python loop per candidate.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from arbkit.risk import RiskLimits, check_orders, expected_shortfall, portfolio_var, snapshot, value_at_risk


def _latencies(fn: object, repeats: int) -> np.ndarray:
    out = np.empty(repeats)
    for i in range(repeats):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out[i] = time.perf_counter() - t
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few seconds")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_assets, n_days = 100, 504
    returns = rng.normal(0, 0.02, size=(n_days, n_assets))
    e = rng.normal(0, 1e5, size=n_assets)
    levels = (0.95, 0.99)

    def ours() -> None:
        pnl = returns @ e
        value_at_risk(pnl, levels, "historical")
        expected_shortfall(pnl, levels, "historical")
        value_at_risk(pnl, levels, "parametric")
        expected_shortfall(pnl, levels, "parametric")

    def baseline() -> None:
        pnl = returns @ e
        for a in levels:
            q = np.quantile(-pnl, a)
            float(np.mean(-pnl[-pnl >= q]))
            mu, sd = pnl.mean(), np.sqrt(e @ np.cov(returns, rowvar=False) @ e)
            -(mu + sd * stats.norm.ppf(1 - a))
            -mu + sd * stats.norm.pdf(stats.norm.ppf(a)) / (1 - a)

    reps = 300 if args.quick else 2000
    ours()
    baseline()
    a, b = _latencies(ours, reps) * 1e3, _latencies(baseline, reps) * 1e3
    print(
        f"VaR/ES hist+param {n_assets}x{n_days}: p50 {np.percentile(a, 50):.3f} ms  p99 "
        f"{np.percentile(a, 99):.3f} ms (target p99 < 1 ms) | baseline numpy/scipy p50 "
        f"{np.percentile(b, 50):.3f} ms p99 {np.percentile(b, 99):.3f} ms | speed-up p50 "
        f"{np.percentile(b, 50) / np.percentile(a, 50):.2f}x"
    )

    n_scen = 20_000 if args.quick else 100_000
    portfolio_var(e, returns, levels, "monte_carlo", n_scenarios=n_scen)
    t = time.perf_counter()
    portfolio_var(e, returns, levels, "monte_carlo", n_scenarios=n_scen, seed=1)
    mc = time.perf_counter() - t
    t = time.perf_counter()
    root = np.linalg.cholesky(np.cov(returns, rowvar=False))
    sims = np.random.default_rng(1).standard_normal((n_scen, n_assets)) @ root.T
    pnl = sims @ e
    np.quantile(-pnl, levels)
    base = time.perf_counter() - t
    print(
        f"Monte Carlo VaR {n_scen} scenarios x {n_assets} assets: {mc * 1e3:.1f} ms | baseline numpy "
        f"{base * 1e3:.1f} ms | ratio {base / mc:.2f}x"
    )

    n_pos = 200
    limits = RiskLimits(
        max_var=5e5,
        max_leverage=3.0,
        max_concentration=0.5,
        max_drawdown=0.2,
        stop_loss=1e5,
        default_max_position=50.0,
        default_max_venue_notional=5e5,
    )
    state = snapshot(
        venue=[f"v{i % 5}" for i in range(n_pos)],
        symbol=[f"S{i // 5}" for i in range(n_pos)],
        quantity=rng.normal(size=n_pos),
        price=rng.uniform(10, 100, n_pos),
        exposure=e,
        covariance=np.cov(returns, rowvar=False),
        equity=1e6,
        limits=limits,
    )
    m = 1 << (17 if args.quick else 20)
    pos = rng.integers(0, n_pos, (m, 2))
    fac = pos % n_assets
    qty = rng.normal(size=(m, 2)) * 10
    check_orders(state, position=pos, factor=fac, quantity=qty)
    runs = [time.perf_counter()]
    for _ in range(3):
        check_orders(state, position=pos, factor=fac, quantity=qty)
        runs.append(time.perf_counter())
    rate = m / np.min(np.diff(runs))
    # Baseline: the same position/leverage/VaR rules one candidate at a time in Python.
    cov, cov_e, var0 = state.covariance, state.covariance @ e, float(e @ state.covariance @ e)
    sample = 20_000
    t = time.perf_counter()
    for i in range(sample):
        gross = state.gross_notional
        variance = var0
        for leg in range(2):
            p, f, q = pos[i, leg], fac[i, leg], qty[i, leg]
            new = state.position[p] + q
            _ = abs(new) > state.position_cap[p]
            gross += (abs(new) - abs(state.position[p])) * state.position_price[p]
            d = q * state.position_price[p]
            variance += 2 * d * cov_e[f] + d * d * cov[f, f]
        _ = gross / state.equity > limits.max_leverage
        _ = 2.326 * np.sqrt(max(variance, 0.0)) > limits.max_var
    base_rate = sample / (time.perf_counter() - t)
    print(
        f"pre-trade checks (2-leg, {m} candidates): {rate:,.0f}/s (target >= 1,000,000/s) | baseline "
        f"Python loop {base_rate:,.0f}/s | speed-up {rate / base_rate:.0f}x"
    )


if __name__ == "__main__":
    main()
