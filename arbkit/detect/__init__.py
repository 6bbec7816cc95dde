"""Opportunity detectors, the episode machinery they share, and scoring against ground truth.

Detectors are pure ``(batch, state, params) -> (opportunities, state)`` steps over aligned quotes
(:mod:`arbkit.align`); they emit per-row *events* that :mod:`arbkit.detect._episodes` merges into one reported
opportunity per run of profitable rows.  Basis/funding and put-call parity detectors (part B) are re-exported
when their modules are present.
"""

import importlib.util as _util

from arbkit.detect._confidence import depth_factor, freshness, persistence, row_confidence
from arbkit.detect._cross_exchange import (
    CrossExchangeParams,
    CrossExchangeState,
    detect_cross_exchange,
    finish_cross_exchange,
)
from arbkit.detect._episodes import (
    EVENT_SCHEMA,
    EpisodeState,
    advance_timelines,
    event_frame,
    finish_episodes,
    merge_episodes,
    to_opportunities,
)
from arbkit.detect._score import score
from arbkit.detect._triangular import (
    TriangularParams,
    TriangularState,
    build_topology,
    detect_triangular,
    finish_triangular,
)

__all__ = [
    "EVENT_SCHEMA",
    "CrossExchangeParams",
    "CrossExchangeState",
    "EpisodeState",
    "TriangularParams",
    "TriangularState",
    "advance_timelines",
    "build_topology",
    "depth_factor",
    "detect_cross_exchange",
    "detect_triangular",
    "event_frame",
    "finish_cross_exchange",
    "finish_episodes",
    "finish_triangular",
    "freshness",
    "merge_episodes",
    "persistence",
    "row_confidence",
    "score",
    "to_opportunities",
]

# Part B's detectors: re-export their public names when the modules exist (their own __all__ decides).
for _name in ("_basis", "_parity"):
    if _util.find_spec(f"arbkit.detect.{_name}") is not None:
        _module = __import__(f"arbkit.detect.{_name}", fromlist=["__all__"])
        for _export in getattr(_module, "__all__", ()):
            globals()[_export] = getattr(_module, _export)
            if _export not in __all__:
                __all__.append(_export)
