"""Exact offline token counts."""

from __future__ import annotations

import pytest

from headroom import tokens


@pytest.mark.parametrize(
    ("model", "encoding"),
    [("gpt-4o-mini", "o200k_base"), ("gpt-4-turbo", "cl100k_base"), ("gpt-3.5-turbo", "cl100k_base"),
     ("claude-sonnet-4-5", "o200k_base"), ("some-new-model", "o200k_base"), (None, "o200k_base")],
)  # fmt: skip
def test_models_map_to_encodings(model: str | None, encoding: str) -> None:
    assert tokens.encoding_name(model) == encoding


def test_counts_match_the_known_o200k_and_cl100k_tokenisations() -> None:
    assert tokens.count("hello world") == 2
    assert tokens.count("hello world", "gpt-4") == 2
    assert tokens.count("") == 0


def test_special_token_text_and_lone_surrogates_count_without_error() -> None:
    assert tokens.count("<|endoftext|>") > 1
    assert tokens.count("a\ud800b") >= 2


def test_at_least_agrees_with_count() -> None:
    text = "word " * 300
    assert tokens.at_least(text, 200)
    assert not tokens.at_least(text, tokens.count(text) + 1)
    assert not tokens.at_least("short", 200)
