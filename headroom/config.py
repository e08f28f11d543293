"""One typed place for headroom's settings.

The core receives a frozen `Settings`; only `Settings.from_env` reads the environment
(`HEADROOM_*` variables), and the CLI maps its flags onto the same fields. Bad values fail
loudly with the variable's name and what it accepts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from headroom.errors import ConfigError

DAY = 86_400.0
MODES = ("cache", "token")
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def default_home() -> Path:
    """Where headroom keeps its files: `~/.headroom` unless HEADROOM_HOME says otherwise."""
    return Path(os.environ.get("HEADROOM_HOME") or Path.home() / ".headroom")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting headroom has, with its default."""

    mode: str = "cache"
    """`cache`: compress each payload once and replay it (prefix stays byte-identical);
    `token`: recompress every turn for maximum savings, whatever the cache cost."""
    min_tokens: int = 200
    """Payloads smaller than this are left alone."""
    read_whole_below_tokens: int = 3000
    """A source file read under this size stays whole: the agent is likely to edit it."""
    store: str = ""
    """Store URL (`sqlite:////abs/path.db`, `redis://HOST:PORT/DB`, `memory://`); empty means
    the SQLite file in home."""
    ttl_days: float = 7.0
    """A stored original lives this long after its last use."""
    max_store_mb: int = 1024
    """The store's size cap; least recently used originals are evicted first."""
    budget_tokens: int = 0
    """The context budget for a request; 0 means the model's window minus the reserve."""
    budget_reserve_tokens: int = 20_000
    """Room left for the answer and the client's own additions when the budget is the window."""
    move_volatile: bool = False
    """Move volatile system-prompt lines (dates, git status) to its end; opt-in, as it
    changes the prompt the client wrote."""
    host: str = "127.0.0.1"
    """The address the proxy listens on."""
    port: int = 8787
    """The port the proxy listens on."""
    anthropic_url: str = "https://api.anthropic.com"
    """The Anthropic API's base URL, as its SDK takes it; the proxy forwards there."""
    openai_url: str = "https://api.openai.com/v1"
    """The OpenAI API's base URL, as its SDK takes it (with `/v1`); the proxy forwards there."""
    admin_token: str = ""
    """When set, the admin endpoints (retrieve, compress, stats, metrics) answer anyone who
    sends it as a bearer token; when empty, loopback clients only."""
    gemini_url: str = "https://generativelanguage.googleapis.com"
    """The Gemini API's base URL, as its SDK takes it (without a version); the proxy forwards
    there."""
    bedrock_url: str = ""
    """Bedrock Runtime's base URL; empty means `https://bedrock-runtime.{region}.amazonaws.com`."""
    bedrock_region: str = ""
    """The AWS region Bedrock requests are signed for; empty means AWS_REGION or
    AWS_DEFAULT_REGION (as AWS's own tools read them), else us-east-1."""
    compress_timeout_ms: int = 2000
    """How long the proxy compresses one request: payloads not reached by then are forwarded
    as they came (and stay so on later turns); 0 means no limit."""
    workers: int = 1
    """Proxy worker processes; more than one needs a shared store (the SQLite file, Redis)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode {self.mode!r} is not one of: {', '.join(MODES)}")
        if self.workers < 1:
            raise ConfigError(f"workers must be 1 or more, got {self.workers}")

    def store_url(self) -> str:
        """The store URL, with the default SQLite file filled in."""
        return self.store or f"sqlite:///{default_home() / 'store.db'}"

    def bedrock_signing_region(self) -> str:
        """The AWS region of Bedrock requests, with the default filled in."""
        aws = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return self.bedrock_region or aws or "us-east-1"

    def bedrock_base_url(self) -> str:
        """Bedrock Runtime's base URL, with the region's default filled in."""
        region = self.bedrock_signing_region()
        return self.bedrock_url or f"https://bedrock-runtime.{region}.amazonaws.com"

    def environ(self) -> dict[str, str]:
        """Each setting as its `HEADROOM_*` variable: `from_env` reads them back as they are."""
        return {
            f"HEADROOM_{field.name.upper()}": _unparse(getattr(self, field.name))
            for field in fields(self)
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `HEADROOM_<FIELD>` variables (upper case), defaults elsewhere."""
        env = os.environ if environ is None else environ
        settings = cls()
        changes: dict[str, object] = {}
        for field in fields(cls):
            name = f"HEADROOM_{field.name.upper()}"
            if name in env:
                changes[field.name] = _parse(name, env[name], type(getattr(settings, field.name)))
        return replace(settings, **changes)  # type: ignore[arg-type]


def _parse(name: str, raw: str, kind: type) -> object:
    if kind is str:
        return raw
    if kind is bool:
        if raw.strip().lower() not in _BOOLEANS:
            raise ConfigError(f"{name}={raw!r} is not a boolean; use 1/0, true/false or yes/no")
        return _BOOLEANS[raw.strip().lower()]
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r} must not be negative")
    return value


def _unparse(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)
