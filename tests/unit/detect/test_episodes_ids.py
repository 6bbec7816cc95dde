"""EpisodeIds: the per-key SHA-1 prefix gives exactly episode_id's ids."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from arbkit.detect._episodes import EpisodeIds, episode_id


@given(
    kind=st.sampled_from(["triangular", "cross_exchange", ""]),
    episodes=st.lists(
        st.tuples(st.sampled_from(["k", "binance:ETH/BTC:sell;x", "é\x1f", ""]), st.integers(-(2**63), 2**63 - 1)),
        max_size=20,
    ),
)
def test_ids_equal_episode_id(kind: str, episodes: list[tuple[str, int]]) -> None:
    ids = EpisodeIds(kind)
    keys, starts = [k for k, _ in episodes], [t for _, t in episodes]
    want = [episode_id(kind, k, t) for k, t in episodes]
    assert ids.many(keys, starts) == want
    assert ids.many(keys, starts) == want  # the cached prefixes are not consumed by a first use
