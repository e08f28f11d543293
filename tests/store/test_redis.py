"""What the Redis store does beyond the shared contract: its URLs, errors that say what to
check, and several stores (as several proxies would) sharing one database at once."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import cast

import pytest
import redis
import zstandard

from headroom.errors import ConfigError, ExpiredKeyError, StoreError
from headroom.store import open_store
from headroom.store.base import DEFAULT_TTL, pack
from headroom.store.redis import FORMS, RedisStore, Target, parse_url
from headroom.store.redis_lua import PREFIX
from tests.redis_server import free_port
from tests.store.test_contract import noise

pytestmark = pytest.mark.integration

Advance = Callable[[float], None]


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("redis://127.0.0.1:6379/0", Target("127.0.0.1", 6379, 0, None, None, False)),
        ("redis://:s%40cret@cache.internal:6380/3", Target("cache.internal", 6380, 3, None, "s@cret", False)),
        ("redis://alice:pw@cache/2", Target("cache", 6379, 2, "alice", "pw", False)),
        ("rediss://cache.example.com", Target("cache.example.com", 6379, 0, None, None, True)),
        ("redis://[::1]:7000/1", Target("::1", 7000, 1, None, None, False)),
    ],
)  # fmt: skip
def test_a_redis_url_names_server_database_and_credentials(url: str, target: Target) -> None:
    assert parse_url(url) == target


def test_the_location_shows_no_credentials() -> None:
    assert parse_url("rediss://bob:pw@[::1]:7000/1").location == "rediss://[::1]:7000/1"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis://", "the host is missing"),
        ("redis://:6379/0", "the host is missing"),
        ("redis://cache:port/0", "the port is not a number"),
        ("redis://cache:70000/0", "the port is not a number"),
        ("redis://cache:0/0", "the port is not a number"),
        ("redis://cache:6379/zero", "the database 'zero' is not a number"),
        ("redis://cache:6379/0/1", "the database '0/1' is not a number"),
        ("redis://cache:6379/0?ssl=true", "options after"),
        ("redis://:hunter2@cache:x/0", r"redis://:\*\*\*@cache:x/0"),
    ],
)
def test_a_malformed_redis_url_is_a_config_error_naming_the_form(url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as raised:
        open_store(url)
    assert FORMS in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_the_accepted_forms_of_open_store_include_redis() -> None:
    with pytest.raises(ConfigError, match=r"memory://.*redis://\[\[USER\]:PASSWORD@\]HOST"):
        open_store("redis:/cache")


def test_an_unreachable_server_is_a_store_error_saying_what_to_check() -> None:
    port = free_port()
    with pytest.raises(StoreError, match=rf"redis://127.0.0.1:{port}/0: could not connect") as e:
        open_store(f"redis://127.0.0.1:{port}/0")
    assert f"Check that redis-server is running at 127.0.0.1:{port}" in str(e.value)
    assert isinstance(e.value.__cause__, redis.ConnectionError)


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client of the test's database, as another tool would open it."""
    with redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.fixture
def make(redis_url: str, clock: Callable[[], float]) -> Iterator[Callable[..., RedisStore]]:
    """Opens stores on the test's database and clock, as separate proxies would."""
    opened: list[RedisStore] = []

    def make(**options: int) -> RedisStore:
        opened.append(RedisStore(redis_url, clock=clock, **options))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


def test_a_wrong_password_is_a_store_error_naming_the_credentials(
    redis_url: str, raw: redis.Redis
) -> None:
    raw.acl_setuser(
        "headroom-test", enabled=True, passwords=["+right"], keys=["~*"], commands=["+@all"]
    )
    try:
        url = redis_url.replace("//", "//headroom-test:wrong@")
        with pytest.raises(StoreError, match="Check the user and password") as raised:
            open_store(url)
        assert "wrong" not in str(raised.value)
        store = open_store(url.replace(":wrong@", ":right@"))
        assert store.get(store.put("authenticated")) == "authenticated"
        store.close()
    finally:
        raw.acl_deluser("headroom-test")


def test_two_stores_share_originals_and_notes(make: Callable[..., RedisStore]) -> None:
    first, second = make(), make()
    key = first.put("made by one proxy")
    assert second.get(key) == "made by one proxy"
    assert second.put("made by one proxy") == key
    first.remember("prefix:session", "decided once")
    assert second.recall("prefix:session") == "decided once"
    assert second.stats().keys == first.stats().keys == 1


def test_two_stores_see_each_others_expiry(
    make: Callable[..., RedisStore], advance: Advance
) -> None:
    first, second = make(), make()
    kept, dropped = first.put("used by the other"), first.put("used by none")
    advance(DEFAULT_TTL - 1)
    second.touch([kept])
    advance(2)
    assert first.get(kept) == "used by the other"
    with pytest.raises(ExpiredKeyError):
        second.get(dropped)


def held_sizes(raw: redis.Redis) -> list[tuple[int, int]]:
    """The stored and original bytes of each held original, read from the database itself."""
    sizes = []
    for key in cast(list[bytes], raw.zrange(f"{PREFIX}held", 0, -1)):
        body, size = cast(list[bytes], raw.hmget(f"{PREFIX}o:{key.decode()}", "b", "n"))
        sizes.append((len(body), int(size)))
    return sizes


def test_concurrent_puts_from_many_stores_keep_the_accounting_exact(
    make: Callable[..., RedisStore], raw: redis.Redis
) -> None:
    stores = [make(max_bytes=400_000) for _ in range(4)]
    failures: list[str] = []

    def work(store: RedisStore, thread: int) -> None:
        for index in range(40):
            text = noise(index, 4_000) if index % 2 else f"store {thread} text {index}"
            if store.get(store.put(text)) != text:
                failures.append(text)

    threads = [threading.Thread(target=work, args=(s, n)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    stats = stores[0].stats()
    assert stats.keys == 4 * 20 + 20
    held = held_sizes(raw)
    assert stats.stored_bytes == sum(stored for stored, _ in held)
    assert stats.original_bytes == sum(original for _, original in held)
    assert stores[0].verify() == []


def test_a_put_through_one_store_evicts_what_another_used_least(
    make: Callable[..., RedisStore], advance: Advance
) -> None:
    first, second = make(max_bytes=25_000), make(max_bytes=25_000)
    old = first.put(noise(1))
    advance(1)
    recent = second.put(noise(2))
    advance(1)
    first.get(old)
    second.put(noise(3))
    assert second.get(old) == noise(1)
    with pytest.raises(ExpiredKeyError):
        first.get(recent)
    assert first.stats().stored_bytes <= 25_000


def forge(raw: redis.Redis, key: str, *, held: bool) -> None:
    """Writes an entry under `key` for another original whose digest shares that prefix."""
    digest = key + "0" * (64 - len(key))
    entry = f"{PREFIX}o:{key}"
    if held:
        body = pack(b"another original")
        raw.hset(entry, mapping={"d": digest, "b": body, "n": 16, "s": len(body), "t": 1e12})
        raw.zadd(f"{PREFIX}held", {key: 0})
        raw.hincrby(f"{PREFIX}usage", "stored", len(body))
        raw.hincrby(f"{PREFIX}usage", "original", 16)
    else:
        raw.hset(entry, mapping={"d": digest, "e": 0})
        raw.zadd(f"{PREFIX}dead", {key: 0})


@pytest.mark.parametrize("held", [True, False], ids=["held", "tombstone"])
def test_a_collision_gives_the_newcomer_a_longer_key(
    make: Callable[..., RedisStore], raw: redis.Redis, held: bool
) -> None:
    store = make()
    digest = hashlib.sha256(b"newcomer").hexdigest()
    forge(raw, digest[:16], held=held)
    key = store.put("newcomer")
    assert key == digest[:20]
    assert store.put("newcomer") == key
    assert store.get(key) == "newcomer"
    if held:
        assert store.get(digest[:16]) == "another original"
    else:
        with pytest.raises(ExpiredKeyError):
            store.get(digest[:16])


def test_a_damaged_body_is_reported_by_verify_and_get(
    make: Callable[..., RedisStore], raw: redis.Redis
) -> None:
    store = make()
    good, key = store.put("good"), store.put("soon damaged")
    raw.hset(f"{PREFIX}o:{key}", "b", b"\x00\xff")
    assert store.verify() == [key]
    with pytest.raises(StoreError, match=rf"{key} in {store.location}.*verify\(\)") as raised:
        store.get(key)
    assert isinstance(raised.value.__cause__, zstandard.ZstdError)
    assert store.get(good) == "good"


def test_a_database_laid_out_by_a_newer_headroom_is_refused(
    redis_url: str, raw: redis.Redis
) -> None:
    raw.set(f"{PREFIX}schema", b"2")
    with pytest.raises(StoreError, match="upgrade headroom, or point it at another database"):
        RedisStore(redis_url)


def test_a_server_that_forgot_the_scripts_gets_them_again(
    make: Callable[..., RedisStore], raw: redis.Redis
) -> None:
    store = make()
    key = store.put("before the flush")
    raw.script_flush()
    assert store.get(key) == "before the flush"
    assert store.get(store.put("after the flush")) == "after the flush"


def test_purging_everything_leaves_other_data_in_the_database_alone(
    make: Callable[..., RedisStore], raw: redis.Redis
) -> None:
    store = make()
    for index in range(2_500):  # more than one purge batch
        store.put(f"text {index}")
    store.remember("note", "value")
    raw.set("someone-else:key", b"theirs")
    assert store.purge(everything=True) == 2_501
    assert raw.get("someone-else:key") == b"theirs"
    assert (store.stats().keys, store.stats().stored_bytes) == (0, 0)
