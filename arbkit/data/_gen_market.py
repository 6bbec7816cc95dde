"""Universe, latent prices and quote construction for :mod:`arbkit.data.generate` (private).

Everything here is vectorized over rows: Python loops run over venue-instruments or episodes, never over rows.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from arbkit.instruments import Instrument, Registry, SymbolInfo, expiry_ns, format_symbol

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NS = 1_000_000_000
DT_NS = 10_000_000  # latent grid step: 10 ms
NS_PER_YEAR = 365.0 * 24 * 3600 * NS
FUNDING_EVERY_NS = 5 * NS

# Known assets: (price level in USD, annual volatility).  Others get a level and vol derived from their name.
_ASSETS: dict[str, tuple[float, float]] = {
    "BTC": (100_000.0, 0.55),
    "ETH": (3_000.0, 0.70),
    "SOL": (150.0, 0.90),
    "XRP": (2.2, 0.90),
    "DOGE": (0.2, 1.00),
    "ADA": (0.7, 0.90),
}
# Half-spread multipliers by venue: venues differ in liquidity (and detectors see varied spreads).
SPREAD_MULT: dict[str, float] = {
    "binance": 1.0,
    "okx": 3.0,
    "bybit": 5.0,
    "coinbase": 2.0,
    "kraken": 2.0,
    "deribit": 2.0,
}
# Lead-lag of the diffusive part per venue (ms): the venue's quote reflects the latent diffusion this late.
LAG_MS: dict[str, float] = {
    "binance": 0.0,
    "okx": 20.0,
    "bybit": 30.0,
    "coinbase": 60.0,
    "kraken": 80.0,
    "deribit": 40.0,
}
USDT_VENUES = ("binance", "okx", "bybit", "coinbase", "kraken")
DERIVATIVE_VENUES = ("binance", "okx", "bybit")
OPTION_ASSETS = ("BTC", "ETH")
BASE_HALF_SPREAD = 2e-4  # 2 bp: floor of the relative half-spread
CORRELATION = 0.6  # one-factor correlation of every asset with the first one
MAX_CROSS_TICK = 5e-4  # a cross X/BTC is listed only where the registry tick is at most 5 bp of its price


def asset_params(name: str) -> tuple[float, float]:
    """Price level and annual volatility: known assets from a table, others derived deterministically from the name."""
    if name in _ASSETS:
        return _ASSETS[name]
    h = zlib.crc32(name.encode())
    level = 10.0 ** (1.0 + 2.0 * ((h & 0xFFFF) / 0xFFFF))  # 10 .. 1000 USD keeps the default tick below 0.1 bp
    vol = 0.7 + 0.5 * (((h >> 16) & 0xFFFF) / 0xFFFF)
    return level, vol


@dataclass(frozen=True)
class VI:
    """One quoted venue-instrument (spot, cross, linear or inverse perpetual, dated future)."""

    index: int
    venue: str
    symbol: str
    kind: str  # spot | cross | perp | iperp | future
    asset: int  # base asset index
    quote_asset: int  # -1 for USD(T)-quoted, else the asset index of the quote (crosses)
    inst: Instrument
    half: float  # relative half-spread before tick rounding
    tick_rel: float  # tick over the price level
    lat_ns: int
    lag_ns: int
    gap_ns: int  # mean time between quote updates
    max_age_ns: int
    expiry_ns: int  # 0 when not dated
    notional: float  # typical displayed notional per side, USD


@dataclass(frozen=True)
class Option:
    index: int
    symbol: str
    asset: int
    expiry_ns: int
    strike: float
    is_call: bool
    inst: Instrument
    future: int  # VI index of the dated future of the same expiry


@dataclass
class Universe:
    assets: tuple[str, ...]
    levels: FloatArray
    vols: FloatArray
    vis: list[VI]
    options: list[Option]
    venues: tuple[str, ...]
    window_ns: int  # worst staleness window between two quotes of one asset (gap + lag + latency)
    h0: FloatArray  # per asset base relative half-spread
    jump_max: FloatArray  # per asset largest jump (log)
    rate_r: float
    by_key: dict[tuple[str, str], int] = field(default_factory=dict)


def _fridays_after(day: dt.date, count: int) -> list[dt.date]:
    first = day + dt.timedelta(days=(4 - day.weekday()) % 7)
    return [first + dt.timedelta(days=7 * k) for k in (0, 1, 3)][:count]


def _strike_step(level: float) -> float:
    raw = 0.02 * level
    exp10 = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * exp10 >= raw:
            return m * exp10
    return 10.0 * exp10


def build_universe(
    registry: Registry,
    venues: tuple[str, ...],
    assets: tuple[str, ...],
    rate: float,
    start: dt.date,
    days: float,
    options: bool,
    rate_r: float,
) -> Universe:
    """List every quoted instrument with its registry facts, spreads, latencies and update gaps."""
    levels = np.array([asset_params(a)[0] for a in assets])
    vols = np.array([asset_params(a)[1] for a in assets])
    max_age = {v: registry.profile(v).max_age_ms for v in venues}
    gap_ns = {v: int(min(1.0 / rate, 0.4 * max_age[v] / 1e3) * NS) for v in venues}
    lat = {v: registry.profile(v).latency_ms for v in venues}
    # Worst staleness window: a jittered gap (up to 1.5 gaps), the largest lag and latency jitter spread.
    worst_gap = 1.5 * max(gap_ns.values()) / NS
    window_s = worst_gap + max(LAG_MS[v] for v in venues) / 1e3 + 1.6 * max(lat.values()) / 1e3
    sigma_max = 2.0 * vols / math.sqrt(365.0 * 86400.0)  # stochastic vol is clipped at twice the base level
    h0 = np.maximum(BASE_HALF_SPREAD, 3.0 * sigma_max * math.sqrt(window_s))
    # Jumps hit all venues at one event time, so receive-clock transients must stay inside the tightest budget.
    jump_max = 0.4 * (10e-4 + 2.0 * h0)
    vis: list[VI] = []

    def add(venue: str, symbol: str, kind: str, asset: int, quote_asset: int, h_asset: float, notional: float) -> None:
        inst = registry.get(venue, symbol)
        level = levels[asset] / (levels[quote_asset] if quote_asset >= 0 else 1.0)
        exp = expiry_ns(inst.expiry) if inst.expiry is not None else 0
        vis.append(
            VI(
                index=len(vis),
                venue=venue,
                symbol=symbol,
                kind=kind,
                asset=asset,
                quote_asset=quote_asset,
                inst=inst,
                half=SPREAD_MULT.get(venue, 2.0) * h_asset,
                tick_rel=inst.tick_size / level,
                lat_ns=int(lat[venue] * 1e6),
                lag_ns=int(LAG_MS.get(venue, 50.0) * 1e6),
                gap_ns=gap_ns[venue],
                max_age_ns=int(max_age[venue] * 1e6),
                expiry_ns=exp,
                notional=notional,
            )
        )

    btc = assets.index("BTC") if "BTC" in assets else -1
    end_day = start + dt.timedelta(days=math.ceil(days) + 2)
    expiries = _fridays_after(end_day, 3)
    for venue in venues:
        for a, name in enumerate(assets):
            if venue in USDT_VENUES:
                add(venue, f"{name}/USDT", "spot", a, -1, float(h0[a]), 200_000.0)
            if venue in DERIVATIVE_VENUES:
                add(venue, f"{name}/USDT:USDT", "perp", a, -1, float(h0[a]), 400_000.0)
            if venue in DERIVATIVE_VENUES and btc >= 0 and a != btc:
                inst = registry.get(venue, f"{name}/BTC")
                if inst.tick_size / (levels[a] / levels[btc]) <= MAX_CROSS_TICK:
                    add(venue, f"{name}/BTC", "cross", a, btc, float(h0[a] + h0[btc]), 100_000.0)
            if venue == "deribit" and name in OPTION_ASSETS:
                add(venue, f"{name}/USD:{name}", "iperp", a, -1, float(h0[a]), 400_000.0)
                for e in expiries:
                    add(venue, f"{name}/USD:{name}-{e.strftime('%y%m%d')}", "future", a, -1, float(h0[a]), 200_000.0)
    by_key = {(v.venue, v.symbol): v.index for v in vis}
    opts: list[Option] = []
    if options and "deribit" in venues:
        for a, name in enumerate(assets):
            if name not in OPTION_ASSETS:
                continue
            step = _strike_step(float(levels[a]))
            atm = round(levels[a] / step) * step
            for e in expiries:
                fut = by_key[("deribit", f"{name}/USD:{name}-{e.strftime('%y%m%d')}")]
                for k in range(-3, 4):
                    strike = float(atm + k * step)
                    for cp in ("C", "P"):
                        symbol = format_symbol(SymbolInfo(name, "USD", name, e, strike, cp))
                        inst = registry.get("deribit", symbol)
                        opts.append(Option(len(opts), symbol, a, expiry_ns(e), strike, cp == "C", inst, fut))
    return Universe(
        assets=assets,
        levels=levels,
        vols=vols,
        vis=vis,
        options=opts,
        venues=venues,
        window_ns=int(window_s * NS),
        h0=h0,
        jump_max=jump_max,
        rate_r=rate_r,
        by_key=by_key,
    )


@dataclass
class LatentState:
    """What the latent process carries from one chunk to the next."""

    diffusion: FloatArray  # (assets, history) log diffusive part on the grid just before the chunk
    jumps: FloatArray  # (assets,) cumulative log jumps
    logvol: FloatArray  # (assets,) log of vol multiplier
    premium: FloatArray  # (len(vis),) perp premium over the index (0 for non-perps)
    last_recv: IntArray  # (len(vis) + len(options),) last ts_recv emitted
    seq: IntArray  # (len(vis),) last sequence number emitted
    trade_recv: IntArray  # (len(vis),) last trade ts_recv
    trade_seq: IntArray  # (len(vis),) last trade number


@dataclass
class Latent:
    """Latent log prices on the 10 ms grid of one chunk, history included, and the chunk's jumps."""

    base_ns: int
    diffusion: FloatArray  # (assets, steps)
    jumps: FloatArray  # (assets, steps)
    jump_times: list[IntArray]  # per asset, event times of jumps in the chunk
    vol_mult: FloatArray  # (assets, steps) instantaneous vol multiplier (for the smile level)
    log_level: FloatArray

    def log_price(self, asset: int, times: IntArray, lag_ns: IntArray | int) -> FloatArray:
        """Latent log price of one asset at event times, diffusion delayed by the venue lag, jumps not."""
        i_d = (times - lag_ns - self.base_ns) // DT_NS
        i_j = (times - self.base_ns) // DT_NS
        return self.log_level[asset] + self.diffusion[asset, i_d] + self.jumps[asset, i_j]  # type: ignore[no-any-return]


def history_steps(universe: Universe) -> int:
    return int(max(LAG_MS[v] for v in universe.venues) * 1e6 // DT_NS) + 2


def initial_state(universe: Universe, n_options: int) -> LatentState:
    h = history_steps(universe)
    n = len(universe.assets)
    return LatentState(
        diffusion=np.zeros((n, h)),
        jumps=np.zeros(n),
        logvol=np.zeros(n),
        premium=np.zeros(len(universe.vis)),
        last_recv=np.zeros(len(universe.vis) + n_options, dtype=np.int64),
        seq=np.zeros(len(universe.vis), dtype=np.int64),
        trade_recv=np.zeros(len(universe.vis), dtype=np.int64),
        trade_seq=np.zeros(len(universe.vis), dtype=np.int64),
    )


def simulate_latent(
    universe: Universe,
    state: LatentState,
    t0: int,
    t1: int,
    rng: np.random.Generator,
    jumps_per_hour: float,
    ramps: list[tuple[int, int, int, float]],
) -> Latent:
    """Correlated stochastic-volatility diffusion with jumps on the 10 ms grid of ``[t0, t1)``.

    ``ramps`` are ``(asset, start_ns, end_ns, log_move)``: a slow linear drift of the diffusive part (stale
    episodes), slow enough that venues stay within their spreads of each other.
    """
    n_assets = len(universe.assets)
    hist = state.diffusion.shape[1]
    steps = (t1 - t0 + DT_NS - 1) // DT_NS + 1
    dt_year = DT_NS / NS_PER_YEAR
    # log-vol: OU on a 1 s grid, repeated onto the fine grid
    coarse = steps // 100 + 2
    kappa, xi = 1.0 / 1800.0, 0.003  # slow: a vol move within a quote gap stays far below option spreads
    shocks = rng.standard_normal((n_assets, coarse))
    logvol = np.empty((n_assets, coarse))
    lv = state.logvol.copy()
    for k in range(coarse):  # loop over seconds (<= 900 per chunk), vectorized over assets
        lv = lv * (1.0 - kappa) + xi * shocks[:, k]
        logvol[:, k] = lv
    vol_mult = np.clip(np.exp(np.repeat(logvol, 100, axis=1)[:, :steps]), 0.5, 2.0)
    z = rng.standard_normal((n_assets, steps))
    common = z[0]
    z[1:] = CORRELATION * common + math.sqrt(1.0 - CORRELATION**2) * z[1:]
    sig = universe.vols[:, None] * vol_mult
    incr = sig * math.sqrt(dt_year) * z - 0.5 * sig**2 * dt_year
    diff = state.diffusion[:, -1:] + np.cumsum(incr, axis=1)
    grid = t0 + DT_NS * np.arange(steps, dtype=np.int64)
    for asset, a_start, a_end, move in ramps:
        frac = np.clip((grid - a_start) / max(a_end - a_start, 1), 0.0, 1.0)
        diff[asset] += move * frac
    jumps = np.repeat(state.jumps[:, None], steps, axis=1)
    jump_times: list[IntArray] = []
    for a in range(n_assets):
        count = rng.poisson(jumps_per_hour * (t1 - t0) / (3600 * NS))
        times = np.sort(rng.integers(t0 + NS, max(t1 - NS, t0 + NS + 1), size=count)).astype(np.int64)
        sizes = rng.choice([-1.0, 1.0], size=count) * rng.uniform(0.3, 1.0, size=count) * universe.jump_max[a]
        for t, s in zip(times, sizes, strict=True):
            jumps[a, (t - t0) // DT_NS + 1 :] += s
        # the jump is visible from the grid cell after its time; quote updates are forced just after it
        jump_times.append((t0 + ((times - t0) // DT_NS + 1) * DT_NS).astype(np.int64))
    base = t0 - hist * DT_NS
    full_diff = np.concatenate([state.diffusion, diff], axis=1)
    full_jumps = np.concatenate([np.repeat(state.jumps[:, None], hist, axis=1), jumps], axis=1)
    full_vol = np.concatenate([np.repeat(vol_mult[:, :1], hist, axis=1), vol_mult], axis=1)
    state.diffusion = diff[:, -hist - 1 : -1].copy()
    state.jumps = jumps[:, -2].copy()
    state.logvol = lv
    return Latent(base, full_diff, full_jumps, jump_times, full_vol, np.log(universe.levels))


def regular_times(t0: int, t1: int, gap_ns: int, rng: np.random.Generator) -> IntArray:
    """Jittered regular update times in ``[t0, t1)``: gaps between 0.2 and 1.8 mean gaps, never longer."""
    n = (t1 - t0) // gap_ns + 1
    base = t0 + gap_ns * (np.arange(n, dtype=np.int64)) + int(0.45 * gap_ns)
    times = base + (rng.uniform(-0.4, 0.4, size=n) * gap_ns).astype(np.int64)
    return times[(times >= t0) & (times < t1)]


def strictly_increasing_recv(
    t_event: IntArray, segment: IntArray, lat_ns: IntArray, floor: IntArray, t0: int, rng: np.random.Generator
) -> IntArray:
    """``ts_event`` plus jittered latency, made strictly increasing inside each segment (rows of one instrument).

    ``floor`` is, per row, the last ``ts_recv`` of the segment in the previous chunk (so chunks chain).
    """
    recv = t_event + (lat_ns * rng.uniform(0.8, 1.6, size=t_event.size)).astype(np.int64)
    recv = np.maximum(recv, floor + 1)
    big = np.int64(10**13)
    idx = np.arange(recv.size, dtype=np.int64)
    key = segment.astype(np.int64) * big + (recv - t0 + big // 2 - idx)
    key = np.maximum.accumulate(key)
    return key - segment.astype(np.int64) * big - big // 2 + t0 + idx  # type: ignore[no-any-return]


def round_quotes(mid: FloatArray, half: FloatArray, tick: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Bid floored and ask ceiled onto the tick grid (rounding only ever widens), both at least one tick."""
    bid_k = np.floor(mid * (1.0 - half) / tick + 1e-9)
    ask_k = np.ceil(mid * (1.0 + half) / tick - 1e-9)
    bid_k = np.maximum(bid_k, 1.0)
    ask_k = np.maximum(ask_k, bid_k + 1.0)
    decimals = np.clip(np.ceil(-np.log10(tick)) + 2, 0, 15).astype(np.int64)
    bid = np.empty_like(mid)
    ask = np.empty_like(mid)
    for d in np.unique(decimals):  # a handful of distinct tick sizes
        m = decimals == d
        bid[m] = np.round(bid_k[m] * tick[m], int(d))
        ask[m] = np.round(ask_k[m] * tick[m], int(d))
    return bid, ask


def round_sizes(raw: FloatArray, lot: FloatArray) -> FloatArray:
    """Sizes floored to the lot grid, at least one lot."""
    k = np.maximum(np.floor(raw / lot + 1e-9), 1.0)
    decimals = np.clip(np.ceil(-np.log10(lot)) + 2, 0, 15).astype(np.int64)
    out = np.empty_like(raw)
    for d in np.unique(decimals):
        m = decimals == d
        out[m] = np.round(k[m] * lot[m], int(d))
    return out


_ERFC = np.vectorize(math.erfc, otypes=[np.float64])


def ndtr(x: FloatArray) -> FloatArray:
    """Standard normal CDF to double precision (numpy only: scipy is not a runtime dependency)."""
    return 0.5 * _ERFC(-x / math.sqrt(2.0))  # type: ignore[no-any-return]


def black76(
    forward: FloatArray, strike: FloatArray, t: FloatArray, rate: float, vol: FloatArray, is_call: npt.NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray]:
    """Black-76 price and vega (per 1.0 of vol), discounted at ``rate``."""
    sd = vol * np.sqrt(t)
    d1 = (np.log(forward / strike) + 0.5 * sd**2) / sd
    d2 = d1 - sd
    disc = np.exp(-rate * t)
    call = disc * (forward * ndtr(d1) - strike * ndtr(d2))
    put = disc * (strike * ndtr(-d2) - forward * ndtr(-d1))
    vega = disc * forward * np.exp(-0.5 * d1**2) / math.sqrt(2.0 * math.pi) * np.sqrt(t)
    return np.where(is_call, call, put), vega


def smile(atm: FloatArray, forward: FloatArray, strike: FloatArray) -> FloatArray:
    """Volatility smile: ATM level, negative skew and positive curvature in log-moneyness."""
    x = np.log(strike / forward)
    return atm * (1.0 - 0.6 * x + 4.0 * x**2)


def next_funding_ns(times: IntArray, interval_hours: float) -> IntArray:
    """Next funding instant on the 00/08/16 UTC grid (every ``interval_hours`` from midnight)."""
    step = int(interval_hours * 3600 * NS)
    return (times // step + 1) * step  # type: ignore[no-any-return]
