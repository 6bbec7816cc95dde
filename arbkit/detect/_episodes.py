"""Episodes: merge per-row opportunity events into one reported opportunity per run of profitable rows.

A detector evaluates its candidates (venue pairs, cycles, ...) on every row of a *timeline* (for cross-exchange:
the updates of one instrument) and emits an **event** for each row where a candidate is profitable.  An
opportunity is a run of *consecutive* rows of its timeline where the same candidate (the same legs, named by
``key``) stays profitable (DESIGN.md section 4).  It is reported once, as an episode: ``ts_start``, ``ts_end``
(the last time it was seen profitable), peak and last profit, the number of rows, and the last observed legs,
prices and size.

How it stays exact across micro-batches
---------------------------------------
* Every timeline carries a row counter in :class:`EpisodeState` (:func:`advance_timelines` numbers the rows of
  a batch and advances it), so an event's ``seq`` is its position on its timeline since the start of the run,
  whatever the batch boundaries.
* Events are turned into one-row fragments, concatenated with the still-open episodes of the state, sorted by
  ``(key, seq_start)`` and merged where a fragment starts right after the previous one ends
  (``seq_start == previous seq_last + 1``): one vectorized Polars group-by, the run-id trick
  ``(key, seq - rank)`` generalized to fragments.
* An episode is **closed** once its timeline has moved past it (``seq_last + 1 < next_seq``): a later row of
  the timeline was not profitable for that key.  :func:`merge_episodes` emits closed episodes with status
  ``"expired"``; the open ones stay in the state and :func:`finish_episodes` emits them with status ``"active"``.
* Merging keeps only order-free aggregates (first, last, max, integer sums), so values are bit-identical
  however the input was split.

The ``id`` is deterministic: the first 16 hex digits of SHA-1 over ``kind``, ``key`` and ``ts_start``.

Examples
--------
>>> import polars as pl
>>> state = EpisodeState.empty()
>>> seq, state = advance_timelines(state, pl.Series(["BTC/USDT"] * 4))
>>> seq.tolist()
[0, 1, 2, 3]
>>> events = event_frame(kind="cross_exchange", key=["k", "k", "k"], timeline=["BTC/USDT"] * 3,
...                      seq=[0, 1, 3], ts=[10, 20, 40], symbol=["BTC/USDT"] * 3, profit=[1.0, 3.0, 2.0])
>>> closed, state = merge_episodes(events, state)
>>> closed.select("ts_start", "ts_end", "peak_profit", "rows", "status").rows()
[(10, 20, 3.0, 2, 'expired')]
>>> finish_episodes(state).select("ts_start", "profit", "status").rows()
[(40, 2.0, 'active')]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit import schema
from arbkit.detect._confidence import persistence

__all__ = [
    "EVENT_SCHEMA",
    "EpisodeState",
    "advance_timeline_codes",
    "advance_timelines",
    "event_frame",
    "finish_episodes",
    "merge_episodes",
    "to_opportunities",
]

_LEGS = schema.OPPORTUNITIES.polars["legs"]

#: Columns of an event frame (one row per timeline row where a candidate is profitable).
EVENT_SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]  # mixed DataType classes and instances
        "kind": pl.String,
        "key": pl.String,  # identity of the legs: events with the same key on consecutive rows merge
        "timeline": pl.String,  # whose rows ``seq`` counts (see advance_timelines)
        "seq": pl.Int64,
        "ts": pl.Int64,
        "symbol": pl.String,
        "legs": _LEGS,
        "buy_exchange": pl.String,
        "sell_exchange": pl.String,
        "buy_price": pl.Float64,
        "sell_price": pl.Float64,
        "size": pl.Float64,
        "profit": pl.Float64,
        "profit_percentage": pl.Float64,
        "confidence": pl.Float64,  # per-row confidence, before persistence
    }
)

_OPEN_SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]
        "kind": pl.String,
        "key": pl.String,
        "timeline": pl.String,
        "seq_start": pl.Int64,
        "seq_last": pl.Int64,
        "ts_start": pl.Int64,
        "ts_end": pl.Int64,
        "symbol": pl.String,
        "legs": _LEGS,
        "buy_exchange": pl.String,
        "sell_exchange": pl.String,
        "buy_price": pl.Float64,
        "sell_price": pl.Float64,
        "size": pl.Float64,
        "profit": pl.Float64,
        "peak_profit": pl.Float64,
        "profit_percentage": pl.Float64,
        "confidence": pl.Float64,
        "rows": pl.Int64,
    }
)

_TIMELINE_SCHEMA = pl.Schema({"timeline": pl.String, "next_seq": pl.Int64})


@dataclass(frozen=True)
class EpisodeState:
    """Open episodes (sorted by key) and the row counter of every timeline (sorted by timeline)."""

    open: pl.DataFrame
    timelines: pl.DataFrame

    @classmethod
    def empty(cls) -> EpisodeState:
        return cls(pl.DataFrame(schema=_OPEN_SCHEMA), pl.DataFrame(schema=_TIMELINE_SCHEMA))


def event_frame(**columns: Any) -> pl.DataFrame:
    """Build an event frame; scalar values broadcast, missing payload columns get neutral defaults.

    Required: ``kind``, ``key``, ``timeline``, ``seq``, ``ts``, ``profit``.  ``symbol`` defaults to the
    timeline, ``legs`` to an empty list, exchanges to ``""``, prices to null, ``size``, ``profit_percentage`` to 0
    and ``confidence`` to 1.
    """
    lengths = {
        len(v) for v in columns.values() if isinstance(v, Sequence | np.ndarray | pl.Series) and not isinstance(v, str)
    }
    n = max(lengths) if lengths else 0
    defaults: dict[str, Any] = {
        "legs": None,
        "buy_exchange": "",
        "sell_exchange": "",
        "buy_price": None,
        "sell_price": None,
        "size": 0.0,
        "profit_percentage": 0.0,
        "confidence": 1.0,
    }
    data: dict[str, Any] = {}
    for name, dtype in EVENT_SCHEMA.items():
        value = columns.get(name, columns.get("timeline") if name == "symbol" else defaults.get(name))
        if isinstance(value, str | int | float) or value is None:
            data[name] = pl.Series(name, [value] * n, dtype=dtype)
        else:
            data[name] = pl.Series(name, value).cast(dtype)
    frame = pl.DataFrame(data)
    return frame.with_columns(pl.col("legs").fill_null(pl.lit([], dtype=_LEGS)))


def advance_timelines(state: EpisodeState, timeline: pl.Series) -> tuple[npt.NDArray[np.int64], EpisodeState]:
    """Number the rows of a batch on their timelines and advance the counters.

    ``timeline`` names, for every row of the batch in timeline (canonical) order, the timeline the row belongs
    to.  Returns each row's ``seq`` (position on its timeline since the start of the run) and the new state.
    """
    if timeline.len() == 0:
        return np.zeros(0, dtype=np.int64), state
    text = timeline.cast(pl.String)
    names = sorted(str(x) for x in text.unique().to_list())
    codes = text.cast(pl.Enum(names)).to_physical().to_numpy().astype(np.int64)
    return advance_timeline_codes(state, names, codes)


def advance_timeline_codes(
    state: EpisodeState, names: Sequence[str], codes: npt.NDArray[np.integer[Any]]
) -> tuple[npt.NDArray[np.int64], EpisodeState]:
    """:func:`advance_timelines` for rows given as integer codes into ``names`` (no string per row).

    Examples
    --------
    >>> seq, state = advance_timeline_codes(EpisodeState.empty(), ["a", "b"], np.array([0, 1, 0]))
    >>> seq.tolist(), state.timelines.rows()
    ([0, 0, 1], [('a', 2), ('b', 1)])
    """
    n = int(codes.shape[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64), state
    k = len(names)
    codes64 = np.asarray(codes, dtype=np.int64)
    known = dict(zip(state.timelines["timeline"].to_list(), state.timelines["next_seq"].to_list(), strict=True))
    base = np.array([known.get(name, 0) for name in names], dtype=np.int64)
    counts = np.bincount(codes64, minlength=k)
    # Rank of each row within its timeline: a stable (radix, for small codes) sort groups the rows.
    small = np.uint8 if k <= 256 else np.uint16 if k <= 65_536 else np.int64
    order = np.argsort(codes64.astype(small), kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64) - np.repeat(starts, counts)
    seq = base[codes64] + rank
    touched = np.flatnonzero(counts)
    updated = {names[int(i)]: int(base[i] + counts[i]) for i in touched}
    merged = {**known, **updated}
    timelines = pl.DataFrame(
        {"timeline": list(merged), "next_seq": list(merged.values())}, schema=_TIMELINE_SCHEMA
    ).sort("timeline")
    return seq, EpisodeState(state.open, timelines)


def merge_episodes(events: pl.DataFrame, state: EpisodeState) -> tuple[pl.DataFrame, EpisodeState]:
    """Merge a batch's events into the open episodes; emit those that closed (status ``"expired"``).

    ``events`` has :data:`EVENT_SCHEMA` columns and at most one row per ``(key, seq)``; ``state`` must already
    be advanced over the batch's rows (:func:`advance_timelines`), since that is what tells an episode that its
    timeline moved on without it.

    Returns
    -------
    tuple[pl.DataFrame, EpisodeState]
        Closed episodes as an :data:`arbkit.schema.OPPORTUNITIES` frame sorted by ``(ts_start, id)``, and the
        state holding the episodes still open.
    """
    if events.height == 0:  # nothing to merge: open episodes only close when their timeline moved on
        if state.open.height == 0:
            return _empty_opportunities(), state
        with_next = state.open.join(state.timelines, on="timeline", how="left")
        is_open = pl.col("seq_last") + 1 >= pl.col("next_seq").fill_null(0)
        closed = with_next.filter(~is_open).drop("next_seq")
        if closed.height == 0:
            return _empty_opportunities(), state
        return to_opportunities(closed, "expired"), EpisodeState(
            with_next.filter(is_open).drop("next_seq"), state.timelines
        )
    fragments = events.select(
        "kind",
        "key",
        "timeline",
        pl.col("seq").alias("seq_start"),
        pl.col("seq").alias("seq_last"),
        pl.col("ts").alias("ts_start"),
        pl.col("ts").alias("ts_end"),
        "symbol",
        "legs",
        "buy_exchange",
        "sell_exchange",
        "buy_price",
        "sell_price",
        "size",
        "profit",
        pl.col("profit").alias("peak_profit"),
        "profit_percentage",
        "confidence",
        pl.lit(1, dtype=pl.Int64).alias("rows"),
    )
    parts = pl.concat([state.open, fragments.cast(_OPEN_SCHEMA)]).sort("key", "seq_start", maintain_order=True)
    # Runs of fragments that continue each other, in NumPy (few Polars calls: this runs on every micro-batch).
    key = parts.get_column("key")
    same_key = (key == key.shift(1)).fill_null(False).to_numpy()
    seq_start = parts.get_column("seq_start").to_numpy()
    seq_last = parts.get_column("seq_last").to_numpy()
    continues = np.zeros(parts.height, dtype=np.bool_)
    continues[1:] = same_key[1:] & (seq_start[1:] == seq_last[:-1] + 1)
    first = np.flatnonzero(~continues)
    last = np.append(first[1:] - 1, parts.height - 1)
    peak = np.maximum.reduceat(parts.get_column("peak_profit").to_numpy(), first)
    rows = np.add.reduceat(parts.get_column("rows").to_numpy(), first)
    head = parts.select("kind", "key", "timeline", "seq_start", "ts_start")[first]
    merged = (
        parts[last]
        .with_columns(
            *[head.get_column(c) for c in head.columns],
            pl.Series("peak_profit", peak, dtype=pl.Float64),
            pl.Series("rows", rows, dtype=pl.Int64),
        )
        .select(list(_OPEN_SCHEMA))
    )
    known = dict(zip(state.timelines["timeline"].to_list(), state.timelines["next_seq"].to_list(), strict=True))
    names = merged.get_column("timeline").to_list()
    next_seq = np.array([known.get(name, 0) for name in names], dtype=np.int64)
    seq_after: npt.NDArray[np.int64] = merged.get_column("seq_last").to_numpy() + 1
    open_mask: npt.NDArray[np.bool_] = np.greater_equal(seq_after, next_seq)
    still_open = merged.filter(pl.Series(open_mask))
    closed = merged.filter(pl.Series(~open_mask))
    return to_opportunities(closed, "expired"), EpisodeState(still_open, state.timelines)


_EMPTY_OPPORTUNITIES = schema.empty(schema.OPPORTUNITIES)


def _empty_opportunities() -> pl.DataFrame:
    """An empty OPPORTUNITIES frame (a fresh one: ``clear`` of a cached frame costs a microsecond, building the
    schema a tenth of a millisecond, paid on every quiet micro-batch)."""
    return _EMPTY_OPPORTUNITIES.clear()


def finish_episodes(state: EpisodeState) -> pl.DataFrame:
    """The episodes still open at the end of a run, with status ``"active"``."""
    return to_opportunities(state.open, "active")


def _episode_id(kind: str, key: str, ts_start: int) -> str:
    return hashlib.sha1(f"{kind}\x1f{key}\x1f{ts_start}".encode(), usedforsecurity=False).hexdigest()[:16]


def to_opportunities(episodes: pl.DataFrame, status: str) -> pl.DataFrame:
    """Episodes (open-state layout) as an :data:`~arbkit.schema.OPPORTUNITIES` frame with ``status``."""
    if episodes.height == 0:
        return _empty_opportunities()
    ids = [
        _episode_id(k, key, ts)
        for k, key, ts in zip(episodes["kind"], episodes["key"], episodes["ts_start"], strict=True)
    ]
    confidence = episodes["confidence"].to_numpy() * persistence(episodes["rows"].to_numpy())
    out = episodes.select(
        pl.Series("id", ids, dtype=pl.String),
        "kind",
        "ts_start",
        "ts_end",
        "symbol",
        "legs",
        "buy_exchange",
        "sell_exchange",
        "buy_price",
        "sell_price",
        "size",
        "profit",
        "peak_profit",
        "profit_percentage",
        pl.Series("confidence", np.clip(confidence, 0.0, 1.0), dtype=pl.Float64),
        "rows",
        pl.lit(status, dtype=pl.String).alias("status"),
    )
    return out.cast(schema.OPPORTUNITIES.polars).sort("ts_start", "id")
