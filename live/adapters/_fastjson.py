"""Compiled top-of-book extraction: many JSON messages in one buffer to QUOTES columns, no object per message.

A venue describes its top-of-book message as a tree of :class:`Obj` / :class:`Arr` / :class:`Leaf` nodes (which
keys, at which path, hold which field, and which other keys the slow path would type-check) and the roles of its
leaves (:class:`Roles`: bid, ask, sizes, symbol, event time, sequence).  :func:`compile_plan` flattens that
into arrays and :func:`extract` runs one numba kernel over every message of a socket read: a real JSON tokenizer
(objects, arrays, strings with escapes, numbers, literals; keys in any order, extra keys and whitespace anywhere)
that fills the columns.

The kernel only ever answers what the per-message path would, or declines the whole batch: numbers are
converted by :func:`live.adapters._float.to_float` (Clinger's fast path, then Eisel-Lemire: Python's
``float(text)`` bit for bit, or undecided) from a mantissa kept exact up to 18 digits (every shortest repr of a
double has at most 17); anything else (an undecided conversion, a longer mantissa, an escape in a field it reads,
a duplicate key, a missing or mistyped field, a non-ASCII byte, an absent side, an unknown symbol, a message of
another shape) makes it decline, and the caller parses message by message, which reports errors exactly as
before.  The kernel runs without numba's reference counting (see :func:`_jit`).
"""

# ruff: noqa: PLR1714, SIM109, SIM110  (the kernel compares bytes with chained == / != and loops, not generators)
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import numba
import numpy as np
import numpy.typing as npt

from live.adapters._float import POW10, to_float

__all__ = ["Arr", "Leaf", "Obj", "Plan", "Roles", "SymbolTable", "compile_plan", "extract", "symbol_hash"]

# Leaf kinds: what the value must be, and what is kept of it.
K_FLOAT_STR = 0  # "25.35": a decimal string, kept as float64
K_FLOAT_NUM = 1  # 25.35: a bare JSON number, kept as float64
K_INT_NUM = 2  # 123: a bare JSON integer, kept as int64
K_INT_STR = 3  # "123": digits in a string, kept as int64
K_SYMBOL = 4  # "BTCUSDT": looked up in the symbol table, kept as its code
K_CONST = 5  # a string equal to one of the node's constants
K_PREFIX = 6  # a string starting with one of the node's constants
K_ISO = 7  # "2026-04-07T14:30:03.123456789Z": kept as int64 ns (what ``iso_to_ns`` gives)
K_STR = 8  # any string (validated only)
K_NUM = 9  # any number of at most 18 digits and |exponent| <= 280 (validated only: msgspec takes it)
K_INT = 10  # any integer (validated only)
K_BOOL = 11  # true / false (validated only)
K_NUMSTR = 12  # a decimal string, as K_NUM (validated only)
K_ABSENT = 13  # the key must not be there (the slow path would take another branch or type-check it)
K_ANY = 14  # any JSON value (skipped, validated as JSON)

_OBJ, _ARR, _LEAF = 0, 1, 2
# columns of the node table
(_KIND, _PARENT, _KEY_S, _KEY_E, _INDEX, _CH_S, _CH_N, _REQ, _NULL, _MIN, _MAX, _VKIND, _NONNEG, _C_LO, _C_HI,
 _MULTI) = range(16)  # fmt: skip
_NCOL = 16
# roles
(R_SYMBOL, R_BID, R_BID_SIZE, R_ASK, R_ASK_SIZE, R_TS1, R_TS2, R_TS_NS, R_TS_MISSING_OK, R_SEQ, R_SIZE_STRICT,
 R_ALT_ROOT, R_ALT_PREFIX) = range(13)  # fmt: skip
_NROLE = 13

_MAX_DEPTH = 32
_BIG = 10**17  # digits are accumulated while the mantissa stays below this (int64 safe)
_MS_MAX = 10**14
_MS_INT64 = (2**63 - 1) // 1_000_000  # later milliseconds overflow int64 nanoseconds (Python ints do not)


# ------------------------------------------------------------------------------------------------ description
@dataclass(frozen=True)
class Leaf:
    """A scalar value: its kind (``K_*``), whether it must be there, whether ``null`` is allowed (as absent)."""

    kind: int
    required: bool = False
    nullable: bool = False
    consts: tuple[str, ...] = ()
    nonneg: bool = True  # numbers: a minus sign declines (prices and sizes are never negative)


@dataclass(frozen=True)
class Obj:
    """An object: the keys the slow path reads or type-checks; other keys are skipped."""

    keys: Mapping[str, Obj | Arr | Leaf]
    required: bool = True
    nullable: bool = False


@dataclass(frozen=True)
class Arr:
    """An array of ``min_len``..``max_len`` elements; ``items[i]`` describes element ``i``, ``rest`` any other."""

    items: Sequence[Obj | Arr | Leaf]
    min_len: int
    max_len: int
    rest: Obj | Arr | Leaf | None = None
    required: bool = True
    nullable: bool = False


@dataclass(frozen=True)
class Roles:
    """Paths (key names and indexes from the root) of the leaves that make a QUOTES row.

    ``ts`` is the event time; with ``ts_fallback`` it is Python's ``ts or ts_fallback`` (Binance ``T or E``,
    Bybit ``cts or ts``).  ``ts_ns``: the time leaf is already ns (ISO strings), else venue milliseconds
    (``0 < ms < 10**14``).  ``ts_missing_ok``: no time at all means the receive time.  ``size_strict``: a zero
    size declines (a zero level in a book snapshot is no level).
    """

    symbol: tuple[str | int, ...]
    bid: tuple[str | int, ...]
    bid_size: tuple[str | int, ...]
    ask: tuple[str | int, ...]
    ask_size: tuple[str | int, ...]
    ts: tuple[str | int, ...] | None = None
    ts_fallback: tuple[str | int, ...] | None = None
    ts_ns: bool = False
    ts_missing_ok: bool = False
    seq: tuple[str | int, ...] | None = None
    size_strict: bool = False


class Plan(NamedTuple):
    """A compiled description: node table, children, constants, key bytes and roles (see :func:`compile_plan`).

    ``key_table`` finds an object's child by its key in one probe (open addressing on :func:`_key_hash`;
    ``-1`` empty); ``required`` lists the nodes that must be there when their container is.
    """

    nodes: npt.NDArray[np.int64]
    children: npt.NDArray[np.int64]
    consts: npt.NDArray[np.int64]
    keys: npt.NDArray[np.uint8]
    roles: npt.NDArray[np.int64]
    key_table: npt.NDArray[np.int64]
    required: npt.NDArray[np.int64]


@dataclass
class _Builder:
    rows: list[list[int]] = field(default_factory=list)
    kids: list[list[int]] = field(default_factory=list)
    consts: list[tuple[int, int]] = field(default_factory=list)
    keys: bytearray = field(default_factory=bytearray)
    paths: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def text(self, s: str) -> tuple[int, int]:
        raw = s.encode("ascii")
        start = len(self.keys)
        self.keys += raw
        return start, len(self.keys)

    def add(self, spec: Obj | Arr | Leaf, parent: int, key: str | None, index: int, path: tuple[str | int, ...]) -> int:
        node = len(self.rows)
        row = [0] * _NCOL
        row[_PARENT] = parent
        row[_KEY_S], row[_KEY_E] = self.text(key) if key is not None else (0, 0)
        row[_INDEX] = index
        row[_REQ] = int(spec.required)
        row[_NULL] = int(spec.nullable)
        row[_MULTI] = int(index == -1 and key is None and parent >= 0)
        self.rows.append(row)
        self.kids.append([])
        self.paths[path] = node
        if parent >= 0:
            self.kids[parent].append(node)
        if isinstance(spec, Leaf):
            row[_KIND] = _LEAF
            row[_VKIND] = spec.kind
            row[_NONNEG] = int(spec.nonneg)
            row[_C_LO] = len(self.consts)
            self.consts.extend(self.text(c) for c in spec.consts)
            row[_C_HI] = len(self.consts)
        elif isinstance(spec, Obj):
            row[_KIND] = _OBJ
            for name, child in spec.keys.items():
                self.add(child, node, name, -2, (*path, name))
        else:
            row[_KIND] = _ARR
            row[_MIN], row[_MAX] = spec.min_len, spec.max_len
            for i, child in enumerate(spec.items):
                self.add(child, node, None, i, (*path, i))
            if spec.rest is not None:
                self.add(spec.rest, node, None, -1, (*path, "*"))
        return node


def compile_plan(root: Obj, roles: Roles, alt: tuple[bytes, Obj] | None = None) -> Plan:
    """Flatten a message description into the kernel's arrays.

    ``alt`` = ``(prefix, root)``: messages whose bytes start with exactly ``prefix`` are read with that root
    instead (Binance's combined-stream envelope, told apart by the slow path on the same prefix); its role
    leaves are at the same paths below its ``data`` key.
    """
    b = _Builder()
    b.add(root, -1, None, -2, ())
    alt_root = -1
    prefix = (0, 0)
    alt_paths: dict[tuple[str | int, ...], int] = {}
    if alt is not None:
        main_paths = b.paths
        b.paths = alt_paths
        alt_root = b.add(alt[1], -1, None, -2, ())
        b.paths = main_paths
        start = len(b.keys)
        b.keys += alt[0]
        prefix = (start, len(b.keys))
    children: list[int] = []
    for node, kids in enumerate(b.kids):
        b.rows[node][_CH_S] = len(children)
        b.rows[node][_CH_N] = len(kids)
        children.extend(kids)

    def node_of(
        path: tuple[str | int, ...] | None, paths: dict[tuple[str | int, ...], int], under: tuple[str, ...]
    ) -> int:
        if path is None:
            return -1
        return paths[(*under, *path)]

    role = np.full((2, _NROLE), -1, dtype=np.int64)
    for row, paths, under in ((0, b.paths, ()), (1, alt_paths, ("data",))):
        if row == 1 and alt is None:
            role[1] = role[0]
            break
        role[row, R_SYMBOL] = node_of(roles.symbol, paths, under)
        role[row, R_BID] = node_of(roles.bid, paths, under)
        role[row, R_BID_SIZE] = node_of(roles.bid_size, paths, under)
        role[row, R_ASK] = node_of(roles.ask, paths, under)
        role[row, R_ASK_SIZE] = node_of(roles.ask_size, paths, under)
        role[row, R_TS1] = node_of(roles.ts, paths, under)
        role[row, R_TS2] = node_of(roles.ts_fallback, paths, under)
        role[row, R_SEQ] = node_of(roles.seq, paths, under)
    role[:, R_TS_NS] = int(roles.ts_ns)
    role[:, R_TS_MISSING_OK] = int(roles.ts_missing_ok)
    role[:, R_SIZE_STRICT] = int(roles.size_strict)
    role[:, R_ALT_ROOT] = alt_root
    role[:, R_ALT_PREFIX] = prefix[0] | (prefix[1] << 32)
    keys = np.frombuffer(bytes(b.keys) or b"\0", dtype=np.uint8).copy()
    keyed = [(node, cols) for node, cols in enumerate(b.rows) if cols[_PARENT] >= 0 and cols[_INDEX] == -2]
    size = 16
    while size < 4 * len(keyed):
        size *= 2
    table = np.full(size, -1, dtype=np.int64)
    for node, cols in keyed:
        j = _key_hash_py(cols[_PARENT], keys, cols[_KEY_S], cols[_KEY_E]) & (size - 1)
        while table[j] >= 0:
            j = (j + 1) & (size - 1)
        table[j] = node
    required = [node for node, cols in enumerate(b.rows) if cols[_REQ] == 1 and cols[_MULTI] == 0]
    return Plan(
        np.array(b.rows, dtype=np.int64).reshape(-1, _NCOL),
        np.array(children, dtype=np.int64),
        np.array(b.consts or [(0, 0)], dtype=np.int64).reshape(-1, 2),
        keys,
        role,
        table,
        np.array(required or [-1], dtype=np.int64)[: len(required)],
    )


# ------------------------------------------------------------------------------------------------ symbol table
_HASH_MASK = (1 << 48) - 1


def symbol_hash(raw: bytes) -> int:
    """The kernel's hash of a symbol's bytes (48-bit polynomial: no overflow in int64 arithmetic)."""
    h = 0
    for byte in raw:
        h = (h * 31 + byte) & _HASH_MASK
    return h


class SymbolTable:
    """Venue symbols already mapped by the slow path, as an open-addressing table the kernel probes.

    ``names[code]`` is the unified symbol of venue symbol ``code``; several venue spellings may share one
    (Kraken's ``XBT/USD`` and ``BTC/USD``).  :meth:`sync` rebuilds the table when the adapter's cache grew.
    """

    __slots__ = ("buf", "names", "seen", "slots", "spans")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.seen = -1
        self.slots = np.full((1, 2), -1, dtype=np.int64)
        self.spans = np.zeros((1, 2), dtype=np.int64)
        self.buf = np.zeros(1, dtype=np.uint8)

    def sync(self, mapping: Mapping[str, str], accept: Callable[[str], bool] | None = None) -> None:
        """Rebuild from ``mapping`` (venue -> unified) unless its size is what the table was built from."""
        if len(mapping) == self.seen:
            return
        items = [(v, u) for v, u in mapping.items() if v.isascii() and (accept is None or accept(u))]
        size = 16
        while size < 2 * len(items) + 1:
            size *= 2
        slots = np.full((size, 2), -1, dtype=np.int64)
        spans = np.zeros((max(len(items), 1), 2), dtype=np.int64)
        buf = bytearray()
        for code, (venue, _) in enumerate(items):
            raw = venue.encode("ascii")
            spans[code] = (len(buf), len(buf) + len(raw))
            buf += raw
            h = symbol_hash(raw)
            j = h & (size - 1)
            while slots[j, 1] >= 0:
                j = (j + 1) & (size - 1)
            slots[j] = (h, code)
        self.slots, self.spans = slots, spans
        self.buf = np.frombuffer(bytes(buf) or b"\0", dtype=np.uint8).copy()
        self.names = [u for _, u in items]
        self.seen = len(mapping)


# ------------------------------------------------------------------------------------------------ kernel
def _is_digit_py(c: Any) -> bool:
    return bool(48 <= c <= 57)


def _ws_py(buf: Any, p: int, e: int) -> int:
    while p < e:
        c = buf[p]
        if c != 32 and c != 10 and c != 13 and c != 9:
            break
        p += 1
    return p


def _hex_py(c: Any) -> int:
    if 48 <= c <= 57:
        return int(c) - 48
    if 97 <= c <= 102:
        return int(c) - 87
    if 65 <= c <= 70:
        return int(c) - 55
    return -1


def _string_py(buf: Any, p: int, e: int) -> tuple[int, int, int, bool]:
    """String at ``p`` (its opening quote): (position after it, content start, content end, has escape);
    position -1 when malformed, a control or non-ASCII byte, or a surrogate escape (decline)."""
    p += 1
    cs = p
    esc = False
    while p < e:
        c = buf[p]
        if c == 34:
            return p + 1, cs, p, esc
        if c == 92:
            esc = True
            if p + 1 >= e:
                return -1, cs, p, esc
            d = buf[p + 1]
            if d == 34 or d == 92 or d == 47 or d == 98 or d == 102 or d == 110 or d == 114 or d == 116:
                p += 2
                continue
            if d != 117 or p + 6 > e:
                return -1, cs, p, esc
            v = 0
            for k in range(2, 6):
                h = _hex(buf[p + k])
                if h < 0:
                    return -1, cs, p, esc
                v = v * 16 + h
            if 0xD800 <= v <= 0xDFFF:
                return -1, cs, p, esc
            p += 6
            continue
        if c < 32 or c >= 128:
            return -1, cs, p, esc
        p += 1
    return -1, cs, p, esc


def _number_py(buf: Any, p: int, e: int) -> tuple[int, bool, bool, int, int, bool]:
    """JSON number at ``p``: (end, negative, integer, mantissa, decimal exponent, mantissa exact); end -1 when
    malformed.  The mantissa is exact while below 10**17 (int64 safe)."""
    neg = False
    if p < e and buf[p] == 45:
        neg = True
        p += 1
    if p >= e:
        return -1, neg, True, 0, 0, False
    mant = 0
    exp10 = 0
    exact = True
    c = buf[p]
    if c == 48:
        p += 1
    elif 49 <= c <= 57:
        while p < e and _is_digit(buf[p]):
            if mant < _BIG:
                mant = mant * 10 + (int(buf[p]) - 48)
            else:
                exact = False
            p += 1
    else:
        return -1, neg, True, 0, 0, False
    integer = True
    if p < e and buf[p] == 46:
        integer = False
        p += 1
        if p >= e or not _is_digit(buf[p]):
            return -1, neg, integer, 0, 0, False
        while p < e and _is_digit(buf[p]):
            if mant < _BIG:
                mant = mant * 10 + (int(buf[p]) - 48)
                exp10 -= 1
            else:
                exact = False
            p += 1
    if p < e and (buf[p] == 101 or buf[p] == 69):
        integer = False
        p += 1
        sign = 1
        if p < e and (buf[p] == 43 or buf[p] == 45):
            sign = -1 if buf[p] == 45 else 1
            p += 1
        if p >= e or not _is_digit(buf[p]):
            return -1, neg, integer, 0, 0, False
        ev = 0
        while p < e and _is_digit(buf[p]):
            if ev < 100_000:
                ev = ev * 10 + (int(buf[p]) - 48)
            p += 1
        exp10 += sign * ev
    return p, neg, integer, mant, exp10, exact


def _digits_py(buf: Any, p: int, n: int) -> int:
    v = 0
    for j in range(p, p + n):
        c = buf[j]
        if not _is_digit(c):
            return -1
        v = v * 10 + (int(c) - 48)
    return v


def _iso_py(buf: Any, cs: int, ce: int) -> tuple[bool, int]:
    """``iso_to_ns`` on ASCII digits: ``YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`` (False for anything it would not take
    the same way)."""
    n = ce - cs
    if n < 20 or buf[ce - 1] != 90 or buf[cs + 10] != 84:
        return False, 0
    if buf[cs + 4] != 45 or buf[cs + 7] != 45 or buf[cs + 13] != 58 or buf[cs + 16] != 58:
        return False, 0
    y = _digits(buf, cs, 4)
    mo = _digits(buf, cs + 5, 2)
    d = _digits(buf, cs + 8, 2)
    hh = _digits(buf, cs + 11, 2)
    mi = _digits(buf, cs + 14, 2)
    ss = _digits(buf, cs + 17, 2)
    if y < 0 or mo < 0 or d < 0 or hh < 0 or mi < 0 or ss < 0:
        return False, 0
    if y < 1 or mo < 1 or mo > 12 or d < 1 or hh > 23 or mi > 59 or ss > 59:
        return False, 0
    leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
    dim = 31
    if mo == 2:
        dim = 29 if leap else 28
    elif mo == 4 or mo == 6 or mo == 9 or mo == 11:
        dim = 30
    if d > dim:
        return False, 0
    nanos = 0
    if n > 20:
        if buf[cs + 19] != 46 or n - 21 > 9 or n - 21 < 1:
            return False, 0
        scale = 1_000_000_000
        for j in range(cs + 20, ce - 1):
            c = buf[j]
            if not _is_digit(c):
                return False, 0
            scale //= 10
            nanos += (int(c) - 48) * scale
    yy = y - 1 if mo <= 2 else y
    era = (yy if yy >= 0 else yy - 399) // 400
    yoe = yy - era * 400
    doy = (153 * (mo - 3 if mo > 2 else mo + 9) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    seconds = days * 86400 + hh * 3600 + mi * 60 + ss
    if seconds > 9_223_372_035 or seconds < -9_223_372_035:
        return False, 0  # beyond int64 nanoseconds (1677..2262): Python's int would carry it, a column cannot
    return True, seconds * 1_000_000_000 + nanos


def _lookup_py(buf: Any, cs: int, ce: int, slots: Any, spans: Any, sbuf: Any) -> int:
    h = 0
    for j in range(cs, ce):
        h = (h * 31 + int(buf[j])) & _HASH_MASK
    mask = slots.shape[0] - 1
    k = h & mask
    while True:
        code = slots[k, 1]
        if code < 0:
            return -1
        if slots[k, 0] == h:
            s0, s1 = spans[code, 0], spans[code, 1]
            if s1 - s0 == ce - cs and _same(sbuf, s0, buf, cs, ce - cs):
                return int(code)
        k = (k + 1) & mask


def _same_py(a: Any, a0: int, b: Any, b0: int, n: int) -> bool:
    """``a[a0:a0 + n] == b[b0:b0 + n]``."""
    for j in range(n):
        if a[a0 + j] != b[b0 + j]:
            return False
    return True


def _match_const_py(buf: Any, cs: int, ce: int, consts: Any, keys: Any, lo: int, hi: int, prefix: bool) -> bool:
    for k in range(lo, hi):
        k0, k1 = consts[k, 0], consts[k, 1]
        m = k1 - k0
        if ((prefix and ce - cs >= m) or (not prefix and ce - cs == m)) and _same(keys, k0, buf, cs, m):
            return True
    return False


def _key_hash_py(parent: int, text: Any, cs: int, ce: int) -> int:
    """Hash of an object key from its length and three of its bytes (O(1): a probe verifies the whole key)."""
    n = ce - cs
    h = parent * 0x9E3779B1 ^ n * 0x85EBCA77
    if n > 0:
        h ^= int(text[cs]) * 0xC2B2AE3D ^ int(text[ce - 1]) * 0x27D4EB2F ^ int(text[cs + (n >> 1)]) * 0x165667B1
    return h ^ (h >> 17)


def _key_child_py(nodes: Any, table: Any, keys: Any, parent: int, buf: Any, cs: int, ce: int) -> int:
    """The child of object node ``parent`` for key ``buf[cs:ce]``; -1 if the plan does not read it."""
    if parent < 0:
        return -1
    mask = table.shape[0] - 1
    j = _key_hash(parent, buf, cs, ce) & mask
    while True:
        node = table[j]
        if node < 0:
            return -1
        k0 = nodes[node, _KEY_S]
        if nodes[node, _PARENT] == parent and nodes[node, _KEY_E] - k0 == ce - cs and _same(keys, k0, buf, cs, ce - cs):
            return int(node)
        j = (j + 1) & mask


def _item_child_py(nodes: Any, children: Any, parent: int, index: int) -> int:
    """The child of array node ``parent`` for element ``index`` (or its ``rest``); -1 if none."""
    if parent < 0:
        return -1
    c0 = nodes[parent, _CH_S]
    rest = -1
    for k in range(c0, c0 + nodes[parent, _CH_N]):
        node = children[k]
        if nodes[node, _INDEX] == index:
            return int(node)
        if nodes[node, _INDEX] == -1:
            rest = node
    return int(rest)


def _extract_py(
    buf: Any,
    starts: Any,
    ends: Any,
    ts_recv: int,
    nodes: Any,
    children: Any,
    consts: Any,
    keys: Any,
    roles: Any,
    key_table: Any,
    required: Any,
    slots: Any,
    spans: Any,
    sbuf: Any,
    pow10: Any,
    out_ts: Any,
    out_code: Any,
    out_f: Any,
    out_seq: Any,
    out_seq_valid: Any,
    out_flags: Any,
    out_spans: Any,
    work: Any,
    fval: Any,
) -> int:
    """Fill the outputs for every message; -1 when all were read, else the index of the first declined one
    (-2: offsets outside the buffer).  ``work`` (int64, :func:`_work_size`) and ``fval`` (float64, one per node)
    are scratch: the kernel runs without numba's reference counting, so it allocates nothing.  On return
    ``work[-1]`` counts the rows read without a sequence number."""
    m = nodes.shape[0]
    seen = work[0:m]
    has = work[m : 2 * m]
    ival = work[2 * m : 3 * m]
    vs = work[3 * m : 4 * m]
    ve = work[4 * m : 5 * m]
    st_node = work[5 * m : 5 * m + _MAX_DEPTH]
    st_arr = work[5 * m + _MAX_DEPTH : 5 * m + 2 * _MAX_DEPTH]
    st_cnt = work[5 * m + 2 * _MAX_DEPTH : 5 * m + 3 * _MAX_DEPTH]
    no_seq = 0
    alt_root = roles[0, R_ALT_ROOT]
    a0 = roles[0, R_ALT_PREFIX] & 0xFFFFFFFF
    a1 = roles[0, R_ALT_PREFIX] >> 32
    size = buf.shape[0]
    for i in range(starts.shape[0]):
        s = starts[i]
        e = ends[i]
        if s < 0 or e > size or s > e:
            return -2
        seen[:] = 0
        has[:] = 0
        root = 0
        if alt_root >= 0 and e - s >= a1 - a0 and _same(keys, a0, buf, s, a1 - a0):
            root = alt_root
        p = _ws(buf, s, e)
        depth = 0
        node = root
        state = 0  # 0: a value for `node`; 1: after a value; 2: a key of the open object
        ok = True
        while ok:
            if state == 0:
                if p >= e:
                    ok = False
                    break
                c = buf[p]
                if node >= 0:
                    if nodes[node, _MULTI] == 0:
                        if seen[node]:
                            ok = False  # duplicate key: msgspec keeps the last, the kernel declines
                            break
                        seen[node] = True
                    kind = nodes[node, _KIND]
                    vk = nodes[node, _VKIND]
                    if kind == _LEAF and vk == K_ABSENT:
                        ok = False
                        break
                    if kind == _LEAF and vk == K_ANY:
                        node = -1
                if c == 123 or c == 91:  # { or [
                    is_arr = c == 91
                    if node >= 0:
                        if nodes[node, _KIND] != (_ARR if is_arr else _OBJ):
                            ok = False
                            break
                        has[node] = True
                    if depth >= _MAX_DEPTH:
                        ok = False
                        break
                    st_node[depth] = node
                    st_arr[depth] = is_arr
                    st_cnt[depth] = 0
                    depth += 1
                    p = _ws(buf, p + 1, e)
                    if p >= e:
                        ok = False
                        break
                    if is_arr:
                        if buf[p] == 93:
                            p += 1
                            depth -= 1
                            if node >= 0 and nodes[node, _MIN] > 0:
                                ok = False
                                break
                            state = 1
                        else:
                            node = _item_child(nodes, children, node, 0)
                    elif buf[p] == 125:
                        p += 1
                        depth -= 1
                        state = 1
                    else:
                        state = 2
                    continue
                if c == 34:  # string
                    q, cs, ce, esc = _string(buf, p, e)
                    if q < 0:
                        ok = False
                        break
                    p = q
                    state = 1
                    if node < 0:
                        continue
                    if nodes[node, _KIND] != _LEAF:
                        ok = False
                        break
                    vk = nodes[node, _VKIND]
                    if vk == K_STR:
                        continue
                    if esc:
                        ok = False
                        break
                    vs[node] = cs
                    ve[node] = ce
                    if vk == K_FLOAT_STR or vk == K_NUMSTR or vk == K_INT_STR:
                        q2, neg, integer, mant, exp10, exact = _number(buf, cs, ce)
                        if q2 != ce or (neg and nodes[node, _NONNEG] == 1):
                            ok = False
                            break
                        if vk == K_INT_STR:
                            if not integer or not exact or neg:
                                ok = False
                                break
                            ival[node] = mant
                        elif vk == K_NUMSTR:
                            if not exact or exp10 > 280 or exp10 < -280:
                                ok = False
                                break
                        else:
                            good, v = to_float(mant, exp10, exact, neg, pow10)
                            if not good:
                                ok = False
                                break
                            fval[node] = v
                    elif vk == K_SYMBOL:
                        code = _lookup(buf, cs, ce, slots, spans, sbuf)
                        if code < 0:
                            ok = False
                            break
                        ival[node] = code
                    elif vk == K_CONST or vk == K_PREFIX:
                        if not _match_const(
                            buf, cs, ce, consts, keys, nodes[node, _C_LO], nodes[node, _C_HI], vk == K_PREFIX
                        ):
                            ok = False
                            break
                    elif vk == K_ISO:
                        good, ns = _iso(buf, cs, ce)
                        if not good:
                            ok = False
                            break
                        ival[node] = ns
                    else:
                        ok = False
                        break
                    has[node] = True
                    continue
                if c == 45 or _is_digit(c):  # number
                    q, neg, integer, mant, exp10, exact = _number(buf, p, e)
                    if q < 0:
                        ok = False
                        break
                    p = q
                    state = 1
                    if node < 0:
                        continue
                    if nodes[node, _KIND] != _LEAF:
                        ok = False
                        break
                    vk = nodes[node, _VKIND]
                    if neg and nodes[node, _NONNEG] == 1:
                        ok = False
                        break
                    if vk == K_INT_NUM or vk == K_INT:
                        if not integer or not exact:
                            ok = False
                            break
                        ival[node] = -mant if neg else mant
                    elif vk == K_NUM:
                        if not exact or exp10 > 280 or exp10 < -280:
                            ok = False
                            break
                    elif vk == K_FLOAT_NUM:
                        good, v = to_float(mant, exp10, exact, neg, pow10)
                        if not good:
                            ok = False
                            break
                        fval[node] = v
                    else:
                        ok = False
                        break
                    has[node] = True
                    continue
                # literals
                if c == 116 and p + 4 <= e and buf[p + 1] == 114 and buf[p + 2] == 117 and buf[p + 3] == 101:
                    p += 4
                    lit = 1
                elif (
                    c == 102
                    and p + 5 <= e
                    and buf[p + 1] == 97
                    and buf[p + 2] == 108
                    and buf[p + 3] == 115
                    and buf[p + 4] == 101
                ):
                    p += 5
                    lit = 1
                elif c == 110 and p + 4 <= e and buf[p + 1] == 117 and buf[p + 2] == 108 and buf[p + 3] == 108:
                    p += 4
                    lit = 0
                else:
                    ok = False
                    break
                state = 1
                if node >= 0:
                    if lit == 0:
                        if nodes[node, _NULL] == 0:
                            ok = False
                            break
                    elif nodes[node, _KIND] != _LEAF or nodes[node, _VKIND] != K_BOOL:
                        ok = False
                        break
                continue
            if state == 1:
                p = _ws(buf, p, e)
                if depth == 0:
                    if p != e:
                        ok = False
                    break
                top = depth - 1
                if p >= e:
                    ok = False
                    break
                c = buf[p]
                if st_arr[top]:
                    st_cnt[top] += 1
                    parent = st_node[top]
                    if c == 44:
                        p = _ws(buf, p + 1, e)
                        node = _item_child(nodes, children, parent, st_cnt[top])
                        state = 0
                    elif c == 93:
                        p += 1
                        if parent >= 0 and (st_cnt[top] < nodes[parent, _MIN] or st_cnt[top] > nodes[parent, _MAX]):
                            ok = False
                            break
                        depth -= 1
                    else:
                        ok = False
                        break
                elif c == 44:
                    p = _ws(buf, p + 1, e)
                    state = 2
                elif c == 125:
                    p += 1
                    depth -= 1
                else:
                    ok = False
                    break
                continue
            # state 2: a key
            if p >= e or buf[p] != 34:
                ok = False
                break
            q, cs, ce, esc = _string(buf, p, e)
            if q < 0:
                ok = False
                break
            parent = st_node[depth - 1]
            if parent >= 0 and esc:
                ok = False  # an escaped key could spell a field name: decline rather than decode it
                break
            node = _key_child(nodes, key_table, keys, parent, buf, cs, ce)
            p = _ws(buf, q, e)
            if p >= e or buf[p] != 58:
                ok = False
                break
            p = _ws(buf, p + 1, e)
            state = 0
        if not ok:
            return i
        # required fields (of containers that were there)
        for k in required:
            if not has[k]:
                par = nodes[k, _PARENT]
                if par < 0:
                    if k == root:
                        return i
                elif has[par]:
                    return i
        r = 0 if root == 0 else 1
        sym = roles[r, R_SYMBOL]
        bid_n, bs_n = roles[r, R_BID], roles[r, R_BID_SIZE]
        ask_n, as_n = roles[r, R_ASK], roles[r, R_ASK_SIZE]
        if not (has[sym] and has[bid_n] and has[bs_n] and has[ask_n] and has[as_n]):
            return i
        bid, bid_size, ask, ask_size = fval[bid_n], fval[bs_n], fval[ask_n], fval[as_n]
        if not (0.0 < bid < np.inf and 0.0 < ask < np.inf and 0.0 <= bid_size < np.inf and 0.0 <= ask_size < np.inf):
            return i
        if roles[r, R_SIZE_STRICT] == 1 and not (bid_size > 0.0 and ask_size > 0.0):
            return i
        t1, t2 = roles[r, R_TS1], roles[r, R_TS2]
        have_ts = False
        ts = 0
        if t1 >= 0:
            if t2 >= 0:
                if has[t1] and ival[t1] != 0:  # Python's `t1 or t2`
                    have_ts, ts = True, ival[t1]
                elif has[t2]:
                    have_ts, ts = True, ival[t2]
            elif has[t1]:
                have_ts, ts = True, ival[t1]
        if not have_ts:
            if roles[r, R_TS_MISSING_OK] == 0:
                return i
            out_ts[i] = ts_recv
        elif roles[r, R_TS_NS] == 1:
            out_ts[i] = ts
        else:
            if not (0 < ts < _MS_MAX) or ts > _MS_INT64:
                return i
            out_ts[i] = ts * 1_000_000
        out_code[i] = ival[sym]
        out_f[0, i] = bid
        out_f[1, i] = bid_size
        out_f[2, i] = ask
        out_f[3, i] = ask_size
        seq_n = roles[r, R_SEQ]
        if seq_n >= 0 and has[seq_n]:
            out_seq[i] = ival[seq_n]
            out_seq_valid[i] = True
        else:
            out_seq[i] = 0
            out_seq_valid[i] = False
            no_seq += 1
        out_flags[i] = 2 if bid > ask else 0  # QuoteFlag.CROSSED
        out_spans[i, 0] = vs[bid_n]
        out_spans[i, 1] = ve[bid_n]
        out_spans[i, 2] = vs[bs_n]
        out_spans[i, 3] = ve[bs_n]
        out_spans[i, 4] = vs[ask_n]
        out_spans[i, 5] = ve[ask_n]
        out_spans[i, 6] = vs[as_n]
        out_spans[i, 7] = ve[as_n]
    work[work.shape[0] - 1] = no_seq
    return -1


def _work_size(n_nodes: int) -> int:
    """Length of the kernel's int64 scratch: five values per node, three stacks, one count."""
    return 5 * n_nodes + 3 * _MAX_DEPTH + 1


def _jit(fn: Callable[..., Any], inline: str = "never") -> Callable[..., Any]:
    # _nrt=False: no reference counting.  The kernel allocates nothing (scratch comes from the caller), and with
    # NRT on, every array passed to an inlined helper cost an atomic incref/decref pair: half the kernel's time.
    return cast(
        Callable[..., Any], numba.njit(cache=True, nogil=True, error_model="numpy", inline=inline, _nrt=False)(fn)
    )


# helpers inlined into the kernel at numba IR level (a call per token otherwise costs more than the token)
_is_digit = _jit(_is_digit_py, "always")
_ws = _jit(_ws_py, "always")
_hex = _jit(_hex_py)
_string = _jit(_string_py, "always")
_number = _jit(_number_py, "always")
_digits = _jit(_digits_py)
_iso = _jit(_iso_py)
_lookup = _jit(_lookup_py)
_match_const = _jit(_match_const_py)
_same = _jit(_same_py, "always")
_key_hash = _jit(_key_hash_py, "always")
_key_child = _jit(_key_child_py, "always")
_item_child = _jit(_item_child_py, "always")
_extract = _jit(_extract_py)


class Extracted(NamedTuple):
    """Columns of one batch as the kernel filled them (``values`` rows: bid, bid_size, ask, ask_size;
    ``seq_valid`` is ``None`` when every row has a sequence number)."""

    ts_event: npt.NDArray[np.int64]
    symbol_code: npt.NDArray[np.int32]
    values: npt.NDArray[np.float64]
    seq: npt.NDArray[np.int64]
    seq_valid: npt.NDArray[np.bool_] | None
    flags: npt.NDArray[np.uint16]
    spans: npt.NDArray[np.int64]


def extract(
    plan: Plan,
    table: SymbolTable,
    buf: bytes | bytearray | memoryview | npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    ts_recv: int,
) -> Extracted | None:
    """Run the kernel over ``buf[starts[i]:ends[i]]`` for every ``i``; ``None`` when any message declines.

    Offsets outside the buffer are a caller bug and raise ``ValueError``.
    """
    data = buf if isinstance(buf, np.ndarray) else np.frombuffer(buf, dtype=np.uint8)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    n = starts.shape[0]
    if ends.shape[0] != n:
        raise ValueError("starts and ends differ in length")
    m = plan.nodes.shape[0]
    work = np.zeros(_work_size(m), dtype=np.int64)
    ts_event = np.empty(n, dtype=np.int64)
    code = np.empty(n, dtype=np.int32)
    values = np.empty((4, n), dtype=np.float64)
    seq = np.empty(n, dtype=np.int64)
    seq_valid = np.empty(n, dtype=np.bool_)
    flags = np.empty(n, dtype=np.uint16)
    spans = np.empty((n, 8), dtype=np.int64)
    rc = _extract(
        data,
        starts,
        ends,
        ts_recv,
        plan.nodes,
        plan.children,
        plan.consts,
        plan.keys,
        plan.roles,
        plan.key_table,
        plan.required,
        table.slots,
        table.spans,
        table.buf,
        POW10,
        ts_event,
        code,
        values,
        seq,
        seq_valid,
        flags,
        spans,
        work,
        np.empty(m, dtype=np.float64),
    )
    if rc == -2:
        raise ValueError("message offsets outside the buffer")
    if rc != -1:
        return None
    return Extracted(ts_event, code, values, seq, seq_valid if work[-1] else None, flags, spans)
