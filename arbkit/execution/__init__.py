"""Execution: the fill model shared by the backtester and paper trading, so the two can never drift apart."""

from __future__ import annotations

from arbkit.execution._fills import (
    FILL_SCHEMA,
    SIGNAL_SCHEMA,
    TRADE_SCHEMA,
    TRANSFER_SCHEMA,
    ExecutionResult,
    FillParams,
    LatencyModel,
    simulate_fills,
    theoretical_profit,
)
from arbkit.execution._market import MarketView, Prevailing

__all__ = [
    "FILL_SCHEMA",
    "SIGNAL_SCHEMA",
    "TRADE_SCHEMA",
    "TRANSFER_SCHEMA",
    "ExecutionResult",
    "FillParams",
    "LatencyModel",
    "MarketView",
    "Prevailing",
    "simulate_fills",
    "theoretical_profit",
]
