"""String columns to small integer codes, fast: the detectors' hot paths work on codes, never on strings.

Venue and symbol columns repeat a handful of names millions of times.  Hashing them through Polars
(``cast(pl.Categorical)``, ``unique``) costs 15-35 ns a row; this module reads the column's Arrow *string view*
buffers instead (zero-copy from Polars): a string of at most 12 bytes is stored inline in its 16-byte view, zero
padded, so two equal short strings have identical views and a compiled open-addressing table over the two
64-bit words codes a row in a few nanoseconds.  A longer string (``BTC/USDT:USDT`` is 13 bytes) keeps its length
and a 4-byte prefix in the view and its bytes in a data buffer: it is keyed by a hash of all its bytes and compared
byte for byte on a match, so codes stay exact.  Columns with nulls, another dtype, or more data buffers than the
kernel reads take the exact Polars/Python path.  Both paths give the same codes.

:class:`Interner` keeps its table across calls (chunks of one frame, micro-batches of a run), so codes are stable
for its lifetime; ``Interner.names`` lists the names in the order they were discovered (callers that need sorted
names remap the codes).

Examples
--------
>>> import polars as pl
>>> interner = Interner()
>>> interner.codes(pl.Series(["okx", "binance", "okx"])).tolist()
[0, 1, 0]
>>> interner.codes(pl.Series(["kraken", "okx"])).tolist(), interner.names
([2, 0], ['okx', 'binance', 'kraken'])
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

import numba
import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

__all__ = ["Interner", "shared", "sorted_codes"]

_IntArray = npt.NDArray[np.int32]


def _long_bytes_py(b: np.uint64, data0: Any, data1: Any, data2: Any, data3: Any) -> Any:
    """The data buffer and offset of a long view's bytes (word ``b``: buffer index, then offset)."""
    index = b & np.uint64(0xFFFFFFFF)
    offset = np.int64(b >> np.uint64(32))
    data = data0 if index == 0 else data1 if index == 1 else data2 if index == 2 else data3
    return data, offset


_CACHE = 64  # entries of the per-call cache of raw views (a power of two)
_CACHE_SHIFT = np.uint64(64 - 6)  # the top log2(_CACHE) bits of a 64-bit hash pick the entry


def _intern_views_py(
    views: npt.NDArray[np.uint64],
    data0: npt.NDArray[np.uint8],
    data1: npt.NDArray[np.uint8],
    data2: npt.NDArray[np.uint8],
    data3: npt.NDArray[np.uint8],
    keys: npt.NDArray[np.uint64],
    slot_code: npt.NDArray[np.int32],
    slot_long: npt.NDArray[np.int64],
    arena: npt.NDArray[np.uint8],
    new_slots: npt.NDArray[np.int64],
    out: npt.NDArray[np.int32],
) -> int:
    """Code every 16-byte view into ``out`` through the open-addressing table ``keys``/``slot_code`` (-1: empty).

    A short view (at most 12 bytes, inline) is its own key.  A long one is keyed by its first word (length and
    4-byte prefix) and a hash of all its bytes, read from the data buffers ``data0..3``; on a key match its bytes
    are compared with the entry's (``slot_long``: offset in ``arena``, or ``-2 - row`` for a row of this call), so
    codes are exact.  A view not in the table is inserted with the provisional code ``-2 - k`` (the k-th new view)
    and its slot recorded in ``new_slots``; the caller names it, stores the real code (and a long name's bytes)
    and runs the kernel again.  Returns the number of new views, or -1 (nothing usable in ``out``) if
    ``new_slots`` is full.
    """
    mask = keys.shape[0] - 1
    n_new = 0
    # A small direct-mapped cache of this call's raw views and their codes: a column of a few names (venues, in
    # any order) or in runs (a store file sorted by symbol) is coded without probing the table, and its hit test
    # is a branch that is almost always taken, whatever the order of the names.  Equal raw views are the same
    # string (a long string's view names its bytes' place in this call's buffers).  No view has the length
    # 0xFFFFFFFF (Arrow lengths are int32), so that marks an empty entry.
    cache_a = np.full(_CACHE, np.uint64(0xFFFFFFFF), dtype=np.uint64)
    cache_b = np.zeros(_CACHE, dtype=np.uint64)
    cache_code = np.zeros(_CACHE, dtype=np.int32)
    for i in range(views.shape[0]):
        a = views[i, 0]
        b = views[i, 1]
        slot_cache = ((a * np.uint64(0x9E3779B97F4A7C15)) ^ (b * np.uint64(0xC2B2AE3D27D4EB4F))) >> _CACHE_SHIFT
        if cache_a[slot_cache] == a and cache_b[slot_cache] == b:
            out[i] = cache_code[slot_cache]
            continue
        cache_a[slot_cache] = a
        cache_b[slot_cache] = b
        length = np.int64(a & np.uint64(0xFFFFFFFF))
        long = length > 12
        data, offset = data0, np.int64(0)
        if long:
            data, offset = _long_bytes(b, data0, data1, data2, data3)
            h = np.uint64(14695981039346656037)  # FNV-1a over all the bytes
            for j in range(offset, offset + length):
                h = (h ^ np.uint64(data[j])) * np.uint64(1099511628211)
            b = h
        h = ((a * np.uint64(0x9E3779B97F4A7C15)) ^ (b * np.uint64(0xC2B2AE3D27D4EB4F))) >> np.uint64(40)
        slot = int(h) & mask
        while True:
            code = slot_code[slot]
            if code == -1:
                if n_new == new_slots.shape[0]:
                    return -1
                keys[slot, 0] = a
                keys[slot, 1] = b
                slot_code[slot] = -2 - n_new
                slot_long[slot] = -2 - i
                new_slots[n_new] = slot
                out[i] = -2 - n_new
                cache_code[slot_cache] = out[i]
                n_new += 1
                break
            if keys[slot, 0] == a and keys[slot, 1] == b:
                same = True
                if long:  # same length, prefix and hash: the same string only if the bytes agree
                    at = slot_long[slot]
                    if at >= 0:
                        other, start = arena, at
                    else:
                        other, start = _long_bytes(views[-2 - at, 1], data0, data1, data2, data3)
                    for j in range(length):
                        if data[offset + j] != other[start + j]:
                            same = False
                            break
                if same:
                    out[i] = code
                    cache_code[slot_cache] = code
                    break
            slot = (slot + 1) & mask
    return n_new


_long_bytes = numba.njit(cache=True, nogil=True, inline="always")(_long_bytes_py)
_intern_views = cast(Callable[..., int], numba.njit(cache=True, nogil=True)(_intern_views_py))

_NEWEST = pl.CompatLevel.newest()  # Arrow string views: the layout Polars holds, so no conversion
_SMALL = 64  # up to this many rows, Python's dict is as fast as the view table
_LIST_ROWS = 8192  # where the view path cannot code a column, Python's dict up to this many rows


class Interner:
    """Stable integer codes for the strings of one or more columns or chunks (names in discovery order).

    ``table`` (a power of two) bounds the fast path at ``table / 2`` distinct names; beyond, Polars codes them.
    """

    def __init__(self, table: int = 4096) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._keys = np.zeros((table, 2), dtype=np.uint64)
        self._slot_code = np.full(table, -1, dtype=np.int32)
        self._slot_long = np.full(table, -1, dtype=np.int64)  # a long name's bytes: offset in the arena
        self._arena = np.zeros(0, dtype=np.uint8)
        self._filled = 0
        self._lock = threading.Lock()
        self._luts: dict[tuple[tuple[str, ...], int], _IntArray] = {}

    def codes(self, series: pl.Series) -> _IntArray:
        """Codes of every value of ``series`` (nulls code as the empty string).  Thread-safe."""
        with self._lock:
            return self._codes(series)

    def lut(self, names: tuple[str, ...]) -> _IntArray:
        """For every code so far, its name's position in ``names`` (-1 where absent); cached per ``names``."""
        key = (names, len(self.names))
        found = self._luts.get(key)
        if found is None:
            if len(self._luts) > 256:
                self._luts.clear()
            at = {name: i for i, name in enumerate(names)}
            found = np.array([at.get(name, -1) for name in self.names], dtype=np.int32)
            self._luts[key] = found
        return found

    def _codes(self, series: pl.Series) -> _IntArray:
        n = series.len()
        if n == 0:
            return np.zeros(0, dtype=np.int32)
        if series.dtype == pl.String and series.null_count() == 0:
            if n > _SMALL:
                fast = self._from_views(series)
                if fast is not None:
                    return fast
            if n <= _LIST_ROWS:  # the view path could not code it: Python's dict beats two Polars queries here
                return self._from_list(series.to_list())
        return self._from_polars(series)

    def _add(self, name: str) -> int:
        code = self._index.get(name)
        if code is None:
            code = len(self.names)
            self._index[name] = code
            self.names.append(name)
        return code

    def _from_list(self, values: list[Any]) -> _IntArray:
        index = self._index
        for name in dict.fromkeys(values):
            if name not in index:
                self._add(name)
        return np.fromiter(map(index.__getitem__, values), dtype=np.int32, count=len(values))

    def _from_polars(self, series: pl.Series) -> _IntArray:
        text = series.cast(pl.String).fill_null("")
        for name in sorted(set(text.unique().to_list())):
            self._add(name)
        if text.len() <= _LIST_ROWS:
            return self._from_list(text.to_list())
        lookup = pl.Enum(self.names)
        return text.cast(lookup).to_physical().to_numpy().astype(np.int32, copy=False)

    def _from_views(self, series: pl.Series) -> _IntArray | None:
        out = np.empty(series.len(), dtype=np.int32)
        start = 0
        for chunk in _view_chunks(series):
            buffers = chunk.buffers()
            if len(buffers) > 2 + _DATA_BUFFERS:  # more data buffers than the kernel reads
                return None
            views = np.frombuffer(buffers[1], dtype=np.uint64).reshape(-1, 2)
            views = views[chunk.offset : chunk.offset + len(chunk)]
            data = [np.frombuffer(b, dtype=np.uint8) if b is not None else _NO_DATA for b in buffers[2:]]
            data += [_NO_DATA] * (_DATA_BUFFERS - len(data))
            part = out[start : start + len(chunk)]
            room = max(self._keys.shape[0] // 2 - self._filled, 0)
            new_slots = np.empty(min(room, 4096), dtype=np.int64)
            tables = (self._keys, self._slot_code, self._slot_long)
            n_new = _intern_views(views, *data, *tables, self._arena, new_slots, part)
            if n_new < 0:  # the table is full: undo the provisional entries (the newest ones)
                self._slot_code[self._slot_code <= -2] = -1
                return None
            if n_new:
                slots = new_slots[:n_new]
                for slot, (a, b) in zip(slots.tolist(), self._keys[slots].tolist(), strict=True):
                    if a & 0xFFFFFFFF > 12:  # a long name: keep its bytes for later comparisons
                        raw = bytes(_long_view_bytes(views, -2 - int(self._slot_long[slot]), data))
                        self._slot_long[slot] = self._arena.shape[0]
                        self._arena = np.concatenate([self._arena, np.frombuffer(raw, dtype=np.uint8)])
                        name = raw.decode()
                    else:
                        self._slot_long[slot] = -1
                        name = _DECODED.get((a, b)) or _decode_view(a, b)
                    self._slot_code[slot] = self._add(name)
                self._filled += n_new
                tables = (self._keys, self._slot_code, self._slot_long)
                _intern_views(views, *data, *tables, self._arena, new_slots, part)  # every view is known now
            start += len(chunk)
        return out


_DATA_BUFFERS = 4  # long strings are read from at most this many Arrow data buffers per chunk
_NO_DATA = np.frombuffer(b"", dtype=np.uint8)  # read-only, like the buffers, so one compiled signature


def _long_view_bytes(views: npt.NDArray[np.uint64], row: int, data: list[npt.NDArray[np.uint8]]) -> Any:
    """The bytes of the long view at ``row`` of ``views``."""
    a, b = (int(x) for x in views[row])
    length, index, offset = a & 0xFFFFFFFF, b & 0xFFFFFFFF, b >> 32
    return data[index][offset : offset + length]


def _view_chunks(series: pl.Series) -> list[pa.Array]:
    """The series' Arrow string-view chunks without copying (one Polars chunk at a time)."""
    if series.n_chunks() == 1:
        arrow = series.to_arrow(compat_level=_NEWEST)
        return arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
    out: list[pa.Array] = []
    offset = 0
    for length in series.chunk_lengths():
        arrow = series.slice(offset, length).to_arrow(compat_level=_NEWEST)
        out.extend(arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow])
        offset += length
    return out


#: Decoded views (a pure function's cache: the same 16 bytes always decode to the same string).
_DECODED: dict[tuple[int, int], str] = {}


def _decode_view(a: int, b: int) -> str:
    """The string of an inline (<= 12 bytes) Arrow view ``(a, b)``: length in the low 4 bytes, then the bytes."""
    if len(_DECODED) > 100_000:
        _DECODED.clear()
    raw = (a >> 32).to_bytes(4, "little") + b.to_bytes(8, "little")
    name = _DECODED[(a, b)] = raw[: a & 0xFFFFFFFF].decode()
    return name


_SHARED: dict[str, Interner] = {}
_SHARED_LOCK = threading.Lock()


def shared(column: str) -> Interner:
    """The process-wide interner of a column kind (``"exchange"``, ``"symbol"``): codes are a cache of names, so
    every detector step can share one and skip re-discovering the same few names on every micro-batch."""
    with _SHARED_LOCK:
        interner = _SHARED.get(column)
        if interner is None:
            interner = _SHARED[column] = Interner(table=1 << 16)
        return interner


def _remap_py(ids: npt.NDArray[np.int32], lut: npt.NDArray[np.int32], out: npt.NDArray[np.int32]) -> int:
    """``out = lut[ids]`` in one pass; returns how many rows map to -1 (a name the lut does not know)."""
    missing = 0
    for i in range(ids.shape[0]):
        code = lut[np.uintp(ids[i])]  # unsigned: no negative-index wraparound
        out[i] = code
        if code < 0:
            missing += 1
    return missing


def _present_py(ids: npt.NDArray[np.int32], n: int) -> npt.NDArray[np.bool_]:
    """Which of the codes ``0..n-1`` occur in ``ids``."""
    seen = np.zeros(n, dtype=np.bool_)
    for i in range(ids.shape[0]):
        seen[np.uintp(ids[i])] = True
    return seen


_remap = cast(Callable[..., int], numba.njit(cache=True, nogil=True)(_remap_py))
_present = cast(Callable[..., npt.NDArray[np.bool_]], numba.njit(cache=True, nogil=True)(_present_py))


def sorted_codes(series: pl.Series, prior: tuple[str, ...] = ()) -> tuple[tuple[str, ...], npt.NDArray[np.int32]]:
    """Each row's code into the sorted union of ``prior`` and the column's names, through the process-wide
    interner of the column (:func:`shared`); one compiled pass over the rows when no name is new.

    Examples
    --------
    >>> names, codes = sorted_codes(pl.Series("venue", ["okx", "binance", "okx"]), prior=("kraken",))
    >>> names, codes.tolist()
    (('binance', 'kraken', 'okx'), [2, 0, 2])
    """
    interner = shared(series.name)
    ids = interner.codes(series)
    codes = np.empty(ids.size, dtype=np.int32)
    if prior and not _remap(ids, interner.lut(prior), codes):
        return prior, codes
    # New names (the first batch of a run, mostly: without prior names, no pass through the empty lut).
    seen = np.flatnonzero(_present(ids, len(interner.names)))
    names = tuple(sorted({*prior, *(interner.names[i] for i in seen.tolist())}))
    _remap(ids, interner.lut(names), codes)
    return names, codes
