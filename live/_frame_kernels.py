"""Compiled per-row work of the micro-batcher's column batches (:func:`live.batcher._columns_frame`).

A batch of quotes arrives as a few dozen small parts, each with one ``exchange``, one ``ts_recv`` and symbol codes
into its venue's symbol list.  The columns that vary per row are copied by the caller in one ``bytes.join``; what is
derived per part (the repeated receive time, the exchange and symbol names as Arrow string views, the ``seq``
validity bitmap) is written here in one pass, so Python does no work per row and little per part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["fill_derived"]


def _fill_derived_py(
    meta: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int32],
    lists: npt.NDArray[np.int32],
    views: npt.NDArray[np.uint64],
    masks: npt.NDArray[np.bool_],
    ts_recv: npt.NDArray[np.int64],
    exchange: npt.NDArray[np.uint64],
    symbol: npt.NDArray[np.uint64],
    validity: npt.NDArray[np.uint8],
) -> int:
    """Fill the derived columns of every part; returns how many rows have a null ``seq``, or -1 on a bad code.

    ``meta`` has one column per part: its rows, receive time, where its symbol list starts in ``lists``, the
    ``views`` row of its exchange, and 1 when it brings a ``seq`` mask (the next rows of ``masks``; without one
    every row is valid).  A symbol list in ``lists`` is its length followed by the ``views`` row of each name;
    a view is 16 bytes as two words.  ``validity`` (Arrow's LSB-first bitmap) is left alone when it is empty.
    """
    with_validity = validity.shape[0] > 0
    if with_validity:
        validity[:] = 0
    row = 0
    taken = 0
    nulls = 0
    for p in range(meta.shape[1]):
        n = meta[0, p]
        ts = meta[1, p]
        start = meta[2, p]
        count = lists[start]
        ex0 = views[meta[3, p], 0]
        ex1 = views[meta[3, p], 1]
        for i in range(row, row + n):
            code = codes[i]
            if code < 0 or code >= count:
                return -1
            k = lists[start + 1 + code]
            ts_recv[i] = ts
            exchange[i, 0] = ex0
            exchange[i, 1] = ex1
            symbol[i, 0] = views[k, 0]
            symbol[i, 1] = views[k, 1]
        if with_validity:
            masked = meta[4, p] != 0
            for i in range(row, row + n):
                if masked and not masks[taken + i - row]:
                    nulls += 1
                else:
                    validity[i >> 3] |= np.uint8(1 << (i & 7))
            if masked:
                taken += n
        row += n
    return nulls


fill_derived = cast(Callable[..., int], numba.njit(cache=True, nogil=True, error_model="numpy")(_fill_derived_py))


def _load() -> None:
    """Load (or compile) the kernel for the types the batcher passes: not on the first batch of the feed."""
    one = np.zeros(1, dtype=np.int64)
    words = np.zeros((1, 2), dtype=np.uint64)
    codes = np.frombuffer(bytes(4), dtype=np.int32)  # read-only: a view of the joined bytes
    masks = np.frombuffer(b"\x01", dtype=np.bool_)
    meta = np.zeros((5, 1), dtype=np.int64)
    fill_derived(meta, codes, np.array([1, 0], np.int32), words, masks, one, words, words, np.zeros(1, np.uint8))


_load()
