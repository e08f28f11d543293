"""Tests for the code outliner, on Python stdlib sources, small samples in each language's real
shape, and the dev corpus when it is present."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom import markers
from headroom.compressors.base import Compressed, Context
from headroom.compressors.code import CodeCompressor
from headroom.compressors.code_languages import resolve

STDLIB = Path(sysconfig.get_paths()["stdlib"])
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
COMPRESSOR = CodeCompressor()


def outline(text: str, language: str | None = "py", query: str = "") -> Compressed:
    out = COMPRESSOR.compress(text, Context(query=query, language=language))
    assert out is not None
    return out


def assert_faithful(text: str, out: Compressed) -> None:
    """Every output line is its input line or a marker, in the input's order."""
    lines = text.split("\n")
    assert out.origin is not None
    assert len(out.origin) == len(out.lines)
    previous = -1
    for line, origin in zip(out.lines, out.origin, strict=True):
        if origin is None:
            assert markers.is_marker(line), line
        else:
            assert line == lines[origin]
            assert origin > previous
            previous = origin


def stdlib_source(name: str) -> str:
    return (STDLIB / name).read_text(encoding="utf-8")


def test_stdlib_module_keeps_every_definition_and_gets_much_shorter() -> None:
    text = stdlib_source("textwrap.py")
    out = outline(text)
    assert_faithful(text, out)
    defined = [
        node.name
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    for name in defined:
        assert re.search(rf"\b(def|class) {name}\b", out.text), name
    assert len(out.text) < 0.5 * len(text)


def test_each_marker_names_exactly_one_function_body() -> None:
    text = stdlib_source("json/decoder.py")
    lines = text.split("\n")
    functions = [
        node
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef) and node.end_lineno is not None
    ]
    out = outline(text)
    for elision in markers.parse(out.text):
        assert elision.first_line is not None and elision.last_line is not None
        inside = [
            f
            for f in functions
            if f.body[0].lineno <= elision.first_line and elision.last_line <= (f.end_lineno or 0)
        ]
        if not inside:  # a docstring's or comment's tail, not a body
            first = lines[elision.first_line - 1].strip()
            assert not first.startswith(("def ", "class ")), first
            continue
        innermost = max(inside, key=lambda f: f.lineno)
        assert innermost.end_lineno == elision.last_line or any(
            f.lineno == elision.last_line + 1 for f in functions
        )


PY_SAMPLE = '''"""Helpers for reading settings files.

They accept TOML and INI files, look for them from the working directory
up to the repository root, and fall back to the SETTINGS_PATH variable
when no file is found on the way.
"""

import os
from pathlib import Path

DEFAULT_NAME = "settings.toml"


class Loader:
    """Reads one settings file.

    The file is parsed lazily.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(
        self,
        encoding: str = "utf-8",
        errors: str = "strict",
    ) -> dict[str, str]:
        """Parse the file into a flat mapping."""
        text = self.path.read_text(encoding=encoding, errors=errors)
        result = {}
        for line in text.splitlines():
            if "=" not in line or line.lstrip().startswith("#"):
                continue
            key, _, value = line.partition("=")
            result[key.strip()] = value.strip()
        return result


def find_settings(start: Path) -> Path | None:
    for folder in [start, *start.parents]:
        candidate = folder / DEFAULT_NAME
        if candidate.exists():
            return candidate
        if (folder / ".git").exists():
            break
    env = os.environ.get("SETTINGS_PATH")
    return Path(env) if env else None
'''


def test_class_methods_are_outlined_with_bodies_elided() -> None:
    out = outline(PY_SAMPLE)
    assert_faithful(PY_SAMPLE, out)
    assert "class Loader:" in out.lines
    assert "    def __init__(self, path: Path) -> None:" in out.lines
    assert "        for line in text.splitlines():" not in out.lines
    assert "        for folder in [start, *start.parents]:" not in out.text
    body_markers = [line for line in out.lines if markers.is_marker(line)]
    assert any(line.startswith("        [... ") for line in body_markers)  # indented like the body


def test_multi_line_signature_and_first_docstring_line_are_kept() -> None:
    out = outline(PY_SAMPLE)
    start = out.lines.index("    def read(")
    assert out.lines[start : start + 6] == [
        "    def read(",
        "        self,",
        '        encoding: str = "utf-8",',
        '        errors: str = "strict",',
        "    ) -> dict[str, str]:",
        '        """Parse the file into a flat mapping."""',
    ]
    assert '"""Helpers for reading settings files.' in out.lines
    assert "up to the repository root, and fall back to the SETTINGS_PATH variable" not in out.lines


def test_short_body_stays_whole() -> None:
    out = outline(PY_SAMPLE)
    assert "        self.path = path" in out.lines


def test_imports_and_constants_are_kept() -> None:
    out = outline(PY_SAMPLE)
    for line in ("import os", "from pathlib import Path", 'DEFAULT_NAME = "settings.toml"'):
        assert line in out.lines


def test_function_named_in_the_question_keeps_its_body() -> None:
    plain = outline(PY_SAMPLE)
    asked = outline(PY_SAMPLE, query="Why does find_settings stop at the .git folder?")
    assert '        if (folder / ".git").exists():' not in plain.lines
    assert '        if (folder / ".git").exists():' in asked.lines
    assert "        for line in text.splitlines():" not in asked.lines


def test_file_name_in_the_question_does_not_count_as_a_symbol() -> None:
    text = PY_SAMPLE.replace("def find_settings", "def loader")
    out = outline(text, query="What does loader.py define?")
    assert "    for folder in [start, *start.parents]:" not in out.lines


JS_SAMPLE = """import { parse } from "./parse.js";

/**
 * Counts the words of a text.
 * Words are separated by white space.
 */
export function wordCount(text) {
  const words = text.trim().split(/\\s+/);
  let count = 0;
  for (const word of words) {
    if (word.length > 0) count += 1;
  }
  return count;
}

export class Reader {
  constructor(doc) {
    this.doc = doc;
    this.options = { strict: true, depth: 3, keepComments: false };
  }

  nodes(tag) {
    const isWanted = function (node) {
      const name = node.tagName.toLowerCase();
      return name === tag || name === tag.toUpperCase() || node.matches(tag);
    };
    const found = [];
    this.doc.querySelectorAll("*").forEach((node) => {
      if (isWanted(node)) found.push(node);
    });
    return found;
  }
}
"""

TS_SAMPLE = """export interface Options {
  strict: boolean;
  depth?: number;
}

export type Mode = "fast" | "exact";

export const schema = (options: Options): Mode => {
  const depth = options.depth ?? 3;
  if (options.strict && depth > 2) {
    return "exact";
  }
  console.debug("choosing the fast mode for", options, "at depth", depth);
  return "fast";
};
"""

GO_SAMPLE = """package cache

import "sync"

// Cache keeps values for a while.
type Cache struct {
	mu     sync.Mutex
	values map[string]string
}

// Get returns the value stored under key.
func (c *Cache) Get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	value, ok := c.values[key]
	if !ok {
		return "", false
	}
	return value, true
}
"""

RUST_SAMPLE = """use std::collections::HashMap;

/// Keeps values for a while.
pub struct Cache {
    values: HashMap<String, String>,
}

impl Cache {
    pub fn get(&self, key: &str) -> Option<&String> {
        let value = self.values.get(key);
        if value.is_none() {
            eprintln!("cache miss for {key} in a cache of {} values", self.values.len());
        }
        value
    }
}
"""

JAVA_SAMPLE = """package org.example.cache;

import java.util.HashMap;
import java.util.Map;

/** Keeps values for a while. */
public final class Cache {
  private final Map<String, String> values = new HashMap<>();

  public String get(String key) {
    String value = values.get(key);
    if (value == null) {
      throw new IllegalArgumentException("no value for " + key + " among " + values.size());
    }
    return value;
  }
}
"""

C_SAMPLE = """#include <stdlib.h>
#include <string.h>

#define CACHE_SIZE 64

typedef struct cache_entry {
    char *key;
    char *value;
} cache_entry;

char *cache_get(cache_entry *entries, size_t count, const char *key)
{
    size_t index = 0;
    for (index = 0; index < count; index++) {
        if (strcmp(entries[index].key, key) == 0) {
            return entries[index].value;
        }
    }
    return NULL;
}
"""

CPP_SAMPLE = """#include <map>
#include <string>

namespace cache {

class Cache {
 public:
  const std::string* get(const std::string& key) const {
    auto found = values_.find(key);
    if (found == values_.end()) {
      return nullptr;
    }
    return &found->second;
  }

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace cache
"""


@pytest.mark.parametrize(
    ("language", "text", "kept", "elided"),
    [
        ("js", JS_SAMPLE, "export function wordCount(text) {", "  let count = 0;"),
        (
            "ts",
            TS_SAMPLE,
            "export const schema = (options: Options): Mode => {",
            '    return "exact";',
        ),
        ("tsx", TS_SAMPLE, 'export type Mode = "fast" | "exact";', '    return "exact";'),
        (
            "go",
            GO_SAMPLE,
            "func (c *Cache) Get(key string) (string, bool) {",
            "\tdefer c.mu.Unlock()",
        ),
        (
            "rs",
            RUST_SAMPLE,
            "    pub fn get(&self, key: &str) -> Option<&String> {",
            "        value",
        ),
        ("java", JAVA_SAMPLE, "  public String get(String key) {", "    return value;"),
        (
            "c",
            C_SAMPLE,
            "char *cache_get(cache_entry *entries, size_t count, const char *key)",
            "    return NULL;",
        ),
        (
            "cpp",
            CPP_SAMPLE,
            "  const std::string* get(const std::string& key) const {",
            "    return &found->second;",
        ),
    ],
)
def test_each_language_keeps_signatures_and_elides_bodies(
    language: str, text: str, kept: str, elided: str
) -> None:
    out = outline(text, language)
    assert_faithful(text, out)
    assert kept in out.lines
    assert elided not in out.lines
    assert any(markers.is_marker(line) for line in out.lines)


def test_types_structs_and_macros_are_kept_whole() -> None:
    out = outline(C_SAMPLE, "c")
    for line in ("#define CACHE_SIZE 64", "typedef struct cache_entry {", "    char *value;"):
        assert line in out.lines
    assert "} cache_entry;" in out.lines


def test_named_function_nested_in_a_body_keeps_its_signature() -> None:
    out = outline(JS_SAMPLE, "js")
    assert "    const isWanted = function (node) {" in out.lines
    assert "  nodes(tag) {" in out.lines
    assert "      if (isWanted(node)) found.push(node);" not in out.lines


def test_doc_comment_keeps_its_first_sentence() -> None:
    out = outline(JS_SAMPLE, "js")
    assert " * Counts the words of a text." in out.lines


def test_a_body_resumed_after_a_nested_function_names_its_owner() -> None:
    out = outline(JS_SAMPLE, "js")
    notes = [line for line in out.lines if "body of nodes" in line]
    assert len(notes) == 1


def test_long_table_keeps_its_first_entries_and_closing_line() -> None:
    text = stdlib_source("html/entities.py")
    out = outline(text)
    assert_faithful(text, out)
    start = out.lines.index("name2codepoint = {")
    assert out.lines[start + 1].lstrip().startswith("'AElig'")
    assert markers.is_marker(out.lines[start + 3])
    assert out.lines[start + 4] == "}"
    assert len(out.text) < 0.05 * len(text)


def test_object_of_methods_is_outlined_not_cut_as_a_table() -> None:
    methods = "".join(
        f"  step{i}(input) {{\n    const value = input * {i} + offset;\n"
        f"    console.log('step {i} of the pipeline turned', input, 'into', value);\n"
        f"    return value;\n  }},\n"
        for i in range(6)
    )
    settings = (
        "  retries: 3,\n  label: 'nightly import of the partner feeds',\n  timeoutMs: 30000,\n"
    )
    text = f"const offset = 3;\n\nexport const pipeline = {{\n{methods}{settings}}};\n"
    out = outline(text, "js")
    for i in range(6):
        assert f"  step{i}(input) {{" in out.lines
    assert "  label: 'nightly import of the partner feeds'," in out.lines
    assert "    return value;" not in out.lines


def test_header_is_read_as_cpp_only_when_it_shows_cpp() -> None:
    assert resolve("h", C_SAMPLE) == "c"
    assert resolve("h", CPP_SAMPLE) == "cpp"
    out = outline(CPP_SAMPLE, "h")
    assert "class Cache {" in out.lines


def test_unknown_or_missing_language_is_left_alone() -> None:
    assert COMPRESSOR.compress(PY_SAMPLE, Context(language=None)) is None
    assert COMPRESSOR.compress(PY_SAMPLE, Context(language="cobol")) is None


def test_text_that_is_not_code_is_left_alone() -> None:
    license_file = STDLIB / "LICENSE.txt"
    if not license_file.is_file():
        pytest.skip("this Python ships no LICENSE.txt")
    prose = license_file.read_text(encoding="utf-8")
    for language in ("py", "js", "go", "c"):
        assert COMPRESSOR.compress(prose, Context(language=language)) is None


def test_python_read_as_another_language_is_refused() -> None:
    text = stdlib_source("textwrap.py")
    for language in ("go", "java", "rs"):
        assert COMPRESSOR.compress(text, Context(language=language)) is None


def test_a_file_cut_short_is_still_outlined_up_to_the_cut() -> None:
    lines = JS_SAMPLE.split("\n")
    cut = "\n".join(lines[: lines.index("  nodes(tag) {") + 4])
    out = outline(cut, "js")
    assert_faithful(cut, out)
    assert "export function wordCount(text) {" in out.lines
    assert "  let count = 0;" not in out.lines
    assert "  nodes(tag) {" in out.lines


def test_crlf_line_ends_are_kept_on_lines_and_markers() -> None:
    text = PY_SAMPLE.replace("\n", "\r\n")
    out = outline(text)
    assert_faithful(text, out)
    assert all(line.endswith("\r") for line in out.lines if line)


def test_output_is_deterministic() -> None:
    text = stdlib_source("json/encoder.py")
    assert outline(text).lines == outline(text).lines


def test_importing_the_module_does_not_load_tree_sitter() -> None:
    code = "import sys, headroom.compressors.code; print('tree_sitter' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


LANGUAGES = ["py", "js", "ts", "tsx", "go", "rs", "java", "c", "cpp", "h", None]
CODE_ALPHABET = st.sampled_from(list("abcdef(){}[]:;,.=+-*/#'\"\\\n\r\t \x00é\ud800"))


@settings(max_examples=150, deadline=None)
@given(
    text=st.one_of(
        st.text(CODE_ALPHABET, max_size=400),
        st.builds(
            lambda start, size: "\n".join(PY_SAMPLE.split("\n")[start : start + size]),
            st.integers(0, 40),
            st.integers(0, 50),
        ),
        st.builds(
            lambda sample, cut: sample[:cut],
            st.sampled_from([JS_SAMPLE, GO_SAMPLE, RUST_SAMPLE, CPP_SAMPLE, C_SAMPLE]),
            st.integers(0, 800),
        ),
    ),
    language=st.sampled_from(LANGUAGES),
    query=st.text(max_size=40),
)
def test_any_input_never_raises_and_stays_a_faithful_subset(
    text: str, language: str | None, query: str
) -> None:
    context = Context(query=query, language=language)
    first = COMPRESSOR.compress(text, context)
    second = COMPRESSOR.compress(text, context)
    assert first == second
    if first is not None:
        assert_faithful(text, first)


def test_deeply_nested_code_does_not_raise() -> None:
    depth = 2000
    text = "".join("  " * i + f"def f{i}():\n" for i in range(depth)) + "  " * depth + "pass\n"
    out = COMPRESSOR.compress(text, Context(language="py"))
    if out is not None:
        assert_faithful(text, out)
    braces = "function a() {\n" * depth + "}\n" * depth
    out = COMPRESSOR.compress(braces, Context(language="js"))
    if out is not None:
        assert_faithful(braces, out)


def corpus_code() -> list[dict[str, Any]]:
    manifest = CORPUS / "manifest.json"
    if not manifest.is_file():
        return []
    return [r for r in json.loads(manifest.read_text()) if r["kind"] == "code"]


@pytest.mark.skipif(not corpus_code(), reason="the shared corpus is absent")
def test_corpus_outlines_keep_defined_names_and_halve_the_code() -> None:
    whitespace = re.compile(r"\s+")
    kept = total = before = after = 0
    for record in corpus_code():
        path = CORPUS / str(record["file"])
        with path.open(encoding="utf-8", newline="") as file:
            text = file.read()
        out = outline(text, str(record["language"]), str(record["question"]))
        assert_faithful(text, out)
        flat = whitespace.sub("", out.text)
        needles = [str(n) for n in record["needles"]]
        kept += sum(whitespace.sub("", n) in flat for n in needles)
        total += len(needles)
        before += len(text)
        after += len(out.text)
    assert kept >= 0.99 * total
    assert after < 0.5 * before
