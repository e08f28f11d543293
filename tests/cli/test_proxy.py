"""`headroom proxy`: flags lay over their HEADROOM_* twins."""

from __future__ import annotations

import pytest

from headroom.cli.proxy import settings_with
from headroom.errors import ConfigError


def test_a_flag_overrides_its_environment_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADROOM_PORT", "9000")
    monkeypatch.setenv("HEADROOM_ANTHROPIC_URL", "http://127.0.0.1:1234")
    settings = settings_with(host="0.0.0.0", port=None, anthropic_url=None)
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.anthropic_url == "http://127.0.0.1:1234"
    assert settings_with(port=8000).port == 8000


def test_a_bad_mode_flag_fails_loudly() -> None:
    with pytest.raises(ConfigError, match="mode"):
        settings_with(mode="fast")
