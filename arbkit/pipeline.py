"""The strategy contract: a pure ``step(batch, state, params) -> (output, state)`` over columnar batches.

A backtest calls ``step`` once over history (or day by day), the live engine on micro-batches of a few
milliseconds.  Because the state is explicit, both give the same answer (*batch-split parity*)::

    step(concat(b1, b2), s) == (concat(o1, o2), s2)  where (o1, s1) = step(b1, s), (o2, s2) = step(b2, s1)

Ordering rules that make parity possible
----------------------------------------
* A :class:`Batch` holds up to four tables (quotes, book, funding, option quotes).  Its rows are processed in
  the **canonical order**: stable sort by the clock column (``ts_recv`` by default), then by table in the order
  of :data:`TABLE_ORDER`, then by the row's position within its table.  :func:`split_batch` cuts a batch in that
  same order, so every micro-batch is a contiguous slice of the whole, even inside a burst of equal timestamps.
* Outputs are compared after :func:`canonical_sort`, so a strategy may emit rows in any deterministic order
  within a batch; what must not depend on the split is *which* rows come out and their values.
* A strategy keeps everything it needs to continue in its state, including counters of rejected rows, so the
  final states of a split and an unsplit run are equal too (:func:`states_equal`).

``finish(state, params)`` emits what is still open at the end of a run (e.g. active episodes).  ``run`` is
``step`` from ``init`` followed by ``finish``, so a backtest and a live session that stops at the same point
agree.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import polars as pl

from arbkit import schema

__all__ = [
    "TABLE_ORDER",
    "Batch",
    "ParityError",
    "Strategy",
    "assert_parity",
    "canonical_sort",
    "concat_batches",
    "run",
    "run_batches",
    "split_batch",
    "states_equal",
]

#: Tables a batch may carry, in their tie-break order for equal timestamps.
TABLE_ORDER: tuple[str, ...] = ("quotes", "book", "funding", "option_quotes")

_TABLES = {
    "quotes": schema.QUOTES,
    "book": schema.BOOK,
    "funding": schema.FUNDING,
    "option_quotes": schema.OPTION_QUOTES,
}


def _empty(name: str) -> pl.DataFrame:
    return schema.empty(_TABLES[name])


@dataclass(frozen=True)
class Batch:
    """A columnar slice of market data; every frame has its table's exact schema (possibly empty)."""

    quotes: pl.DataFrame = field(default_factory=lambda: _empty("quotes"))
    book: pl.DataFrame = field(default_factory=lambda: _empty("book"))
    funding: pl.DataFrame = field(default_factory=lambda: _empty("funding"))
    option_quotes: pl.DataFrame = field(default_factory=lambda: _empty("option_quotes"))

    @classmethod
    def of(cls, **frames: pl.DataFrame) -> Batch:
        """Build a batch, validating each given frame against its table."""
        unknown = set(frames) - set(TABLE_ORDER)
        if unknown:
            raise ValueError(f"unknown batch table(s): {sorted(unknown)}; expected {list(TABLE_ORDER)}")
        return cls(**{name: schema.validate(frame, _TABLES[name]) for name, frame in frames.items()})

    @property
    def height(self) -> int:
        return sum(self.frame(name).height for name in TABLE_ORDER)

    def frame(self, name: str) -> pl.DataFrame:
        frame: pl.DataFrame = getattr(self, name)
        return frame


class _Params(Protocol):
    pass


P = TypeVar("P")
S = TypeVar("S")


class Strategy(Protocol, Generic[P, S]):
    """A named strategy: ``init``/``step``/``finish`` over explicit state, and its parameter type."""

    @property
    def name(self) -> str: ...

    @property
    def params_type(self) -> type[P]: ...

    def init(self, params: P) -> S: ...

    def step(self, batch: Batch, state: S, params: P) -> tuple[pl.DataFrame, S]: ...

    def finish(self, state: S, params: P) -> pl.DataFrame: ...


def run(strategy: Strategy[P, S], batch: Batch, params: P) -> pl.DataFrame:
    """Run a strategy over a whole history: one ``step`` from the initial state, then ``finish``."""
    output, state = strategy.step(batch, strategy.init(params), params)
    tail = strategy.finish(state, params)
    return pl.concat([output, tail], how="vertical") if tail.height else output


def run_batches(strategy: Strategy[P, S], batches: Sequence[Batch], params: P) -> tuple[pl.DataFrame, S]:
    """Step through micro-batches with carried state; returns all outputs (including ``finish``) and the state."""
    state = strategy.init(params)
    outputs = []
    for batch in batches:
        out, state = strategy.step(batch, state, params)
        outputs.append(out)
    outputs.append(strategy.finish(state, params))
    return pl.concat(outputs, how="vertical"), state


def _canonical_positions(batch: Batch, clock: str) -> pl.DataFrame:
    parts = [
        pl.DataFrame(
            {
                "clock": batch.frame(name).get_column(clock),
                "table": pl.Series([i] * batch.frame(name).height, dtype=pl.UInt8),
                "row": pl.int_range(batch.frame(name).height, dtype=pl.UInt32, eager=True),
            }
        )
        for i, name in enumerate(TABLE_ORDER)
    ]
    return pl.concat(parts).sort(["clock", "table", "row"], maintain_order=True)


def split_batch(batch: Batch, cuts: Sequence[int], clock: str = "ts_recv") -> list[Batch]:
    """Cut a batch at positions of its canonical order (see module docstring); ``len(cuts) + 1`` batches.

    Cuts may repeat (giving empty batches) and may fall inside runs of equal timestamps.
    """
    order = _canonical_positions(batch, clock)
    n = order.height
    bounds = [0, *sorted(min(max(int(c), 0), n) for c in cuts), n]
    tables = order.get_column("table").to_numpy()
    rows = order.get_column("row").to_numpy()
    out = []
    for lo, hi in itertools.pairwise(bounds):
        frames = {}
        for i, name in enumerate(TABLE_ORDER):
            sel = rows[lo:hi][tables[lo:hi] == i]
            frames[name] = batch.frame(name)[np.sort(sel)]
        out.append(Batch(**frames))
    return out


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """Concatenate batches table by table (the inverse of :func:`split_batch`)."""
    if not batches:
        return Batch()
    return Batch(**{name: pl.concat([b.frame(name) for b in batches]) for name in TABLE_ORDER})


def canonical_sort(frame: pl.DataFrame) -> pl.DataFrame:
    """Sort by every sortable column so two outputs can be compared regardless of emission order."""
    keys = [c for c, dt in frame.schema.items() if not isinstance(dt, pl.List | pl.Struct | pl.Object)]
    return frame.sort(keys, nulls_last=True, maintain_order=True) if keys else frame


def states_equal(a: Any, b: Any) -> bool:
    """Structural equality for strategy states: frames, arrays, dataclasses, named tuples, mappings."""
    if isinstance(a, pl.DataFrame) and isinstance(b, pl.DataFrame):
        return a.schema == b.schema and a.equals(b, null_equal=True)
    if isinstance(a, pl.Series) and isinstance(b, pl.Series):
        return a.dtype == b.dtype and a.equals(b, check_names=False, null_equal=True)
    if hasattr(a, "__array__") and hasattr(b, "__array__") and not isinstance(a, str | bytes):
        x, y = np.asarray(a), np.asarray(b)
        return x.shape == y.shape and x.dtype == y.dtype and bool(np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b) and not isinstance(a, type):
        if type(a) is not type(b):
            return False
        return all(
            states_equal(getattr(a, f.name), getattr(b, f.name))
            for f in dataclasses.fields(a)  # type: ignore[arg-type]
        )
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return type(a) is type(b) and len(a) == len(b) and all(states_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


class ParityError(AssertionError):
    """Stepping over micro-batches gave a different output or final state than one run."""


def assert_parity(
    strategy: Strategy[P, S], batch: Batch, params: P, cuts: Sequence[int], clock: str = "ts_recv"
) -> None:
    """Check batch-split parity of ``strategy`` on ``batch`` cut at ``cuts``; raise :class:`ParityError` if not.

    Compares the concatenated outputs (after :func:`canonical_sort`) and the final states exactly.
    """
    whole_out, whole_state = strategy.step(batch, strategy.init(params), params)
    whole_tail = strategy.finish(whole_state, params)
    parts = split_batch(batch, cuts, clock)
    split_out, split_state = run_batches(strategy, parts, params)
    expected = canonical_sort(pl.concat([whole_out, whole_tail], how="vertical"))
    got = canonical_sort(split_out)
    if expected.schema != got.schema or not expected.equals(got, null_equal=True):
        raise ParityError(
            f"{strategy.name}: outputs differ for cuts {list(cuts)}: "
            f"{expected.height} rows in one run vs {got.height} rows over {len(parts)} batches"
        )
    if not states_equal(whole_state, split_state):
        raise ParityError(f"{strategy.name}: final states differ for cuts {list(cuts)}")
