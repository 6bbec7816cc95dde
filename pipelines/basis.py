"""Pipeline ``basis``: spot vs perpetual and dated futures, perpetual vs perpetual (see :mod:`arbkit.detect._basis`).

Reads the ``quotes`` and ``funding`` tables.  Profit, carry, sizing and confidence are documented in
:mod:`arbkit.detect._basis`; the rejected and suppressed row counters are in ``state.counts``.

Examples
--------
>>> import polars as pl
>>> from arbkit.pipeline import Batch
>>> q = pl.DataFrame({"ts_event": [1, 2], "ts_recv": [1, 2], "exchange": ["binance", "okx"],
...                   "symbol": ["BTC/USDT", "BTC/USDT:USDT"], "bid": [59_990.0, 60_400.0], "bid_size": [1.0, 1.0],
...                   "ask": [60_000.0, 60_410.0], "ask_size": [1.0, 1.0]})
>>> STRATEGY.run(Batch.of(quotes=q), Params()).select("buy_exchange", "sell_exchange", "status").rows()
[('binance', 'okx', 'active')]
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from arbkit import pipeline
from arbkit.detect._basis import BasisParams, BasisState, finish_basis, step_basis
from arbkit.pipeline import Batch

__all__ = ["STRATEGY", "Basis", "Params", "State"]

Params = BasisParams
State = BasisState


@dataclass  # not frozen: the Strategy protocol declares settable members
class Basis:
    """The strategy object: reads the ``quotes`` and ``funding`` tables of each batch."""

    name: str = "basis"
    params_type: type[BasisParams] = BasisParams
    tables: tuple[str, ...] = ("quotes", "funding")

    def init(self, params: BasisParams) -> BasisState:
        del params
        return BasisState.empty()

    def step(self, batch: Batch, state: BasisState, params: BasisParams) -> tuple[pl.DataFrame, BasisState]:
        return step_basis(batch, state, params)

    def finish(self, state: BasisState, params: BasisParams) -> pl.DataFrame:
        return finish_basis(state, params)

    def run(self, batch: Batch, params: BasisParams) -> pl.DataFrame:
        return pipeline.run(self, batch, params)


STRATEGY = Basis()
