"""The marker format renders and parses in one place."""

from __future__ import annotations

from headroom import markers

KEY = "0123456789abcdef"


def test_header_names_the_key_and_parses_back() -> None:
    line = markers.header(KEY, "log", 2400)
    assert markers.header_key(line + "\nrest") == KEY
    assert markers.header_key("[headroom nothex: log]") is None


def test_elided_lines_marker_parses_its_range() -> None:
    line = "    " + markers.elided_lines(120, 156, note="2 warnings")
    [elision] = markers.parse("kept\n" + line + "\nkept")
    assert (elision.first_line, elision.last_line, elision.key) == (120, 156, None)
    assert "37 lines elided (2 warnings)" in elision.text


def test_part_marker_names_its_key_and_keys_in_lists_each_once() -> None:
    other = "fedcba9876543210"
    text = "\n".join(
        [
            markers.header(KEY, "json", 3),
            markers.elided_part(480, "records", other, "ids: 1, 2"),
            markers.elided_part(3, "records", other),
        ]
    )
    assert markers.keys_in(text) == [KEY, other]


def test_markers_stay_short() -> None:
    from headroom import tokens

    assert tokens.count(markers.elided_lines(100_000, 199_999, note="12 errors")) <= 20
    assert tokens.count(markers.header(KEY, "search", 123_456)) <= 30


def test_keys_of_markers_inside_a_line_are_found() -> None:
    other = "fedcba9876543210"
    inline = '{"log": "first lines [... 40 lines elided, key=' + other + '] last line"}'
    assert markers.keys_in(markers.header(KEY, "json", 1) + "\n" + inline) == [KEY, other]
