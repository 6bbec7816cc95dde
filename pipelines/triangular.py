"""Pipeline ``triangular``: conversion cycles over the currency graph (see :mod:`arbkit.detect._triangular`)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from arbkit.detect._triangular import (
    TriangularParams,
    TriangularState,
    detect_triangular,
    finish_triangular,
)
from arbkit.pipeline import Batch

__all__ = ["STRATEGY", "Params", "State", "Triangular"]

Params = TriangularParams
State = TriangularState


@dataclass(frozen=True)
class Triangular:
    """The strategy object: reads the ``quotes`` and ``book`` tables of each batch (book depth sizes cycles)."""

    name: str = "triangular"
    params_type: type[TriangularParams] = TriangularParams
    tables: tuple[str, ...] = ("quotes", "book")

    def init(self, params: TriangularParams) -> TriangularState:
        del params
        return TriangularState.empty()

    def step(
        self, batch: Batch, state: TriangularState, params: TriangularParams
    ) -> tuple[pl.DataFrame, TriangularState]:
        return detect_triangular(batch.quotes, state, params, batch.book)

    def finish(self, state: TriangularState, params: TriangularParams) -> pl.DataFrame:
        return finish_triangular(state, params)

    def run(self, batch: Batch, params: TriangularParams) -> pl.DataFrame:
        output, state = self.step(batch, self.init(params), params)
        return pl.concat([output, self.finish(state, params)], how="vertical")


STRATEGY = Triangular()
