"""The one exception tree of headroom.

    HeadroomError                 anything headroom raises on purpose
    ├── InvalidMessagesError      a conversation that is neither Anthropic nor OpenAI shaped
    ├── ConfigError               a setting with a bad value (env var, flag or argument)
    └── StoreError                the store could not be opened, read or written
        └── ExpiredKeyError       the key existed, but its content has expired

Compressors never raise into the caller: the pipeline catches their failures and forwards
the original (fail open). Messages say what was wrong and what to do about it.
"""

from __future__ import annotations


class HeadroomError(Exception):
    """Base of every error headroom raises on purpose."""


class InvalidMessagesError(HeadroomError):
    """A conversation whose shape headroom cannot read."""


class ConfigError(HeadroomError):
    """A configuration value that cannot be used."""


class StoreError(HeadroomError):
    """The store of originals failed."""


class ExpiredKeyError(StoreError):
    """A key whose original has expired from the store."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"key {key} has expired: its original is no longer stored. "
            "Get the content again the way it was first produced (re-run the command, re-read the file)."
        )
        self.key = key
