"""Every parser of :mod:`pitstop.hosts.facts` on outputs the real tools printed.

``data/<tool>/<case>.txt`` is what the command printed on stdout; ``<case>.json`` beside it
says which fact it is, the parser's arguments, the command, its exit code and stderr, what
printed it (``captured``), and what a person who read the output expects: the whole value
(``expected``); or, for a large value, some of its fields (``expectedFields``) and members its
lists must hold (``expectedMembers``); or the kind of :class:`~pitstop.hosts.facts.FactError`
the parser must raise (``raises``).
``tests/hosts/capture_facts.py`` captures them (it never writes the expectation). A case whose
content is hand-written says so in ``note``.

No estate, no root: these run anywhere.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pitstop.hosts.facts import FACTS, UNCAPTURED, FactError, Output

DATA = Path(__file__).parent / "data"
CASES = sorted(DATA.glob("*/*.json"))


def _json(value: Any) -> Any:
    """A parsed fact as plain JSON: dataclasses and named tuples as objects, sets sorted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: _json(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((_json(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def _case(path: Path) -> tuple[dict[str, Any], Output]:
    doc = json.loads(path.read_text())
    stdout = path.with_suffix(".txt").read_text()
    return doc, Output(stdout, doc.get("stderr", ""), doc.get("exitCode", 0))


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_parser_reads_the_captured_output(path: Path) -> None:
    doc, out = _case(path)
    fact = FACTS[doc["fact"]]
    assert path.parent.name == fact.tool, f"{path}: {doc['fact']} belongs in data/{fact.tool}"
    said = [k for k in ("expected", "expectedFields", "raises") if k in doc]
    assert len(said) == 1, f"{path}: say once what the parser must return or raise: {said}"
    if "raises" in doc:
        with pytest.raises(FactError) as err:
            fact.parse(out, **doc["args"])
        assert err.value.kind == doc["raises"], err.value
        return
    got = _json(fact.parse(out, **doc["args"]))
    if "expected" in doc:
        assert got == doc["expected"]
        return
    assert {k: got[k] for k in doc["expectedFields"]} == doc["expectedFields"]
    for field, members in doc.get("expectedMembers", {}).items():
        assert [m for m in members if m not in got[field]] == [], field


def test_every_fact_has_a_captured_case_and_every_case_its_two_files() -> None:
    docs = {p: json.loads(p.read_text()) for p in CASES}
    assert CASES, f"no cases in {DATA}"
    facts_seen: dict[str, list[Path]] = {}
    for p, doc in docs.items():
        assert p.with_suffix(".txt").is_file(), f"{p} has no {p.with_suffix('.txt').name}"
        assert doc.get("captured"), f"{p}: say what printed it (captured)"
        assert "hand" not in doc["captured"] or doc.get("note"), \
            f"{p}: a hand-written case says so in its note"
        facts_seen.setdefault(doc["fact"], []).append(p)
    orphans = [t for t in DATA.glob("*/*.txt") if not t.with_suffix(".json").is_file()]
    assert not orphans, f"outputs without a sidecar: {orphans}"
    missing = sorted(set(FACTS) - set(facts_seen))
    assert not missing, f"facts with no captured case in {DATA}: {missing}"
    for name, why in UNCAPTURED.items():
        assert name in FACTS, name
        hand = [p for p in facts_seen[name] if docs[p].get("note")]
        assert hand, f"{name} ({why}): its successful output needs a hand-written case"
