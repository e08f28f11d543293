"""The proxy benchmark on a small corpus made at test time from real files: every payload
timed direct and through a real `headroom proxy` process, the fault run clean, the table
complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headroom.bench import proxy

pytestmark = pytest.mark.integration

STDLIB = Path(json.__file__).resolve().parents[1]


def make_corpus(folder: Path) -> Path:
    """One payload under 256 KB (argparse.py) and one over it (several modules in a row)."""
    large = "".join(
        (STDLIB / name).read_text(encoding="utf-8")
        for name in ("argparse.py", "tarfile.py", "typing.py", "inspect.py")
    )
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "argparse.py").write_text((STDLIB / "argparse.py").read_text())
    (folder / "code" / "modules.py").write_text(large)
    manifest = [
        {"kind": "code", "file": "code/argparse.py", "needles": []},
        {"kind": "code", "file": "code/modules.py", "needles": []},
    ]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_the_proxy_bench_times_each_payload_both_ways_and_runs_the_faults(
    tmp_path: Path,
) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    result = proxy.run(corpus, rounds=1, seconds=0.3, fault_requests=50)
    sizes = sorted(sample.size for sample in result.samples)
    assert sizes[0] <= proxy.SMALL < sizes[1]
    assert [s.size for s in result.first_byte] == [sizes[0]]  # only small payloads stream
    for sample in result.samples:
        assert min(sample.direct_ms, sample.proxy_ms, sample.replay_ms) > 0
    assert result.requests_per_s > 0 and result.direct_requests_per_s > 0
    assert result.faults.ok and result.faults.requests == 50
    assert result.proxy_log_errors == 0
    rendered = proxy.table(result)
    assert rendered.count("\n| ") == 10  # one row per measure
    assert "50 concurrent requests, upstream faults injected | none lost or altered" in rendered
