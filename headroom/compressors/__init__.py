"""The typed compressors, one file each, behind the registry in `base`.

Built-ins register through the same `register` an extension would use; they are imported
on first use, so `import headroom` stays fast.
"""

from __future__ import annotations

import importlib
from functools import cache

from headroom.compressors import base
from headroom.compressors.base import Compressed, Compressor, Context, register

BUILTINS = ("log", "json", "code", "search", "diff", "html", "prose")


@cache
def load_builtins() -> None:
    """Import (and so register) every built-in compressor, once."""
    for name in BUILTINS:
        importlib.import_module(f"headroom.compressors.{name}")


def get(kind: str) -> Compressor | None:
    """The compressor for a kind, built-ins included."""
    load_builtins()
    return base.get(kind)


def kinds() -> list[str]:
    """Every kind that has a compressor, built-ins included."""
    load_builtins()
    return base.kinds()


__all__ = [
    "BUILTINS",
    "Compressed",
    "Compressor",
    "Context",
    "get",
    "kinds",
    "load_builtins",
    "register",
]
