"""What the planner produces: an ordered list of steps, each with its reason and gates.

The JSON form of a :class:`Plan` (``Plan.to_dict``) is a documented, stable contract
(docs/plan-json.md); add fields, never rename or remove them within ``pitstop.dev/v1alpha1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pitstop.preflight.findings import Finding, Severity

__all__ = ["Approval", "Change", "Gate", "Phase", "Plan", "Step", "StepAction", "Strategy",
           "WavePlan", "plan_from_dict"]

PLAN_FORMAT = "pitstop.dev/v1alpha1/Plan"


class Phase(StrEnum):
    ETCD = "etcd"
    CONTROL_PLANE = "control-plane"
    NODES = "nodes"
    ADDONS = "addons"


class StepAction(StrEnum):
    """What a step does (the plan JSON's ``action``)."""

    ETCD_SNAPSHOT = "etcd-snapshot"
    UPGRADE_ETCD_MEMBER = "upgrade-etcd-member"
    UPGRADE_APISERVER = "upgrade-apiserver"
    UPGRADE_CONTROLLER_MANAGER = "upgrade-controller-manager"
    UPGRADE_SCHEDULER = "upgrade-scheduler"
    UPGRADE_CLOUD_CONTROLLER_MANAGER = "upgrade-cloud-controller-manager"
    PROVIDER_UPGRADE_CONTROL_PLANE = "provider-upgrade-control-plane"
    UPGRADE_NODES = "upgrade-nodes"
    UPGRADE_ADDON = "upgrade-addon"

    @property
    def one_operation_per_target(self) -> bool:
        """Carried out as one UpgradeComponent operation per target, in order."""
        return self not in (StepAction.ETCD_SNAPSHOT, StepAction.UPGRADE_NODES)


class Strategy(StrEnum):
    """How a step's targets change (the plan JSON's ``strategy``; ``""``: none given)."""

    NONE = ""
    IN_PLACE = "in-place"  # cordon, drain, upgrade, uncordon
    REPLACE = "replace"  # surge a new node at the new versions, drain and remove the old one
    NO_DRAIN = "no-drain"  # a runtime patch restarted in place (containers survive)
    ROLLING = "rolling"  # control-plane instances, etcd members, add-ons: one after another
    MANAGED = "managed"  # the provider upgrades its managed control plane


@dataclass(frozen=True, slots=True)
class Change:
    """One component moving from one version to another. A node step lists its changes in the
    order they are made while the node is drained, each intermediate state checked."""

    component: str
    from_version: str
    to_version: str

    def to_dict(self) -> dict[str, str]:
        return {"component": self.component, "from": self.from_version, "to": self.to_version}


@dataclass(frozen=True, slots=True)
class Gate:
    """A check that must pass after a step before the next starts. ``kind`` names a built-in
    check; the executor evaluates it (interval, count, failure limit from policy)."""

    name: str
    kind: str
    description: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "description": self.description}


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    wave: str
    cluster: str
    phase: Phase
    action: StepAction
    component: str
    from_version: str
    to_version: str
    targets: tuple[str, ...]
    reason: str
    changes: tuple[Change, ...] = ()
    gates: tuple[Gate, ...] = ()
    pool: str = ""
    strategy: Strategy = Strategy.NONE
    batch_size: int = 1  # at most this many targets at once
    surge: int = 0  # extra nodes at once (replace)
    canary: bool = False
    soak: timedelta = timedelta(0)
    depends_on: tuple[str, ...] = ()
    requires_approval: bool = False
    estimate: timedelta = timedelta(0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "wave": self.wave,
            "cluster": self.cluster,
            "phase": str(self.phase),
            "action": str(self.action),
            "component": self.component,
            "from": self.from_version,
            "to": self.to_version,
            "targets": list(self.targets),
            "pool": self.pool or None,
            "strategy": str(self.strategy) or None,
            "batchSize": self.batch_size,
            "surge": self.surge,
            "canary": self.canary,
            "changes": [c.to_dict() for c in self.changes],
            "reason": self.reason,
            "gates": [g.to_dict() for g in self.gates],
            "soakSeconds": int(self.soak.total_seconds()),
            "dependsOn": list(self.depends_on),
            "requiresApproval": self.requires_approval,
            "estimateSeconds": int(self.estimate.total_seconds()),
        }


@dataclass(frozen=True, slots=True)
class Approval:
    cluster: str
    environment: str
    required: int
    approvers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WavePlan:
    name: str
    clusters: tuple[str, ...]
    canary: bool
    soak: timedelta
    max_parallel_clusters: int = 0
    reason: str = ""


@dataclass
class Plan:
    """An upgrade plan, or — when ``reachable`` is false — the reasons it cannot be made."""

    target: dict[str, str]
    steps: list[Step] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    waves: list[WavePlan] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)
    fleet: str = ""
    policy: str = ""

    @property
    def reachable(self) -> bool:
        return not any(f.severity is Severity.BLOCKING for f in self.findings)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.BLOCKING]

    def steps_of(self, cluster: str) -> list[Step]:
        return [s for s in self.steps if s.cluster == cluster]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "fleet": self.fleet,
            "policy": self.policy,
            "target": dict(self.target),
            "reachable": self.reachable,
            "summary": {
                "steps": len(self.steps),
                "clusters": len({s.cluster for s in self.steps}),
                "blocking": len(self.blocking),
                "warnings": sum(1 for f in self.findings if f.severity is Severity.WARNING),
            },
            "findings": [f.to_dict() for f in self.findings],
            "waves": [
                {
                    "name": w.name,
                    "clusters": list(w.clusters),
                    "canary": w.canary,
                    "soakSeconds": int(w.soak.total_seconds()),
                    "maxParallelClusters": w.max_parallel_clusters,
                    "reason": w.reason,
                }
                for w in self.waves
            ],
            "approvals": [
                {
                    "cluster": a.cluster,
                    "environment": a.environment,
                    "required": a.required,
                    "approvers": list(a.approvers),
                }
                for a in self.approvals
            ],
            "steps": [s.to_dict() for s in self.steps],
        }


def plan_from_dict(doc: dict[str, Any]) -> Plan:
    """Rebuild a plan from its JSON form (a run directory keeps ``plan.json``; resume reads
    it back). Findings are not needed to execute and come back as an empty list unless
    present."""
    from pitstop.preflight.findings import Finding, Severity

    steps = [
        Step(
            id=s["id"], wave=s["wave"], cluster=s["cluster"], phase=Phase(s["phase"]),
            action=StepAction(s["action"]), component=s["component"], from_version=s["from"],
            to_version=s["to"], targets=tuple(s["targets"]), reason=s["reason"],
            changes=tuple(Change(c["component"], c["from"], c["to"]) for c in s["changes"]),
            gates=tuple(Gate(g["name"], g["kind"], g["description"]) for g in s["gates"]),
            pool=s["pool"] or "", strategy=Strategy(s["strategy"] or ""), batch_size=s["batchSize"],
            surge=s["surge"], canary=s["canary"], soak=timedelta(seconds=s["soakSeconds"]),
            depends_on=tuple(s["dependsOn"]), requires_approval=s["requiresApproval"],
            estimate=timedelta(seconds=s["estimateSeconds"]),
        )
        for s in doc["steps"]
    ]
    waves = [WavePlan(w["name"], tuple(w["clusters"]), w["canary"],
                      timedelta(seconds=w["soakSeconds"]), w["maxParallelClusters"], w["reason"])
             for w in doc["waves"]]
    approvals = [Approval(a["cluster"], a["environment"], a["required"], tuple(a["approvers"]))
                 for a in doc["approvals"]]
    findings = [Finding(f["code"], Severity(f["severity"]), f["message"], f["fix"], f["cluster"],
                        tuple(f["objects"]), f["source"]) for f in doc.get("findings", [])]
    return Plan(target=dict(doc["target"]), steps=steps, findings=findings, waves=waves,
                approvals=approvals, fleet=doc.get("fleet", ""), policy=doc.get("policy", ""))
