"""Pipeline ``cross_exchange``: buy on one venue, sell on another (see :mod:`arbkit.detect._cross_exchange`).

Examples
--------
>>> import polars as pl
>>> from arbkit.pipeline import Batch
>>> q = pl.DataFrame({
...     "ts_event": [1, 2], "ts_recv": [1, 2], "exchange": ["binance", "okx"], "symbol": ["BTC/USDT"] * 2,
...     "bid": [60_000.0, 60_300.0], "bid_size": [1.0] * 2, "ask": [60_010.0, 60_310.0], "ask_size": [1.0] * 2})
>>> STRATEGY.run(Batch.of(quotes=q), Params(max_notional=1e6)).select("buy_exchange", "status").rows()
[('binance', 'active')]
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from arbkit.detect._cross_exchange import (
    CrossExchangeParams,
    CrossExchangeState,
    detect_cross_exchange,
    finish_cross_exchange,
)
from arbkit.pipeline import Batch

__all__ = ["STRATEGY", "CrossExchange", "Params", "State"]

Params = CrossExchangeParams
State = CrossExchangeState


@dataclass(frozen=True)
class CrossExchange:
    """The strategy object: reads the ``quotes`` and ``book`` tables of each batch (book depth sizes the legs)."""

    name: str = "cross_exchange"
    params_type: type[CrossExchangeParams] = CrossExchangeParams
    tables: tuple[str, ...] = ("quotes", "book")
    orders_rows: bool = True  # takes each symbol's rows in canonical clock order itself

    def init(self, params: CrossExchangeParams) -> CrossExchangeState:
        del params
        return CrossExchangeState.empty()

    def step(
        self, batch: Batch, state: CrossExchangeState, params: CrossExchangeParams
    ) -> tuple[pl.DataFrame, CrossExchangeState]:
        return detect_cross_exchange(batch.quotes, state, params, batch.book)

    def finish(self, state: CrossExchangeState, params: CrossExchangeParams) -> pl.DataFrame:
        return finish_cross_exchange(state, params)

    def run(self, batch: Batch, params: CrossExchangeParams) -> pl.DataFrame:
        output, state = self.step(batch, self.init(params), params)
        return pl.concat([output, self.finish(state, params)], how="vertical")


STRATEGY = CrossExchange()
