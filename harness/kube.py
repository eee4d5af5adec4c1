"""Manifests, waits and watchers for tests and benchmarks that drive the real control plane
(:mod:`harness.controlplane`): workloads, PDBs and kwok nodes as API objects, waiting for
them to settle, a scratch area of namespaces and nodes removed afterwards, and samplers that
watch PDB floors and ready counts while something runs.

Setup and checks go through the built kubectl or plain HTTPS (``ControlPlane.get``): the code
under test (``pitstop.kube``) is never used to verify itself.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from harness.controlplane import ControlPlane, kwok_node_manifest

T = TypeVar("T")
POOL_LABEL = "pitstop.dev/pool"
KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}


def wait_for(pred: Callable[[], T], timeout: float, what: str, interval: float = 0.3,
             describe: Callable[[], object] | None = None) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f"; last seen: {describe()}" if describe is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{seen}")
        time.sleep(interval)


def kwok_node(name: str, *, labels: dict[str, str], kubelet: str = "1.36.3",
              runtime: str = "2.2.9", unschedulable: bool = False) -> dict[str, Any]:
    """A kwok node (our labels instead of ``type: kwok``, so other tests' pods stay away)."""
    doc = kwok_node_manifest(name, kubelet_version=f"v{kubelet}",
                             container_runtime_version=f"containerd://{runtime}")
    doc["metadata"]["labels"].pop("type")
    doc["metadata"]["labels"].update(labels)
    if unschedulable:
        doc["spec"]["unschedulable"] = True
    return doc


def _template(labels: dict[str, str], node_selector: dict[str, str], *, cpu: str = "100m",
              empty_dir: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeSelector": node_selector, "tolerations": [KWOK_TOLERATION],
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "app", "image": "registry.example/app:1",
                        "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}
    if empty_dir:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
        spec["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    return {"metadata": {"labels": labels}, "spec": spec}


def deployment(ns: str, name: str, replicas: int, node_selector: dict[str, str], *,
               empty_dir: bool = False) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": _template(labels, node_selector, empty_dir=empty_dir)}}


def statefulset(ns: str, name: str, replicas: int, node_selector: dict[str, str]
                ) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "serviceName": name,
                     "podManagementPolicy": "Parallel", "selector": {"matchLabels": labels},
                     "template": _template(labels, node_selector)}}


def daemonset(ns: str, name: str, node_selector: dict[str, str]) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": labels},
                     "template": _template(labels, node_selector, cpu="10m")}}


def bare_pod(ns: str, name: str, node: str, *, mirror: bool = False) -> dict[str, Any]:
    t = _template({"app": name}, {})
    t["spec"].pop("nodeSelector")
    t["spec"]["nodeName"] = node
    meta: dict[str, Any] = {"name": name, "namespace": ns, **t["metadata"]}
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": f"static-{name}"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": t["spec"]}


def pdb(ns: str, name: str, match_labels: dict[str, str], *, min_available: int | None = None,
        max_unavailable: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": match_labels}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def apply(cp: ControlPlane, docs: Iterable[dict[str, Any]]) -> None:
    cp.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": list(docs)}))


def pods(cp: ControlPlane, ns: str) -> list[dict[str, Any]]:
    return list(cp.get(f"/api/v1/namespaces/{ns}/pods")["items"])


def pod_ready(p: dict[str, Any]) -> bool:
    return p["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))


def node_ready(n: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in n["status"].get("conditions", []))


def wait_settled(cp: ControlPlane, ns: str, expected_pods: int, timeout: float = 60, *,
                 healthy_pdbs: bool = True) -> None:
    """Every pod of ``ns`` Running and Ready (``expected_pods`` of them, none deleting), and
    every PDB's status observed for its generation (and, with ``healthy_pdbs``, at or above
    its floor). Overlapping PDBs need ``healthy_pdbs=False``: the disruption controller maps a
    pod's changes to one of its PDBs only, so the other's status can stay stale (seen on
    1.36.3: ``currentHealthy: 0`` with both pods Ready, until a resync)."""
    def ok() -> bool:
        ps = [p for p in pods(cp, ns) if not p["metadata"].get("deletionTimestamp")]
        if len(ps) != expected_pods or not all(pod_ready(p) for p in ps):
            return False
        budgets = cp.get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets")["items"]
        return all(b.get("status", {}).get("observedGeneration") == b["metadata"]["generation"]
                   and (not healthy_pdbs or b["status"].get("currentHealthy", 0) >= b[
                       "status"].get("desiredHealthy", 0)) for b in budgets)
    def seen() -> object:
        return ([(p["metadata"]["name"], p["spec"].get("nodeName"), p["status"].get("phase"),
                  bool(p["metadata"].get("deletionTimestamp"))) for p in pods(cp, ns)],
                [(b["metadata"]["name"], b["metadata"]["generation"], b.get("status"))
                 for b in cp.get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets")[
                     "items"]])
    wait_for(ok, timeout, f"{expected_pods} pods Running and Ready in {ns}, PDBs observed",
             describe=seen)


@dataclass
class Scratch:
    """Namespaces and nodes a test made; removed by :meth:`cleanup`."""

    cp: ControlPlane
    namespaces: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)

    def namespace(self, name: str) -> str:
        self.cp.kubectl("create", "namespace", name)
        self.namespaces.append(name)
        return name

    def add_nodes(self, docs: list[dict[str, Any]]) -> list[str]:
        names = [d["metadata"]["name"] for d in docs]
        self.nodes.extend(names)
        apply(self.cp, docs)
        wait_for(lambda: all(node_ready(self.cp.get(f"/api/v1/nodes/{n}")) for n in names),
                 60, f"nodes {names} Ready")
        return names

    def cleanup(self) -> None:
        if self.namespaces:
            self.cp.kubectl("delete", "namespace", "--wait=false", "--ignore-not-found",
                            *self.namespaces, check=False)
        # Then the pods, at once (a namespace being deleted admits no new ones): a pod left
        # on a deleted node would wait for the pod garbage collector's quarantine (about a
        # minute) and hold its namespace in Terminating meanwhile.
        for ns in self.namespaces:
            self.cp.kubectl("delete", "pods", "--all", "-n", ns, "--force", "--grace-period=0",
                            "--wait=false", check=False)
        if self.nodes:
            self.cp.kubectl("delete", "node", "--wait=false", "--ignore-not-found",
                            *self.nodes, check=False)


class _Sampler:
    """Calls :meth:`sample` every ``interval`` seconds in a thread, from ``with`` to its end;
    counts ``samples`` and keeps ``violations`` (time, budget, healthy, floor)."""

    def __init__(self, cp: ControlPlane, interval: float) -> None:
        self.cp, self.interval = cp, interval
        self.violations: list[tuple[float, str, int, int]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class PdbWatch(_Sampler):
    """Polls the PDBs of ``namespaces`` (every ``interval`` seconds, in a thread) and records
    every sample whose status — observed for the PDB's generation — shows fewer healthy pods
    than the budget's floor (``currentHealthy < desiredHealthy``)."""

    def __init__(self, cp: ControlPlane, namespaces: list[str], interval: float = 0.25) -> None:
        super().__init__(cp, interval)
        self.namespaces = namespaces

    def sample(self) -> None:
        for ns in self.namespaces:
            for b in self.cp.get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets")[
                    "items"]:
                st = b.get("status") or {}
                if st.get("observedGeneration") != b["metadata"]["generation"]:
                    continue
                self.samples += 1
                if st.get("currentHealthy", 0) < st.get("desiredHealthy", 0):
                    self.violations.append((time.time(), f"{ns}/{b['metadata']['name']}",
                                            st.get("currentHealthy", 0),
                                            st.get("desiredHealthy", 0)))


class ReadyFloorWatch(_Sampler):
    """Samples the pods of ``ns`` and, for every PDB there, counts the Ready pods its
    selector matches (deleting ones excluded) against the floor its spec sets — minAvailable,
    or the workload's replicas minus maxUnavailable — without reading the PDB's status."""

    def __init__(self, cp: ControlPlane, ns: str, replicas: dict[str, int],
                 interval: float = 0.25) -> None:
        super().__init__(cp, interval)
        self.ns, self.replicas = ns, replicas

    def sample(self) -> None:
        budgets = self.cp.get(f"/apis/policy/v1/namespaces/{self.ns}/"
                              "poddisruptionbudgets")["items"]
        live = [p for p in pods(self.cp, self.ns)
                if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]
        for b in budgets:
            sel = b["spec"]["selector"]["matchLabels"]
            name = b["metadata"]["name"]
            ready = sum(1 for p in live
                        if all(p["metadata"]["labels"].get(k) == v for k, v in sel.items()))
            spec = b["spec"]
            floor = (int(spec["minAvailable"]) if "minAvailable" in spec
                     else self.replicas[name] - int(spec["maxUnavailable"]))
            self.samples += 1
            if ready < floor:
                self.violations.append((time.time(), name, ready, floor))


def quiet_cluster(cp: ControlPlane) -> None:
    """No PDB is left in a namespace an earlier test deleted: the gates read every PDB of the
    cluster. Kubernetes 1.36 deletes a namespace's pods before its other objects (ordered
    namespace deletion), and a pod orphaned on a deleted node waits for the pod garbage
    collector's quarantine (about 45 s here), so such pods are force-deleted: their
    namespace is going anyway."""
    def going() -> set[str]:
        return {n["metadata"]["name"] for n in cp.get("/api/v1/namespaces")["items"]
                if n["status"].get("phase") == "Terminating"}

    for ns in going():
        cp.kubectl("delete", "pods", "--all", "-n", ns, "--force", "--grace-period=0",
                   "--wait=false", check=False)

    def leftovers() -> list[str]:
        doomed = going()
        return [f"{b['metadata']['namespace']}/{b['metadata']['name']}"
                for b in cp.get("/apis/policy/v1/poddisruptionbudgets")["items"]
                if b["metadata"]["namespace"] in doomed]
    wait_for(lambda: not leftovers(), 90, "no PDB left in a namespace being deleted",
             describe=leftovers)
