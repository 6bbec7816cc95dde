"""The compiled reader's key table and batch summary: colliding keys, unknown keys, rows without a sequence."""

from __future__ import annotations

import itertools

import numpy as np

from live.adapters._fastjson import (
    K_FLOAT_NUM,
    K_INT_NUM,
    K_SYMBOL,
    Extracted,
    Leaf,
    Obj,
    Roles,
    SymbolTable,
    _key_hash_py,
    compile_plan,
    extract,
)

TS = 1_800_000_000_000_000_000
# same length and same first, middle and last bytes: one hash, so every lookup but the first probes further
SIDES = ("k0m0k", "k1m1k", "k2m2k", "k3m3k")
PLAN = compile_plan(
    Obj({"s": Leaf(K_SYMBOL, True), "q": Leaf(K_INT_NUM), **{k: Leaf(K_FLOAT_NUM, True) for k in SIDES}}),
    Roles(("s",), (SIDES[0],), (SIDES[1],), (SIDES[2],), (SIDES[3],), ts_missing_ok=True, seq=("q",)),
)


def _table() -> SymbolTable:
    table = SymbolTable()
    table.sync({"X": "X/Y"})
    return table


def _read(*messages: bytes) -> Extracted | None:
    lengths = np.array([len(m) for m in messages], dtype=np.int64)
    ends = np.cumsum(lengths)
    return extract(PLAN, _table(), b"".join(messages), ends - lengths, ends, TS)


def test_the_keys_really_collide() -> None:
    parent = 0  # the root object
    hashes = {_key_hash_py(parent, np.frombuffer(k.encode(), np.uint8), 0, len(k)) for k in (*SIDES, "k9m9k")}
    assert len(hashes) == 1


def test_colliding_keys_in_any_order_land_in_their_own_columns() -> None:
    values = dict(zip(SIDES, ("1.5", "2.25", "3.5", "4.75"), strict=True))
    for order in itertools.permutations([*SIDES, "k9m9k", "s"]):
        body = {k: values.get(k, '"X"' if k == "s" else "7") for k in order}
        raw = ("{" + ",".join(f'"{k}":{v}' for k, v in body.items()) + "}").encode()
        out = _read(raw)
        assert out is not None, raw
        assert out.values[:, 0].tolist() == [1.5, 2.25, 3.5, 4.75], raw


def test_a_duplicate_colliding_key_declines() -> None:
    raw = b'{"s":"X","k0m0k":1,"k1m1k":2,"k2m2k":3,"k3m3k":4,"k2m2k":5}'
    assert _read(raw) is None
    assert _read(raw.replace(b',"k2m2k":5', b',"k9m9k":5')) is not None  # the same hash, an unread key: skipped


def test_seq_valid_is_none_only_when_every_row_has_a_sequence() -> None:
    with_seq = b'{"s":"X","q":11,"k0m0k":1,"k1m1k":2,"k2m2k":3,"k3m3k":4}'
    without = b'{"s":"X","k0m0k":1,"k1m1k":2,"k2m2k":3,"k3m3k":4}'
    both = _read(with_seq, with_seq)
    assert both is not None
    assert both.seq_valid is None
    assert both.seq.tolist() == [11, 11]
    mixed = _read(with_seq, without, with_seq)
    assert mixed is not None
    assert mixed.seq_valid is not None
    assert mixed.seq_valid.tolist() == [True, False, True]
