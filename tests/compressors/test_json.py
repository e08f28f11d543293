"""Tests for the JSON compressor, on `pip inspect` output (a real program's JSON) and on small
payloads written in the shape of real API responses, test reports and event streams."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom import markers
from headroom.compressors.base import Compressed, Context
from headroom.compressors.json import JsonCompressor
from tests.compressors.support import Stash

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
COMPRESSOR = JsonCompressor()


def compress(text: str, query: str = "") -> tuple[Compressed, Stash]:
    stash = Stash()
    out = COMPRESSOR.compress(text, Context(query=query, stash=stash))
    assert out is not None
    return out, stash


def record_markers(out: Compressed) -> list[markers.Elision]:
    return [m for m in markers.parse(out.text) if " record" in m.text]


def steps(count: int, failing: int) -> list[dict[str, object]]:
    """GitHub Actions job steps, one of which failed."""
    return [
        {
            "name": f"Run step {n}",
            "status": "completed",
            "conclusion": "failure" if n == failing else "success",
            "number": n,
            "started_at": f"2021-08-05T10:26:{n:02}.000Z",
        }
        for n in range(1, count + 1)
    ]


@pytest.fixture(scope="module")
def pip_inspect() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "inspect"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.startswith("{"):
        pytest.skip("pip inspect is not available")
    return result.stdout


@pytest.mark.parametrize(
    "text",
    ["", "plain text", "42", '"a string"', '{"a": [1, 2', "[1, 2] trailing", '{"a":1}\nnot json'],
)
def test_what_is_not_json_is_left_alone(text: str) -> None:
    assert COMPRESSOR.compress(text, Context()) is None


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_json_nested_ten_thousand_deep_is_left_alone(opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    text = opening * 10_000 + "1" * (opening != "[") + closing * 10_000
    assert COMPRESSOR.compress(text, Context()) is None


def test_minifies_keeping_key_order_and_number_spelling() -> None:
    value = '{"zeta": 1.10, "alpha": 100000000000000000000000000001, "m": [-0, 1E400, 2.50e-3]}'
    out, _ = compress(value.replace(" ", "\n    "))
    assert out.text == value.replace(" ", "")
    assert out.origin is None


def test_uniform_records_become_a_table_with_the_header_once() -> None:
    text = json.dumps({"steps": steps(5, failing=3)}, indent=2)
    out, _ = compress(text)
    assert out.lines[1] == ' "steps":['
    assert out.lines[2] == '  @columns ["name","status","conclusion","number","started_at"]'
    assert out.lines[5] == '  ["Run step 3","completed","failure",3,"2021-08-05T10:26:03.000Z"],'
    assert out.text.count('"conclusion"') == 1


def test_a_key_a_record_lacks_is_an_empty_cell() -> None:
    tests = [{"title": f"test {n}", "duration": n, "speed": "fast", "err": {}} for n in range(11)]
    del tests[4]["duration"]
    out, _ = compress(json.dumps(tests, indent=2))
    assert ' ["test 4",,"fast",{}],' in out.lines


def test_long_array_keeps_first_last_and_failed_records_and_names_the_rest() -> None:
    text = json.dumps({"steps": steps(40, failing=17)}, indent=2)
    out, stash = compress(text)
    assert '"Run step 1"' in out.lines[3]
    assert '"Run step 17","completed","failure"' in out.text
    assert '"Run step 40"' in out.text
    found = record_markers(out)
    assert [m.text.split(" records")[0] for m in found] == ["[... 15", "[... 22"]
    assert '"Run step 2", "Run step 3"' in found[0].text
    assert 'conclusion: 15 "success"; ids: ' in found[0].text
    assert found[0].key is not None
    assert json.loads(stash.parts[found[0].key]) == steps(40, failing=17)[1:16]


def test_non_2xx_status_and_question_terms_keep_their_records() -> None:
    calls = [
        {"method": "get", "path": f"/repos/o/r/issues?page={n}", "status": 200} for n in range(80)
    ]
    calls[12]["status"] = 422
    calls[20]["path"] = "/repos/o/r/labels"
    out, _ = compress(json.dumps(calls, indent=2), query="which labels request")
    assert '["get","/repos/o/r/issues?page=12",422]' in out.text
    assert '["get","/repos/o/r/labels",200]' in out.text
    assert '"/repos/o/r/issues?page=5"' not in out.text


def test_a_big_map_of_similar_entries_is_elided_by_key_and_name() -> None:
    tasks = {
        f"task{n:03}": {
            "metadata": {"name": f"test-linux64/debug-{n}", "owner": "ci@example.com"},
            "retries": 5,
            "deadline": "2019-06-27T19:13:51.402Z",
        }
        for n in range(30)
    }
    out, stash = compress(json.dumps(tasks, indent=2))
    (marker,) = record_markers(out)
    assert '"task001":"test-linux64/debug-1"' in marker.text
    assert marker.key is not None
    assert list(json.loads(stash.parts[marker.key])) == [f"task{n:03}" for n in range(1, 29)]
    assert out.lines[1].startswith(' "task000":')


def test_long_string_is_shortened_behind_a_marker_keyed_to_the_whole_string() -> None:
    log = "\n".join(f"line {n}: ok" for n in range(200)).replace("line 120: ok", "line 120: ERROR")
    out, stash = compress(json.dumps({"output": log, "exit_code": 1}))
    shown = json.loads(out.text)["output"]
    assert "line 0: ok" in shown
    assert "line 120: ERROR" in shown
    assert "line 199: ok" in shown
    assert "line 60: ok" not in shown
    assert "[... 117 lines elided, key=" in shown
    keys = {m.split(", key=")[1][:16] for m in shown.split("[... ")[1:]}
    assert [stash.parts[key] for key in keys] == [log]


def test_a_repeated_long_string_points_at_its_first_occurrence() -> None:
    text = "x" * 500
    out, _ = compress(json.dumps({"history": [{"content": text}], "trajectory": [{"obs": text}]}))
    value = json.loads(out.text)
    assert "same text as /history/0/content" in value["trajectory"][0]["obs"]


def test_json_lines_keep_one_record_per_line() -> None:
    events = [{"testID": n, "result": "success", "type": "testDone"} for n in range(200)]
    events[9]["result"] = "error"
    events.insert(9, {"testID": 9, "error": "Test failed: expected 2", "type": "error"})
    out, _ = compress("\n".join(json.dumps(e, separators=(",", ":")) for e in events) + "\n")
    assert out.lines[0] == '{"testID":0,"result":"success","type":"testDone"}'
    assert '{"testID":9,"error":"Test failed: expected 2","type":"error"}' in out.lines
    assert '{"testID":9,"result":"error","type":"testDone"}' in out.lines
    assert all(line.startswith("{") or markers.is_marker(line) for line in out.lines)


def test_a_document_with_nul_escapes_stores_elided_records_exactly() -> None:
    records = [{"id": n, "note": "a\u0000b", "value": 1.5} for n in range(40)]
    source = json.dumps(records, indent=2).replace("1.5", "1.50")
    out, stash = compress(source)
    for marker in record_markers(out):
        assert marker.key is not None
        assert '"value":1.50' in stash.parts[marker.key]
        assert '"a\\u0000b"' in stash.parts[marker.key]


def test_pip_inspect_output_keeps_every_package_name(pip_inspect: str) -> None:
    out, stash = compress(pip_inspect)
    assert len(out.text) < len(pip_inspect) // 3
    restored = json.loads(pip_inspect)
    shown = out.text + "".join(stash.parts.values())
    for package in restored["installed"]:
        assert json.dumps(package["metadata"]["name"]) in shown


def test_output_is_deterministic(pip_inspect: str) -> None:
    first, _ = compress(pip_inspect, query="which packages")
    second, _ = compress(pip_inspect, query="which packages")
    assert first.lines == second.lines


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=12) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=60,
)


@settings(max_examples=150, deadline=None)
@given(values, st.sampled_from([0, 2]))
def test_output_parses_back_to_the_input_when_nothing_is_elided(value: object, indent: int) -> None:
    text = json.dumps(value, indent=indent or None)
    out = COMPRESSOR.compress(text, Context(stash=Stash()))
    again = COMPRESSOR.compress(text, Context(stash=Stash()))
    assert (out is None) == (again is None)
    if out is None or again is None:
        return
    assert out.lines == again.lines
    if "@columns" not in out.text and "[... " not in out.text:
        assert json.loads(out.text) == value


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from('[]{}":,0123456789.eE-+ \n\\u\x00ab'), max_size=80))
def test_never_raises_on_odd_text(text: str) -> None:
    COMPRESSOR.compress(text, Context(query="error 404", stash=Stash()))


def test_corpus_keeps_needles_and_saves_most_tokens() -> None:
    manifest = CORPUS / "manifest.json"
    if not manifest.exists():
        pytest.skip("the shared corpus is not beside the repository")
    kept = total = before = after = 0
    for record in json.loads(manifest.read_text(encoding="utf-8")):
        if record["kind"] != "json":
            continue
        with (CORPUS / record["file"]).open(encoding="utf-8", newline="") as payload:
            text = payload.read()
        out = COMPRESSOR.compress(text, Context(query=record["question"], stash=Stash()))
        shown = "".join((text if out is None else out.text).split())
        kept += sum("".join(needle.split()) in shown for needle in record["needles"])
        total += len(record["needles"])
        before += len(text)
        after += len(text) if out is None else len(out.text)
    assert kept >= 0.99 * total
    assert after < 0.3 * before


FACETED = """
import sys
from headroom.compressors.base import Context
from headroom.compressors.json import JsonCompressor
from tests.compressors.support import Stash
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as file:
        out = JsonCompressor().compress(file.read(), Context(stash=Stash()))
    sys.stdout.write(out.text if out else "")
"""


@pytest.mark.integration
def test_the_output_is_the_same_under_every_string_hash_seed() -> None:
    # Real payloads whose facets once came out in string-hash order (a set's iteration).
    files = [str(CORPUS / "json" / name) for name in ("aws-securityhub-get-findings.json",
                                                       "taskcluster-tasks.json")]  # fmt: skip
    outputs = {
        subprocess.run(
            [sys.executable, "-c", FACETED, *files],
            capture_output=True, text=True, check=True, timeout=60,
            env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin"},
            cwd=Path(__file__).resolve().parents[2],
        ).stdout
        for seed in (1, 2, 3, 4)
    }  # fmt: skip
    assert len(outputs) == 1 and len(next(iter(outputs))) > 0
