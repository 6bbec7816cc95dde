"""The profit formulas of the basis and put-call parity detectors as JAX kernels (float64, bucketed shapes).

The detectors evaluate their rows in compiled numba code (:func:`arbkit.detect._b_scan.basis_events`,
:func:`~arbkit.detect._b_scan.parity_events`): a live micro-batch screens in a handful of rows, and a jitted call
costs more than the whole evaluation.  These kernels are the vectorized statement of the same formulas, kept as the
independent reference the compiled evaluation is tested against (to a relative 1e-12: XLA may fuse multiply-adds)
and for research over arrays.

Every kernel is elementwise over the evaluation rows of one batch.  Live micro-batches have every length, so the
wrappers pad their inputs to a few bucket sizes (:func:`bucket_size`) and ``jax.jit`` compiles once per bucket
instead of once per length; :func:`trace_counts` exposes the compile count so tests can assert it.

Profit definitions (per unit of the base asset, in the quote currency, the agreed label formulas):

* two-leg carry trade (spot vs perpetual, spot vs dated future, perpetual vs perpetual): buy one leg at its ask,
  sell the other at its bid, pay the taker fee on both legs twice (to open and to close)::

      profit = bid_sell - ask_buy - 2 * (fee_buy * ask_buy + fee_sell * bid_sell) + carry

  where ``carry`` (funding received, borrow paid, financing) is computed by the caller per row.
* put-call parity (reversal / conversion, see :func:`parity_profit`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt

jax.config.update("jax_enable_x64", True)

__all__ = [
    "BUCKET_SIZES",
    "bucket_size",
    "parity_profit",
    "trace_counts",
    "two_leg_profit",
]

FloatArray = npt.NDArray[np.float64]

#: Padded lengths; beyond the largest, lengths round up to a multiple of it.
BUCKET_SIZES: tuple[int, ...] = (64, 512, 4096, 32768)

_TRACES: Counter[str] = Counter()


def bucket_size(length: int) -> int:
    """Smallest bucket that holds ``length`` rows.

    Examples
    --------
    >>> [bucket_size(n) for n in (0, 64, 65, 40000)]
    [64, 64, 512, 65536]
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    for size in BUCKET_SIZES:
        if length <= size:
            return size
    largest = BUCKET_SIZES[-1]
    return -(-length // largest) * largest


def trace_counts() -> dict[str, int]:
    """How many times each kernel has been traced (compiled) in this process, by kernel name."""
    return dict(_TRACES)


def _counted_jit(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def traced(*args: Any) -> Any:
        _TRACES[name] += 1
        return function(*args)

    traced.__name__ = name
    jitted: Callable[..., Any] = jax.jit(traced)
    return jitted


def _run(kernel: Callable[..., Any], inputs: Sequence[npt.ArrayLike]) -> tuple[FloatArray, ...]:
    arrays = [np.asarray(a, dtype=np.float64) for a in inputs]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    if len(shape) > 1:
        raise ValueError(f"kernels take scalars or 1-d arrays, got shape {shape}")
    length = shape[0] if shape else 1
    size = bucket_size(length)
    padded = []
    for a in arrays:
        buffer = np.ones(size, dtype=np.float64)  # 1.0 keeps padded lanes finite and cheap
        buffer[:length] = np.broadcast_to(a, (length,))
        padded.append(buffer)
    outputs = kernel(*padded)
    return tuple(np.asarray(o)[:length].reshape(shape) for o in outputs)


def _two_leg(ask_buy: Any, bid_sell: Any, fee_buy: Any, fee_sell: Any, carry: Any) -> Any:
    fees = 2.0 * (fee_buy * ask_buy + fee_sell * bid_sell)
    return (bid_sell - ask_buy - fees + carry,)


_two_leg_jit = _counted_jit("two_leg_profit", _two_leg)


def two_leg_profit(
    ask_buy: npt.ArrayLike,
    bid_sell: npt.ArrayLike,
    fee_buy: npt.ArrayLike,
    fee_sell: npt.ArrayLike,
    carry: npt.ArrayLike = 0.0,
) -> FloatArray:
    """Net profit per base unit of buying one leg at its ask and selling another at its bid.

    Taker fees are charged on both legs to open and again to close (the close is assumed at the same prices, the
    convention of the generator's labels), so a trade is only reported if it survives the round trip.

    Parameters
    ----------
    ask_buy, bid_sell
        Ask of the leg bought and bid of the leg sold, in the same quote currency.
    fee_buy, fee_sell
        Taker fees as fractions of notional.
    carry
        Everything earned (positive) or paid (negative) while the position is held: funding, borrow, financing.

    Returns
    -------
    numpy.ndarray
        Profit per unit, float64, in the broadcast shape of the inputs (1-d at most).

    Examples
    --------
    >>> round(float(two_leg_profit(100.0, 101.0, 0.001, 0.0005, 0.02)), 6)
    0.719
    """
    (profit,) = _run(_two_leg_jit, [ask_buy, bid_sell, fee_buy, fee_sell, carry])
    return profit


def _parity(
    call_bid: Any,
    call_ask: Any,
    put_bid: Any,
    put_ask: Any,
    call_underlying: Any,
    put_underlying: Any,
    forward_bid: Any,
    forward_ask: Any,
    strike: Any,
    t: Any,
    rate: Any,
    option_fee: Any,
    fee_cap: Any,
    future_fee: Any,
) -> Any:
    discount = jnp.exp(-rate * t)

    def option_fee_of(price: Any, underlying: Any) -> Any:
        return jnp.minimum(option_fee * underlying, fee_cap * price)

    reversal_fees = (
        option_fee_of(call_bid, call_underlying) + option_fee_of(put_ask, put_underlying) + future_fee * forward_ask
    )
    conversion_fees = (
        option_fee_of(call_ask, call_underlying) + option_fee_of(put_bid, put_underlying) + future_fee * forward_bid
    )
    reversal = call_bid - put_ask - (forward_ask - strike) * discount - reversal_fees
    conversion = put_bid - call_ask - (strike - forward_bid) * discount - conversion_fees
    return reversal, conversion


_parity_jit = _counted_jit("parity_profit", _parity)


def parity_profit(
    call_bid: npt.ArrayLike,
    call_ask: npt.ArrayLike,
    put_bid: npt.ArrayLike,
    put_ask: npt.ArrayLike,
    call_underlying: npt.ArrayLike,
    put_underlying: npt.ArrayLike,
    forward_bid: npt.ArrayLike,
    forward_ask: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    rate: npt.ArrayLike,
    option_fee: npt.ArrayLike = 0.0003,
    fee_cap: npt.ArrayLike = 0.125,
    future_fee: npt.ArrayLike = 0.0005,
) -> tuple[FloatArray, FloatArray]:
    """Net profit per unit of the two put-call parity trades, in USD.

    Put-call parity says ``C - P = (F - K) exp(-r T)``.  Crossing the spreads gives two trades:

    * reversal (sell call at bid, buy put at ask, buy future at ask)::

          C_bid - P_ask - (F_ask - K) exp(-r T) - fees

    * conversion (buy call at ask, sell put at bid, sell future at bid)::

          P_bid - C_ask - (K - F_bid) exp(-r T) - fees

    Each option leg pays ``min(option_fee * underlying, fee_cap * premium)`` (Deribit's rule: a fraction of the
    underlying, capped at a fraction of the premium); the future leg pays ``future_fee * F``.

    Parameters
    ----------
    call_bid, call_ask, put_bid, put_ask
        Option prices already converted to USD.
    call_underlying, put_underlying
        Underlying price of each option row (the base of the option fee).
    forward_bid, forward_ask
        Prices of the forward hedge: the future of the same expiry, or a forward from the index.
    strike, t, rate
        Strike (USD), time to expiry in years, continuously compounded risk-free rate.
    option_fee, fee_cap, future_fee
        Fee parameters (from the instrument registry).

    Returns
    -------
    tuple of numpy.ndarray
        ``(reversal, conversion)`` profits per unit.

    Examples
    --------
    >>> rev, conv = parity_profit(600.0, 610.0, 500.0, 510.0, 30000.0, 30000.0, 30100.0, 30110.0, 30000.0, 0.0,
    ...                           0.05)
    >>> round(float(rev), 4), round(float(conv), 4)
    (-53.055, -43.05)
    """
    reversal, conversion = _run(
        _parity_jit,
        [
            call_bid,
            call_ask,
            put_bid,
            put_ask,
            call_underlying,
            put_underlying,
            forward_bid,
            forward_ask,
            strike,
            t,
            rate,
            option_fee,
            fee_cap,
            future_fee,
        ],
    )
    return reversal, conversion
