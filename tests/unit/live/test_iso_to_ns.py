"""``iso_to_ns`` keeps every digit, on its cached fast path (6 or 9 fraction digits) and its general one alike."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from live.adapters._base import iso_to_ns


def _text(ns: int, digits: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return base + ("." + f"{frac:09d}"[:digits] if digits else "") + "Z"


@given(ns=st.integers(0, 4_102_444_800 * 10**9), digits=st.integers(0, 9))
def test_every_digit_is_kept(ns: int, digits: int) -> None:
    truncated = ns - ns % 10 ** (9 - digits)
    text = _text(ns, digits)
    assert iso_to_ns(text) == truncated
    assert iso_to_ns(text) == truncated  # again, now from the cached second


@pytest.mark.parametrize(
    "text",
    [
        "2026-04-07T14:30:03.12345678xZ",
        "2026-04-07T14:30:03,123456789Z",
        "2026-04-07T14:30:03.123456789+",
        "2026-04-07",
    ],
)
def test_malformed_texts_raise_even_after_their_second_is_cached(text: str) -> None:
    iso_to_ns("2026-04-07T14:30:03.123456789Z")
    with pytest.raises(ValueError, match="timestamp"):
        iso_to_ns(text)
