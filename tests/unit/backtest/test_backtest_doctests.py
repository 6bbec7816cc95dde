"""The docstring examples of the backtest package run (pytest's doctest collection covers ``arbkit`` only)."""

from __future__ import annotations

import doctest
import importlib

import pytest

import backtest

MODULES = [
    "backtest._market",
    "backtest._signals",
    "backtest.analytics",
    "backtest.metrics",
    "backtest.sweep",
    "backtest.testing",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_exports_are_complete_and_resolve() -> None:
    assert sorted(backtest.__all__) == sorted(set(backtest.__all__))
    for name in backtest.__all__:
        assert getattr(backtest, name) is not None
    public = {n for n in vars(backtest) if not n.startswith("_")} - {"annotations"}
    modules = {"analytics", "metrics", "report", "results", "runner", "sweep", "testing"}
    assert public - modules == set(backtest.__all__)
