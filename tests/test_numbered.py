"""Line-numbered reads: prefixes split off and restored on kept lines."""

from __future__ import annotations

from headroom import numbered


def claude_read(lines: list[str], start: int = 1) -> str:
    return "\n".join(f"{n:>6}→{line}" for n, line in enumerate(lines, start))


def test_claude_code_read_format_is_split_into_prefixes_and_body() -> None:
    read = numbered.split(claude_read(["a", "b", "c"], start=41))
    assert read is not None
    assert read.body == "a\nb\nc"
    assert read.prefixes == ["    41→", "    42→", "    43→"]
    assert read.rest == ""


def test_cat_n_format_is_recognised() -> None:
    read = numbered.split("     1\tone\n     2\ttwo\n     3\tthree")
    assert read is not None and read.body == "one\ntwo\nthree"


def test_a_trailing_reminder_is_carried_through() -> None:
    text = claude_read(["a", "b", "c"]) + "\n\n<system-reminder>x</system-reminder>"
    read = numbered.split(text)
    assert read is not None
    assert read.rest == "\n\n<system-reminder>x</system-reminder>"
    joined = numbered.join(read, ["a", "[... marker]", "c"], [0, None, 2])
    assert joined == "     1→a\n[... marker]\n     3→c\n\n<system-reminder>x</system-reminder>"


def test_plain_text_is_not_a_numbered_read() -> None:
    assert numbered.split("12 apples\nno number here\n3 pears") is None
