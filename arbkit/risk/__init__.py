"""Risk engine: VaR/ES and exposure metrics, limits, vectorized pre-trade checks, incremental updates and
the kill switch.

Everything here is pure: functions take arrays and validated limits and return values; the live engine and
the backtester own the state and the I/O. Losses are positive numbers throughout; each function's
docstring names its conventions and the textbook they follow.
"""

from __future__ import annotations

from arbkit.risk import limits
from arbkit.risk._errors import RiskInputError
from arbkit.risk._incremental import IncrementalRisk, apply_fill, incremental_figures, init_incremental
from arbkit.risk._killswitch import Action, KillSwitchDecision, PortfolioStatus, VenueHealth, decide_kill_switch
from arbkit.risk._metrics import DEFAULT_CONFIDENCES, expected_shortfall, max_drawdown, sharpe_ratio, value_at_risk
from arbkit.risk._portfolio import (
    Book,
    Concentration,
    basis_risk_pnl,
    concentration,
    days_to_liquidate,
    leg_risk,
    leverage_ratio,
    liquidity_ratio,
)
from arbkit.risk._pretrade import (
    CODE_LEVERAGE_TOO_HIGH,
    CODE_POSITION_TOO_LARGE,
    CODE_RISK_LIMIT_EXCEEDED,
    CheckResult,
    Reason,
    RiskSnapshot,
    check_orders,
    snapshot,
)
from arbkit.risk._var import RiskFigures, covariance_square_root, portfolio_var, scenario_pnl
from arbkit.risk.limits import RiskLimits

__all__ = [
    "CODE_LEVERAGE_TOO_HIGH",
    "CODE_POSITION_TOO_LARGE",
    "CODE_RISK_LIMIT_EXCEEDED",
    "DEFAULT_CONFIDENCES",
    "Action",
    "Book",
    "CheckResult",
    "Concentration",
    "IncrementalRisk",
    "KillSwitchDecision",
    "PortfolioStatus",
    "Reason",
    "RiskFigures",
    "RiskInputError",
    "RiskLimits",
    "RiskSnapshot",
    "VenueHealth",
    "apply_fill",
    "basis_risk_pnl",
    "check_orders",
    "concentration",
    "covariance_square_root",
    "days_to_liquidate",
    "decide_kill_switch",
    "expected_shortfall",
    "incremental_figures",
    "init_incremental",
    "leg_risk",
    "leverage_ratio",
    "limits",
    "liquidity_ratio",
    "max_drawdown",
    "portfolio_var",
    "scenario_pnl",
    "sharpe_ratio",
    "snapshot",
    "value_at_risk",
]
