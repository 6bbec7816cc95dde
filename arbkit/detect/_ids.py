"""Episode ids for many episodes at once: :func:`arbkit.detect._episodes.episode_id`, batched and compiled.

A store-sized run closes ~10^5 episodes; formatting one message and calling :mod:`hashlib` per episode costs
~3 us of Python each.  Here the messages ``f"{kind}\\x1f{key}\\x1f{ts_start}"`` are assembled in a compiled loop
from each distinct key's bytes and the decimal digits of ``ts_start``, and hashed by a compiled SHA-1 (FIPS
180-4; tested against :mod:`hashlib`), so the ids are exactly :func:`~arbkit.detect._episodes.episode_id`'s.

Examples
--------
>>> import numpy as np
>>> from arbkit.detect._episodes import episode_id
>>> value = episode_values("cross_exchange", ["BTC/USDT|okx|binance"], np.zeros(1, np.int64), np.array([7]))
>>> hex_strings(value).to_list() == [episode_id("cross_exchange", "BTC/USDT|okx|binance", 7)]
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import numba
import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

__all__ = ["episode_values", "hex_strings", "start_id_order"]

_U64 = npt.NDArray[np.uint64]
_M32 = np.uint64(0xFFFFFFFF)


def _rotl_py(x: np.uint64, n: int) -> np.uint64:
    """32-bit left rotation of ``x`` (held in a 64-bit word)."""
    return ((x << np.uint64(n)) | (x >> np.uint64(32 - n))) & _M32


def _sha1_prefixes_py(
    prefix: npt.NDArray[np.uint8],
    prefix_start: npt.NDArray[np.int64],
    which: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    out: _U64,
) -> None:
    """``out[r]``: the first 64 bits of SHA-1 over prefix ``which[r]`` (bytes ``prefix[prefix_start[p]:
    prefix_start[p + 1]]``) followed by the decimal digits of ``ts[r]``."""
    longest = 0
    for p in range(prefix_start.shape[0] - 1):
        longest = max(longest, prefix_start[p + 1] - prefix_start[p])
    buf = np.zeros((longest + 20 + 9 + 63) // 64 * 64, dtype=np.uint8)
    digits = np.empty(20, dtype=np.uint8)
    w = np.empty(80, dtype=np.uint64)
    for r in range(which.shape[0]):
        p = which[r]
        m = prefix_start[p + 1] - prefix_start[p]
        start = prefix_start[p]
        for j in range(m):
            buf[j] = prefix[start + j]
        t = ts[r]
        if t < 0:
            buf[m] = 45  # "-"
            m += 1
            magnitude = np.uint64(-(t + 1)) + np.uint64(1)  # no overflow at the int64 minimum
        else:
            magnitude = np.uint64(t)
        n_digits = 0
        while True:
            digits[n_digits] = np.uint64(48) + magnitude % np.uint64(10)
            n_digits += 1
            magnitude //= np.uint64(10)
            if magnitude == 0:
                break
        for j in range(n_digits):
            buf[m + j] = digits[n_digits - 1 - j]
        m += n_digits
        # Padding: 0x80, zeros, the bit length as a big-endian 64-bit integer.
        blocks = (m + 8) // 64 + 1
        end = blocks * 64
        buf[m] = 0x80
        for j in range(m + 1, end - 8):
            buf[j] = 0
        bits = np.uint64(m) * np.uint64(8)
        for j in range(8):
            buf[end - 1 - j] = (bits >> np.uint64(8 * j)) & np.uint64(0xFF)
        h0, h1, h2 = np.uint64(0x67452301), np.uint64(0xEFCDAB89), np.uint64(0x98BADCFE)
        h3, h4 = np.uint64(0x10325476), np.uint64(0xC3D2E1F0)
        for block in range(blocks):
            base = block * 64
            for j in range(16):
                k = base + 4 * j
                w[j] = (
                    (np.uint64(buf[k]) << np.uint64(24))
                    | (np.uint64(buf[k + 1]) << np.uint64(16))
                    | (np.uint64(buf[k + 2]) << np.uint64(8))
                    | np.uint64(buf[k + 3])
                )
            for j in range(16, 80):
                w[j] = _rotl(w[j - 3] ^ w[j - 8] ^ w[j - 14] ^ w[j - 16], 1)
            a, b, c, d, e = h0, h1, h2, h3, h4
            for j in range(20):
                temp = (_rotl(a, 5) + ((b & c) | ((b ^ _M32) & d)) + e + np.uint64(0x5A827999) + w[j]) & _M32
                e, d, c, b, a = d, c, _rotl(b, 30), a, temp
            for j in range(20, 40):
                temp = (_rotl(a, 5) + (b ^ c ^ d) + e + np.uint64(0x6ED9EBA1) + w[j]) & _M32
                e, d, c, b, a = d, c, _rotl(b, 30), a, temp
            for j in range(40, 60):
                temp = (_rotl(a, 5) + ((b & c) | (b & d) | (c & d)) + e + np.uint64(0x8F1BBCDC) + w[j]) & _M32
                e, d, c, b, a = d, c, _rotl(b, 30), a, temp
            for j in range(60, 80):
                temp = (_rotl(a, 5) + (b ^ c ^ d) + e + np.uint64(0xCA62C1D6) + w[j]) & _M32
                e, d, c, b, a = d, c, _rotl(b, 30), a, temp
            h0, h1 = (h0 + a) & _M32, (h1 + b) & _M32
            h2, h3, h4 = (h2 + c) & _M32, (h3 + d) & _M32, (h4 + e) & _M32
        out[r] = (h0 << np.uint64(32)) | h1


_rotl = numba.njit(cache=True, nogil=True, inline="always")(_rotl_py)
_sha1_prefixes = cast(Callable[..., None], numba.njit(cache=True, nogil=True, error_model="numpy")(_sha1_prefixes_py))


def episode_values(
    kind: str, keys: Sequence[str], which: npt.NDArray[np.int64], ts_start: npt.NDArray[np.int64]
) -> _U64:
    """The ids of episodes ``(kind, keys[which[r]], ts_start[r])`` as 64-bit integers (the 16 hex digits of
    :func:`~arbkit.detect._episodes.episode_id` read as a number: sorting these sorts the ids)."""
    encoded = [f"{kind}\x1f{key}\x1f".encode() for key in keys]
    prefix = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    prefix_start = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=prefix_start[1:])
    out = np.empty(which.shape[0], dtype=np.uint64)
    if out.size:
        _sha1_prefixes(
            prefix, prefix_start, which.astype(np.int64, copy=False), ts_start.astype(np.int64, copy=False), out
        )
    return out


def _hex_py(values: _U64, out: npt.NDArray[np.uint8]) -> None:
    """``out[r]``: the 16 lowercase hex digits of ``values[r]``, most significant first."""
    for r in range(values.shape[0]):
        v = values[r]
        for j in range(15, -1, -1):
            nibble = v & np.uint64(0xF)
            out[r, j] = np.uint64(48) + nibble if nibble < 10 else np.uint64(87) + nibble
            v >>= np.uint64(4)


def _sort_ties_py(ts: npt.NDArray[np.int64], values: _U64, order: npt.NDArray[np.int64]) -> None:
    """Within each run of equal ``ts[order]``, put ``order`` in ``values`` order (stable insertion sort: runs of
    episodes that start at one row are short)."""
    start = 0
    n = order.shape[0]
    for k in range(1, n + 1):
        if k < n and ts[order[k]] == ts[order[start]]:
            continue
        for j in range(start + 1, k):
            item = order[j]
            at = j
            while at > start and values[order[at - 1]] > values[item]:
                order[at] = order[at - 1]
                at -= 1
            order[at] = item
        start = k


_hex = cast(Callable[..., None], numba.njit(cache=True, nogil=True)(_hex_py))
_sort_ties = cast(Callable[..., None], numba.njit(cache=True, nogil=True)(_sort_ties_py))


def hex_strings(values: _U64, name: str = "id") -> pl.Series:
    """``values`` as 16-digit lowercase hex strings, one String series (built from one Arrow buffer)."""
    n = values.shape[0]
    text = np.empty((n, 16), dtype=np.uint8)
    _hex(values, text)
    offsets = np.arange(0, 16 * n + 1, 16, dtype=np.int32)
    arrow = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))
    return pl.Series(name, arrow, dtype=pl.String)


def start_id_order(ts_start: npt.NDArray[np.int64], values: _U64) -> npt.NDArray[np.int64]:
    """The stable order of episodes by ``(ts_start, id)`` (``values`` from :func:`episode_values`): what
    ``np.lexsort((values, ts_start))`` gives, in about linear time for episodes that arrive nearly in start
    order."""
    order = np.argsort(ts_start, kind="stable").astype(np.int64, copy=False)
    _sort_ties(np.ascontiguousarray(ts_start), values, order)
    return order
