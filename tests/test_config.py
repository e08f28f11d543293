"""Settings from the environment, with loud errors for bad values."""

from __future__ import annotations

import pytest

from headroom.config import Settings, default_home
from headroom.errors import ConfigError


def test_environment_variables_map_onto_fields() -> None:
    settings = Settings.from_env({"HEADROOM_MIN_TOKENS": "50", "HEADROOM_STORE": "memory://"})
    assert (settings.min_tokens, settings.store) == (50, "memory://")


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="HEADROOM_TTL_DAYS='soon'"):
        Settings.from_env({"HEADROOM_TTL_DAYS": "soon"})
    with pytest.raises(ConfigError, match="must not be negative"):
        Settings.from_env({"HEADROOM_MIN_TOKENS": "-1"})


def test_the_default_store_is_a_sqlite_file_in_the_home(headroom_home: object) -> None:
    assert Settings().store_url() == f"sqlite:///{default_home() / 'store.db'}"
    assert str(default_home()) == str(headroom_home)
