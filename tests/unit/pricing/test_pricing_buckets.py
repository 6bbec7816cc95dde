"""Shape buckets: micro-batches of any length reuse a fixed set of compilations."""

import numpy as np
import pytest

import arbkit.pricing
from arbkit.pricing import (
    BUCKET_SIZES,
    black_scholes,
    bucket_size,
    greeks,
    implied_vol,
    trace_counts,
    warmup,
)


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (0, 64),
        (1, 64),
        (64, 64),
        (65, 256),
        (1000, 1024),
        (4097, 16384),
        (16384, 16384),
        (16385, 32768),
        (100_000, 16384 * 7),
    ],
)
def test_bucket_size(length, expected):
    assert bucket_size(length) == expected


def test_bucket_size_rejects_negative_lengths():
    with pytest.raises(ValueError, match=">= 0"):
        bucket_size(-1)


def test_thousand_random_micro_batches_compile_at_most_once_per_bucket():
    rng = np.random.default_rng(42)
    lengths = rng.integers(1, 1001, size=1000)
    buckets_hit = {bucket_size(int(n)) for n in lengths}
    before = trace_counts()
    for i, n in enumerate(lengths):
        spot = rng.uniform(50.0, 150.0, n)
        prices = black_scholes(spot, 100.0, 0.5, 0.03, 0.4, 0.0, i % 2 == 0)
        assert prices.shape == (n,)
        if i % 10 == 0:  # the slower kernels on a tenth of the batches
            greeks(spot, 100.0, 0.5, 0.03, 0.4)
            vols = implied_vol(prices, spot, 100.0, 0.5, 0.03, 0.0, i % 2 == 0)
            assert vols.shape == (n,)
    after = trace_counts()
    for name in ("black_scholes", "greeks_autodiff", "implied_vol"):
        assert after.get(name, 0) - before.get(name, 0) <= len(buckets_hit), name


def test_warmup_compiles_every_bucket_so_later_calls_never_trace():
    warmup(sizes=[1, 100])
    before = trace_counts()
    for n in (1, 7, 64, 65, 200, 256):
        black_scholes(np.full(n, 100.0), 100.0, 1.0, 0.0, 0.2)
        implied_vol(np.full(n, 8.0), 100.0, 100.0, 1.0, 0.0)
    assert trace_counts() == before


def test_default_buckets_are_sorted_and_distinct():
    assert list(BUCKET_SIZES) == sorted(set(BUCKET_SIZES))


def test_exported_names_are_locked():
    assert sorted(arbkit.pricing.__all__) == [
        "BUCKET_SIZES",
        "Greeks",
        "IVFlag",
        "black76",
        "black_scholes",
        "bucket_size",
        "greeks",
        "implied_vol",
        "implied_vol_black76",
        "implied_vol_black76_with_flags",
        "implied_vol_with_flags",
        "kernels",
        "trace_counts",
        "warmup",
    ]
    for name in arbkit.pricing.__all__:
        assert hasattr(arbkit.pricing, name)


def test_trace_counter_counts_one_trace_per_shape():
    import jax.numpy as jnp

    from arbkit.pricing._buckets import counted_jit

    probe = counted_jit("test_probe", lambda x: x * 2.0)
    probe(jnp.ones(3))
    probe(jnp.ones(3))
    probe(jnp.ones(5))
    assert trace_counts()["test_probe"] == 2


def test_large_batches_run_in_chunks_with_the_same_results() -> None:
    """Above two chunks a batch is priced chunk by chunk (cache-sized packing); each element is the one the
    single-bucket path gives, whatever its position (including the padded tail of the last chunk)."""
    from arbkit.pricing._buckets import _CHUNK

    rng = np.random.default_rng(7)
    n = 2 * _CHUNK + 12_345
    spot = rng.uniform(50.0, 150.0, n)
    strike = rng.uniform(50.0, 150.0, n)
    t = rng.uniform(0.01, 2.0, n)
    vol = rng.uniform(0.05, 1.0, n)
    is_call = rng.random(n) < 0.5
    spot[5] = np.nan  # an invalid element stays NaN in place
    before = trace_counts()
    whole = greeks(spot, strike, t, 0.03, vol, 0.01, is_call, method="analytic")
    assert sum(trace_counts().values()) - sum(before.values()) <= 1  # one chunk shape at most
    for lo, hi in ((0, 1000), (_CHUNK - 500, _CHUNK + 500), (n - 777, n)):
        part = greeks(spot[lo:hi], strike[lo:hi], t[lo:hi], 0.03, vol[lo:hi], 0.01, is_call[lo:hi], method="analytic")
        for got, want in zip(whole, part, strict=True):
            np.testing.assert_allclose(got[lo:hi], want, rtol=1e-14, atol=0.0, equal_nan=True)
    assert np.isnan(whole.price[5])
    assert not np.isnan(whole.price[6])
    prices = black_scholes(spot, strike, t, 0.03, vol, 0.01, is_call)
    iv = np.asarray(implied_vol(prices, spot, strike, t, 0.03, 0.01, is_call))
    for lo, hi in ((0, 1000), (_CHUNK - 500, _CHUNK + 500), (n - 777, n)):
        part = implied_vol(prices[lo:hi], spot[lo:hi], strike[lo:hi], t[lo:hi], 0.03, 0.01, is_call[lo:hi])
        np.testing.assert_allclose(iv[lo:hi], np.asarray(part), rtol=1e-12, atol=0.0, equal_nan=True)
    solved = iv > 0.0  # prices at their no-arbitrage bound invert to 0 or NaN (flagged), as for any batch size
    assert solved.mean() > 0.9
    repriced = black_scholes(spot, strike, t, 0.03, np.where(solved, iv, vol), 0.01, is_call)
    np.testing.assert_allclose(np.asarray(repriced)[solved], prices[solved], rtol=0.0, atol=1e-9)
