"""The repository's shape: the benchmarks stand on the shared harness, never on the tests."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_bench_does_not_import_the_tests() -> None:
    benches = sorted((ROOT / "bench").glob("*.py"))
    assert benches, "no benchmarks found"
    offenders = {p.name for p in benches if "tests" in _imported(p)}
    assert not offenders, f"bench/ imports tests/: {sorted(offenders)}; use harness/"


def test_the_harness_does_not_import_the_tests() -> None:
    offenders = {p.name for p in (ROOT / "harness").glob("*.py") if "tests" in _imported(p)}
    assert not offenders, sorted(offenders)
