"""The netted multi-leg book and the exposure metrics computed on it.

A `Book` is a columnar set of legs (one row per instrument position on a venue). Risk is measured on the
*netted* book: legs that load on the same risk factor offset each other, so a completed cross-exchange
arbitrage carries no directional risk, only the basis between its instruments and the counterparty risk of
each venue it sits on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray

from arbkit.risk._checks import as_finite_1d, as_finite_2d
from arbkit.risk._errors import RiskInputError

__all__ = [
    "Book",
    "Concentration",
    "basis_risk_pnl",
    "concentration",
    "days_to_liquidate",
    "leg_risk",
    "leverage_ratio",
    "liquidity_ratio",
]


def _as_labels(values: ArrayLike, field: str, size: int) -> NDArray[np.str_]:
    labels = np.asarray(values)
    if labels.ndim != 1 or labels.size != size:
        raise RiskInputError(field, f"expected {size} labels, got shape {labels.shape}")
    if labels.size == 0:
        return labels.astype(np.str_)  # an empty book: np.asarray([]) is float64, not a type error
    if labels.dtype.kind not in "UO":
        raise RiskInputError(field, "expected strings")
    labels = labels.astype(np.str_)
    if np.any(labels == ""):
        raise RiskInputError(field, "contains an empty label")
    return labels


@dataclass(frozen=True, slots=True)
class Book:
    """Positions as columns, one row per leg (instrument on a venue).

    Build it with `Book.from_arrays`, which validates every column. Quantities are signed (long positive);
    ``notional = quantity * price * multiplier`` is the signed exposure in the quote currency, the unit every
    risk figure is reported in.

    Attributes
    ----------
    venue, instrument, asset
        Labels per leg: CCXT venue id, unified symbol, underlying asset (``"BTC"``).
    factor
        Column of the factor return matrix the leg's price moves with. Legs that share a factor net.
    quantity, price, multiplier
        Signed size, current price and contract size.
    """

    venue: NDArray[np.str_]
    instrument: NDArray[np.str_]
    asset: NDArray[np.str_]
    factor: NDArray[np.int64]
    quantity: NDArray[np.float64]
    price: NDArray[np.float64]
    multiplier: NDArray[np.float64]

    @classmethod
    def from_arrays(
        cls,
        *,
        venue: ArrayLike,
        instrument: ArrayLike,
        asset: ArrayLike,
        factor: ArrayLike,
        quantity: ArrayLike,
        price: ArrayLike,
        multiplier: ArrayLike | None = None,
    ) -> Book:
        """Validate and build a book; every error names its column.

        An empty book (no legs) is valid and defined: zero notional and zero net exposure on every factor.

        Examples
        --------
        >>> book = Book.from_arrays(
        ...     venue=["binance", "okx"], instrument=["BTC/USDT", "BTC/USDT"], asset=["BTC", "BTC"],
        ...     factor=[0, 0], quantity=[0.5, -0.5], price=[60000.0, 60010.0])
        >>> book.net_exposures(1).tolist()
        [-5.0]
        """
        qty = as_finite_1d(quantity, "quantity", allow_empty=True)
        n = qty.size
        px = as_finite_1d(price, "price", allow_empty=True)
        if px.size != n:
            raise RiskInputError("price", f"expected {n} prices, got {px.size}")
        if np.any(px <= 0.0):
            raise RiskInputError("price", "prices must be positive (a missing price is not zero)")
        mult = np.ones(n) if multiplier is None else as_finite_1d(multiplier, "multiplier", allow_empty=True)
        if mult.size != n or np.any(mult <= 0.0):
            raise RiskInputError("multiplier", f"expected {n} positive contract sizes")
        fac = np.asarray(factor)
        if fac.shape != (n,) or (n and fac.dtype.kind not in "iu") or (n and fac.min() < 0):
            raise RiskInputError("factor", f"expected {n} non-negative integer factor columns")
        return cls(
            venue=_as_labels(venue, "venue", n),
            instrument=_as_labels(instrument, "instrument", n),
            asset=_as_labels(asset, "asset", n),
            factor=fac.astype(np.int64),
            quantity=qty,
            price=px,
            multiplier=mult,
        )

    @property
    def notional(self) -> NDArray[np.float64]:
        """Signed notional per leg, ``quantity * price * multiplier``."""
        return self.quantity * self.price * self.multiplier

    @property
    def gross_notional(self) -> float:
        """Sum of absolute leg notionals: what the venues' margin and the leverage limit see."""
        return float(np.abs(self.notional).sum())

    def net_exposures(self, n_factors: int) -> NDArray[np.float64]:
        """Signed notional per risk factor, the netted book that VaR is computed on."""
        if self.factor.size and int(self.factor.max()) >= n_factors:
            raise RiskInputError("factor", f"column {int(self.factor.max())} outside {n_factors} factors")
        return np.bincount(self.factor, weights=self.notional, minlength=n_factors).astype(np.float64)

    def exposures(self, by: Literal["asset", "venue", "instrument"]) -> pl.DataFrame:
        """Net and gross notional per asset, venue or instrument, sorted by key.

        Per venue, ``gross_notional`` is the counterparty exposure (a venue default loses both legs'
        collateral even though they offset in market risk); per asset, ``net_notional`` is the directional
        exposure left after the legs offset.

        Examples
        --------
        >>> book = Book.from_arrays(
        ...     venue=["binance", "okx"], instrument=["ETH/USDT", "ETH/USDT:USDT"], asset=["ETH", "ETH"],
        ...     factor=[0, 1], quantity=[2.0, -2.0], price=[3000.0, 3001.0])
        >>> book.exposures("asset").rows()
        [('ETH', -2.0, 12002.0)]
        """
        frame = pl.DataFrame({by: getattr(self, by), "notional": self.notional}, schema_overrides={by: pl.String})
        return (
            frame.group_by(by)
            .agg(
                net_notional=pl.col("notional").sum(),
                gross_notional=pl.col("notional").abs().sum(),
            )
            .sort(by)
        )


@dataclass(frozen=True, slots=True)
class Concentration:
    """Concentration of a set of exposures: the largest weight, its key, and the Herfindahl index."""

    largest_weight: float
    largest_key: str | None
    herfindahl: float


def concentration(exposures: ArrayLike, keys: ArrayLike | None = None) -> Concentration:
    """Largest weight and Herfindahl-Hirschman index of absolute exposures.

    Weights are ``|x_i| / sum |x|``; the Herfindahl index is ``sum w_i**2`` (1 for a single holding,
    ``1/n`` for ``n`` equal ones). An empty or all-zero set has no concentration: both figures are 0 and the
    key is ``None`` (defined, not NaN).

    Examples
    --------
    >>> c = concentration([50.0, -30.0, 20.0], ["BTC", "ETH", "SOL"])
    >>> c.largest_weight, c.largest_key, round(c.herfindahl, 2)
    (0.5, 'BTC', 0.38)
    """
    values = np.abs(as_finite_1d(exposures, "exposures", allow_empty=True))
    labels = None if keys is None else _as_labels(keys, "keys", values.size)
    total = float(values.sum())
    if total == 0.0:
        return Concentration(0.0, None, 0.0)
    weights = values / total
    top = int(np.argmax(weights))
    return Concentration(
        largest_weight=float(weights[top]),
        largest_key=None if labels is None else str(labels[top]),
        herfindahl=float(weights @ weights),
    )


def leverage_ratio(gross_notional: float, equity: float) -> float:
    """Gross notional over equity.

    Leverage is measured on the gross book (each leg's margin is posted separately on its venue), so an
    arbitrage adds leverage even though it adds no market risk. Equity must be positive: a non-positive
    equity is a breach in itself and raises rather than returning a negative or infinite ratio.

    Examples
    --------
    >>> leverage_ratio(300_000.0, 100_000.0)
    3.0
    """
    gross = float(gross_notional)
    if not np.isfinite(gross) or gross < 0.0:
        raise RiskInputError("gross_notional", f"must be finite and non-negative, got {gross}")
    if not (np.isfinite(equity) and equity > 0.0):
        raise RiskInputError("equity", f"must be positive, got {equity}")
    return gross / float(equity)


def liquidity_ratio(quantity: ArrayLike, depth: ArrayLike) -> NDArray[np.float64]:
    """Position size over displayed depth, per position (1.0 = the position would take the whole book).

    ``depth`` is the displayed size on the side that closes the position (top-N levels summed, in the same
    units as ``quantity``). Zero depth under a non-zero position gives ``inf`` (it cannot be closed against
    the displayed book); a zero position gives 0.

    Examples
    --------
    >>> liquidity_ratio([2.0, -1.0, 0.0], [10.0, 0.5, 0.0]).tolist()
    [0.2, 2.0, 0.0]
    """
    size = np.abs(as_finite_1d(quantity, "quantity", allow_empty=True))
    book = as_finite_1d(depth, "depth", allow_empty=True)
    if book.size != size.size:
        raise RiskInputError("depth", f"expected {size.size} values, got {book.size}")
    if np.any(book < 0.0):
        raise RiskInputError("depth", "must be non-negative")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(size == 0.0, 0.0, size / book)
    return ratio


def days_to_liquidate(
    quantity: ArrayLike, average_volume: ArrayLike, *, participation: float = 0.1
) -> NDArray[np.float64]:
    """Periods needed to close each position trading ``participation`` of the average volume per period.

    Examples
    --------
    >>> days_to_liquidate([50.0], [100.0], participation=0.25).tolist()
    [2.0]
    """
    if not 0.0 < participation <= 1.0:
        raise RiskInputError("participation", f"must be in (0, 1], got {participation}")
    return liquidity_ratio(quantity, average_volume) / participation


def leg_risk(
    group: ArrayLike,
    target_notional: ArrayLike,
    filled_notional: ArrayLike,
) -> pl.DataFrame:
    """Unhedged exposure of partially filled arbitrages, per group of legs.

    An arbitrage's legs are sized to net to zero; while some legs are filled and others are not, the book
    holds the filled legs' net notional as naked directional risk. For each ``group`` (arbitrage id) this
    returns ``unhedged_notional`` (sum of signed filled notionals, 0 once complete or untouched),
    ``unfilled_notional`` (absolute notional still to trade) and ``fill_ratio`` (filled / target gross).

    Examples
    --------
    >>> leg_risk(["a", "a"], [1000.0, -1000.0], [1000.0, -400.0]).rows()
    [('a', 600.0, 600.0, 0.7)]
    """
    target = as_finite_1d(target_notional, "target_notional", allow_empty=True)
    filled = as_finite_1d(filled_notional, "filled_notional", allow_empty=True)
    if filled.size != target.size:
        raise RiskInputError("filled_notional", f"expected {target.size} values, got {filled.size}")
    if np.any(np.abs(filled) > np.abs(target) * (1 + 1e-12)) or np.any(filled * target < 0.0):
        raise RiskInputError("filled_notional", "a fill larger than, or opposite to, its leg's target")
    labels = _as_labels(group, "group", target.size)
    frame = pl.DataFrame({"group": labels, "target": target, "filled": filled}, schema_overrides={"group": pl.String})
    return (
        frame.group_by("group")
        .agg(
            unhedged_notional=pl.col("filled").sum(),
            unfilled_notional=(pl.col("target") - pl.col("filled")).abs().sum(),
            fill_ratio=pl.col("filled").abs().sum() / pl.col("target").abs().sum(),
        )
        .with_columns(pl.col("fill_ratio").fill_nan(0.0))
        .sort("group")
    )


def basis_risk_pnl(book: Book, returns: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Split the book's scenario P&L into a directional part and a basis part.

    For each asset, its legs' factor returns ``r_i`` are split into the asset's common move
    ``rbar`` (the equal-weighted mean of the asset's factors) and the basis ``r_i - rbar``. Then
    ``P&L = sum_asset net_notional * rbar + sum_i e_i (r_i - rbar)``: a fully hedged spot/perpetual pair
    has no directional P&L and all of its P&L in the basis term. Pass either part to `value_at_risk` to
    get the directional VaR or the basis VaR.

    Returns
    -------
    (directional, basis)
        Two arrays of shape (T,) summing to ``returns @ book.net_exposures(N)``.
    """
    history = as_finite_2d(returns, "returns")
    n_periods, n_factors = history.shape
    exposure = book.net_exposures(n_factors)
    directional = np.zeros(n_periods)
    basis = np.zeros(n_periods)
    for asset in np.unique(book.asset):
        columns = np.unique(book.factor[book.asset == asset])
        common = history[:, columns].mean(axis=1)
        directional += exposure[columns].sum() * common
        basis += (history[:, columns] - common[:, None]) @ exposure[columns]
    return directional, basis
