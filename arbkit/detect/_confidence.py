"""Confidence of an opportunity: an explained model in three factors, each in [0, 1].

``confidence = freshness x depth x persistence``

freshness
    How current the legs' quotes are, against what the venue can deliver.  A quote younger than the venue's
    one-way latency is as fresh as a quote can be (1.0); beyond that it decays linearly to 0.0 at the venue's
    ``max_age`` (where it becomes stale and unusable anyway)::

        freshness(age) = clip(1 - (age - latency) / (max_age - latency), 0, 1)

    The opportunity takes the *least* fresh of its legs.
depth
    How much of the displayed size the opportunity would consume.  Taking all of a level is risky (someone
    else may get there first), taking a sliver is not::

        depth = 1 - 0.5 * max over legs (size / displayed size)

    so it lies in [0.5, 1].
persistence
    How many consecutive timeline rows the opportunity has survived.  A one-row blip is half believable, each
    further row halves the remaining doubt::

        persistence(rows) = 1 - 0.5 ** rows

Detectors compute ``freshness x depth`` per row (:func:`row_confidence`); the episode merger multiplies the last
row's value by :func:`persistence` of the episode's length.  Every factor is monotone in the obvious direction,
so sorting by confidence ranks fresher, deeper, longer-lived opportunities first.

Examples
--------
>>> import numpy as np
>>> freshness(np.array([0.0, 5.0, 502.5, 1000.0]), 5.0, 1000.0).tolist()
[1.0, 1.0, 0.5, 0.0]
>>> persistence(np.array([1, 2, 3])).tolist()
[0.5, 0.75, 0.875]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["depth_factor", "freshness", "persistence", "row_confidence"]

FloatArray = npt.NDArray[np.float64]


def freshness(age_ms: npt.ArrayLike, latency_ms: npt.ArrayLike, max_age_ms: npt.ArrayLike) -> FloatArray:
    """Freshness of quotes of age ``age_ms`` on a venue with the given latency and max age (see module)."""
    age = np.asarray(age_ms, dtype=np.float64)
    latency = np.asarray(latency_ms, dtype=np.float64)
    span = np.maximum(np.asarray(max_age_ms, dtype=np.float64) - latency, 1e-9)
    return np.asarray(np.clip(1.0 - (age - latency) / span, 0.0, 1.0), dtype=np.float64)


def depth_factor(size: npt.ArrayLike, displayed: npt.ArrayLike) -> FloatArray:
    """``1 - 0.5 * size / displayed``, clipped to [0.5, 1]; 0.5 where nothing is displayed.

    Examples
    --------
    >>> depth_factor([0.0, 1.0, 2.0], [2.0, 2.0, 2.0]).tolist()
    [1.0, 0.75, 0.5]
    """
    s = np.asarray(size, dtype=np.float64)
    d = np.asarray(displayed, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        used = np.where(d > 0, s / np.where(d > 0, d, 1.0), 1.0)
    return np.asarray(1.0 - 0.5 * np.clip(used, 0.0, 1.0), dtype=np.float64)


def row_confidence(least_freshness: npt.ArrayLike, least_depth: npt.ArrayLike) -> FloatArray:
    """Per-row confidence before persistence: the product of the weakest leg's factors."""
    return np.asarray(np.asarray(least_freshness, dtype=np.float64) * np.asarray(least_depth, np.float64))


def persistence(rows: npt.ArrayLike) -> FloatArray:
    """``1 - 0.5 ** rows`` for an episode that lasted ``rows`` consecutive timeline rows."""
    return np.asarray(1.0 - 0.5 ** np.asarray(rows, dtype=np.float64), dtype=np.float64)
