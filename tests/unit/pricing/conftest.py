"""Strict JAX numerics for the pricing tests: float64, no implicit rank or dtype promotion."""

from collections.abc import Iterator

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True)
def strict_jax() -> Iterator[None]:
    """Run each test with rank and dtype promotion errors turned on, then restore the defaults."""
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        yield
