"""The code compressor: a source file becomes its outline, a faithful subset of its lines.

An agent reading a source file mostly needs to know what is in it: imports, types, every
function and method signature with the first line of its docs, constants. So the outline keeps
every line outside function bodies and elides each body behind its own marker (indented like
the body, `lines=` naming exactly that body), so one symbol's body can be fetched alone.

Rules, in the order they are painted over the lines (later rules win):
1. A comment block (or Python docstring) keeps its lines up to the first one with words.
2. A long literal value (a table, a long string) keeps its first lines and its closing line;
   one holding functions (an object of methods) is left to rule 3.
3. Every function-like node's body is elided; named ones nested in an elided body (a method of
   an object literal, an inner helper) keep their signature lines and closing line, so every
   defined name stays visible. Container bodies (classes, impls) are outlined, not elided.
   Signatures are always kept whole, however many lines they take.
4. A function named in the question (`ctx.query`) keeps its whole body and docs.
A run of elided lines that would cost fewer tokens than its marker stays verbatim, so short
bodies stay whole. A body's marker sits right under its signature and needs no note; a run
that resumes a body after a nested definition says whose body it is.
Kept lines are byte-exact; `origin` maps each to its input line.

Parsing is tree-sitter (grammar wheels, loaded lazily per language) and every node lookup
goes through one compiled query, so the work in Python is linear in lines and definitions.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

from headroom import markers
from headroom.compressors import code_languages
from headroom.compressors.base import Compressed, Context, register

# Errors are counted, not measured: a file cut short (an agent's partial read) is one error
# around everything whose definitions still parsed, while text in another language breaks into
# errors on most lines. Real code, even macro-heavy C++, stays under about 5 per 100 lines.
_MAX_ERRORS_PER_LINE = 0.1
_MIN_LINES = 8
# Parsing runs at about 10 MB/s; larger payloads are generated code, left to the pipeline.
_MAX_CHARS = 4_000_000
_WORD = re.compile(r"[A-Za-z0-9]")
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
# File names in a question name the file, not a symbol ("what does Gson.java define").
_FILE_NAME = re.compile(r"[\w./-]+\.[A-Za-z]{1,4}\b")
_QUESTION_WORDS = frozenset(
    {
        *("what", "which", "who", "how", "why", "where", "when", "does", "do", "did", "is"),
        *("are", "was", "the", "a", "an", "and", "or", "of", "in", "on", "to", "for", "with"),
        *("this", "that", "these", "those", "it", "its", "their", "there", "from", "by", "be"),
        *("can", "should"),
    }
)
_TOKEN = re.compile(r"[A-Za-z]+|[0-9]{1,3}|[^\sA-Za-z0-9]")
_CLOSERS = ("}", ")", "]")
_OPENERS = frozenset(("{", "(", "["))
# Nodes that bind a name to the function they hold (`x = () => ...`, `key: fn`), across the
# grammars, and the fields holding that name.
_BINDINGS = frozenset(
    (
        "variable_declarator",
        "pair",
        "assignment_expression",
        "assignment",
        "public_field_definition",
        "field_definition",
        "init_declarator",
        "let_declaration",
    )
)
_NAMING_FIELDS = ("name", "key", "left", "declarator", "pattern", "property")
_MAX_NAME_CHARS = 80
_MAX_DEPTH = 6
# A literal value (table, long string) over this many lines keeps only its first lines.
_LITERAL_MIN_LINES = 8
_LITERAL_SAMPLE_LINES = 2


class CodeCompressor:
    """Outlines a source file: signatures kept, bodies elided, one marker per body."""

    kind = "code"

    def compress(self, text: str, ctx: Context) -> Compressed | None:
        key = code_languages.resolve(ctx.language, text)
        if key is None:
            return None
        lines = text.split("\n")
        if len(lines) < _MIN_LINES or len(text) > _MAX_CHARS:
            return None
        captures = _parse(key, text.encode("utf-8", "surrogatepass"))
        if captures is None:
            return None
        outline = _Outline(lines, _query_names(ctx.query))
        functions = captures.get("function", [])
        outline.paint_comments(captures.get("comment", []))
        outline.paint_literals(captures.get("literal", []), functions)
        outline.paint_definitions(functions, captures.get("container", []))
        result = outline.render()
        return result if len(result.lines) < len(lines) else None


def _parse(key: str, source: bytes) -> dict[str, list[Any]] | None:
    """The query's captures for the file, or None when it is riddled with parse errors."""
    import tree_sitter

    language, query = code_languages.grammar(key)
    tree = tree_sitter.Parser(language).parse(source)
    captures: dict[str, list[Any]] = tree_sitter.QueryCursor(query).captures(tree.root_node)
    if len(captures.get("error", [])) > _MAX_ERRORS_PER_LINE * (tree.root_node.end_point[0] + 1):
        return None
    for nodes in captures.values():
        nodes.sort(key=lambda node: (node.start_byte, -node.end_byte))
    return captures


def _query_names(query: str) -> frozenset[str]:
    """Identifiers the question mentions, without its file names and question words."""
    words = _IDENTIFIER.findall(_FILE_NAME.sub(" ", query))
    return frozenset(word for word in words if word.lower() not in _QUESTION_WORDS)


def _node_text(node: Any) -> str:
    raw: bytes = node.text or b""
    return raw.decode("utf-8", "replace")


def _short_name(node: Any | None) -> str | None:
    """The last segment of a naming node (`a.b.c` -> `c`, `ns::f` -> `f`), if it is short."""
    if node is None or node.end_point[0] != node.start_point[0]:
        return None
    text = _node_text(node)
    if len(text) > _MAX_NAME_CHARS:
        return None
    names = _IDENTIFIER.findall(text)
    return names[-1] if names else None


def _own_name(node: Any) -> str | None:
    """The name a definition gives itself: a `name` field or a C/C++ function declarator."""
    name = node.child_by_field_name("name")
    if name is not None:
        return _short_name(name)
    declarator = node.child_by_field_name("declarator")
    while declarator is not None and declarator.type != "function_declarator":
        declarator = declarator.child_by_field_name("declarator")
    if declarator is not None:
        return _short_name(declarator.child_by_field_name("declarator"))
    # A Rust `impl Trait for Type` is known by its type.
    return _short_name(node.child_by_field_name("type")) if node.type == "impl_item" else None


def _given_name(node: Any) -> tuple[str | None, Any]:
    """(name, node whose first line starts the signature) for a definition.

    An anonymous function takes its name from what holds it (`const f = () => {}`,
    `key: function () {}`, `obj.m = function () {}`); an unnamed callback has none.
    """
    own = _own_name(node)
    if own is not None:
        return own, node
    parent = node.parent
    if parent is None or parent.type not in _BINDINGS:
        return None, node
    for field in _NAMING_FIELDS:
        holder = parent.child_by_field_name(field)
        if holder is not None and holder.start_byte < node.start_byte:
            return _short_name(holder), parent
    return None, node


class _Outline:
    """Per-line keep/elide state of one file, painted rule by rule, then rendered.

    `owner[row]` says whose body an elided line belongs to (an index into `names`; 0 is
    "no body": a comment's or a literal's tail), so a run of elided lines never spans two
    bodies.
    """

    def __init__(self, lines: list[str], asked: frozenset[str]) -> None:
        self.lines = lines
        self.asked = asked
        self.keep = [True] * len(lines)
        self.owner = [0] * len(lines)
        self.names: list[str] = [""]
        self.body_starts: set[int] = set()
        self.comment_start_by_end: dict[int, int] = {}
        self.comment_starts: set[int] = set()

    def _paint(self, first: int, last: int, keep: bool, owner: int = 0) -> None:
        last = min(last, len(self.lines) - 1)
        for row in range(max(first, 0), last + 1):
            self.keep[row] = keep
            self.owner[row] = owner

    def _first_worded_row(self, row: int, last: int) -> int:
        """The first of lines row..last that has a letter or digit (the docs' first sentence)."""
        while row < last and not _WORD.search(self.lines[row]):
            row += 1
        return row

    def _starts_line(self, node: Any) -> bool:
        row, column = node.start_point
        line = self.lines[row]
        return len(line) - len(line.lstrip()) == int(column)

    def paint_comments(self, comments: list[Any]) -> None:
        """Rule 1: a block of whole-line comments keeps only its lines up to the first words."""
        blocks: list[list[int]] = []
        for node in comments:
            if not self._starts_line(node):
                continue
            start, (end, end_column) = node.start_point[0], node.end_point
            if end_column == 0 and end > start:  # a Rust line comment ends after its newline
                end -= 1
            if blocks and start <= blocks[-1][1] + 1:
                blocks[-1][1] = max(blocks[-1][1], end)
            else:
                blocks.append([start, end])
        for start, end in blocks:
            self.comment_start_by_end[end] = start
            self.comment_starts.add(start)
            self._paint(self._first_worded_row(start, end) + 1, end, keep=False)

    def paint_literals(self, literals: list[Any], functions: list[Any]) -> None:
        """Rule 2: a long literal value keeps its first lines (its shape) and its closing line.

        A literal holding functions (an object of methods) is outlined as code instead.
        """
        function_starts = [node.start_byte for node in functions]
        painted_until = -1
        for node in literals:
            first, last = node.start_point[0], node.end_point[0]
            if node.start_byte < painted_until or last - first < _LITERAL_MIN_LINES:
                continue
            if first in self.comment_starts:
                continue  # a docstring, already shortened as a comment
            inner = bisect.bisect_left(function_starts, node.start_byte)
            if inner < len(function_starts) and function_starts[inner] < node.end_byte:
                continue
            if self.lines[last].lstrip().startswith(_CLOSERS):
                last -= 1
            self._paint(first + _LITERAL_SAMPLE_LINES + 1, last, keep=False)
            painted_until = node.end_byte

    def paint_definitions(self, functions: list[Any], containers: list[Any]) -> None:
        """Rules 3 and 4, outer definitions first so that nested ones paint over them.

        Definitions nested deeper than `_MAX_DEPTH` stay inside their ancestor's elided body,
        which bounds the painting to a few passes over the file however deep the nesting.
        """
        definitions = [(node, True) for node in functions] + [(node, False) for node in containers]
        definitions.sort(key=lambda item: (item[0].start_byte, -item[0].end_byte))
        open_ends: list[int] = []
        whole_until = -1
        for node, is_function in definitions:
            while open_ends and open_ends[-1] <= node.start_byte:
                open_ends.pop()
            body = node.child_by_field_name("body")
            if node.start_byte < whole_until or len(open_ends) >= _MAX_DEPTH or body is None:
                continue
            name, anchor = _given_name(node)
            if name is None and not self.keep[node.start_point[0]]:
                continue  # an unnamed callback inside an elided body is just part of it
            if is_function and name is not None and name in self.asked:
                self._keep_whole(anchor.start_point[0], node.end_point[0])
                whole_until = node.end_byte
                continue
            open_ends.append(node.end_byte)
            self._paint_definition(body, name, anchor.start_point[0], is_function)

    def _keep_whole(self, first: int, last: int) -> None:
        """Rule 4: the question names this function; keep it and all of its docs."""
        self._paint(self.comment_start_by_end.get(first - 1, first), last, keep=True)

    def _paint_definition(
        self, body: Any, name: str | None, first_row: int, is_function: bool
    ) -> None:
        body_first, body_last = body.start_point[0], body.end_point[0]
        braced = body.child_count > 0 and body.child(0).type in _OPENERS
        closing_kept = braced and self.lines[body_last].lstrip().startswith(_CLOSERS)
        if braced:
            signature_last = body_first
        else:
            signature_last = _signature_end_row(body)
            docstring = _leading_docstring(body)
            if docstring is not None:
                signature_last = self._first_worded_row(
                    docstring.start_point[0], docstring.end_point[0]
                )
        self._paint(first_row, signature_last, keep=True)  # even over a long default value
        if name is not None and closing_kept and body_last > signature_last:
            self._paint(body_last, body_last, keep=True)
        if is_function:
            self.names.append(name or "")
            self.body_starts.add(signature_last + 1)
            last = body_last - 1 if closing_kept else body_last
            self._paint(signature_last + 1, last, keep=False, owner=len(self.names) - 1)

    def render(self) -> Compressed:
        """Kept lines verbatim; each run of elided lines of one owner as a marker (if cheaper)."""
        out: list[str] = []
        origin: list[int | None] = []
        row = 0
        while row < len(self.lines):
            if self.keep[row]:
                out.append(self.lines[row])
                origin.append(row)
                row += 1
                continue
            end = row
            while (
                end + 1 < len(self.lines)
                and not self.keep[end + 1]
                and self.owner[end + 1] == self.owner[row]
            ):
                end += 1
            marker = self._marker(row, end)
            if marker is None:
                out.extend(self.lines[row : end + 1])
                origin.extend(range(row, end + 1))
            else:
                out.append(marker)
                origin.append(None)
            row = end + 1
        return Compressed(lines=out, origin=origin)

    def _marker(self, first: int, last: int) -> str | None:
        """The marker for rows first..last, or None when the rows are cheaper than it.

        A body elided right below its signature needs no note; a run that resumes a body
        after a nested definition names whose body it is.
        """
        run = self.lines[first : last + 1]
        name = self.names[self.owner[first]]
        note = f"body of {name}" if name and first not in self.body_starts else ""
        text = markers.elided_lines(first + 1, last + 1, "lines", note)
        if not _costs_more_than(run, _token_estimate(text)):
            return None
        indent = next((line for line in run if line.strip()), "")
        line_end = "\r" if run[0].endswith("\r") else ""  # keep a CRLF file's line ends
        return indent[: len(indent) - len(indent.lstrip())] + text + line_end


def _token_estimate(text: str) -> int:
    """Roughly the tokens of a line (within ~20 % for code and markers), without a tokenizer."""
    return len(_TOKEN.findall(text))


def _costs_more_than(lines: list[str], tokens: int) -> bool:
    """Whether the lines hold more than `tokens` tokens (reading only as many as needed)."""
    total = 0
    for line in lines:
        total += _token_estimate(line)
        if total > tokens:
            return True
    return False


def _signature_end_row(body: Any) -> int:
    """The last line of the signature before an indented (Python) body: its `:` line."""
    sibling = body.prev_sibling
    while sibling is not None and sibling.is_extra:
        sibling = sibling.prev_sibling
    return int(sibling.end_point[0]) if sibling is not None else int(body.start_point[0]) - 1


def _leading_docstring(body: Any) -> Any | None:
    """The string statement a Python body opens with, if any."""
    first = body.named_child(0) if body.named_child_count else None
    if first is None or first.type != "expression_statement" or first.named_child_count != 1:
        return None
    string = first.named_child(0)
    return string if string is not None and string.type == "string" else None


COMPRESSOR = register(CodeCompressor())
