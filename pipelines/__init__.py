"""Named detection pipelines: ``pipelines.get(name)`` returns a strategy object for backtests and live engines.

Every pipeline lives in its own module ``pipelines/<name>.py`` exposing a module-level ``STRATEGY`` that follows
:class:`arbkit.pipeline.Strategy` (``name``, ``params_type``, ``init``, ``step``, ``finish``) plus ``run`` and
``tables`` (the batch tables it reads).  Modules are loaded lazily by name with :func:`importlib.import_module`,
so adding a pipeline needs no edit here beyond its name in :data:`KNOWN`.

Examples
--------
>>> names()
('cross_exchange', 'triangular', 'basis', 'options_parity')
>>> get("cross_exchange").name
'cross_exchange'
>>> get("nope")
Traceback (most recent call last):
...
pipelines.UnknownPipelineError: unknown pipeline 'nope'; known: cross_exchange, triangular, basis, options_parity
"""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from arbkit import schema
from arbkit.pipeline import Batch

__all__ = ["KNOWN", "NamedStrategy", "UnknownPipelineError", "detect_store", "get", "names"]

#: Pipeline names, in the order ``names()`` lists them.
KNOWN: tuple[str, ...] = ("cross_exchange", "triangular", "basis", "options_parity")

_NS_PER_DAY = 86_400 * 1_000_000_000


class UnknownPipelineError(KeyError):
    """A pipeline name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class NamedStrategy(Protocol):
    """What :func:`get` returns (structural: any object with these members)."""

    name: str
    params_type: type[Any]
    tables: tuple[str, ...]

    def init(self, params: Any) -> Any: ...

    def step(self, batch: Batch, state: Any, params: Any) -> tuple[pl.DataFrame, Any]: ...

    def finish(self, state: Any, params: Any) -> pl.DataFrame: ...

    def run(self, batch: Batch, params: Any) -> pl.DataFrame: ...


def names() -> tuple[str, ...]:
    """The registered pipeline names."""
    return KNOWN


def get(name: str) -> NamedStrategy:
    """The strategy object of pipeline ``name``; :class:`UnknownPipelineError` lists the known names."""
    if name not in KNOWN:
        raise UnknownPipelineError(f"unknown pipeline {name!r}; known: {', '.join(KNOWN)}")
    module = importlib.import_module(f"pipelines.{name}")
    strategy: NamedStrategy = module.STRATEGY
    return strategy


def _day_bounds(day: dt.date) -> tuple[int, int]:
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    return start, start + _NS_PER_DAY


def detect_store(
    store_root: str | Path,
    name: str,
    start: int | None = None,
    end: int | None = None,
    params: Any = None,
) -> pl.DataFrame:
    """Run pipeline ``name`` over a Parquet store, day by day with carried state; return its opportunities.

    Parameters
    ----------
    store_root
        Root of an :class:`arbkit.data.store.Store`.
    name
        Pipeline name (see :func:`names`).
    start, end
        Half-open range of the pipeline's clock, in ns (``None``: everything stored).
    params
        The pipeline's parameters (default: ``params_type()``).

    Returns
    -------
    polars.DataFrame
        :data:`arbkit.schema.OPPORTUNITIES` rows: episodes closed along the way (``"expired"``) and those still
        open at the end (``"active"``), sorted by ``(ts_start, id)``.

    Notes
    -----
    The store returns rows sorted by ``(symbol, time)``; each day's batch is re-sorted into canonical clock order
    (stable, so equal timestamps keep the store's deterministic order) before stepping.  A strategy whose
    ``orders_rows`` attribute is true puts rows in canonical order itself (cross-exchange): it gets the files'
    rows unsorted, which orders equal timestamps the same way and skips two sorts of every table.
    """
    from arbkit.data.store import Store

    strategy = get(name)
    if params is None:
        params = strategy.params_type()
    clock = str(getattr(params, "clock", "ts_recv"))
    orders_rows = bool(getattr(strategy, "orders_rows", False))
    store = Store(store_root)
    days = sorted({d for table in strategy.tables for d in store.days(table)})
    state = strategy.init(params)
    outputs = []
    for day in days:
        lo, hi = _day_bounds(day)
        lo = lo if start is None else max(lo, start)
        hi = hi if end is None else min(hi, end)
        if lo >= hi:
            continue
        frames = {}
        for table in strategy.tables:
            table_clock = clock if table != "funding" or clock in schema.FUNDING.names else "ts_recv"
            frame = store.scan(table, start=lo, end=hi, clock=table_clock, sort=not orders_rows).collect()
            frames[table] = frame if orders_rows else frame.sort(table_clock, maintain_order=True)
        batch = Batch(**frames)
        if batch.height == 0:
            continue
        out, state = strategy.step(batch, state, params)
        outputs.append(out)
    outputs.append(strategy.finish(state, params))
    result = pl.concat(outputs, how="vertical")
    return result.sort("ts_start", "id") if result.height else schema.empty(schema.OPPORTUNITIES)
