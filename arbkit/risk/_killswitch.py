"""Kill switch: a pure decision from (portfolio status, limits, per-venue data health) to actions.

Semantics
---------
Two levels of response, each scoped to venues:

* **stop new** (``Action.STOP_NEW``): no new risk-adding orders; open orders stay. Triggered by a breach of a
  limit that the book can drift into through prices alone (``max_var``, ``max_leverage``,
  ``max_concentration``): the position is still controlled, so resting hedges and exits should keep working,
  and risk-reducing orders still pass `check_orders`.
* **cancel open** (``Action.CANCEL_OPEN``, implies stop new): also cancel every open order. Triggered by
  losses (``max_drawdown`` reached, ``stop_loss`` reached), by a risk state that cannot be evaluated
  (NaN/inf in a metric: a NaN compared with a limit is never a breach, so it must be one), and, per venue,
  by stale or unverified market data on a venue with open exposure or open orders: quotes resting on a book
  we cannot see are the classic way arbitrage engines get picked off. A venue with bad data and nothing
  open is only stopped for new orders. A venue holding exposure but missing from the health map counts as
  unverified.

The decision lists its reasons as strings (``"max_var"``, ``"stale_data:okx"``); informational warnings
(``var_warning``) are reported without an action.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from arbkit.risk.limits import RiskLimits

__all__ = ["Action", "KillSwitchDecision", "PortfolioStatus", "VenueHealth", "decide_kill_switch"]


class Action(IntEnum):
    """Severity of a kill-switch decision; a higher level implies the lower ones."""

    NONE = 0
    STOP_NEW = 1
    CANCEL_OPEN = 2


@dataclass(frozen=True, slots=True)
class VenueHealth:
    """Market-data health of one venue: ``stale`` (older than its max age) and ``verified`` (book in sync)."""

    stale: bool
    verified: bool


@dataclass(frozen=True, slots=True)
class PortfolioStatus:
    """Current risk figures of the book, as the live engine computes them.

    ``session_loss`` is the loss since the session (day) start as a positive number; ``drawdown`` is the
    fraction below the equity peak. ``venue_exposure`` is the gross notional per venue and
    ``venue_open_orders`` the number of open orders per venue.
    """

    var: float
    leverage: float
    concentration: float
    drawdown: float
    session_loss: float
    venue_exposure: Mapping[str, float] = field(default_factory=dict)
    venue_open_orders: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KillSwitchDecision:
    """What to do: the overall action, the venues each level applies to, and why."""

    action: Action
    stop_new: frozenset[str]
    cancel_open: frozenset[str]
    reasons: tuple[str, ...]


def decide_kill_switch(
    status: PortfolioStatus, limits: RiskLimits, venue_health: Mapping[str, VenueHealth]
) -> KillSwitchDecision:
    """Decide which venues stop new orders and which also cancel open ones.

    Parameters
    ----------
    status
        The book's current figures.
    limits
        The validated limits.
    venue_health
        Data health per venue; venues with exposure missing from it count as unverified.

    Returns
    -------
    KillSwitchDecision
        ``stop_new`` and ``cancel_open`` are sets of venues (``cancel_open`` is a subset of ``stop_new``).

    Examples
    --------
    >>> limits = RiskLimits(max_var=100.0, max_leverage=3.0, max_concentration=0.5, max_drawdown=0.2,
    ...                     stop_loss=50.0)
    >>> status = PortfolioStatus(var=80.0, leverage=1.0, concentration=0.1, drawdown=0.0, session_loss=0.0,
    ...                          venue_exposure={"okx": 1000.0, "binance": 0.0})
    >>> health = {"okx": VenueHealth(stale=True, verified=True), "binance": VenueHealth(False, True)}
    >>> decision = decide_kill_switch(status, limits, health)
    >>> decision.action.name, sorted(decision.cancel_open), decision.reasons
    ('CANCEL_OPEN', ['okx'], ('stale_data:okx',))
    """
    venues = set(status.venue_exposure) | set(status.venue_open_orders) | set(venue_health)
    reasons: list[str] = []
    stop_all = False
    cancel_all = False
    numbers = {
        "var": status.var,
        "leverage": status.leverage,
        "concentration": status.concentration,
        "drawdown": status.drawdown,
        "session_loss": status.session_loss,
        **{f"venue_exposure:{v}": x for v, x in status.venue_exposure.items()},
    }
    for name, value in numbers.items():
        if not math.isfinite(value):
            reasons.append(f"invalid_risk_state:{name}")
            cancel_all = True
    if status.drawdown >= limits.max_drawdown:
        reasons.append("max_drawdown")
        cancel_all = True
    if status.session_loss >= limits.stop_loss:
        reasons.append("stop_loss")
        cancel_all = True
    for name, value, limit in (
        ("max_var", status.var, limits.max_var),
        ("max_leverage", status.leverage, limits.max_leverage),
        ("max_concentration", status.concentration, limits.max_concentration),
    ):
        if value > limit:
            reasons.append(name)
            stop_all = True
    if limits.var_warning is not None and limits.var_warning < status.var <= limits.max_var:
        reasons.append("var_warning")
    stop_new: set[str] = set()
    cancel_open: set[str] = set()
    for venue in sorted(venues):
        health = venue_health.get(venue, VenueHealth(stale=False, verified=False))
        if not health.stale and health.verified:
            continue
        label = "stale_data" if health.stale else "unverified_data"
        if venue not in venue_health:
            label = "no_data_health"
        reasons.append(f"{label}:{venue}")
        exposure = status.venue_exposure.get(venue, 0.0)
        is_open = exposure != 0.0 or status.venue_open_orders.get(venue, 0) > 0
        stop_new.add(venue)
        if is_open:
            cancel_open.add(venue)
    if cancel_all:
        cancel_open |= venues
    if cancel_all or stop_all:
        stop_new |= venues
    stop_new |= cancel_open
    if cancel_open or cancel_all:
        action = Action.CANCEL_OPEN
    elif stop_new or stop_all:
        action = Action.STOP_NEW
    else:
        action = Action.NONE
    return KillSwitchDecision(action, frozenset(stop_new), frozenset(cancel_open), tuple(reasons))
