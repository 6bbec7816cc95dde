"""Limits validation, pre-trade checks, incremental updates and the kill switch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from arbkit.risk import (
    Action,
    PortfolioStatus,
    Reason,
    RiskInputError,
    RiskLimits,
    VenueHealth,
    apply_fill,
    check_orders,
    decide_kill_switch,
    incremental_figures,
    init_incremental,
    snapshot,
    value_at_risk,
)

BASE = {"max_var": 1e6, "max_leverage": 3.0, "max_concentration": 1.0, "max_drawdown": 0.2, "stop_loss": 5e4}


def test_limits_reject_unknown_and_contradictory_fields() -> None:
    with pytest.raises(RiskInputError, match="max_leverag"):
        RiskLimits.parse({**BASE, "max_leverag": 2.0})
    with pytest.raises(RiskInputError) as info:
        RiskLimits.parse({**BASE, "var_warning": 2e6})
    assert "var_warning" in info.value.field
    assert "max_var" in info.value.field
    with pytest.raises(RiskInputError, match="max_drawdown"):
        RiskLimits.parse({**BASE, "max_drawdown": 1.5})
    with pytest.raises(RiskInputError, match="max_var"):
        RiskLimits.parse({**BASE, "max_var": float("nan")})
    limits = RiskLimits.parse(BASE)
    with pytest.raises(RiskInputError, match="max_position"):
        limits.update(max_position={"BTC/USDT": -1.0})
    assert limits.max_leverage == 3.0  # the original is untouched


def _state(limits: RiskLimits, cov: np.ndarray | None = None, exposure: float = 0.0):  # type: ignore[no-untyped-def]
    return snapshot(
        venue=["binance", "okx"],
        symbol=["BTC/USDT", "BTC/USDT"],
        quantity=[0.0, 0.0],
        price=[50_000.0, 50_000.0],
        exposure=[exposure, 0.0],
        covariance=np.diag([4e-4, 4e-4]) if cov is None else cov,
        equity=100_000.0,
        limits=limits,
    )


def test_pretrade_codes_and_breaching_values() -> None:
    limits = RiskLimits.parse({**BASE, "max_position": {"BTC/USDT": 2.0}, "max_venue_notional": {"okx": 120_000.0}})
    state = _state(limits)
    legs = np.array([[0, 1]] * 5)
    factors = np.array([[0, 1]] * 5)
    qty = np.array([[1.0, -1.0], [3.0, -3.0], [2.0, -2.0], [2.0, -2.0], [0.5, 0.0]])
    price = np.full((5, 2), 50_000.0)
    price[2] = [50_000.0, 70_000.0]  # okx leg notional 140k > 120k venue cap
    result = check_orders(state, position=legs, factor=factors, quantity=qty, price=price)
    assert result.code.tolist() == [0, 4002, 4002, 0, 0]
    assert result.reason.tolist()[:3] == [Reason.ACCEPTED, Reason.POSITION, Reason.VENUE_NOTIONAL]
    assert result.value[1] == 3.0
    assert result.limit[1] == 2.0
    assert result.value[2] == pytest.approx(140_000.0)
    assert result.counts() == {"ACCEPTED": 3, "POSITION": 1, "VENUE_NOTIONAL": 1}


def test_pretrade_leverage_and_var_against_closed_form() -> None:
    limits = RiskLimits.parse({**BASE, "max_leverage": 2.0, "max_var": 5_000.0, "max_concentration": 2.0})
    cov = np.array([[4e-4, 3.9e-4], [3.9e-4, 4e-4]])
    state = _state(limits, cov)
    qty = np.array([[1.0, -1.0], [2.5, -2.5], [3.0, 0.0], [0.1, 0.0]])
    result = check_orders(state, position=[[0, 1]] * 4, factor=[[0, 1]] * 4, quantity=qty)
    assert result.code.tolist() == [0, 4003, 4001, 0]
    assert result.value[1] == pytest.approx(250_000.0 / 100_000.0)
    d = np.array([3.0 * 50_000.0, 0.0])
    var_ref = stats.norm.ppf(0.99) * math.sqrt(d @ cov @ d)
    assert result.value[2] == pytest.approx(var_ref, rel=1e-12)
    hedged = np.array([1.0, -1.0]) * 50_000.0
    assert stats.norm.ppf(0.99) * math.sqrt(hedged @ cov @ hedged) < 5_000.0  # the hedge is why row 0 passes


def test_pretrade_lets_risk_reducing_trades_through() -> None:
    limits = RiskLimits.parse({**BASE, "max_var": 1_000.0})
    state = _state(limits, exposure=100_000.0)  # VaR about 4,650 > 1,000 already
    result = check_orders(state, position=[[0], [0]], factor=[[0], [0]], quantity=[[-1.0], [0.5]])
    assert result.code.tolist() == [0, 4001]


def test_pretrade_bad_input() -> None:
    state = _state(RiskLimits.parse(BASE))
    with pytest.raises(RiskInputError, match="quantity"):
        check_orders(state, position=[[0]], factor=[[0]], quantity=[[float("nan")]])
    with pytest.raises(RiskInputError, match="position"):
        check_orders(state, position=[[7]], factor=[[0]], quantity=[[1.0]])


def test_incremental_equals_full_recomputation() -> None:
    rng = np.random.default_rng(0)
    returns = rng.normal(0, 0.01, size=(500, 8))
    exposure = rng.normal(0, 1e5, size=8)
    state = init_incremental(exposure, returns)
    fills = [([3], [2e4]), ([0, 5, 0], [-1e4, 5e3, 2e3]), ([7], [-3e5])]
    for factors, deltas in fills:
        state = apply_fill(state, factors, deltas)
        np.add.at(exposure, factors, deltas)
        np.testing.assert_allclose(state.scenario_pnl, returns @ exposure, rtol=1e-10, atol=1e-6)
        # against numpy's sample covariance, not against init_incremental's own full computation
        assert state.variance == pytest.approx(float(exposure @ np.cov(returns, rowvar=False) @ exposure), rel=1e-10)
        for method in ("historical", "parametric"):
            inc = incremental_figures(state, (0.95, 0.99), method)
            ref = value_at_risk(returns @ exposure, (0.95, 0.99), method)  # type: ignore[arg-type]
            np.testing.assert_allclose(inc.var, ref, rtol=1e-9)


def _status(**changes: object) -> PortfolioStatus:
    values: dict[str, object] = {
        "var": 1.0,
        "leverage": 1.0,
        "concentration": 0.1,
        "drawdown": 0.0,
        "session_loss": 0.0,
        "venue_exposure": {"binance": 1e5, "okx": 0.0},
        "venue_open_orders": {"okx": 0},
    }
    values.update(changes)
    return PortfolioStatus(**values)  # type: ignore[arg-type]


HEALTHY = {"binance": VenueHealth(False, True), "okx": VenueHealth(False, True)}


def test_kill_switch_levels() -> None:
    limits = RiskLimits.parse(BASE)
    assert decide_kill_switch(_status(), limits, HEALTHY).action is Action.NONE
    var_breach = decide_kill_switch(_status(var=2e6), limits, HEALTHY)
    assert (var_breach.action, var_breach.cancel_open) == (Action.STOP_NEW, frozenset())
    assert var_breach.stop_new == {"binance", "okx"}
    loss = decide_kill_switch(_status(session_loss=6e4), limits, HEALTHY)
    assert loss.action is Action.CANCEL_OPEN
    assert loss.cancel_open == {"binance", "okx"}
    assert decide_kill_switch(_status(drawdown=0.25), limits, HEALTHY).reasons == ("max_drawdown",)
    nan = decide_kill_switch(_status(var=float("nan")), limits, HEALTHY)
    assert nan.action is Action.CANCEL_OPEN
    assert nan.reasons == ("invalid_risk_state:var",)


def test_kill_switch_data_health() -> None:
    limits = RiskLimits.parse(BASE)
    stale_idle = decide_kill_switch(_status(), limits, {**HEALTHY, "okx": VenueHealth(True, True)})
    assert (stale_idle.action, stale_idle.stop_new, stale_idle.cancel_open) == (
        Action.STOP_NEW,
        frozenset({"okx"}),
        frozenset(),
    )
    unverified_open = decide_kill_switch(_status(), limits, {**HEALTHY, "binance": VenueHealth(False, False)})
    assert unverified_open.cancel_open == {"binance"}
    assert unverified_open.reasons == ("unverified_data:binance",)
    missing = decide_kill_switch(_status(), limits, {"okx": VenueHealth(False, True)})
    assert missing.cancel_open == {"binance"}
    assert missing.reasons == ("no_data_health:binance",)


def test_pretrade_refuses_an_indefinite_covariance() -> None:
    # [[1, 2], [2, 1]] has eigenvalues 3 and -1: a long/short book would get variance 1 + 1 - 4 = -2, which the
    # kernel's sqrt(max(v, 0)) would turn into a VaR of 0 that passes any max_var
    with pytest.raises(RiskInputError, match="not positive semidefinite") as info:
        _state(RiskLimits.parse(BASE), cov=np.array([[1.0, 2.0], [2.0, 1.0]]))
    assert info.value.field == "covariance"
    with pytest.raises(RiskInputError, match="symmetric"):
        _state(RiskLimits.parse(BASE), cov=np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(RiskInputError, match="NaN"):
        _state(RiskLimits.parse(BASE), cov=np.array([[1.0, 0.0], [0.0, float("nan")]]))


def test_incremental_never_yields_a_silent_nan() -> None:
    one_period = np.array([[0.01, -0.02]])
    with pytest.raises(RiskInputError, match="at least 2 periods") as info:
        init_incremental([1.0, 1.0], one_period)  # sample covariance of one row: NaN without the check
    assert info.value.field == "scenario_returns"
    returns = np.array([[0.01, 0.0], [0.0, 0.01], [-0.01, 0.0]])
    with pytest.raises(RiskInputError, match="not positive semidefinite"):
        init_incremental([1.0, -1.0], returns, covariance=[[1.0, 2.0], [2.0, 1.0]])
    # a singular (perfectly hedged) covariance is defined: zero variance, VaR = -mean P&L
    state = init_incremental([1.0, -1.0], returns, covariance=[[1.0, 1.0], [1.0, 1.0]])
    figures = incremental_figures(state, 0.99, "parametric")
    assert figures.var.tolist() == [-float(np.mean(returns @ np.array([1.0, -1.0])))]
