"""Line templates for the log compressor: what "the same kind of line" means.

A line's template is what stays when its particulars are masked: digits and hex letters
(numbers, ids, hashes, timestamps alike) become 0, punctuation becomes a space, only the
first tokens count, rare tokens become wildcards, and columns with many values among lines
of one shape become wildcards while columns with few values (a level, a method) stay.
Everything works on ASCII-lowercased bytes and runs once per distinct line, not per line.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_MASKED_CHARS = b"123456789abcdef"
_SPLIT_CHARS = b"\"',:;=()[]{}|<>"
_MASK = bytes.maketrans(
    _MASKED_CHARS + _SPLIT_CHARS, b"0" * len(_MASKED_CHARS) + b" " * len(_SPLIT_CHARS)
)
_WILDCARDS = re.compile(rb"\*(?: \*)+")

_TEMPLATE_TOKENS = 10
_RARE_SHARE = 0.01
_VARIABLE_SHARE = 0.25


def mask(low: bytes) -> list[bytes]:
    """The lines of `low` with digits and hex letters as 0 and punctuation as spaces."""
    return low.translate(_MASK).split(b"\n")


def templates(masked: list[bytes]) -> dict[bytes, bytes]:
    """Maps each masked line to its template, in three steps: only the line's first tokens
    count (a long line's shape is in its head; its tail, a message or a user agent, would
    make every line unique) and a run of 0s reads as one (7 % and 72 % alike); tokens in
    fewer than 1 % of those heads become wildcards (one `*` per run); then columns with many
    values become wildcards (see `merge_columns`)."""
    heads = {
        line: b" ".join(line.split(None, _TEMPLATE_TOKENS)[:_TEMPLATE_TOKENS])
        for line in set(masked)
    }
    collapsed = {head: _squeeze_zeros(head) for head in set(heads.values())}
    distinct = {head: head.split() for head in set(collapsed.values())}
    counts = Counter(token for tokens in distinct.values() for token in tokens)
    floor = max(2, int(len(distinct) * _RARE_SHARE))
    frequent: dict[bytes, bytes] = {}
    for head, tokens in distinct.items():
        template = b" ".join(t if counts[t] >= floor else b"*" for t in tokens)
        frequent[head] = _WILDCARDS.sub(b"*", template)
    merged = merge_columns(set(frequent.values()))
    return {line: merged[frequent[collapsed[head]]] for line, head in heads.items()}


def _squeeze_zeros(head: bytes) -> bytes:
    """Each run of 0s as one 0 (`re.sub(b"0+", b"0", head)`, in fewer passes of C)."""
    while b"00" in head:
        head = head.replace(b"00", b"0")
    return head


def merge_columns(templates: Iterable[bytes]) -> dict[bytes, bytes]:
    """Among templates of one shape (token count, first token), a column with many distinct
    values becomes `*`, provided most columns stay: a level or a method keeps its few values
    apart, an id or a path stops splitting the shape into one-offs."""
    groups: dict[tuple[int, bytes], list[list[bytes]]] = {}
    for template in sorted(templates):
        tokens = template.split()
        groups.setdefault((len(tokens), tokens[0] if tokens else b""), []).append(tokens)
    merged: dict[bytes, bytes] = {}
    for (width, _), members in groups.items():
        limit = max(1, int(len(members) * _VARIABLE_SHARE))
        variable = [len({tokens[c] for tokens in members}) > limit for c in range(width)]
        merge = len(members) > 1 and sum(variable) * 2 <= width
        for tokens in members:
            key = b" ".join(tokens)
            if merge:
                tokens = [b"*" if v else t for v, t in zip(variable, tokens, strict=True)]
            merged[key] = b" ".join(tokens)
    return merged
