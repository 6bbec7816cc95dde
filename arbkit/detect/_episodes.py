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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from arbkit import schema
from arbkit.detect._confidence import persistence

__all__ = [
    "EVENT_SCHEMA",
    "EpisodeIds",
    "EpisodeState",
    "advance_timeline_codes",
    "advance_timelines",
    "episode_id",
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
    names_sorted = sorted(merged)  # code point order, as Polars sorts strings (by UTF-8 bytes); names are unique
    timelines = pl.DataFrame(
        [
            pl.Series("timeline", names_sorted, dtype=pl.String),
            pl.Series("next_seq", [merged[name] for name in names_sorted], dtype=pl.Int64),
        ]
    )
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

    Speed: this runs on every micro-batch, so it uses eager frame operations only (column access, gathers,
    frames from Series, an eager sort): each lazy ``select``/``filter``/``join`` costs about 0.1 ms.
    """
    known = dict(zip(state.timelines["timeline"].to_list(), state.timelines["next_seq"].to_list(), strict=True))
    if events.height == 0:  # nothing to merge: open episodes only close when their timeline moved on
        if state.open.height == 0:
            return _empty_opportunities(), state
        is_open = _still_open(state.open, known)
        if is_open.all():
            return _empty_opportunities(), state
        closed = state.open[np.flatnonzero(~is_open)]
        return to_opportunities(closed, "expired"), EpisodeState(state.open[np.flatnonzero(is_open)], state.timelines)
    seq, ts, profit = events.get_column("seq"), events.get_column("ts"), events.get_column("profit")
    fragments = pl.DataFrame(
        [
            events.get_column("kind"),
            events.get_column("key"),
            events.get_column("timeline"),
            seq.alias("seq_start"),
            seq.alias("seq_last"),
            ts.alias("ts_start"),
            ts.alias("ts_end"),
            *[events.get_column(name) for name in _FRAGMENT_PAYLOAD[:7]],
            profit,
            profit.alias("peak_profit"),
            *[events.get_column(name) for name in _FRAGMENT_PAYLOAD[7:]],
            pl.Series("rows", np.ones(events.height, dtype=np.int64)),
        ]
    )
    if fragments.dtypes != _OPEN_DTYPES:
        fragments = fragments.cast(_OPEN_SCHEMA)  # type: ignore[arg-type]
    parts = pl.concat([state.open, fragments]) if state.open.height else fragments
    # Runs of fragments that continue each other, in NumPy and Python over the fragments ordered by key then
    # seq_start (a stable sort; Python orders strings by code point, as Polars does by UTF-8 bytes).
    keys = parts.get_column("key").to_list()
    seq_start_in = parts.get_column("seq_start").to_numpy()
    starts_in = seq_start_in.tolist()
    if parts.height <= _FEW:
        order = np.array(sorted(range(parts.height), key=lambda i: (keys[i], starts_in[i])), dtype=np.int64)
    else:
        by = pl.arg_sort_by("key", "seq_start", maintain_order=True)
        order = parts.select(by).to_series().to_numpy().astype(np.int64, copy=False)
    sorted_keys = [keys[i] for i in order.tolist()]
    seq_start = seq_start_in[order]
    seq_last = parts.get_column("seq_last").to_numpy()[order]
    continues = np.zeros(parts.height, dtype=np.bool_)
    continues[1:] = np.array([a == b for a, b in zip(sorted_keys[1:], sorted_keys[:-1], strict=True)], dtype=np.bool_)
    continues[1:] &= seq_start[1:] == seq_last[:-1] + 1
    first = np.flatnonzero(~continues)
    last = np.append(first[1:] - 1, parts.height - 1)
    peak = np.maximum.reduceat(parts.get_column("peak_profit").to_numpy()[order], first)
    rows = np.add.reduceat(parts.get_column("rows").to_numpy()[order], first)
    timelines = parts.get_column("timeline").to_list()
    last_src, first_src = order[last], order[first]
    next_seq = np.array([known.get(timelines[i], 0) for i in last_src.tolist()], dtype=np.int64)
    is_open = np.greater_equal(seq_last[last] + 1, next_seq)
    # One gather for all merged episodes (open ones first), one for their heads; then two zero-copy slices.
    pick = np.concatenate([np.flatnonzero(is_open), np.flatnonzero(~is_open)])
    n_open = int(is_open.sum())
    head_columns = ("kind", "key", "timeline", "seq_start", "ts_start")
    head = pl.DataFrame([parts.get_column(name) for name in head_columns])[first_src[pick]]
    replaced = {name: head.get_column(name) for name in head_columns}
    replaced["peak_profit"] = pl.Series("peak_profit", peak[pick], dtype=pl.Float64)
    replaced["rows"] = pl.Series("rows", rows[pick], dtype=pl.Int64)
    merged = pl.DataFrame([replaced.get(column.name, column) for column in parts[last_src[pick]].get_columns()])
    still_open = merged.slice(0, n_open)
    closed = merged.slice(n_open)
    return to_opportunities(closed, "expired"), EpisodeState(still_open, state.timelines)


#: Up to this many fragments or episodes, sorts run in Python (a micro-batch); above, in Polars.
_FEW = 2048

_FRAGMENT_PAYLOAD = (
    "symbol",
    "legs",
    "buy_exchange",
    "sell_exchange",
    "buy_price",
    "sell_price",
    "size",
    "profit_percentage",
    "confidence",
)
_OPEN_DTYPES = list(_OPEN_SCHEMA.values())


def _still_open(episodes: pl.DataFrame, next_seq_of: Mapping[str, int]) -> npt.NDArray[np.bool_]:
    """Whether each episode still ends at its timeline's last row (``seq_last + 1 >= next_seq``)."""
    names = episodes.get_column("timeline").to_list()
    next_seq = np.array([next_seq_of.get(name, 0) for name in names], dtype=np.int64)
    return np.asarray(np.greater_equal(episodes.get_column("seq_last").to_numpy() + 1, next_seq), dtype=np.bool_)


_EMPTY_OPPORTUNITIES = schema.empty(schema.OPPORTUNITIES)
_OPPORTUNITY_DTYPES = list(schema.OPPORTUNITIES.polars.values())


def _empty_opportunities() -> pl.DataFrame:
    """An empty OPPORTUNITIES frame (a fresh one: ``clear`` of a cached frame costs a microsecond, building the
    schema a tenth of a millisecond, paid on every quiet micro-batch)."""
    return _EMPTY_OPPORTUNITIES.clear()


def finish_episodes(state: EpisodeState) -> pl.DataFrame:
    """The episodes still open at the end of a run, with status ``"active"``."""
    return to_opportunities(state.open, "active")


def episode_id(kind: str, key: str, ts_start: int) -> str:
    """The deterministic episode id: the first 16 hex digits of SHA-1 over kind, key and ts_start."""
    return hashlib.sha1(f"{kind}\x1f{key}\x1f{ts_start}".encode(), usedforsecurity=False).hexdigest()[:16]


class EpisodeIds:
    """:func:`episode_id` for the episodes of one kind: the SHA-1 state after ``kind`` and a key is computed once
    per key and copied for each id (the same digests; a detector's keys repeat from batch to batch).

    Examples
    --------
    >>> ids = EpisodeIds("triangular")
    >>> ids.many(["a", "a"], [1, 2]) == [episode_id("triangular", "a", 1), episode_id("triangular", "a", 2)]
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._prefix: dict[str, Any] = {}

    def many(self, keys: Sequence[str], ts_start: Sequence[int]) -> list[str]:
        """The ids of episodes ``(keys[i], ts_start[i])``."""
        prefix, kind = self._prefix, self.kind
        out = []
        for key, ts in zip(keys, ts_start, strict=True):
            head = prefix.get(key)
            if head is None:
                head = prefix[key] = hashlib.sha1(f"{kind}\x1f{key}\x1f".encode(), usedforsecurity=False)
            digest = head.copy()
            digest.update(b"%d" % ts)
            out.append(digest.hexdigest()[:16])
        return out


def to_opportunities(episodes: pl.DataFrame, status: str) -> pl.DataFrame:
    """Episodes (open-state layout) as an :data:`~arbkit.schema.OPPORTUNITIES` frame with ``status``."""
    if episodes.height == 0:
        return _empty_opportunities()
    ids = [
        episode_id(k, key, ts)
        for k, key, ts in zip(
            episodes["kind"].to_list(), episodes["key"].to_list(), episodes["ts_start"].to_list(), strict=True
        )
    ]
    confidence = episodes["confidence"].to_numpy() * persistence(episodes["rows"].to_numpy())
    column = episodes.get_column
    out = pl.DataFrame(
        [
            pl.Series("id", ids, dtype=pl.String),
            *[column(name) for name in ("kind", "ts_start", "ts_end", "symbol", "legs", "buy_exchange")],
            *[column(name) for name in ("sell_exchange", "buy_price", "sell_price", "size", "profit")],
            column("peak_profit"),
            column("profit_percentage"),
            pl.Series("confidence", np.clip(confidence, 0.0, 1.0), dtype=pl.Float64),
            column("rows"),
            pl.Series("status", [status] * episodes.height, dtype=pl.String),
        ]
    )
    if out.dtypes != _OPPORTUNITY_DTYPES:
        out = out.cast(schema.OPPORTUNITIES.polars)
    if out.height > _FEW:
        return out.sort("ts_start", "id")
    # Sorted by (ts_start, id) in Python (an eager Polars sort is a lazy query: ~0.1 ms per micro-batch).
    ts_start = out.get_column("ts_start").to_list()
    order = sorted(range(out.height), key=lambda i: (ts_start[i], ids[i]))
    return out if order == list(range(out.height)) else out[order]
