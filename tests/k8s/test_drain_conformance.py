"""Conformance: pitstop's drain (``pitstop.drain.Drainer`` over ``KubeBackend``) against the
real ``kubectl drain`` built with the control plane, on identical cluster states.

Every case builds the same pods twice — namespace ``dc-<case>-k`` on node ``dc-<case>-k-a`` for
kubectl, ``dc-<case>-p`` on ``dc-<case>-p-a`` for pitstop — each with a landing node ``…-b``
(cordoned while the pods are placed, so they all start on ``-a``; uncordoned before the drain,
so the real scheduler has somewhere to put replacements). Then, at the same time, kubectl
drains one node and pitstop the other, with the same options and a 30 s timeout, and the test
compares what happened: which pods were evicted (by the workload they belong to), which pods
the filters refused, and the kinds of error.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from pitstop.drain import Drainer, DrainOptions, DrainState, DrainStatus
from pitstop.kube import KubeBackend, KwokNodeUpgrader

from .controlplane import ControlPlane
from .kubelib import (
    apply,
    bare_pod,
    daemonset,
    deployment,
    kwok_node,
    pdb,
    pods,
    statefulset,
    wait_settled,
)

pytestmark = pytest.mark.k8s

IGN, EMPTY, FORCE = "--ignore-daemonsets", "--delete-emptydir-data", "--force"
TIMEOUT_S = 30


@dataclass(frozen=True)
class Case:
    name: str
    pods: dict[str, int]  # workload on the node → pods
    pdbs: tuple[tuple[str, dict[str, Any]], ...]  # (name, minAvailable/maxUnavailable) on app=web
    flags: tuple[str, ...]
    evicted: dict[str, int]  # expected, for both
    refused: frozenset[str]  # workloads whose pods the filters refuse
    errors: frozenset[str]  # daemonset | local-storage | no-controller | multiple-pdbs | timeout
    blocking: tuple[str, ...] = ()  # PDBs pitstop names as blocking


W = {"maxUnavailable": 1}
CASES = [
    #    case              pods on the node                         PDBs on app=web
    #    flags             evicted (both)             refused              errors
    #    (web, worker: Deployments; db: StatefulSet; agent: DaemonSet; bare: no controller;
    #     scratch: Deployment with an emptyDir; mirror: annotated kubernetes.io/config.mirror)
    Case("clean", {"web": 3, "db": 2, "agent": 1}, (("web", W),),
         (IGN,), {"web": 3, "db": 2}, frozenset(), frozenset()),
    Case("daemonset", {"web": 2, "agent": 1}, (),
         (), {}, frozenset({"agent"}), frozenset({"daemonset"})),
    Case("bare", {"web": 2, "bare": 1}, (),
         (IGN,), {}, frozenset({"bare"}), frozenset({"no-controller"})),
    Case("bare-force", {"web": 2, "bare": 1}, (),
         (IGN, FORCE), {"web": 2, "bare": 1}, frozenset(), frozenset()),
    Case("emptydir", {"web": 2, "scratch": 1}, (),
         (IGN,), {}, frozenset({"scratch"}), frozenset({"local-storage"})),
    Case("emptydir-ok", {"web": 2, "scratch": 1}, (),
         (IGN, EMPTY), {"web": 2, "scratch": 1}, frozenset(), frozenset()),
    Case("mirror", {"web": 2, "mirror": 1}, (),
         (IGN,), {"web": 2}, frozenset(), frozenset()),
    Case("refusals", {"web": 1, "agent": 1, "bare": 1, "scratch": 1}, (),
         (), {}, frozenset({"agent", "bare", "scratch"}),
         frozenset({"daemonset", "no-controller", "local-storage"})),
    Case("blocking-pdb", {"web": 2, "agent": 1}, (("web-all", {"minAvailable": 2}),),
         (IGN,), {}, frozenset(), frozenset({"timeout"}), ("web-all",)),
    Case("overlap", {"web": 2}, (("web-a", W), ("web-b", W)),
         (IGN,), {}, frozenset(), frozenset({"multiple-pdbs"}), ("web-a", "web-b")),
    # Both send the node's evictions at once: worker is evicted, the web pods are refused
    # (more than one PDB) and the drain fails with the node cordoned.
    Case("overlap-mixed", {"web": 2, "worker": 1}, (("web-a", W), ("web-b", W)),
         (IGN,), {"worker": 1}, frozenset(), frozenset({"multiple-pdbs"}), ("web-a", "web-b")),
]


def _setup(cp: ControlPlane, scratch: Any, case: Case, side: str) -> tuple[str, str]:
    ns = scratch.namespace(f"dc-{case.name}-{side}")
    slot = {"pitstop-test/slot": f"{case.name}-{side}"}
    a, b = f"dc-{case.name}-{side}-a", f"dc-{case.name}-{side}-b"
    scratch.nodes.extend([a, b])
    apply(cp, [kwok_node(a, labels=slot), kwok_node(b, labels=slot, unschedulable=True)])
    docs: list[dict[str, Any]] = []
    for kind, n in case.pods.items():
        if kind == "web":
            docs.append(deployment(ns, "web", n, slot))
        elif kind == "db":
            docs.append(statefulset(ns, "db", n, slot))
        elif kind == "agent":
            docs.append(daemonset(ns, "agent", slot))
        elif kind == "worker":
            docs.append(deployment(ns, "worker", n, slot))
        elif kind == "scratch":
            docs.append(deployment(ns, "scratch", n, slot, empty_dir=True))
        else:
            docs.append(bare_pod(ns, kind, a, mirror=kind == "mirror"))
    docs += [pdb(ns, name, {"app": "web"}, min_available=spec.get("minAvailable"),
                 max_unavailable=spec.get("maxUnavailable")) for name, spec in case.pdbs]
    apply(cp, docs)
    return ns, a


def _expected_pods(case: Case) -> int:
    return sum(2 if kind == "agent" else n for kind, n in case.pods.items())  # agent: a and b


# -- reading kubectl's and pitstop's answers ------------------------------------------------

_FILTER_KINDS = {"DaemonSet-managed": "daemonset", "local storage": "local-storage",
                 "declare no controller": "no-controller"}
_POD = re.compile(r"^([a-z0-9][-a-z0-9.]*)/([a-z0-9][-a-z0-9.]*)\]?$")
_REFUSAL = re.compile(r"cannot delete (.+?) \(use --[a-z-]+ to (?:override|ignore)\): ([^\n]+)")


def _kubectl_outcome(out: str, apps: dict[str, str]) -> tuple[set[str], set[str]]:
    """(refused workloads, error kinds) from kubectl drain's output."""
    refused: set[str] = set()
    errors: set[str] = set()
    for what, names in _REFUSAL.findall(out):
        errors.update(kind for key, kind in _FILTER_KINDS.items() if key in what)
        for name in names.split(", "):  # "ns/pod, ns/pod, continuing command..." or
            m = _POD.match(name.strip())   # "ns/pod, cannot delete …" (several filters)
            if m is None:
                break
            refused.add(apps.get(m.group(2), name))
    if "more than one PodDisruptionBudget" in out:
        errors.add("multiple-pdbs")
    if "global timeout reached" in out:
        errors.add("timeout")
    return refused, errors


def _pitstop_outcome(status: DrainStatus, apps: dict[str, str]) -> tuple[set[str], set[str]]:
    refused: set[str] = set()
    errors: set[str] = set()
    if status.state is DrainState.FAILED and status.message.startswith("cannot drain"):
        refused = {apps[pod.split("/", 1)[1]] for pod in status.remaining}
        errors = {kind for key, kind in {"DaemonSet-managed": "daemonset",
                                         "local storage (emptyDir)": "local-storage",
                                         "declares no controller": "no-controller"}.items()
                  if key in status.message}
    elif status.state is DrainState.FAILED and "more than one PodDisruptionBudget" in (
            status.message):
        errors.add("multiple-pdbs")
    elif status.state is DrainState.TIMED_OUT:
        errors.add("timeout")
    return refused, errors


def _evicted(cp: ControlPlane, ns: str, before: dict[str, str]) -> Counter[str]:
    """Workloads of the original pods that are gone or deleting now."""
    now = {p["metadata"]["uid"] for p in pods(cp, ns) if not p["metadata"].get(
        "deletionTimestamp")}
    return Counter(app for uid, app in before.items() if uid not in now)


def test_pitstop_drain_matches_kubectl_drain(control_plane: ControlPlane, scratch: Any) -> None:
    cp = control_plane
    placed = {(c.name, side): _setup(cp, scratch, c, side) for c in CASES for side in "kp"}
    for c in CASES:
        for side in "kp":
            wait_settled(cp, placed[(c.name, side)][0], _expected_pods(c),
                         healthy_pdbs=len(c.pdbs) < 2)
    cp.kubectl("uncordon", *[f"dc-{c.name}-{s}-b" for c in CASES for s in "kp"])
    before: dict[tuple[str, str], dict[str, str]] = {}  # uid → workload (app label)
    names: dict[tuple[str, str], dict[str, str]] = {}  # pod name → workload
    for key, (ns, node) in placed.items():
        ps = pods(cp, ns)
        before[key] = {p["metadata"]["uid"]: p["metadata"]["labels"]["app"] for p in ps
                       if p["spec"].get("nodeName") == node}
        names[key] = {p["metadata"]["name"]: p["metadata"]["labels"]["app"] for p in ps}

    # kubectl drains its nodes, all at once, in the background ...
    procs = {c.name: subprocess.Popen(
        [str(cp.bin / "kubectl"), "--kubeconfig", str(cp.kubeconfig), "drain",
         placed[(c.name, "k")][1], *c.flags, f"--timeout={TIMEOUT_S}s"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in CASES}
    # ... while pitstop drains the twins of those nodes
    backend = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader())
    drainers: dict[str, Drainer] = {}
    for c in CASES:
        node = placed[(c.name, "p")][1]
        backend.cordon(backend.cluster, node, "conformance")
        drainers[c.name] = Drainer(backend, backend.cluster, node, DrainOptions(
            ignore_daemonsets=IGN in c.flags, delete_empty_dir_data=EMPTY in c.flags,
            force=FORCE in c.flags, timeout_s=TIMEOUT_S), started=backend.clock.now())
    deadline = time.monotonic() + TIMEOUT_S + 15
    while time.monotonic() < deadline:
        obs = backend.observe(backend.cluster)
        states = [d.advance(obs).state for d in drainers.values()]
        if all(s is not DrainState.RUNNING for s in states):
            break
        time.sleep(1.0)
    outputs = {name: p.communicate(timeout=TIMEOUT_S + 30)[0] for name, p in procs.items()}
    for name, out in outputs.items():
        print(f"--- kubectl drain, case {name}:\n{out}")
    time.sleep(1.0)  # let the last accepted evictions be carried out

    report = []
    for c in CASES:
        out, status = outputs[c.name], drainers[c.name].status
        k_ev = _evicted(cp, placed[(c.name, "k")][0], before[(c.name, "k")])
        p_ev = _evicted(cp, placed[(c.name, "p")][0], before[(c.name, "p")])
        k_ref, k_err = _kubectl_outcome(out, names[(c.name, "k")])
        p_ref, p_err = _pitstop_outcome(status, names[(c.name, "p")])
        report.append((c.name, dict(k_ev), dict(p_ev), k_ref, p_ref, k_err, p_err))
        assert procs[c.name].returncode == (1 if c.errors else 0), (c.name, out)
        assert status.state is (DrainState.DONE if not c.errors else DrainState.TIMED_OUT
                                 if "timeout" in c.errors else DrainState.FAILED), (
            c.name, status)
        assert k_ev == p_ev == Counter(c.evicted), (c.name, k_ev, p_ev, out, status)
        assert k_ref == p_ref == c.refused, (c.name, k_ref, p_ref, out, status)
        assert k_err == p_err == c.errors, (c.name, k_err, p_err, out, status)
        ns = placed[(c.name, "p")][0]
        assert sorted(status.blocking_pdbs) == [f"{ns}/{b}" for b in c.blocking], status
        if c.blocking:
            for b in c.blocking:
                assert f"{ns}/{b}" in status.message  # the pause names what holds it
    # Whether the clean case meets a 429 depends on how fast kwok's replacements turn Ready
    # (seen both ways here), so it is not asserted; the 429 answer and the back-off are tested
    # deterministically in test_kube_backend.py and on the twin.
    print("\ncase | kubectl evicted | pitstop evicted | refused | errors")
    for name, k_ev, p_ev, k_ref, _, k_err, _ in report:
        print(f"{name} | {k_ev} | {p_ev} | {sorted(k_ref)} | {sorted(k_err)}")
