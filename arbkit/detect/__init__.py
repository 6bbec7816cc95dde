"""Opportunity detectors and the episode machinery they share.

Detectors are pure functions over aligned quotes (:mod:`arbkit.align`); they emit per-row *events* that
:mod:`arbkit.detect._episodes` merges into one reported opportunity per run of profitable rows.
"""

from arbkit.detect._confidence import depth_factor, freshness, persistence, row_confidence
from arbkit.detect._episodes import (
    EVENT_SCHEMA,
    EpisodeState,
    advance_timelines,
    event_frame,
    finish_episodes,
    merge_episodes,
    to_opportunities,
)

__all__ = [
    "EVENT_SCHEMA",
    "EpisodeState",
    "advance_timelines",
    "depth_factor",
    "event_frame",
    "finish_episodes",
    "freshness",
    "merge_episodes",
    "persistence",
    "row_confidence",
    "to_opportunities",
]
