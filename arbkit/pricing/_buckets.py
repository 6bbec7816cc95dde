"""Shape buckets: pad variable-length batches so jitted kernels compile once per bucket.

Live micro-batches have every length from 1 to a few thousand. ``jax.jit`` specializes on shapes, so
calling a kernel on each raw length would compile (tens of milliseconds) in the hot path. Every public
pricing function therefore flattens its broadcast inputs, pads them to the smallest bucket that fits
(``64, 256, 1024, 4096, 16384`` and then multiples of ``16384``) and slices the result back. The padding
costs at most 4x the work for tiny batches and below 1.0x extra for large ones, and ``warmup()`` compiles
every small bucket at start-up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from math import prod
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BUCKET_SIZES", "bucket_jit", "bucket_size", "counted_jit", "run_bucketed", "trace_counts"]

#: The fixed bucket sizes; lengths above the last are rounded up to a multiple of it.
BUCKET_SIZES: tuple[int, ...] = (64, 256, 1024, 4096, 16384)

# Padding value for every float input: 1.0 is a valid spot, strike, time, rate-free price and volatility,
# so padded lanes stay on the cheap, regular path and never raise floating-point noise.
_PAD_VALUE = 1.0

_TRACE_COUNTS: Counter[str] = Counter()


def bucket_size(length: int) -> int:
    """Return the padded length used for a batch of ``length`` elements.

    Parameters
    ----------
    length
        Number of elements in the batch (``>= 0``).

    Returns
    -------
    int
        The smallest entry of ``BUCKET_SIZES`` that is ``>= length``, or, beyond the largest bucket, the
        next multiple of it (so a backtest over a million options compiles once, not once per length).

    Examples
    --------
    >>> [bucket_size(n) for n in (0, 1, 64, 65, 1000, 16384, 16385)]
    [64, 64, 64, 256, 1024, 16384, 32768]
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    for size in BUCKET_SIZES:
        if length <= size:
            return size
    largest = BUCKET_SIZES[-1]
    return -(-length // largest) * largest


def trace_counts() -> dict[str, int]:
    """Return how many times each bucketed pricing kernel has been traced (compiled) in this process.

    A trace happens once per (kernel, bucket) pair; a count that keeps growing in a live process means
    some caller bypasses the buckets. Useful as a health metric and in tests.

    Examples
    --------
    >>> counts = trace_counts()
    >>> all(isinstance(v, int) for v in counts.values())
    True
    """
    return dict(_TRACE_COUNTS)


def counted_jit(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``jax.jit`` ``function`` and count its traces under ``name`` (the Python body runs once per trace)."""
    import jax

    def traced(*args: Any) -> Any:
        _TRACE_COUNTS[name] += 1
        return function(*args)

    traced.__name__ = name
    traced.__qualname__ = name
    compiled: Callable[..., Any] = jax.jit(traced)
    return compiled


def bucket_jit(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Jit ``function`` (float arrays then ``is_call`` in, a tuple of arrays out) for :func:`run_bucketed`.

    The compiled kernel takes ONE ``(n_floats, size)`` float64 array and the ``is_call`` array, so a call
    costs two host-to-device transfers instead of one per argument. The outputs stay a tuple: stacking
    them would stop XLA fusing the shared subexpressions into one multi-output loop (measured ~5x slower).
    """

    def packed(floats: Any, is_call: Any) -> Any:
        return tuple(function(*(floats[i] for i in range(floats.shape[0])), is_call))

    return counted_jit(name, packed)


def run_bucketed(
    kernel: Callable[..., Any],
    floats: Sequence[npt.ArrayLike],
    is_call: npt.ArrayLike,
) -> tuple[tuple[npt.NDArray[Any], ...], bool]:
    """Broadcast, flatten and pad the inputs, run a :func:`bucket_jit` ``kernel`` on the bucket, and un-pad.

    Returns the kernel's outputs in the broadcast shape and whether
    every input was a scalar (so callers can hand back Python scalars).
    """
    float_arrays = [np.asarray(value, dtype=np.float64) for value in floats]
    call_array = np.asarray(is_call, dtype=np.bool_)
    shape = np.broadcast_shapes(*(a.shape for a in float_arrays), call_array.shape)
    length = prod(shape)
    if length > 2 * _CHUNK:
        return _run_chunked(kernel, float_arrays, call_array, shape, length), False
    size = bucket_size(length)
    packed = np.empty((len(float_arrays), size), dtype=np.float64)
    packed[:, length:] = _PAD_VALUE
    for row, array in zip(packed, float_arrays, strict=True):
        row[:length] = np.broadcast_to(array, shape).reshape(-1)
    call_buffer = np.ones(size, dtype=np.bool_)
    call_buffer[:length] = np.broadcast_to(call_array, shape).reshape(-1)
    outputs = kernel(packed, call_buffer)
    results = tuple(np.asarray(out)[:length].reshape(shape) for out in outputs)
    return results, shape == ()


# Large batches run in chunks of this many elements (a multiple of the largest bucket, so one compiled shape):
# packing, transfer and copy-out then stay in cache (one pass over 1M options: ~4.5 -> ~5.5 M options/s here).
_CHUNK = 4 * BUCKET_SIZES[-1]


def _run_chunked(
    kernel: Callable[..., Any],
    float_arrays: list[npt.NDArray[np.float64]],
    call_array: npt.NDArray[np.bool_],
    shape: tuple[int, ...],
    length: int,
) -> tuple[npt.NDArray[Any], ...]:
    flat = [np.broadcast_to(a, shape).reshape(-1) for a in float_arrays]
    calls = np.broadcast_to(call_array, shape).reshape(-1)
    packed = np.empty((len(flat), _CHUNK), dtype=np.float64)
    call_buffer = np.ones(_CHUNK, dtype=np.bool_)
    results: list[npt.NDArray[Any]] = []
    for lo in range(0, length, _CHUNK):
        n = min(_CHUNK, length - lo)
        if n < _CHUNK:
            packed[:, n:] = _PAD_VALUE
            call_buffer[n:] = True
        for row, array in zip(packed, flat, strict=True):
            row[:n] = array[lo : lo + n]
        call_buffer[:n] = calls[lo : lo + n]
        outputs = kernel(packed, call_buffer)
        if not results:
            results = [np.empty(length, dtype=np.asarray(out).dtype) for out in outputs]
        for result, out in zip(results, outputs, strict=True):
            result[lo : lo + n] = np.asarray(out)[:n]
    return tuple(result.reshape(shape) for result in results)
