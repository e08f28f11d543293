"""Which tree-sitter grammar and node types the code outliner uses for each language.

The outliner is language-neutral: it elides the `body` field of *function-like* nodes,
outlines the members of *container* nodes (classes, impls, namespaces) instead, shortens the
tails of comments and of long *literals* (tables, long strings). This table is the only
per-language knowledge it needs. Grammars come from the individual wheels
(`tree_sitter_python`, ...); each is loaded on first use and cached, so importing this module
costs nothing and a payload only pays for its own language.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True, slots=True)
class LanguageSpec:
    """One grammar and the node types that matter for an outline."""

    grammar: str
    """Python module of the grammar wheel."""
    entry: str
    """Function of that module returning the language pointer."""
    functions: tuple[str, ...]
    """Node types whose `body` is elided (functions, methods, lambdas)."""
    containers: tuple[str, ...]
    """Named node types whose members are outlined rather than elided."""
    comments: tuple[str, ...]
    """Comment node types (Python adds bare string statements: docstrings)."""
    literals: tuple[str, ...]
    """Literal node types whose long values (tables, long strings) are shortened."""


_JS_FUNCTIONS = (
    "function_declaration",
    "generator_function_declaration",
    "function_expression",
    "generator_function",
    "arrow_function",
    "method_definition",
)
_JS_LITERALS = ("array", "object", "template_string")
_TS_CONTAINERS = (
    "class_declaration",
    "class",
    "abstract_class_declaration",
    "interface_declaration",
    "internal_module",
)
_JAVA_CONTAINERS = (
    "class_declaration",
    "interface_declaration",
    "enum_declaration",
    "record_declaration",
)

SPECS: dict[str, LanguageSpec] = {
    "py": LanguageSpec(
        "tree_sitter_python",
        "language",
        ("function_definition",),
        ("class_definition",),
        ("comment", "expression_statement (string)"),
        ("list", "dictionary", "set", "tuple", "string", "concatenated_string"),
    ),
    "js": LanguageSpec(
        "tree_sitter_javascript",
        "language",
        _JS_FUNCTIONS,
        ("class_declaration", "class"),
        ("comment",),
        _JS_LITERALS,
    ),
    "ts": LanguageSpec(
        "tree_sitter_typescript",
        "language_typescript",
        _JS_FUNCTIONS,
        _TS_CONTAINERS,
        ("comment",),
        _JS_LITERALS,
    ),
    "tsx": LanguageSpec(
        "tree_sitter_typescript",
        "language_tsx",
        _JS_FUNCTIONS,
        _TS_CONTAINERS,
        ("comment",),
        _JS_LITERALS,
    ),
    "go": LanguageSpec(
        "tree_sitter_go",
        "language",
        ("function_declaration", "method_declaration", "func_literal"),
        (),
        ("comment",),
        ("literal_value", "raw_string_literal"),
    ),
    "rs": LanguageSpec(
        "tree_sitter_rust",
        "language",
        ("function_item", "closure_expression"),
        ("impl_item", "trait_item", "mod_item"),
        ("line_comment", "block_comment"),
        ("array_expression", "raw_string_literal"),
    ),
    "java": LanguageSpec(
        "tree_sitter_java",
        "language",
        (
            "method_declaration",
            "constructor_declaration",
            "compact_constructor_declaration",
            "lambda_expression",
        ),
        _JAVA_CONTAINERS,
        ("line_comment", "block_comment"),
        ("array_initializer",),
    ),
    "c": LanguageSpec(
        "tree_sitter_c",
        "language",
        ("function_definition",),
        (),
        ("comment",),
        ("initializer_list", "concatenated_string"),
    ),
    "cpp": LanguageSpec(
        "tree_sitter_cpp",
        "language",
        ("function_definition", "lambda_expression"),
        ("class_specifier", "struct_specifier", "namespace_definition"),
        ("comment",),
        ("initializer_list", "concatenated_string", "raw_string_literal"),
    ),
}

_ALIASES = {"jsx": "js", "mjs": "js", "cjs": "js", "cc": "cpp", "cxx": "cpp", "hpp": "cpp"}

# Constructs only C++ has; a header showing one is parsed with the C++ grammar.
_CPP_SIGNS = re.compile(
    r"^[ \t]*(?:namespace\s|template[ \t]*<|class[ \t]+\w+[ \t]*[:{]"
    r"|(?:public|private|protected)[ \t]*:)"
    r"|\w::\w|^[ \t]*#[ \t]*include[ \t]*<\w+>[ \t]*$",
    re.MULTILINE,
)


def resolve(language: str | None, text: str) -> str | None:
    """The table key for the router's language; a `.h` header becomes C or C++ by content."""
    if language is None:
        return None
    key = _ALIASES.get(language.lower(), language.lower())
    if key == "h":
        return "cpp" if _CPP_SIGNS.search(text) else "c"
    return key if key in SPECS else None


@cache
def grammar(key: str) -> tuple[Any, Any]:
    """The tree-sitter Language and outline Query for a table key (loaded once)."""
    import tree_sitter

    spec = SPECS[key]
    language = tree_sitter.Language(getattr(importlib.import_module(spec.grammar), spec.entry)())
    patterns = [
        "[" + " ".join(f"({kind})" for kind in spec.functions) + "] @function",
        "[" + " ".join(f"({kind})" for kind in spec.comments) + "] @comment",
        "[" + " ".join(f"({kind})" for kind in spec.literals) + "] @literal",
        "(ERROR) @error",
    ]
    if spec.containers:
        patterns.append("[" + " ".join(f"({kind})" for kind in spec.containers) + "] @container")
    return language, tree_sitter.Query(language, "\n".join(patterns))
