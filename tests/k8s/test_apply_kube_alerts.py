"""Alert gates end to end on a real control plane and a real Prometheus, through the command
line only: the fleet (from ``pitstop inventory``) names the Prometheus, the policy holds node
steps while ``PitstopTestAlert`` fires; ``pitstop apply --backend kube`` pauses (exit 4)
before any node, naming the alert; once it cleared, ``pitstop resume`` (a new process, which
reads the endpoints from the run's record) upgrades the nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from harness.controlplane import ControlPlane
from harness.prometheus import ALERT, running_prometheus

from tests.runlib import only_run
from tests.telemetry.test_alert_gates import set_alert

from .kubelib import POOL_LABEL, apply, kwok_node, node_ready, wait_for
from .test_apply_kube import OLD, _pitstop

pytestmark = pytest.mark.k8s
NODES = ("alerted-0", "alerted-1")


def _kubelet(cp: ControlPlane, name: str) -> str:
    return str(cp.get(f"/api/v1/nodes/{name}")["status"]["nodeInfo"]["kubeletVersion"])


def test_a_firing_alert_holds_a_kube_run_and_resume_goes_on_once_cleared(
        own_cluster: ControlPlane, tmp_path: Path) -> None:
    cp = own_cluster
    apply(cp, [kwok_node(n, labels={POOL_LABEL: "apps"}, kubelet=OLD) for n in NODES])
    wait_for(lambda: all(node_ready(cp.get(f"/api/v1/nodes/{n}")) for n in NODES), 90,
             "nodes Ready")
    with running_prometheus(tmp_path / "prometheus") as prom:
        fleet = tmp_path / "fleet.yaml"
        res = _pitstop(cp, "inventory", "--kubeconfig", str(cp.kubeconfig), "--out", str(fleet))
        assert res.returncode == 0, res.stderr
        token = tmp_path / "token"
        token.write_text("not-checked-by-this-prometheus\n")
        doc = yaml.safe_load(fleet.read_text())
        doc["spec"]["clusters"][0]["telemetry"] = {"prometheus": {
            "url": prom.url, "bearerTokenFile": str(token), "timeout": "5s"}}
        fleet.write_text(yaml.safe_dump(doc, sort_keys=False))
        policy = tmp_path / "policy.yaml"
        policy.write_text(f"""apiVersion: pitstop.dev/v1alpha1
kind: UpgradePolicy
metadata: {{name: alerts}}
spec:
  alertGates:
    - name: hold-on-test-alert
      alertNames: [{ALERT}]
      phases: [nodes]
  gateTiming:
    canary: {{interval: PT2S, count: 1}}
    node-health: {{interval: PT1S, count: 1}}
    workload-availability: {{interval: PT1S, count: 1}}
  pools:
    - pools: [apps]
      canaryNodes: 0
      soak: PT0S
      canarySoak: PT0S
""")
        runs = tmp_path / "runs"
        base = ["-f", str(fleet), "-f", str(policy), "--target", f"kubernetes={cp.version}"]
        set_alert(prom, True)
        res = _pitstop(cp, "apply", *base, "--backend", "kube", "--kubeconfig",
                       str(cp.kubeconfig), "-y", "--runs-dir", str(runs), "--poll-interval",
                       "1", timeout=600)
        out = res.stdout + res.stderr
        assert res.returncode == 4, out
        assert ALERT in out and "hold-on-test-alert" in out, out
        assert [_kubelet(cp, n) for n in NODES] == [f"v{OLD}"] * 2
        run = only_run(runs)
        record = json.loads((run / "run.json").read_text())["backend"]
        assert record["telemetry"][doc["spec"]["clusters"][0]["name"]]["url"] == prom.url

        set_alert(prom, False)
        res = _pitstop(cp, "resume", str(run), "--poll-interval", "1", timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr
        assert [_kubelet(cp, n) for n in NODES] == [f"v{cp.version}"] * 2
