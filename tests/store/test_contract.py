"""The behaviour every store promises, run against each backend (see conftest `make_store`)."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom.errors import ConfigError, ExpiredKeyError, StoreError
from headroom.store import Store
from headroom.store.base import DAY, DEFAULT_TTL, TOMBSTONE_TTL

MakeStore = Callable[..., Store]
Advance = Callable[[float], None]


def noise(seed: int, size: int = 20_000) -> str:
    """Text that zstd cannot shrink much: about size / 2 stored bytes."""
    return random.Random(seed).randbytes(size // 2).hex()


def test_key_is_the_first_16_hex_digits_of_the_sha256_of_the_utf8(store: Store) -> None:
    assert store.put("héllo") == hashlib.sha256("héllo".encode()).hexdigest()[:16]


def test_the_same_text_gets_the_same_key_and_one_entry(store: Store) -> None:
    assert store.put("same") == store.put("same")
    assert store.stats().keys == 1


def test_different_texts_get_different_keys(store: Store) -> None:
    assert store.put("one") != store.put("two")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\x00",
        "a\x00b\x00\x00",
        "lone \ud800 surrogates \udfff from json",
        "héllo 世界 🎉",
        "crlf\r\nand\rcr\n",
        "x" * 1_000_000,
    ],
    ids=["empty", "nul", "nuls", "surrogates", "unicode", "newlines", "large"],
)
def test_get_returns_the_exact_original(store: Store, text: str) -> None:
    assert store.get(store.put(text)) == text


def test_an_unknown_key_returns_none(store: Store) -> None:
    assert store.get("0123456789abcdef") is None
    assert store.get("not a key") is None


def test_a_key_expires_ttl_after_its_last_use(store: Store, advance: Advance) -> None:
    key = store.put("short-lived")
    advance(DEFAULT_TTL)
    with pytest.raises(ExpiredKeyError) as raised:
        store.get(key)
    assert raised.value.key == key
    assert "re-run the command" in str(raised.value)


def test_a_key_lives_until_its_ttl_runs_out(store: Store, advance: Advance) -> None:
    key = store.put("still here")
    advance(DEFAULT_TTL - 1)
    assert store.get(key) == "still here"


def test_a_custom_ttl_applies(make_store: MakeStore, advance: Advance) -> None:
    store = make_store(ttl=60)
    key = store.put("a minute")
    advance(60)
    with pytest.raises(ExpiredKeyError):
        store.get(key)


def test_get_refreshes_the_last_use(store: Store, advance: Advance) -> None:
    key = store.put("kept alive by reads")
    for _ in range(3):
        advance(DEFAULT_TTL - 1)
        assert store.get(key) == "kept alive by reads"


def test_touch_refreshes_known_keys_and_ignores_unknown_ones(
    store: Store, advance: Advance
) -> None:
    kept, left = store.put("forwarded"), store.put("not forwarded")
    advance(DEFAULT_TTL - 1)
    store.touch([kept, "ffffffffffffffff", kept])
    advance(2)
    assert store.get(kept) == "forwarded"
    with pytest.raises(ExpiredKeyError):
        store.get(left)


def test_touch_does_not_revive_an_expired_key(store: Store, advance: Advance) -> None:
    key = store.put("gone")
    advance(DEFAULT_TTL)
    store.touch([key])
    with pytest.raises(ExpiredKeyError):
        store.get(key)


def test_a_put_of_held_text_refreshes_it(store: Store, advance: Advance) -> None:
    key = store.put("again and again")
    advance(DEFAULT_TTL - 1)
    store.put("again and again")
    advance(DEFAULT_TTL - 1)
    assert store.get(key) == "again and again"


def test_a_put_of_expired_text_revives_the_same_key(store: Store, advance: Advance) -> None:
    key = store.put("back again")
    advance(DEFAULT_TTL)
    assert store.stats().expired == 1
    assert store.put("back again") == key
    assert store.get(key) == "back again"
    assert (store.stats().keys, store.stats().expired) == (1, 0)


def test_the_least_recently_used_original_is_evicted_above_the_cap(
    make_store: MakeStore, advance: Advance
) -> None:
    store = make_store(max_bytes=25_000)
    first, second = store.put(noise(1)), store.put(noise(2))
    advance(1)
    third = store.put(noise(3))
    with pytest.raises(ExpiredKeyError):
        store.get(first)
    assert store.get(second) == noise(2)
    assert store.get(third) == noise(3)
    assert store.stats().stored_bytes <= 25_000


def test_a_recent_use_protects_from_eviction(make_store: MakeStore, advance: Advance) -> None:
    store = make_store(max_bytes=25_000)
    first = store.put(noise(1))
    advance(1)
    second = store.put(noise(2))
    advance(1)
    store.touch([first])
    advance(1)
    store.put(noise(3))
    assert store.get(first) == noise(1)
    with pytest.raises(ExpiredKeyError):
        store.get(second)


def test_an_original_larger_than_the_cap_is_kept_alone(
    make_store: MakeStore, advance: Advance
) -> None:
    store = make_store(max_bytes=1_000)
    small = store.put("small")
    advance(1)
    big = store.put(noise(4))
    assert store.get(big) == noise(4)
    with pytest.raises(ExpiredKeyError):
        store.get(small)


def test_stats_of_an_empty_store(store: Store) -> None:
    stats = store.stats()
    assert (stats.keys, stats.expired, stats.original_bytes, stats.stored_bytes) == (0, 0, 0, 0)
    assert stats.oldest_use is None


def test_stats_count_held_and_expired_keys(
    store: Store, clock: Callable[[], float], advance: Advance
) -> None:
    store.put("old")
    advance(DEFAULT_TTL / 2)
    store.put("newer")
    store.put("néwest")
    advance(DEFAULT_TTL / 2)
    stats = store.stats()
    assert (stats.keys, stats.expired) == (2, 1)
    assert stats.original_bytes == len("newer") + len("néwest".encode())
    assert stats.stored_bytes > 0
    assert stats.oldest_use == clock() - DEFAULT_TTL / 2
    assert stats.location


def test_purge_drops_expired_originals_then_old_tombstones(store: Store, advance: Advance) -> None:
    key = store.put("expiring")
    advance(DEFAULT_TTL)
    assert store.purge() == 1
    with pytest.raises(ExpiredKeyError):
        store.get(key)
    advance(TOMBSTONE_TTL - DAY)
    assert store.purge() == 0
    advance(2 * DAY)
    assert store.purge() == 1
    assert store.get(key) is None


def test_purge_keeps_held_originals(store: Store) -> None:
    key = store.put("held")
    assert store.purge() == 0
    assert store.get(key) == "held"


def test_purge_everything_empties_the_store(store: Store, advance: Advance) -> None:
    store.put("expired")
    advance(DEFAULT_TTL)
    key = store.put("held")
    assert store.purge(everything=True) == 2
    assert store.get(key) is None
    assert store.stats().keys == 0


def test_verify_finds_nothing_wrong_in_a_healthy_store(store: Store) -> None:
    for index in range(10):
        store.put(f"text {index}")
    assert store.verify() == []


def test_a_closed_store_raises_store_error(store: Store) -> None:
    key = store.put("before closing")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get(key)
    with pytest.raises(StoreError, match="closed"):
        store.put("after closing")


def test_threads_can_share_a_store(store: Store) -> None:
    failures: list[str] = []

    def work(thread: int) -> None:
        for index in range(50):
            text = f"thread {thread} text {index}"
            if store.get(store.put(text)) != text:
                failures.append(text)
            store.put("shared by all")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert store.stats().keys == 4 * 50 + 1


@pytest.mark.parametrize(
    "options",
    [{"ttl": 0}, {"ttl": -1.0}, {"ttl": float("nan")}, {"max_bytes": 0}, {"max_bytes": 1.5}],
)
def test_a_limit_no_store_can_honour_is_a_config_error(
    make_store: MakeStore, options: dict[str, float]
) -> None:
    with pytest.raises(ConfigError, match="default"):
        make_store(**options)


texts = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(text=texts)
def test_get_of_put_is_the_identity(store: Store, text: str) -> None:
    assert store.get(store.put(text)) == text


def test_a_note_is_recalled_as_it_was_remembered(store: Store) -> None:
    assert store.recall("decision:abc") is None
    store.remember("decision:abc", "compressed \x00 output \ud800")
    assert store.recall("decision:abc") == "compressed \x00 output \ud800"
    store.remember("decision:abc", "replaced")
    assert store.recall("decision:abc") == "replaced"


def test_a_note_expires_ttl_after_its_last_use(store: Store, advance: Advance) -> None:
    store.remember("n", "v")
    advance(DEFAULT_TTL - 10)
    assert store.recall("n") == "v"
    advance(DEFAULT_TTL - 10)
    assert store.recall("n") == "v"
    advance(DEFAULT_TTL + 1)
    assert store.recall("n") is None


def test_purge_everything_drops_notes_too(store: Store) -> None:
    store.remember("n", "v")
    assert store.purge(everything=True) >= 1
    assert store.recall("n") is None


def test_notes_count_against_the_cap_and_push_out_older_originals(
    make_store: MakeStore, advance: Advance
) -> None:
    store = make_store(max_bytes=25_000)
    key = store.put(noise(1))
    advance(1)
    store.remember("decision:a", noise(2))
    advance(1)
    store.remember("decision:b", noise(3))
    with pytest.raises(ExpiredKeyError):
        store.get(key)
    assert (store.recall("decision:a"), store.recall("decision:b")) == (noise(2), noise(3))


def test_the_least_recently_used_note_is_evicted_and_a_recall_is_a_use(
    make_store: MakeStore, advance: Advance
) -> None:
    store = make_store(max_bytes=25_000)
    store.remember("a", noise(1))
    advance(1)
    store.remember("b", noise(2))
    advance(1)
    assert store.recall("a") == noise(1)
    advance(1)
    store.remember("c", noise(3))
    assert store.recall("b") is None
    assert (store.recall("a"), store.recall("c")) == (noise(1), noise(3))


def test_an_original_pushes_out_older_notes(make_store: MakeStore, advance: Advance) -> None:
    store = make_store(max_bytes=25_000)
    store.remember("old", noise(1))
    advance(1)
    first = store.put(noise(2))
    advance(1)
    second = store.put(noise(3))
    assert store.recall("old") is None
    assert (store.get(first), store.get(second)) == (noise(2), noise(3))


def test_a_replaced_note_counts_once(make_store: MakeStore, advance: Advance) -> None:
    store = make_store(max_bytes=25_000)
    for seed in range(5):
        store.remember("prefix:s", noise(seed))
        advance(1)
    key = store.put(noise(9))
    assert (store.recall("prefix:s"), store.get(key)) == (noise(4), noise(9))


def test_a_note_larger_than_the_cap_is_kept_alone(make_store: MakeStore, advance: Advance) -> None:
    store = make_store(max_bytes=1_000)
    key = store.put("small")
    store.remember("small note", "tiny")
    advance(1)
    store.remember("big", noise(4))
    assert store.recall("big") == noise(4)
    assert store.recall("small note") is None
    with pytest.raises(ExpiredKeyError):
        store.get(key)
