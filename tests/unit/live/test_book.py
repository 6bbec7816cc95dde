"""Order-book keeper: one named, table-driven test per documented venue rule, plus flags and counters.

Expected books are written out by hand from the rule, never computed by the keeper's own helpers.
"""

from __future__ import annotations

import zlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbkit.schema import QuoteFlag
from live import adapters
from live.adapters import BookUpdate, Level
from live.book import BookKeeper, Books

T0 = 1_800_000_000_000_000_000
MS = 1_000_000


def lv(price: str, size: str) -> Level:
    return (float(price), float(size), price, size)


def upd(
    rule: str,
    *,
    snapshot: bool = False,
    bids: tuple[tuple[str, str], ...] = (),
    asks: tuple[tuple[str, str], ...] = (),
    seq: int | None = None,
    prev: int | None = None,
    first: int | None = None,
    checksum: int | None = None,
    t: int = 0,
    exchange: str = "x",
    depth: int | None = None,
    precision: tuple[int, int] | None = None,
) -> BookUpdate:
    return BookUpdate(
        exchange,
        "BTC/USDT",
        rule,
        snapshot,
        tuple(lv(*b) for b in bids),
        tuple(lv(*a) for a in asks),
        T0 + t * MS,
        T0 + t * MS,
        seq=seq,
        prev_seq=prev,
        first_seq=first,
        checksum=checksum,
        depth=depth,
        price_precision=precision[0] if precision else None,
        size_precision=precision[1] if precision else None,
    )


def keeper(exchange: str = "x", **kwargs: int) -> BookKeeper:
    return BookKeeper(exchange, "BTC/USDT", max_age_ns=1_000 * MS, **kwargs)


def book(k: BookKeeper) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    return [x[:2] for x in k.sorted_bids()], [x[:2] for x in k.sorted_asks()]


SNAP = {"bids": (("100", "1"), ("99", "2")), "asks": (("101", "1"), ("102", "2"))}


# -- Binance spot: U <= lastUpdateId+1 <= u for the first event, drop u <= lastUpdateId, then U == prev u + 1 ---
@pytest.mark.parametrize(
    ("first_u", "last_u", "outcome"),
    [
        (90, 100, "dropped"),  # u <= L: already in the snapshot
        (95, 105, "applied"),  # U <= L+1 <= u
        (101, 101, "applied"),  # U == L+1 == u
        (101, 120, "applied"),
        (102, 110, "gap"),  # U > L+1: an event was missed between snapshot and stream
    ],
)
def test_binance_spot_first_event_rule(first_u: int, last_u: int, outcome: str) -> None:
    k = keeper()
    k.apply(upd("binance_spot", snapshot=True, seq=100, **SNAP))
    k.apply(upd("binance_spot", bids=(("100", "5"),), first=first_u, seq=last_u, t=1))
    if outcome == "dropped":
        assert (k.counters.dropped, k.counters.gaps) == (1, 0)
        assert book(k)[0][0] == (100.0, 1.0)
        assert not k.needs_resync
    elif outcome == "applied":
        assert (k.counters.dropped, k.counters.gaps) == (0, 0)
        assert book(k)[0][0] == (100.0, 5.0)
        assert k.last_seq == last_u
    else:
        assert k.counters.gaps == 1
        assert k.needs_resync
        assert k.flags() & QuoteFlag.RESYNCING


@pytest.mark.parametrize(
    ("first_u", "outcome"),
    [(111, "applied"), (112, "gap"), (110, "gap")],
)
def test_binance_spot_continuity_rule(first_u: int, outcome: str) -> None:
    k = keeper()
    k.apply(upd("binance_spot", snapshot=True, seq=100, **SNAP))
    k.apply(upd("binance_spot", first=101, seq=110, t=1))
    k.apply(upd("binance_spot", asks=(("101", "0"),), first=first_u, seq=first_u + 4, t=2))
    assert (k.counters.gaps == 0) == (outcome == "applied")
    assert k.needs_resync == (outcome == "gap")


def test_binance_buffers_diffs_until_the_rest_snapshot() -> None:
    k = keeper()
    assert k.apply(upd("binance_spot", bids=(("100", "9"),), first=90, seq=95)) is None
    assert k.needs_resync  # Binance never pushes a snapshot: the connector must fetch one
    k.resync_started()
    k.apply(upd("binance_spot", bids=(("100", "8"),), first=96, seq=100))
    k.apply(upd("binance_spot", bids=(("100", "7"),), first=101, seq=105))
    k.apply(upd("binance_spot", asks=(("101", "0"),), first=106, seq=110))
    assert k.counters.buffered == 4
    quote = k.apply(upd("binance_spot", snapshot=True, seq=100, **SNAP, t=1))
    assert quote is not None
    assert (k.counters.dropped, k.counters.applied) == (2, 3)  # snapshot + events 101-105, 106-110
    assert book(k) == ([(100.0, 7.0), (99.0, 2.0)], [(102.0, 2.0)])
    assert quote[4:9] == (100.0, 7.0, 102.0, 2.0, 110)
    assert quote[9] == 0


def test_binance_buffer_is_bounded() -> None:
    k = keeper(buffer_limit=3)
    for i in range(10):
        k.apply(upd("binance_spot", first=10 * i + 1, seq=10 * i + 10))
    assert k.counters.buffered == 10
    assert k.counters.dropped == 7
    assert len(k._buffer) == 3


# -- Binance USD-M futures: drop u < L, first event U <= L <= u, then pu == previous u ------------------------------
@pytest.mark.parametrize(
    ("first_u", "last_u", "outcome"),
    [
        (90, 99, "dropped"),  # u < L
        (95, 100, "applied"),  # U <= L <= u (u == L is the first processed event on futures)
        (100, 130, "applied"),
        (101, 105, "gap"),  # U > L
    ],
)
def test_binance_futures_first_event_rule(first_u: int, last_u: int, outcome: str) -> None:
    k = keeper()
    k.apply(upd("binance_futures", snapshot=True, seq=100, **SNAP))
    k.apply(upd("binance_futures", bids=(("100", "5"),), first=first_u, seq=last_u, prev=first_u - 1, t=1))
    assert (outcome == "dropped") == (k.counters.dropped == 1)
    assert (outcome == "gap") == (k.counters.gaps == 1)
    assert (outcome == "applied") == (book(k)[0][0] == (100.0, 5.0))


@pytest.mark.parametrize(("pu", "outcome"), [(130, "applied"), (129, "gap"), (131, "gap"), (None, "gap")])
def test_binance_futures_pu_equals_previous_u(pu: int | None, outcome: str) -> None:
    k = keeper()
    k.apply(upd("binance_futures", snapshot=True, seq=100, **SNAP))
    k.apply(upd("binance_futures", first=95, seq=130, prev=94, t=1))
    # U is not consecutive on futures: only pu links events
    k.apply(upd("binance_futures", bids=(("98", "3"),), first=140, seq=150, prev=pu, t=2))
    assert (k.counters.gaps == 0) == (outcome == "applied")
    assert ((98.0, 3.0) in book(k)[0]) == (outcome == "applied")


# -- OKX: prevSeqId == previous seqId (identity), CRC32 over the top 25, 0 means no checksum ------------------------
@pytest.mark.parametrize(
    ("prev", "seq", "outcome"),
    [
        (10, 15, "applied"),
        (10, 10, "applied"),  # no-change heartbeat: seqId == prevSeqId
        (10, 3, "applied"),  # sequence reset after maintenance: only identity of prevSeqId counts
        (9, 15, "gap"),
        (11, 15, "gap"),
        (None, 15, "gap"),
    ],
)
def test_okx_prev_seq_id_chain(prev: int | None, seq: int, outcome: str) -> None:
    k = keeper()
    k.apply(upd("okx", snapshot=True, seq=10, prev=-1, **SNAP))
    k.apply(upd("okx", bids=(("100.5", "1"),), seq=seq, prev=prev, t=1))
    assert (k.counters.gaps == 0) == (outcome == "applied")
    assert k.needs_resync == (outcome == "gap")


def _okx_crc(text: str) -> int:
    value = zlib.crc32(text.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


@pytest.mark.parametrize(
    ("checksum", "fails"),
    [
        (0, False),  # OKX is deprecating the checksum to 0: not a failure
        (None, False),
        (_okx_crc("100:1:101:1:99:2:102:2"), False),  # bid:size:ask:size interleaved, venue strings
        (_okx_crc("100:1:101:1:99:2:102:3"), True),
        (-1, True),
    ],
)
def test_okx_checksum(checksum: int | None, fails: bool) -> None:
    k = keeper()
    quote = k.apply(upd("okx", snapshot=True, seq=10, prev=-1, checksum=checksum, **SNAP))
    assert quote is not None
    assert k.counters.checksum_failures == int(fails)
    assert bool(quote[9] & QuoteFlag.RESYNCING) == fails


def test_okx_checksum_after_update_uses_the_venue_strings() -> None:
    k = keeper()
    k.apply(upd("okx", snapshot=True, seq=10, prev=-1, **SNAP))
    # update: bid 100 removed, new bid 100.50 (trailing zero kept as sent), ask 102 resized
    good = _okx_crc("100.50:3:101:1:99:2:102:0.5")
    k.apply(upd("okx", bids=(("100", "0"), ("100.50", "3")), asks=(("102", "0.5"),), seq=11, prev=10, checksum=good))
    assert k.counters.checksum_failures == 0
    assert book(k) == ([(100.5, 3.0), (99.0, 2.0)], [(101.0, 1.0), (102.0, 0.5)])


def test_okx_update_before_snapshot_is_dropped() -> None:
    k = keeper()
    assert k.apply(upd("okx", bids=(("100", "1"),), seq=11, prev=10)) is None
    assert k.counters.dropped == 1
    assert k.flags() & QuoteFlag.UNVERIFIED


# -- Bybit: a snapshot resets the book, u == 1 overwrites it, u must increase -------------------------------------
def test_bybit_new_snapshot_resets_the_book() -> None:
    k = keeper()
    k.apply(upd("bybit", snapshot=True, seq=50, **SNAP))
    k.apply(upd("bybit", snapshot=True, seq=60, bids=(("90", "1"),), asks=(("91", "1"),)))
    assert book(k) == ([(90.0, 1.0)], [(91.0, 1.0)])


@pytest.mark.parametrize(
    ("u", "outcome"),
    [(51, "applied"), (70, "applied"), (50, "gap"), (49, "gap"), (1, "overwrite")],
)
def test_bybit_update_id_rule(u: int, outcome: str) -> None:
    k = keeper()
    k.apply(upd("bybit", snapshot=True, seq=50, **SNAP))
    k.apply(upd("bybit", bids=(("98", "4"),), asks=(("103", "1"),), seq=u, t=1))
    bids, asks = book(k)
    if outcome == "applied":
        assert bids == [(100.0, 1.0), (99.0, 2.0), (98.0, 4.0)]
    elif outcome == "overwrite":  # u == 1: service restart, the delta is a fresh snapshot
        assert (bids, asks) == ([(98.0, 4.0)], [(103.0, 1.0)])
        assert k.counters.snapshots == 2
    else:
        assert k.counters.gaps == 1
        assert k.needs_resync


# -- Kraken: CRC32 over top 10 asks then bids, '.' removed, leading zeros stripped; book cut to depth ------------
def test_kraken_checksum_and_truncation() -> None:
    k = keeper()
    snap_bids = (("0.5666", "4831.75496356"), ("0.5665", "6658.22734739"))
    snap_asks = (("0.5668", "4410.79769741"), ("0.5669", "4655.40412487"))
    text = "5668441079769741566946554041248756664831754963565665665822734739"
    quote = k.apply(
        upd("kraken", snapshot=True, bids=snap_bids, asks=snap_asks, checksum=zlib.crc32(text.encode()), depth=2)
    )
    assert quote is not None
    assert k.counters.checksum_failures == 0
    # a better bid pushes 0.5665 out of the depth-2 book; the checksum covers the cut book
    text2 = "5668441079769741566946554041248756671000000005666483175496356"
    k.apply(upd("kraken", bids=(("0.5667", "1.00000000"),), checksum=zlib.crc32(text2.encode()), depth=2, t=1))
    assert k.counters.checksum_failures == 0
    assert book(k)[0] == [(0.5667, 1.0), (0.5666, 4831.75496356)]


def test_kraken_checksum_uses_pair_precision() -> None:
    k = keeper()
    # v2 numbers as JSON text "105944.2" with precision (1, 8): qty 0.136 -> "13600000"
    text = "105944313600000105944213600000"
    k.apply(
        upd(
            "kraken",
            snapshot=True,
            bids=(("105944.2", "0.136"),),
            asks=(("105944.3", "0.136"),),
            checksum=zlib.crc32(text.encode()),
            precision=(1, 8),
        )
    )
    assert k.counters.checksum_failures == 0


def test_kraken_wrong_checksum_requests_resync() -> None:
    k = keeper()
    k.apply(upd("kraken", snapshot=True, checksum=12345, **SNAP))
    assert k.counters.checksum_failures == 1
    assert k.counters.resyncs == 1
    assert k.needs_resync


# -- Deribit: prev_change_id == previous change_id --------------------------------------------------------------
@pytest.mark.parametrize(("prev", "outcome"), [(297217, "applied"), (297216, "gap"), (None, "gap")])
def test_deribit_change_id_chain(prev: int | None, outcome: str) -> None:
    k = keeper()
    k.apply(upd("deribit", snapshot=True, seq=297217, **SNAP))
    k.apply(upd("deribit", bids=(("99", "0"),), seq=297218, prev=prev, t=1))
    assert (k.counters.gaps == 0) == (outcome == "applied")


# -- Coinbase: updates apply in sequence order ------------------------------------------------------------------
@pytest.mark.parametrize(("seq", "outcome"), [(6, "applied"), (9, "applied"), (5, "gap"), (4, "gap")])
def test_coinbase_sequence_order(seq: int, outcome: str) -> None:
    k = keeper()
    k.apply(upd("coinbase", snapshot=True, seq=5, **SNAP))
    k.apply(upd("coinbase", asks=(("101", "0"),), seq=seq, t=1))
    assert (k.counters.gaps == 0) == (outcome == "applied")


# -- Rules every venue shares -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "extra"),
    [
        ("binance_spot", {"first": 101, "seq": 101}),
        ("binance_futures", {"first": 95, "seq": 101, "prev": 94}),
        ("okx", {"seq": 11, "prev": 10}),
        ("bybit", {"seq": 11}),
        ("kraken", {}),
        ("deribit", {"seq": 11, "prev": 10}),
        ("coinbase", {"seq": 11}),
    ],
)
def test_quantity_zero_deletes_a_level(rule: str, extra: dict[str, int]) -> None:
    k = keeper()
    k.apply(upd(rule, snapshot=True, seq=10 if rule not in ("binance_spot", "binance_futures") else 100, **SNAP))
    quote = k.apply(upd(rule, bids=(("100", "0"),), asks=(("101", "0.000"),), t=1, **extra))  # type: ignore[arg-type]
    assert book(k) == ([(99.0, 2.0)], [(102.0, 2.0)])
    assert quote is not None
    assert quote[4:8] == (99.0, 2.0, 102.0, 2.0)


def test_deleting_an_unknown_level_is_harmless() -> None:
    k = keeper()
    k.apply(upd("okx", snapshot=True, seq=10, **SNAP))
    k.apply(upd("okx", bids=(("50", "0"),), seq=11, prev=10))
    assert book(k)[0] == [(100.0, 1.0), (99.0, 2.0)]


def test_crossed_book_is_flagged_and_counted() -> None:
    k = keeper()
    k.apply(upd("okx", snapshot=True, seq=10, **SNAP))
    quote = k.apply(upd("okx", bids=(("101.5", "1"),), seq=11, prev=10))
    assert quote is not None
    assert quote[9] & QuoteFlag.CROSSED
    assert k.counters.crossed == 1
    quote = k.apply(upd("okx", bids=(("101.5", "0"),), seq=12, prev=11))
    assert quote is not None
    assert not quote[9] & QuoteFlag.CROSSED


def test_stale_after_max_age_without_updates() -> None:
    k = keeper()  # max_age 1 s
    k.apply(upd("okx", snapshot=True, seq=10, **SNAP))
    assert k.quote(now_ns=T0 + 999 * MS)[9] == 0
    stale = k.quote(now_ns=T0 + 1_001 * MS)
    assert stale[9] & QuoteFlag.STALE
    assert stale[1] == T0 + 1_001 * MS
    assert k.is_stale(T0 + 1_001 * MS)
    assert k.counters.stale == 1


def test_stale_when_venue_time_lags_receive_time() -> None:
    k = keeper()
    update = upd("okx", snapshot=True, seq=10, **SNAP)
    lagging = msgspec.structs.replace(update, ts_event=T0 - 2_000 * MS)
    quote = k.apply(lagging)
    assert quote is not None
    assert quote[9] & QuoteFlag.STALE


def test_resync_cycle_flags_until_fresh_snapshot() -> None:
    k = keeper()
    assert k.quote()[9] & QuoteFlag.UNVERIFIED  # nothing synced yet
    k.apply(upd("okx", snapshot=True, seq=10, **SNAP))
    assert k.quote()[9] == 0
    k.apply(upd("okx", seq=12, prev=11))  # gap
    assert k.needs_resync
    k.resync_started()
    assert not k.needs_resync
    quote = k.apply(upd("okx", seq=13, prev=12))  # updates while resyncing are not applied
    assert quote is not None
    assert quote[9] & QuoteFlag.RESYNCING
    assert k.counters.dropped == 1
    quote = k.apply(upd("okx", snapshot=True, seq=20, **SNAP))
    assert quote is not None
    assert quote[9] == 0
    assert (k.counters.gaps, k.counters.resyncs, k.counters.snapshots) == (1, 1, 2)


def test_replace_rule_takes_each_message_whole() -> None:
    k = keeper()
    k.apply(upd("replace", snapshot=True, **SNAP))
    k.apply(upd("replace", snapshot=True, bids=(("90", "1"),), asks=()))
    assert book(k) == ([(90.0, 1.0)], [])
    quote = k.quote()
    assert quote[6] is None  # an empty side is absent, not 0
    assert quote[7] is None


def test_keeper_rejects_misrouted_update() -> None:
    with pytest.raises(ValueError, match="sent to"):
        BookKeeper("okx", "ETH/USDT", max_age_ns=1).apply(upd("okx", snapshot=True, exchange="okx", **SNAP))


def test_book_rows_top_n_in_schema_order() -> None:
    k = keeper(depth=1)
    k.apply(upd("okx", snapshot=True, seq=10, **SNAP))
    assert k.book_rows() == [
        (T0, T0, "x", "BTC/USDT", "bid", 0, 100.0, 1.0, 10, 0),
        (T0, T0, "x", "BTC/USDT", "ask", 0, 101.0, 1.0, 10, 0),
    ]
    assert len(k.book_rows(5)) == 4


def test_books_routes_updates_and_sums_counters() -> None:
    books = Books(depth=2, max_age_ns={"okx": 500 * MS})
    ad = adapters.get("okx")
    raw = (
        b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["101","1","0","1"]],'
        b'"bids":[["100","1","0","1"]],"ts":"1800000000000","checksum":0,"seqId":5,"prevSeqId":-1}]}'
    )
    rows = books.apply_rows(ad.parse_rows(raw, T0))
    assert rows.quotes[0][3:9] == ("BTC/USDT", 100.0, 1.0, 101.0, 1.0, 5)
    assert len(rows.book) == 2
    gap = raw.replace(b'"snapshot"', b'"update"').replace(b'"prevSeqId":-1', b'"prevSeqId":4')
    books.apply_rows(ad.parse_rows(gap, T0))
    assert books.needs_resync() == [("okx", "BTC/USDT")]
    assert books.counters.gaps == 1
    assert books.stale(T0 + 501 * MS) == [("okx", "BTC/USDT")]


@given(
    st.lists(
        st.tuples(st.sampled_from(["bid", "ask"]), st.integers(1, 20), st.sampled_from(["0", "1", "2.5"])),
        max_size=60,
    )
)
def test_book_equals_last_write_per_level(ops: list[tuple[str, int, str]]) -> None:
    """Any update sequence leaves exactly the levels whose last write was non-zero (reference: a plain dict)."""
    k = keeper()
    k.apply(upd("deribit", snapshot=True, seq=0))
    reference: dict[tuple[str, float], float] = {}
    for i, (side, tick, size) in enumerate(ops, start=1):
        price = str(100 + tick) if side == "ask" else str(100 - tick)
        levels = ((price, size),)
        k.apply(
            upd(
                "deribit", bids=levels if side == "bid" else (), asks=levels if side == "ask" else (), seq=i, prev=i - 1
            )
        )
        if float(size) == 0:
            reference.pop((side, float(price)), None)
        else:
            reference[(side, float(price))] = float(size)
    bids, asks = book(k)
    assert sorted(bids) == sorted((p, s) for (side, p), s in reference.items() if side == "bid")
    assert sorted(asks) == sorted((p, s) for (side, p), s in reference.items() if side == "ask")
    assert k.counters.gaps == 0
    quote = k.quote()
    ref_bids = [p for (side, p) in reference if side == "bid"]
    ref_asks = [p for (side, p) in reference if side == "ask"]
    assert quote[4] == (max(ref_bids) if ref_bids else None)
    assert quote[6] == (min(ref_asks) if ref_asks else None)


def test_default_max_age_comes_from_the_venue_profile() -> None:
    from arbkit.instruments import default_registry

    for venue in adapters.VENUES:
        expected = int(default_registry().profile(venue).max_age_ms * MS)
        assert BookKeeper(venue, "BTC/USDT").max_age_ns == expected


def test_binance_diff_stream_synced_by_rest_snapshot_end_to_end() -> None:
    """Diff messages before and after the REST snapshot, through the adapter and Books, as the connector does."""
    ad = adapters.get("binance")
    books = Books(depth=3)

    def diff(first: int, last: int, bids: str, asks: str) -> bytes:
        return (
            f'{{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":{1_800_000_000_000 + last},'
            f'"s":"BTCUSDT","U":{first},"u":{last},"b":{bids},"a":{asks}}}}}'
        ).encode()

    before = [
        diff(1, 9, '[["100.0","9"]]', "[]"),  # older than the snapshot: dropped
        diff(10, 12, '[["100.0","3"]]', '[["101.0","0"]]'),  # straddles lastUpdateId+1 = 11: first applied
    ]
    for raw in before:
        assert books.apply_rows(ad.parse_rows(raw, T0)).quotes == []  # nothing known yet
    assert books.needs_resync() == [("binance", "BTC/USDT")]
    snapshot = b'{"lastUpdateId":10,"bids":[["100.0","1"],["99.5","2"]],"asks":[["101.0","1"],["101.5","4"]]}'
    rows = books.apply(ad.parse_snapshot(snapshot, T0 + 5, "BTCUSDT"))
    assert rows.quotes[-1][4:9] == (100.0, 3.0, 101.5, 4.0, 12)
    rows = books.apply_rows(ad.parse_rows(diff(13, 13, "[]", '[["101.2","0.5"]]'), T0 + 6))
    assert rows.quotes[-1][4:10] == (100.0, 3.0, 101.2, 0.5, 13, 0)
    assert [r[4:8] for r in rows.book] == [
        ("bid", 0, 100.0, 3.0),
        ("bid", 1, 99.5, 2.0),
        ("ask", 0, 101.2, 0.5),
        ("ask", 1, 101.5, 4.0),
    ]
    assert books.needs_resync() == []
    counters = books.counters
    assert (counters.dropped, counters.gaps, counters.snapshots) == (1, 0, 1)
    rows = books.apply_rows(ad.parse_rows(diff(15, 16, "[]", "[]"), T0 + 7))  # 14 is missing
    assert rows.quotes[-1][9] & QuoteFlag.RESYNCING
    assert books.needs_resync() == [("binance", "BTC/USDT")]


def test_messages_lost_flags_synced_books_until_resynced() -> None:
    books = Books(depth=5)
    snap = BookUpdate(
        "coinbase", "BTC/USD", "coinbase", True, ((100.0, 1.0, "100", "1"),), ((101.0, 1.0, "101", "1"),), 1, 2, seq=5
    )
    other = BookUpdate(
        "coinbase", "ETH/USD", "coinbase", True, ((10.0, 1.0, "10", "1"),), ((11.0, 1.0, "11", "1"),), 1, 2, seq=6
    )
    books.apply(snap)
    books.apply(other)
    assert books.messages_lost("coinbase", ["BTC/USD", "SOL/USD"]) == [("coinbase", "BTC/USD")]
    assert ("coinbase", "SOL/USD") not in books.keepers  # not created by being told
    assert books.needs_resync() == [("coinbase", "BTC/USD")]
    keeper = books.keeper("coinbase", "BTC/USD")
    assert keeper.counters.gaps == 1
    # later updates still come out, flagged, and are not applied to the broken book
    upd = BookUpdate("coinbase", "BTC/USD", "coinbase", False, ((100.5, 1.0, "100.5", "1"),), (), 3, 4, seq=9)
    rows = books.apply(upd)
    assert rows.quotes[0][9] & QuoteFlag.RESYNCING
    assert rows.quotes[0][4] == 100.0
    assert books.keeper("coinbase", "ETH/USD").quote()[9] == 0  # untouched
    keeper.resync_started()
    assert books.needs_resync() == []
    assert books.apply(snap).quotes[0][9] & QuoteFlag.RESYNCING == 0  # the fresh snapshot clears it


def test_messages_lost_before_any_snapshot_stays_unverified() -> None:
    keeper = BookKeeper("coinbase", "BTC/USD")
    keeper.messages_lost()
    assert keeper.needs_resync
    assert keeper.flags() & QuoteFlag.UNVERIFIED
    assert not keeper.flags() & QuoteFlag.RESYNCING


def test_binance_event_revealing_a_gap_starts_the_new_buffer() -> None:
    # docs: on a break in the ids, restart: buffer the stream, fetch a snapshot, drop u <= lastUpdateId
    k = BookKeeper("binance", "BTC/USDT")
    lv = ((100.0, 1.0, "100", "1"),)
    k.apply(BookUpdate("binance", "BTC/USDT", "binance_spot", True, lv, (), 0, 0, seq=10))
    k.apply(BookUpdate("binance", "BTC/USDT", "binance_spot", False, lv, (), 1, 1, seq=12, first_seq=11))
    gap = BookUpdate(
        "binance", "BTC/USDT", "binance_spot", False, ((99.0, 1.0, "99", "1"),), (), 2, 2, seq=20, first_seq=15
    )
    assert k.apply(gap) is not None  # flagged quote of the last good book
    assert k.needs_resync
    assert k.counters.gaps == 1
    # the new snapshot ends at 17: the held event (15..20) is the first to apply (U <= 18 <= u)
    k.apply(BookUpdate("binance", "BTC/USDT", "binance_spot", True, lv, (), 3, 3, seq=17))
    assert k.synced
    assert k.last_seq == 20
    assert k.quote()[9] & QuoteFlag.blocking() == 0
