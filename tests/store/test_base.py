"""The rules every backend shares: key derivation, packing, the integrity check."""

from __future__ import annotations

import hashlib

import pytest
import zstandard

from headroom.errors import StoreError
from headroom.store.base import derive_key, digest_of, encode, is_intact, pack, unpack

DIGEST = hashlib.sha256(b"the text").hexdigest()
OTHER = DIGEST[:16] + "0" * 48
"""A different digest that shares the first 16 digits (DIGEST does not end in 48 zeros)."""


def test_a_free_key_is_the_first_16_hex_digits() -> None:
    assert derive_key(DIGEST, lambda key: None) == DIGEST[:16]


def test_a_key_already_naming_the_same_digest_is_reused() -> None:
    assert derive_key(DIGEST, {DIGEST[:16]: DIGEST}.get) == DIGEST[:16]


def test_a_collision_lengthens_the_key_by_four_digits() -> None:
    assert derive_key(DIGEST, {DIGEST[:16]: OTHER}.get) == DIGEST[:20]


def test_repeated_collisions_lengthen_the_key_until_one_is_free() -> None:
    stored = {DIGEST[:16]: OTHER, DIGEST[:20]: OTHER, DIGEST[:24]: DIGEST}
    assert derive_key(DIGEST, stored.get) == DIGEST[:24]


def test_when_every_prefix_collides_the_key_is_the_whole_digest() -> None:
    assert derive_key(DIGEST, lambda key: OTHER) == DIGEST


def test_lone_surrogates_and_nul_are_hashed_as_their_utf8_bytes() -> None:
    text = "a\x00\ud800"
    assert encode(text) == b"a\x00\xed\xa0\x80"
    assert digest_of(encode(text)) == hashlib.sha256(b"a\x00\xed\xa0\x80").hexdigest()


def test_unpack_returns_what_was_packed() -> None:
    assert unpack(pack(encode("x\ud800y")), "k", "memory://") == "x\ud800y"


def test_unpack_of_a_damaged_body_is_a_store_error_saying_what_to_do() -> None:
    with pytest.raises(StoreError, match=r"key 0123.*store\.db.*verify\(\)") as raised:
        unpack(b"not zstd", "0123", "/tmp/store.db")
    assert isinstance(raised.value.__cause__, zstandard.ZstdError)


def test_is_intact_checks_the_digest_and_the_key() -> None:
    body = pack(b"the text")
    assert is_intact(DIGEST[:16], DIGEST, body, "memory://")
    assert not is_intact(DIGEST[:16], OTHER, body, "memory://")
    assert not is_intact(OTHER[16:32], DIGEST, body, "memory://")
    assert not is_intact(DIGEST[:16], DIGEST, b"damaged", "memory://")
