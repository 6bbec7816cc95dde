"""Batched, compiled episode ids against :func:`arbkit.detect._episodes.episode_id` (hashlib's SHA-1)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from arbkit.detect._episodes import episode_id
from arbkit.detect._ids import episode_values, hex_strings, start_id_order

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.text(max_size=20),
    keys=st.lists(st.text(max_size=90), min_size=1, max_size=5),
    data=st.data(),
)
def test_ids_equal_hashlib(kind: str, keys: list[str], data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 30))
    which = np.array(data.draw(st.lists(st.integers(0, len(keys) - 1), min_size=n, max_size=n)), dtype=np.int64)
    ts = np.array(data.draw(st.lists(INT64, min_size=n, max_size=n)), dtype=np.int64)
    got = hex_strings(episode_values(kind, keys, which, ts)).to_list()
    assert got == [episode_id(kind, keys[w], t) for w, t in zip(which.tolist(), ts.tolist(), strict=True)]


def test_every_message_length_across_block_boundaries() -> None:
    # Messages of 0..200 bytes: one, two, three and four SHA-1 blocks, the padding on either side of a boundary.
    keys = ["k" * n for n in range(180)]
    ts = np.array([0, -1, 7, 2**63 - 1, -(2**63), 1_700_000_000_123_456_789] * 30, dtype=np.int64)
    which = np.arange(ts.size, dtype=np.int64) % len(keys)
    got = hex_strings(episode_values("cross_exchange", keys, which, ts)).to_list()
    assert got == [episode_id("cross_exchange", keys[w], t) for w, t in zip(which.tolist(), ts.tolist(), strict=True)]


def test_values_sort_like_the_ids() -> None:
    which = np.zeros(500, dtype=np.int64)
    values = episode_values("triangular", ["okx:USDT>BTC>ETH>USDT"], which, np.arange(500, dtype=np.int64))
    ids = hex_strings(values)
    assert [int(s, 16) for s in ids.to_list()] == values.tolist()
    assert ids.gather(np.argsort(values)).to_list() == sorted(ids.to_list())
    assert hex_strings(values[:0]).to_list() == []


@settings(max_examples=80, deadline=None)
@given(
    ts=st.lists(st.integers(-3, 3), max_size=60),
    data=st.data(),
)
def test_start_id_order_is_a_stable_lexsort(ts: list[int], data: st.DataObject) -> None:
    # Few distinct starts and values: runs of equal starts, and equal (start, value) pairs that must keep their
    # input order.
    values = data.draw(st.lists(st.integers(0, 4), min_size=len(ts), max_size=len(ts)))
    ts_start, value = np.array(ts, dtype=np.int64), np.array(values, dtype=np.uint64) << np.uint64(60)
    assert start_id_order(ts_start, value).tolist() == np.lexsort((value, ts_start)).tolist()
