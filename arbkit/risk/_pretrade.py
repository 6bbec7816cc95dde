"""Vectorized pre-trade checks: many candidate arbitrages against the current book in one kernel call.

A candidate is a set of up to ``L`` legs (an arbitrage); candidates arrive as (M, L) arrays, padded with
zero-quantity legs. Each candidate is accepted (code 0) or rejected with the seed's application code and
the number that broke the limit:

* 4002 *position size too large*: a position's absolute quantity or notional above its cap, or a venue's
  gross notional above its cap;
* 4003 *leverage too high*: gross notional / equity above ``max_leverage``;
* 4001 *risk limit exceeded*: parametric VaR above ``max_var``, or the net exposure to one asset above
  ``max_concentration`` of equity.

When several limits break, the first in that order (4002, 4003, 4001) is reported; within one limit the
leg with the largest value/limit ratio is. A trade only breaks a limit if it *worsens* the measure: when the
book is already above a limit, risk-reducing trades still pass, so the engine can always trade back inside.

The VaR here is the zero-mean delta-normal VaR ``z sqrt(h e' S e)`` (Hull's convention), updated per
candidate from ``e' S e`` in O(L^2) with ``S e`` precomputed, which is what makes a million checks per second
possible. Drawdown and the stop loss are not per-order limits: they stop all new orders through
`decide_kill_switch`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri

from arbkit.risk._checks import as_covariance, as_finite_1d
from arbkit.risk._errors import RiskInputError
from arbkit.risk.limits import RiskLimits

jax.config.update("jax_enable_x64", True)

__all__ = [
    "CODE_LEVERAGE_TOO_HIGH",
    "CODE_POSITION_TOO_LARGE",
    "CODE_RISK_LIMIT_EXCEEDED",
    "CheckResult",
    "Reason",
    "RiskSnapshot",
    "check_orders",
    "snapshot",
]

CODE_RISK_LIMIT_EXCEEDED = 4001
CODE_POSITION_TOO_LARGE = 4002
CODE_LEVERAGE_TOO_HIGH = 4003


class Reason(IntEnum):
    """Which limit rejected a candidate (``ACCEPTED`` when none did)."""

    ACCEPTED = 0
    POSITION = 1
    INSTRUMENT_NOTIONAL = 2
    VENUE_NOTIONAL = 3
    LEVERAGE = 4
    VAR = 5
    CONCENTRATION = 6


_REASON_CODE = np.array([0, 4002, 4002, 4002, 4003, 4001, 4001], dtype=np.int32)


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """The current book and its limits as index-aligned arrays, built once per fill by `snapshot`.

    Positions are indexed by ``positions`` (``"venue|symbol"`` keys), venues by ``venues``, factors by the
    covariance's rows. Caps are ``inf`` where uncapped.
    """

    positions: tuple[str, ...]
    venues: tuple[str, ...]
    position: NDArray[np.float64]
    position_price: NDArray[np.float64]
    position_multiplier: NDArray[np.float64]
    position_venue: NDArray[np.int64]
    position_cap: NDArray[np.float64]
    notional_cap: NDArray[np.float64]
    venue_gross: NDArray[np.float64]
    venue_cap: NDArray[np.float64]
    gross_notional: float
    equity: float
    exposure: NDArray[np.float64]
    covariance: NDArray[np.float64]
    factor_asset: NDArray[np.int64]
    max_leverage: float
    max_var: float
    var_scale: float
    max_concentration: float

    def position_index(self, venue: str, symbol: str) -> int:
        """Index of a venue's position in ``symbol`` (raises `RiskInputError` if unknown)."""
        try:
            return self.positions.index(f"{venue}|{symbol}")
        except ValueError:
            raise RiskInputError("positions", f"unknown position {venue}|{symbol}") from None


def snapshot(
    *,
    venue: Sequence[str],
    symbol: Sequence[str],
    quantity: ArrayLike,
    price: ArrayLike,
    multiplier: ArrayLike | None = None,
    exposure: ArrayLike,
    covariance: ArrayLike,
    factor_asset: ArrayLike | None = None,
    equity: float,
    limits: RiskLimits,
) -> RiskSnapshot:
    """Build the pre-trade view of a book: one row per (venue, symbol) position the candidates may touch.

    Parameters
    ----------
    venue, symbol, quantity, price, multiplier
        Every tradable position (zero quantity allowed), with its current mark and contract size.
    exposure
        Net notional per risk factor (`Book.net_exposures`), shape (N,).
    covariance
        Factor covariance per period, shape (N, N); scaled to ``limits.var_horizon`` here.
    factor_asset
        Asset index of each factor for the concentration limit (default: each factor is its own asset).
    equity
        Account equity in the quote currency, positive.
    """
    qty = as_finite_1d(quantity, "quantity", allow_empty=True)
    px = as_finite_1d(price, "price", allow_empty=True)
    n = qty.size
    mult = np.ones(n) if multiplier is None else as_finite_1d(multiplier, "multiplier", allow_empty=True)
    if len(venue) != n or len(symbol) != n or px.size != n or mult.size != n:
        raise RiskInputError("quantity", "venue, symbol, quantity, price and multiplier differ in length")
    if np.any(px <= 0.0):
        raise RiskInputError("price", "prices must be positive (a missing price is not zero)")
    keys = tuple(f"{v}|{s}" for v, s in zip(venue, symbol, strict=True))
    if len(set(keys)) != n:
        raise RiskInputError("symbol", "a (venue, symbol) position is listed twice")
    if not (math.isfinite(equity) and equity > 0.0):
        raise RiskInputError("equity", f"must be positive, got {equity}")
    weights = as_finite_1d(exposure, "exposure")
    cov, _, _ = as_covariance(covariance, weights.size)  # an indefinite matrix would pass the VaR check as 0
    if factor_asset is None:
        assets = np.arange(weights.size, dtype=np.int64)
    else:
        assets = np.asarray(factor_asset, dtype=np.int64)
        if assets.shape != weights.shape or (assets.size and assets.min() < 0):
            raise RiskInputError("factor_asset", "expected one non-negative asset index per factor")
    venues = tuple(dict.fromkeys(venue))
    venue_index = np.array([venues.index(v) for v in venue], dtype=np.int64)
    gross_per_position = np.abs(qty * px * mult)
    inf = math.inf

    def cap(table: dict[str, float], key: str, default: float | None) -> float:
        value = table.get(key, default)
        return inf if value is None else float(value)

    return RiskSnapshot(
        positions=keys,
        venues=venues,
        position=qty,
        position_price=px * mult,
        position_multiplier=mult,
        position_venue=venue_index,
        position_cap=np.array([cap(limits.max_position, s, limits.default_max_position) for s in symbol]),
        notional_cap=np.array(
            [cap(limits.max_instrument_notional, s, limits.default_max_instrument_notional) for s in symbol]
        ),
        venue_gross=np.bincount(venue_index, weights=gross_per_position, minlength=len(venues)).astype(np.float64),
        venue_cap=np.array([cap(limits.max_venue_notional, v, limits.default_max_venue_notional) for v in venues]),
        gross_notional=float(gross_per_position.sum()),
        equity=float(equity),
        exposure=weights,
        covariance=0.5 * (cov + cov.T),
        factor_asset=assets,
        max_leverage=limits.max_leverage,
        max_var=limits.max_var,
        var_scale=float(-ndtri(1.0 - limits.var_confidence) * math.sqrt(limits.var_horizon)),
        max_concentration=limits.max_concentration,
    )


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Per-candidate outcome: application code (0 = accepted), `Reason`, breaching value and its limit.

    ``value`` and ``limit`` are 0 for accepted candidates. Units follow the limit: quantity for
    ``POSITION``, money for notional caps and VaR, a ratio for leverage and concentration.
    """

    code: NDArray[np.int32]
    reason: NDArray[np.int8]
    value: NDArray[np.float64]
    limit: NDArray[np.float64]

    @property
    def accepted(self) -> NDArray[np.bool_]:
        """Boolean mask of accepted candidates."""
        return np.asarray(self.code == 0, dtype=np.bool_)

    def counts(self) -> dict[str, int]:
        """Number of candidates per reason name (for the backtest's rejected-trades report)."""
        values, counts = np.unique(self.reason, return_counts=True)
        return {Reason(int(v)).name: int(c) for v, c in zip(values, counts, strict=True)}


def _bucket(m: int) -> int:
    return max(64, 1 << (m - 1).bit_length())


@jax.jit  # type: ignore[untyped-decorator]
def _kernel(
    pos_idx: Any,
    ven_idx: Any,
    fac_idx: Any,
    qty: Any,
    price: Any,
    state: dict[str, Any],
) -> tuple[Any, Any, Any, Any]:
    live = qty != 0.0
    same_pos = pos_idx[:, :, None] == pos_idx[:, None, :]
    # Net candidate quantity per position, seen from every leg; count each position once (first leg).
    pos_qty = jnp.einsum("mkl,ml->mk", same_pos, qty)
    earlier = jnp.tril(jnp.ones(same_pos.shape[1:], dtype=bool), k=-1)
    first = ~jnp.any(same_pos & earlier[None], axis=2) & jnp.any(same_pos & live[:, None, :], axis=2)

    old = state["position"][pos_idx]
    new = old + pos_qty
    unit = price  # execution price times multiplier: the candidate is valued at what it trades at
    grows = jnp.abs(new) > jnp.abs(old)
    delta_gross = jnp.where(first, (jnp.abs(new) - jnp.abs(old)) * unit, 0.0)

    ratios = []
    values = []
    limits = []

    def add(value: Any, limit: Any, breach: Any) -> None:
        ratio = jnp.where(breach, value / limit, 0.0)
        leg = jnp.argmax(ratio, axis=1)
        take = jnp.take_along_axis
        ratios.append(take(ratio, leg[:, None], axis=1)[:, 0])
        values.append(take(jnp.broadcast_to(value, ratio.shape), leg[:, None], axis=1)[:, 0])
        limits.append(take(jnp.broadcast_to(limit, ratio.shape), leg[:, None], axis=1)[:, 0])

    pcap = state["position_cap"][pos_idx]
    add(jnp.abs(new), pcap, live & grows & (jnp.abs(new) > pcap))
    ncap = state["notional_cap"][pos_idx]
    add(jnp.abs(new) * unit, ncap, live & grows & (jnp.abs(new) * unit > ncap))
    same_ven = ven_idx[:, :, None] == ven_idx[:, None, :]
    ven_delta = jnp.einsum("mkl,ml->mk", same_ven, delta_gross)
    ven_new = state["venue_gross"][ven_idx] + ven_delta
    vcap = state["venue_cap"][ven_idx]
    add(ven_new, vcap, live & (ven_delta > 0.0) & (ven_new > vcap))

    gross_new = state["gross"] + delta_gross.sum(axis=1)
    leverage = gross_new / state["equity"]
    add(
        leverage[:, None],
        state["max_leverage"],
        (gross_new > state["gross"])[:, None] & (leverage > state["max_leverage"])[:, None],
    )

    d = qty * price  # notional change per leg (price carries the multiplier)
    cov_e = state["cov_e"][fac_idx]
    cov_dd = state["cov"][fac_idx[:, :, None], fac_idx[:, None, :]]
    variance_new = state["variance"] + 2.0 * jnp.sum(d * cov_e, axis=1) + jnp.einsum("mk,mkl,ml->m", d, cov_dd, d)
    var_old = state["var_scale"] * jnp.sqrt(jnp.maximum(state["variance"], 0.0))
    var_new = state["var_scale"] * jnp.sqrt(jnp.maximum(variance_new, 0.0))
    add(
        var_new[:, None],
        state["max_var"],
        ((var_new > state["max_var"]) & (var_new > var_old + 1e-9 * state["max_var"]))[:, None],
    )

    asset = state["factor_asset"][fac_idx]
    same_asset = asset[:, :, None] == asset[:, None, :]
    asset_old = state["asset_net"][asset]
    asset_new = asset_old + jnp.einsum("mkl,ml->mk", same_asset, d)
    conc = jnp.abs(asset_new) / state["equity"]
    add(
        conc,
        state["max_concentration"],
        live & (jnp.abs(asset_new) > jnp.abs(asset_old)) & (conc > state["max_concentration"]),
    )

    ratio = jnp.stack(ratios, axis=1)
    broken = ratio > 0.0
    # Precedence by code: position (reasons 1-3), then leverage (4), then risk (5-6).
    group = jnp.array([0, 0, 0, 1, 2, 2])
    first_group = jnp.min(jnp.where(broken, group[None, :], 3), axis=1)
    score = jnp.where(broken & (group[None, :] == first_group[:, None]), ratio, 0.0)
    pick = jnp.argmax(score, axis=1)
    reason = jnp.where(first_group < 3, pick + 1, 0)
    value = jnp.take_along_axis(jnp.stack(values, axis=1), pick[:, None], axis=1)[:, 0]
    limit = jnp.take_along_axis(jnp.stack(limits, axis=1), pick[:, None], axis=1)[:, 0]
    return reason, jnp.where(reason > 0, value, 0.0), jnp.where(reason > 0, limit, 0.0), variance_new


def _as_legs(values: ArrayLike, field: str, dtype: type, shape: tuple[int, ...] | None) -> NDArray[Any]:
    array = np.asarray(values)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or (shape is not None and array.shape != shape):
        raise RiskInputError(field, f"expected shape (M, L) matching the quantities, got {array.shape}")
    if dtype is np.float64:
        array = array.astype(np.float64)
        if not np.all(np.isfinite(array)):
            raise RiskInputError(field, "contains NaN or inf")
    elif array.dtype.kind not in "iu":
        raise RiskInputError(field, "expected integer indices")
    return array.astype(dtype)


def check_orders(
    state: RiskSnapshot,
    *,
    position: ArrayLike,
    factor: ArrayLike,
    quantity: ArrayLike,
    price: ArrayLike | None = None,
) -> CheckResult:
    """Accept or reject many candidate arbitrages against the current book at once.

    Parameters
    ----------
    state
        The current book and limits (`snapshot`).
    position
        Index into ``state.positions`` of each leg, shape (M, L) (or (M,) for single-leg orders).
    factor
        Risk-factor column of each leg, shape (M, L).
    quantity
        Signed quantity of each leg; pad candidates with fewer legs with 0.
    price
        Execution price per leg (per unit, before the contract multiplier); defaults to the position's mark.
        The candidate's notional change per leg is ``quantity * price * multiplier``, and the resulting
        position is valued at that price for the notional, venue and leverage caps.

    Returns
    -------
    CheckResult
        Arrays of length M: codes 0/4001/4002/4003, `Reason`, breaching value and limit.

    Examples
    --------
    >>> import numpy as np
    >>> limits = RiskLimits(max_var=1e9, max_leverage=2.0, max_concentration=1.0, max_drawdown=0.2,
    ...                     stop_loss=1e4, max_position={"BTC/USDT": 1.0})
    >>> state = snapshot(venue=["binance", "okx"], symbol=["BTC/USDT", "BTC/USDT"], quantity=[0.0, 0.0],
    ...                  price=[50_000.0, 50_000.0], exposure=[0.0], covariance=[[1e-4]], equity=100_000.0,
    ...                  limits=limits)
    >>> legs = np.array([[0, 1], [0, 1], [0, 1]])
    >>> result = check_orders(state, position=legs, factor=np.zeros((3, 2), dtype=int),
    ...                       quantity=[[0.5, -0.5], [1.5, -1.5], [1.0, -1.0]])
    >>> result.code.tolist(), result.value.tolist()
    ([0, 4002, 0], [0.0, 1.5, 0.0])
    """
    qty = _as_legs(quantity, "quantity", np.float64, None)
    pos = _as_legs(position, "position", np.int64, qty.shape)
    fac = _as_legs(factor, "factor", np.int64, qty.shape)
    m = qty.shape[0]
    if m == 0:
        empty = np.zeros(0)
        return CheckResult(empty.astype(np.int32), empty.astype(np.int8), empty, empty)
    if pos.min() < 0 or pos.max() >= len(state.positions):
        raise RiskInputError("position", f"index outside the {len(state.positions)} known positions")
    if fac.min() < 0 or fac.max() >= state.exposure.size:
        raise RiskInputError("factor", f"index outside the {state.exposure.size} risk factors")
    if price is None:
        unit = state.position_price[pos]
    else:
        px = _as_legs(price, "price", np.float64, qty.shape)
        if np.any(px <= 0.0):
            raise RiskInputError("price", "prices must be positive")
        unit = px * state.position_multiplier[pos]
    size = _bucket(m)
    pad = ((0, size - m), (0, 0))
    n_assets = int(state.factor_asset.max()) + 1 if state.factor_asset.size else 1
    tables = {
        "position": state.position,
        "position_price": state.position_price,
        "position_cap": state.position_cap,
        "notional_cap": state.notional_cap,
        "venue_gross": state.venue_gross,
        "venue_cap": state.venue_cap,
        "gross": state.gross_notional,
        "equity": state.equity,
        "max_leverage": state.max_leverage,
        "max_var": state.max_var,
        "var_scale": state.var_scale,
        "max_concentration": state.max_concentration,
        "cov": state.covariance,
        "cov_e": state.covariance @ state.exposure,
        "variance": float(state.exposure @ state.covariance @ state.exposure),
        "factor_asset": state.factor_asset,
        "asset_net": np.bincount(state.factor_asset, weights=state.exposure, minlength=n_assets),
    }
    reason, value, limit, _ = _kernel(
        np.pad(pos, pad),
        np.pad(state.position_venue[pos], pad),
        np.pad(fac, pad),
        np.pad(qty, pad),
        np.pad(unit, pad, constant_values=1.0),
        {k: jnp.asarray(v) for k, v in tables.items()},
    )
    reason_np = np.asarray(reason)[:m].astype(np.int8)
    return CheckResult(
        code=_REASON_CODE[reason_np],
        reason=reason_np,
        value=np.asarray(value)[:m],
        limit=np.asarray(limit)[:m],
    )
