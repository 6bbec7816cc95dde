"""Process-wide pair ids of the basis and parity detectors: the short-frame (dict) and columnar paths agree."""

from __future__ import annotations

import numpy as np
import polars as pl

from arbkit.detect._b_common import _FEW_ROWS, pair_ids, pair_names


def _frame(rng: np.random.Generator, n: int, pairs: list[tuple[str, str]]) -> pl.DataFrame:
    pick = rng.integers(0, len(pairs), n)
    return pl.DataFrame({"exchange": [pairs[i][0] for i in pick], "symbol": [pairs[i][1] for i in pick]})


def test_short_and_long_frames_name_every_row_and_share_ids() -> None:
    rng = np.random.default_rng(1)
    futures = [f"{base}/USD:{base}-2606{day:02d}" for base in ("BTC", "ETH") for day in range(1, 6)]
    pairs = [(ex, symbol) for ex in ("deribit", "okx") for symbol in futures]
    pairs += [("bybit", "SOL/USDT"), ("kraken", f"NEW{rng.integers(1 << 30)}/USDT")]  # the second one never seen
    seen: dict[tuple[str, str], int] = {}
    for n in (1, 5, _FEW_ROWS, _FEW_ROWS + 1, 500, 3, 700):
        frame = _frame(rng, n, pairs)
        ids, inverse = pair_ids(frame)
        assert ids.dtype == inverse.dtype == np.int64
        assert np.all(np.diff(ids) > 0)
        rows = list(zip(frame["exchange"].to_list(), frame["symbol"].to_list(), strict=True))
        names = pair_names(ids)
        assert [names[i] for i in inverse.tolist()] == rows
        for pair, pair_id in zip(names, ids.tolist(), strict=True):
            assert seen.setdefault(pair, pair_id) == pair_id  # one id per pair, whichever path met it first


def test_a_short_frame_with_nulls_takes_the_columnar_path() -> None:
    frame = pl.DataFrame({"exchange": ["okx", None, "okx"], "symbol": ["BTC/USDT", "BTC/USDT", "BTC/USDT"]})
    ids, inverse = pair_ids(frame)
    assert inverse[0] == inverse[2] != inverse[1]
    assert len(ids) == 2
