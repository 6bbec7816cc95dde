"""Pipeline ``options_parity``: put-call parity violations after fees and spreads (:mod:`arbkit.detect._parity`).

Reads the ``option_quotes`` table (calls and puts) and the ``quotes`` table (the dated futures that hedge them).
The rejected and suppressed row counters are in ``state.counts``.

Examples
--------
>>> import polars as pl
>>> from arbkit.pipeline import Batch
>>> T = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC
>>> opt = pl.DataFrame({
...     "ts_event": [T, T], "ts_recv": [T, T], "exchange": ["deribit"] * 2,
...     "symbol": ["BTC/USD:BTC-260327-100000-C", "BTC/USD:BTC-260327-100000-P"],
...     "underlying": ["BTC/USD"] * 2, "expiry": [1_774_598_400_000_000_000] * 2, "strike": [100000.0] * 2,
...     "option_type": ["C", "P"], "bid": [0.0530, 0.0490], "bid_size": [1.0, 1.0], "ask": [0.0540, 0.0500],
...     "ask_size": [1.0, 1.0], "underlying_price": [100000.0] * 2})
>>> out = STRATEGY.run(Batch.of(option_quotes=opt), Params(rate=0.0))
>>> [leg["side"] for leg in out["legs"][0]], out["status"][0]
(['sell', 'buy', 'buy'], 'active')
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from arbkit import pipeline
from arbkit.detect._parity import ParityParams, ParityState, finish_parity, step_parity
from arbkit.pipeline import Batch

__all__ = ["STRATEGY", "OptionsParity", "Params", "State"]

Params = ParityParams
State = ParityState


@dataclass  # not frozen: the Strategy protocol declares settable members
class OptionsParity:
    """The strategy object: reads the ``quotes`` (futures) and ``option_quotes`` tables of each batch."""

    name: str = "options_parity"
    params_type: type[ParityParams] = ParityParams
    tables: tuple[str, ...] = ("quotes", "option_quotes")

    def init(self, params: ParityParams) -> ParityState:
        del params
        return ParityState.empty()

    def step(self, batch: Batch, state: ParityState, params: ParityParams) -> tuple[pl.DataFrame, ParityState]:
        return step_parity(batch, state, params)

    def finish(self, state: ParityState, params: ParityParams) -> pl.DataFrame:
        return finish_parity(state, params)

    def run(self, batch: Batch, params: ParityParams) -> pl.DataFrame:
        return pipeline.run(self, batch, params)


STRATEGY = OptionsParity()
