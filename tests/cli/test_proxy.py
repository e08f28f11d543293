"""`headroom proxy`: flags lay over their HEADROOM_* twins; the banner says how to use it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from headroom.cli.proxy import banner, settings_with
from headroom.config import Settings
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


def test_the_openai_url_flag_lays_over_its_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from headroom.cli.proxy import proxy_command

    assert settings_with().openai_url == "https://api.openai.com/v1"
    monkeypatch.setenv("HEADROOM_OPENAI_URL", "http://127.0.0.1:1/v1")
    assert settings_with().openai_url == "http://127.0.0.1:1/v1"
    assert settings_with(openai_url="http://127.0.0.1:2/v1").openai_url == "http://127.0.0.1:2/v1"
    result = CliRunner().invoke(proxy_command, ["--help"])
    assert "--openai-url" in result.output


def test_the_banner_gives_the_lines_that_point_an_agent_at_the_proxy() -> None:
    text = banner(Settings(store="memory://", port=9911))
    assert (
        text.splitlines()[0]
        == "headroom proxy on http://127.0.0.1:9911 (store memory://, mode cache)"
    )
    assert "  export ANTHROPIC_BASE_URL=http://127.0.0.1:9911" in text.splitlines()
    assert "  export OPENAI_BASE_URL=http://127.0.0.1:9911/v1" in text.splitlines()
    assert "beyond loopback" not in text


def test_the_banner_hides_a_store_password_and_warns_off_loopback() -> None:
    text = banner(Settings(store="redis://:s3cret@cache.internal:6379/2", host="0.0.0.0"))
    assert "s3cret" not in text and "redis://:***@cache.internal:6379/2" in text
    assert "http://127.0.0.1:8787" in text
    assert "beyond loopback" in text and "--admin-token" in text


@pytest.mark.integration
def test_a_bad_store_url_fails_in_one_line_before_the_banner() -> None:
    command = [sys.executable, "-m", "headroom.cli", "proxy", "--store", "foo://", "--port", "9"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("headroom: error: store url 'foo://' is not one")
    assert len(done.stderr.splitlines()) == 1 and "ANTHROPIC_BASE_URL" not in done.stderr
