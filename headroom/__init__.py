"""headroom: deterministic, reversible context compression for LLM agents.

from headroom import compress, retrieve
result = compress(messages, model="claude-sonnet-4-5")
result.messages        # the same conversation, tool results compressed
retrieve(key)          # the exact original behind a marker's key
"""

from __future__ import annotations

from headroom.api import CompressResult, compress, retrieve
from headroom.config import Settings
from headroom.errors import (
    ConfigError,
    ExpiredKeyError,
    HeadroomError,
    InvalidMessagesError,
    StoreError,
)
from headroom.pipeline import Transform

__all__ = [
    "CompressResult",
    "ConfigError",
    "ExpiredKeyError",
    "HeadroomError",
    "InvalidMessagesError",
    "Settings",
    "StoreError",
    "Transform",
    "compress",
    "retrieve",
]
__version__ = "0.1.0"
