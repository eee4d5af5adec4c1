"""Conformance of every :class:`pitstop.store.OperationStore` implementation (SQLite today,
used by the hosts and the Kubernetes backends): operations by key (a second insert keeps the
first), their data and end, a claim that exactly one of many processes wins, events, marks and
key/values, all seen by a process that opens the store afterwards."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pitstop.backend import OperationState, UpgradeComponent
from pitstop.store import OperationStore, OpRecord, SqliteOperationStore, process_identity

Make = Callable[[Path | None], OperationStore]
STORES: dict[str, Make] = {"sqlite": lambda d: SqliteOperationStore(
    d / "ops.sqlite" if d is not None else None)}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=sorted(STORES))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _rec(key: str, owner: str = "h:1:1") -> OpRecord:
    return OpRecord(key, "c1", UpgradeComponent("n1", "containerd", "2.3.7"),
                    OperationState.RUNNING, "", 1.0, None, owner, {"step": 1})


@pytest.mark.parametrize("on_disk", [True, False])
def test_operations_by_key(tmp_path: Path, name: str, on_disk: bool) -> None:
    s = STORES[name](tmp_path if on_disk else None)
    assert s.insert(_rec("k1"))
    assert not s.insert(_rec("k1", owner="other"))  # the first stays
    got = s.get("k1")
    assert got is not None and got.owner == "h:1:1" and got.data == {"step": 1}
    assert got.action == UpgradeComponent("n1", "containerd", "2.3.7")
    assert s.get("nope") is None
    with s.transaction():
        s.save_data("k1", {"step": 2})
    s.insert(_rec("k2"))
    s.finish("k2", OperationState.SUCCEEDED, "done", 5.0, {"step": 9})
    assert [r.key for r in s.operations(running=True)] == ["k1"]
    assert [r.key for r in s.operations("c1")] == ["k1", "k2"]
    done = s.get("k2")
    assert done is not None and (done.state, done.message, done.finished, done.data) == (
        OperationState.SUCCEEDED, "done", 5.0, {"step": 9})
    assert done.operation().state is OperationState.SUCCEEDED
    s.record(2.0, "c1", "install", "n1", "containerd=2.3.7", True, "k1", "h:1:1")
    s.record(3.0, "c2", "probe", "n9", "", False, "", "h:1:1")
    assert [(e.kind, e.destructive) for e in s.events()] == [("install", True),
                                                             ("probe", False)]
    assert [e.kind for e in s.events("c2")] == ["probe"]
    s.set_mark("c1", "n1", "unschedulable", "true")
    s.set_mark("c1", "n1", "annotation:x", "y")
    s.set_mark("c1", "n1", "annotation:x", None)
    assert s.marks("c1") == {"n1": {"unschedulable": "true"}}
    s.set_kv("etcd-restored/c1", {"at": 1})
    assert s.get_kv("etcd-restored/c1") == {"at": 1} and s.get_kv("missing") is None
    s.close()


def test_a_failed_transaction_leaves_nothing(tmp_path: Path, name: str) -> None:
    s = STORES[name](tmp_path)

    def begin_then_fail() -> None:
        with s.transaction():
            s.insert(_rec("k1"))
            raise RuntimeError("the upgrade could not begin")

    with pytest.raises(RuntimeError):
        begin_then_fail()
    assert s.get("k1") is None
    s.close()


_CLAIM = """
import sys
from pathlib import Path
from tests.store.test_operation_store import STORES
s = STORES[sys.argv[2]](Path(sys.argv[1]))
print("won" if s.claim("k1", "h:1:1", f"p{sys.argv[3]}") else "lost")
"""


def test_exactly_one_process_claims_an_operation(tmp_path: Path, name: str) -> None:
    s = STORES[name](tmp_path)
    s.insert(_rec("k1"))
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIM, str(tmp_path), name, str(i)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT) for i in range(6)]
    said = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(said) == ["lost"] * 5 + ["won"], said
    rec = s.get("k1")
    assert rec is not None and rec.owner == f"p{said.index('won')}"
    assert process_identity().count(":") == 2
    s.close()
