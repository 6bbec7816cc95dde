"""Score detected opportunities against the generator's ground-truth labels: precision and recall per kind.

Matching rules
--------------
A detection and a label *match* when they have the same ``kind``, overlap in time within a tolerance, and name
the same trade:

* ``cross_exchange`` (and any kind other than triangular): same ``symbol``, ``buy_exchange`` and
  ``sell_exchange``;
* ``triangular``: the label's dislocated pair (its ``symbol`` on its ``buy_exchange``) is one of the detected
  cycle's legs.

Time: the detection's ``[ts_start, ts_end]`` intersects the label's ``[ts_start - tol, ts_end + tol]``, with
``tol`` the larger one-way latency of the label's venues (registry profiles) unless ``tolerance_ns`` is given.

Only labels that are ``above_fees & ~stale`` are positives.  ``precision = matched detections / detections``
(a detection matching only a stale or below-fee label is a false positive), ``recall = matched positives /
positives``; ``stale_detected`` counts stale labels that some detection matched (must be 0).  A kind with no
detections has precision 1, with no positives recall 1.

Examples
--------
>>> import polars as pl
>>> from arbkit import schema
>>> det = pl.DataFrame({"kind": ["cross_exchange"], "ts_start": [100], "ts_end": [200], "symbol": ["BTC/USDT"],
...                     "buy_exchange": ["okx"], "sell_exchange": ["binance"], "legs": [[]]})
>>> lab = pl.DataFrame({"kind": ["cross_exchange"], "ts_start": [150], "ts_end": [300], "symbol": ["BTC/USDT"],
...                     "buy_exchange": ["okx"], "sell_exchange": ["binance"], "above_fees": [True],
...                     "stale": [False]})
>>> result = score(det, lab)["cross_exchange"]
>>> result["precision"], result["recall"], result["stale_detected"]
(1.0, 1.0, 0)
"""

from __future__ import annotations

import polars as pl

from arbkit import schema
from arbkit.instruments import Registry, UnknownInstrumentError, default_registry

__all__ = ["score"]

_MS = 1_000_000


def _tolerance(labels: pl.DataFrame, registry: Registry, tolerance_ns: int | None) -> pl.Series:
    if tolerance_ns is not None:
        return pl.Series("tol", [int(tolerance_ns)] * labels.height, dtype=pl.Int64)

    def latency(venue: str) -> int:
        try:
            return round(registry.profile(venue).latency_ms * _MS)
        except UnknownInstrumentError:
            return 0

    return pl.Series(
        "tol",
        [max(latency(a), latency(b)) for a, b in zip(labels["buy_exchange"], labels["sell_exchange"], strict=True)],
        dtype=pl.Int64,
    )


def _pairs(detections: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """(det, lab) index pairs naming the same trade, before the time test."""
    det = detections.with_row_index("det")
    lab = labels.with_row_index("lab")
    plain = det.filter(pl.col("kind") != "triangular").join(
        lab.filter(pl.col("kind") != "triangular"), on=["kind", "symbol", "buy_exchange", "sell_exchange"]
    )
    legs = (
        det.filter(pl.col("kind") == "triangular")
        .select("det", "kind", "ts_start", "ts_end", pl.col("legs"))
        .explode("legs")
        .drop_nulls("legs")
        .select(
            "det",
            "kind",
            "ts_start",
            "ts_end",
            pl.col("legs").struct.field("exchange").alias("buy_exchange"),
            pl.col("legs").struct.field("symbol").alias("symbol"),
        )
        .unique(maintain_order=True)
    )
    tri = legs.join(
        lab.filter(pl.col("kind") == "triangular").select(
            "lab",
            "kind",
            "symbol",
            "buy_exchange",
            pl.col("ts_start").alias("ts_start_right"),
            pl.col("ts_end").alias("ts_end_right"),
            "tol",
            "positive",
            "stale",
        ),
        on=["kind", "symbol", "buy_exchange"],
    )
    cols = ["det", "lab", "kind", "ts_start", "ts_end", "ts_start_right", "ts_end_right", "tol", "positive", "stale"]
    return pl.concat([plain.select(cols), tri.select(cols)])


def score(
    opportunities: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    registry: Registry | None = None,
    tolerance_ns: int | None = None,
) -> dict[str, dict[str, float | int]]:
    """Precision and recall per kind of ``opportunities`` against ``labels`` (see module docstring).

    Parameters
    ----------
    opportunities
        Detections (:data:`arbkit.schema.OPPORTUNITIES` columns; ``kind``, ``ts_start``, ``ts_end``, ``symbol``,
        ``buy_exchange``, ``sell_exchange`` and ``legs`` are used).
    labels
        Ground truth (:data:`arbkit.schema.LABELS` columns).
    registry
        Gives venue latencies for the time tolerance (default: :func:`arbkit.instruments.default_registry`).
    tolerance_ns
        Fixed time tolerance instead of the venue latency.

    Returns
    -------
    dict
        Per kind present in either frame: ``detections``, ``matched_detections``, ``labels`` (positives),
        ``matched_labels``, ``precision``, ``recall`` and ``stale_detected``.
    """
    registry = registry or default_registry()
    keys = ["kind", "ts_start", "ts_end", "symbol", "buy_exchange", "sell_exchange"]
    det = opportunities.select(*keys, pl.col("legs").cast(schema.OPPORTUNITIES.polars["legs"]))
    lab = labels.select(*keys, "above_fees", "stale").with_columns(
        (pl.col("above_fees") & ~pl.col("stale")).alias("positive")
    )
    lab = lab.with_columns(_tolerance(lab, registry, tolerance_ns))
    pairs = _pairs(det, lab).filter(
        (pl.col("ts_start") <= pl.col("ts_end_right") + pl.col("tol"))
        & (pl.col("ts_end") >= pl.col("ts_start_right") - pl.col("tol"))
    )
    positive_pairs = pairs.filter(pl.col("positive"))
    matched_det = set(positive_pairs["det"].to_list())
    matched_lab = set(positive_pairs["lab"].to_list())
    stale_hit = set(pairs.filter(pl.col("stale"))["lab"].to_list())
    det_kind = det["kind"].to_list()
    lab_kind = lab["kind"].to_list()
    positive = lab["positive"].to_list()
    out: dict[str, dict[str, float | int]] = {}
    for kind in sorted(set(det_kind) | set(lab_kind)):
        n_det = sum(1 for k in det_kind if k == kind)
        n_det_ok = sum(1 for i, k in enumerate(det_kind) if k == kind and i in matched_det)
        n_lab = sum(1 for k, p in zip(lab_kind, positive, strict=True) if k == kind and p)
        n_lab_ok = sum(1 for i, k in enumerate(lab_kind) if k == kind and i in matched_lab)
        out[kind] = {
            "detections": n_det,
            "matched_detections": n_det_ok,
            "labels": n_lab,
            "matched_labels": n_lab_ok,
            "precision": n_det_ok / n_det if n_det else 1.0,
            "recall": n_lab_ok / n_lab if n_lab else 1.0,
            "stale_detected": sum(1 for i, k in enumerate(lab_kind) if k == kind and i in stale_hit),
        }
    return out
