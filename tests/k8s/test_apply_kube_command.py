"""``pitstop apply --backend kube --node-upgrader command`` through the command line, on a real
control plane.

kwok nodes stand in for real machines. The operator's command is a small script this test
writes: it does what a kubelet upgrade shows from the API — after a short sleep, and after the
command itself has exited (as a restarted kubelet posts its status), the node's
``status.nodeInfo.kubeletVersion`` at the new version with a fresh Ready heartbeat (``kubectl
patch --subresource=status``). What is under test is pitstop's mechanism: the command run
detached per node, its exit status and output, and the independent verification from the
node's status (target version, Ready, a heartbeat after the command ended). Covered: bad
configurations refused before anything is made (exit 2; a replace-strategy plan, exit 1); a
command that exits non-zero (the canary fails, the wave rolls back, the message names the node
and the command's output); one that exits 0 but the node never reports the target (FAILED after
``--node-verify-timeout``); and a good one: every node upgraded under its PDB, uncordoned, and
the run's record rebuilt by ``pitstop resume``.

The nodes report ``kubeProxyVersion`` as kubelets before its deprecation did (the kubelet's
own version), and the script's "kubelet" does the same. A module-private control plane: the
inventory must see only this test's nodes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness.controlplane import ControlPlane

from pitstop.executor.nodes import CORDON_ANNOTATION
from tests.runlib import journal

from .kubelib import (
    POOL_LABEL,
    PdbWatch,
    apply,
    deployment,
    kwok_node,
    node_ready,
    pdb,
    pod_ready,
    pods,
    wait_for,
    wait_settled,
)
from .test_apply_kube import _pitstop

pytestmark = pytest.mark.k8s
OLD = "1.35.4"
NS = "cmd"
POOL = {POOL_LABEL: "metal"}
NODES = [f"metal-{i}" for i in range(3)]

# The operator's command: NODE VERSION COMPONENT. MODE (baked in per script): good — the
# "kubelet" reports the new version with a fresh heartbeat a moment after the command exited;
# fail — the package manager fails; silent — exits 0, and the node never reports anything new.
SCRIPT = r"""#!/bin/sh
node="$1"; version="$2"; component="$3"
echo "upgrading $component on $node to $version ({mode})"
sleep 1
case "{mode}" in
  fail) echo "E: Version '$version-1.1' for 'kubelet' was not found" >&2; exit 100 ;;
  silent) echo "done (nothing restarted)"; exit 0 ;;
esac
case "$component" in
  kubelet) info="\"kubeletVersion\": \"v$version\", \"kubeProxyVersion\": \"v$version\"" ;;
  containerd|cri-o|docker) info="\"containerRuntimeVersion\": \"$component://$version\"" ;;
  *) info="" ;;
esac
report() {{
  sleep 1
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  {kubectl} --kubeconfig {kubeconfig} patch node "$node" --subresource=status \
    --type=strategic -p "{{\"status\": {{\"nodeInfo\": {{$info}}, \"conditions\": [{{\"type\": \
\"Ready\", \"status\": \"True\", \"reason\": \"KubeletReady\", \"message\": \"kubelet is \
posting ready status\", \"lastHeartbeatTime\": \"$now\", \"lastTransitionTime\": \"$now\"}}]}}}}"
}}
report >/dev/null 2>&1 </dev/null &
echo "kubelet restarted"
"""


def _script(cp: ControlPlane, where: Path, mode: str) -> Path:
    path = where / f"upgrade-node-{mode}"
    path.write_text(SCRIPT.format(mode=mode, kubectl=cp.bin / "kubectl",
                                  kubeconfig=cp.kubeconfig))
    path.chmod(0o755)
    return path


def _policy(path: Path, strategy: str) -> Path:
    path.write_text(f"""apiVersion: pitstop.dev/v1alpha1
kind: UpgradePolicy
metadata: {{name: metal}}
spec:
  gateTiming:
    canary: {{interval: PT2S, count: 1}}
    node-health: {{interval: PT1S, count: 1}}
    workload-availability: {{interval: PT1S, count: 1}}
  pools:
    - pools: [metal]
      strategy: {strategy}
      maxUnavailable: 1
      canaryNodes: 1
      canarySoak: PT0S
      soak: PT0S
      drainTimeout: PT2M
""")
    return path


def _status(cp: ControlPlane, run: Path) -> dict[str, object]:
    res = _pitstop(cp, "status", str(run), "-o", "json")
    assert res.returncode in (0, 1), res.stdout + res.stderr
    out: dict[str, object] = json.loads(res.stdout)
    return out


def _failure(run: Path, says: str) -> str:
    """The step message of the run's journal that says ``says``."""
    messages = [str(m) for (m,) in journal(run, "SELECT message FROM steps")]
    found = [m for m in messages if says in m]
    assert found, messages
    return found[0]


def _nodes_untouched(cp: ControlPlane, failed: str | None = None) -> None:
    """Every node at the old version; uncordoned, but for ``failed``, which the executor
    leaves cordoned (and marked) for the operator to look at — who then uncordons it."""
    for name in NODES:
        node = cp.get(f"/api/v1/nodes/{name}")
        assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{OLD}", name
        marked = CORDON_ANNOTATION in (node["metadata"].get("annotations") or {})
        cordoned = bool(node["spec"].get("unschedulable"))
        assert (cordoned, marked) == ((True, True) if name == failed else (False, False)), name
    if failed is not None:
        cp.kubectl("uncordon", failed)
        cp.kubectl("annotate", "node", failed, f"{CORDON_ANNOTATION}-")


def test_apply_with_the_node_command(own_cluster: ControlPlane, tmp_path: Path) -> None:
    cp = own_cluster
    apply(cp, [kwok_node(name, labels=POOL, kubelet=OLD) for name in NODES])
    wait_for(lambda: all(node_ready(cp.get(f"/api/v1/nodes/{n}")) for n in NODES), 60,
             "3 kwok nodes Ready")
    cp.kubectl("create", "namespace", NS)
    apply(cp, [deployment(NS, "web", 4, POOL),
               pdb(NS, "web", {"app": "web"}, max_unavailable=1)])
    wait_settled(cp, NS, 4)

    fleet = tmp_path / "fleet.yaml"
    res = _pitstop(cp, "inventory", "--kubeconfig", str(cp.kubeconfig), "--out", str(fleet))
    assert res.returncode == 0, res.stderr
    runs = tmp_path / "runs"
    in_place = _policy(tmp_path / "policy.yaml", "in-place")
    res = _pitstop(cp, "plan", "-f", str(fleet), "-f", str(in_place), "--target",
                   f"kubernetes={cp.version}", "-o", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    steps = json.loads(res.stdout)["steps"]
    assert {s["action"] for s in steps} == {"upgrade-nodes"}
    assert {c["component"] for s in steps for c in s["changes"]} <= {"kubelet", "kube-proxy"}
    base = ["apply", "-f", str(fleet), "--target", f"kubernetes={cp.version}", "--backend",
            "kube", "--kubeconfig", str(cp.kubeconfig), "-y", "--runs-dir", str(runs),
            "--poll-interval", "0.5", "--node-upgrader", "command"]
    good, fail, silent = (_script(cp, tmp_path, m) for m in ("good", "fail", "silent"))

    # 1. refused before anything is read or made
    res = _pitstop(cp, *base, "-f", str(in_place))
    assert res.returncode == 2 and "--node-command" in res.stderr, res.stdout + res.stderr
    res = _pitstop(cp, *base, "-f", str(in_place), "--node-command", f"{good} {{nod}}")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "{nod}" in res.stderr and "placeholder" in res.stderr and "Fix:" in res.stderr
    res = _pitstop(cp, *base, "-f", str(in_place), "--node-command", "/no/such/up {node}")
    assert res.returncode == 2 and "not an executable" in res.stderr, res.stderr
    res = _pitstop(cp, *[a for a in base if a not in ("--node-upgrader", "command")],
                   "-f", str(in_place), "--node-command", f"{good} {{node}}")
    assert res.returncode == 2 and "--node-upgrader command" in res.stderr, res.stderr
    res = _pitstop(cp, *base, "-f", str(_policy(tmp_path / "replace.yaml", "replace")),
                   "--node-command", f"{good} {{node}} {{version}} {{component}}")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "strategy replace" in res.stderr and "in-place" in res.stderr
    assert "Traceback" not in res.stderr
    assert not runs.exists() or not any(runs.iterdir())
    _nodes_untouched(cp)

    # 2. the command fails on the canary: the step fails, the wave rolls back
    res = _pitstop(cp, *base, "-f", str(in_place), "--node-command",
                   f"{fail} {{node}} {{version}} {{component}}", timeout=300)
    assert res.returncode == 5, res.stdout + res.stderr  # rolled back
    run = next(runs.iterdir())
    status = _status(cp, run)
    assert status["status"] == "rolled-back", status
    message = _failure(run, "exited 100")
    canary = next(n for n in NODES if f"on node {n}" in message)
    assert "exited 100" in message and "was not found" in message, message
    assert (run / "nodes").is_dir() and list((run / "nodes").rglob("output.log"))
    print(f"\nexit 100: {message}")
    _nodes_untouched(cp, failed=canary)
    wait_settled(cp, NS, 4)

    # 3. the command exits 0, the node never reports the target: FAILED after the timeout
    res = _pitstop(cp, *base, "-f", str(in_place), "--node-command",
                   f"{silent} {{node}} {{version}} {{component}}", "--node-verify-timeout",
                   "3", timeout=300)
    assert res.returncode == 5, res.stdout + res.stderr  # rolled back
    run = next(r for r in runs.iterdir() if r.name != run.name)
    status = _status(cp, run)
    assert status["status"] == "rolled-back", status
    message = _failure(run, "did not report")
    assert f"node {canary} did not report kubelet {cp.version}" in message, message
    assert "within 3s" in message and f"kubeletVersion v{OLD}" in message, message
    assert "done (nothing restarted)" in message, message
    print(f"never reports: {message}")
    _nodes_untouched(cp, failed=canary)
    wait_settled(cp, NS, 4)

    # 4. the good command: every node upgraded under its PDB
    done_runs = {r.name for r in runs.iterdir()}
    with PdbWatch(cp, [NS]) as watch:
        res = _pitstop(cp, *base, "-f", str(in_place), "--node-command",
                       f"{good} {{node}} {{version}} {{component}}", timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert watch.samples > 10 and watch.violations == [], watch.violations[:5]
    run = next(r for r in runs.iterdir() if r.name not in done_runs)
    assert _status(cp, run)["status"] == "completed"
    for name in NODES:
        node = cp.get(f"/api/v1/nodes/{name}")
        assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{cp.version}", name
        assert node_ready(node) and not node["spec"].get("unschedulable"), name
        assert CORDON_ANNOTATION not in (node["metadata"].get("annotations") or {}), name
    wait_settled(cp, NS, 4)
    assert all(pod_ready(p) for p in pods(cp, NS))
    logs = [p.read_text() for p in (run / "nodes").rglob("output.log")]
    assert sorted(n for n in NODES for t in logs if f"kubelet on {n} " in t) == NODES, logs
    assert all("kubelet restarted" in t for t in logs), logs
    backend = json.loads((run / "run.json").read_text())["backend"]
    assert backend["nodeUpgrader"] == "command"
    assert backend["nodeCommand"] == [str(good), "{node}", "{version}", "{component}"]
    # `pitstop resume` rebuilds the backend from that record (nothing is left to do)
    res = _pitstop(cp, "resume", str(run), "--poll-interval", "0.5")
    assert res.returncode == 0, res.stdout + res.stderr
