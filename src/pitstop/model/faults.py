"""The ``FaultScenario`` object: what goes wrong during a rehearsal on the twin.

A scenario lists faults; the twin (``pitstop.twin``) injects each one when its trigger happens.
Faults are deterministic: the same scenario, seed and sequence of calls give the same run.

=====================  ==========================================================================
``nodeNeverReady``     a node stays NotReady after its kubelet or runtime upgrade (or after it
                       is added): named ``nodes``, or the first ``count`` nodes of ``pool`` to be
                       upgraded
``runtimeUpgradeFails`` the container runtime upgrade of some nodes ends FAILED with ``message``
                       (the old runtime restarts; the node returns Ready at its old version)
``apiserverLatency``   after ``afterSteps`` completed control-plane steps (of ``component`` if
                       given), the apiserver's latency rises to ``latencyMs``
``canaryErrorRate``    the ``error_rate`` metric of a cluster rises to ``errorRate`` while any of
                       its nodes (of ``pool`` if given) runs an upgraded kubelet or runtime
``pdbNeverAllows``     a PodDisruptionBudget whose ``disruptionsAllowed`` is forced to 0
``metricRegression``   a signal of the twin's metric series (``pod-startup-p99`` …, see
                       ``pitstop.twin.metrics``) is ``shift`` × higher (0.30 = +30 %) on upgraded
                       nodes (of ``pool``, or only ``nodes``), from ``after`` past each node's
                       upgrade: what the canary judge is to catch
``processCrash``       the executor's process dies: at virtual time ``at``, or on the call after
                       the ``afterCalls``-th destructive call; fires once
=====================  ==========================================================================
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from pitstop.model.common import API_VERSION, Duration, Metadata, SpecModel
from pitstop.model.limits import MAX_COUNT, MAX_LATENCY_MS
from pitstop.model.names import (
    ClusterName,
    NodeName,
    PoolName,
    check_namespace,
    check_pdb_name,
)

__all__ = [
    "ApiserverLatency",
    "CanaryErrorRate",
    "Fault",
    "FaultScenario",
    "FaultScenarioSpec",
    "MetricRegression",
    "NodeNeverReady",
    "PdbNeverAllows",
    "ProcessCrash",
    "RuntimeUpgradeFails",
]


class _NodeFault(SpecModel):
    cluster: ClusterName | None = Field(default=None,
                                        description="cluster it applies to; any if unset")
    nodes: list[NodeName] = Field(default_factory=list, description="these nodes")
    pool: PoolName | None = Field(default=None, description="or the first `count` nodes of this "
                                  "pool whose upgrade starts")
    count: int = Field(default=1, ge=1, le=MAX_COUNT)

    @model_validator(mode="after")
    def _nodes_or_pool(self) -> _NodeFault:
        if bool(self.nodes) == (self.pool is not None):
            raise ValueError("set exactly one of nodes and pool")
        return self


class NodeNeverReady(_NodeFault):
    type: Literal["nodeNeverReady"]
    component: str | None = Field(
        default=None,
        description="the upgrade that triggers it (kubelet, containerd, cri-o); any if unset; "
        "a node added to the pool (replace strategy) counts as a kubelet upgrade",
    )


class RuntimeUpgradeFails(_NodeFault):
    type: Literal["runtimeUpgradeFails"]
    message: str = Field(default="runtime upgrade failed: package post-install script "
                         "exited with status 1", min_length=1)


class ApiserverLatency(SpecModel):
    type: Literal["apiserverLatency"]
    cluster: ClusterName | None = None
    component: str | None = Field(
        default=None,
        description="count only steps of this component (kube-apiserver, "
        "kube-controller-manager, kube-scheduler, etcd, control-plane); any if unset",
    )
    after_steps: int = Field(default=1, ge=1, le=MAX_COUNT,
                             description="completed control-plane steps")
    latency_ms: float = Field(gt=0, le=MAX_LATENCY_MS, description="at most an hour")


class CanaryErrorRate(SpecModel):
    type: Literal["canaryErrorRate"]
    cluster: ClusterName | None = None
    pool: PoolName | None = Field(default=None,
                                  description="only upgraded nodes of this pool count")
    error_rate: float = Field(ge=0, le=1)


class PdbNeverAllows(SpecModel):
    type: Literal["pdbNeverAllows"]
    cluster: ClusterName | None = None
    pdb: str = Field(pattern=r"^[^/\s]+/[^/\s]+$", description="namespace/name")

    @field_validator("pdb")
    @classmethod
    def _ref(cls, value: str) -> str:
        namespace, _, name = value.partition("/")
        check_namespace(namespace)
        check_pdb_name(name)
        return value


class MetricRegression(SpecModel):
    """A regression the canary judge should see: on upgraded nodes, ``signal`` is multiplied
    by ``1 + shift`` from ``after`` past the node's upgrade (the twin's series,
    ``pitstop.twin.metrics``)."""

    type: Literal["metricRegression"]
    cluster: ClusterName | None = None
    signal: str = Field(min_length=1, max_length=200,
                        description="one of the twin's signals, e.g. pod-startup-p99")
    shift: float = Field(gt=-1.0, le=100.0, description="relative: 0.30 = +30 %")
    pool: PoolName | None = Field(default=None, description="only upgraded nodes of this pool")
    nodes: list[NodeName] = Field(default_factory=list,
                                  description="only these nodes (once upgraded); any if empty")
    after: Duration = Field(default=timedelta(0),
                            description="how long after a node's upgrade the shift begins")


class ProcessCrash(SpecModel):
    type: Literal["processCrash"]
    at: Duration | None = Field(default=None, description="virtual time since the twin began")
    after_calls: int | None = Field(default=None, ge=1, le=MAX_COUNT,
                                    description="destructive calls made")

    @model_validator(mode="after")
    def _one_trigger(self) -> ProcessCrash:
        if (self.at is None) == (self.after_calls is None):
            raise ValueError("set exactly one of at and afterCalls")
        return self


Fault = Annotated[
    NodeNeverReady | RuntimeUpgradeFails | ApiserverLatency | CanaryErrorRate | PdbNeverAllows
    | MetricRegression | ProcessCrash,
    Field(discriminator="type"),
]


class FaultScenarioSpec(SpecModel):
    faults: list[Fault] = Field(default_factory=list)


class FaultScenario(SpecModel):
    api_version: Literal["pitstop.dev/v1alpha1"] = API_VERSION
    kind: Literal["FaultScenario"] = "FaultScenario"
    metadata: Metadata = Field(default_factory=lambda: Metadata(name="faults"))
    spec: FaultScenarioSpec = Field(default_factory=FaultScenarioSpec)

    @classmethod
    def example_json_schema(cls) -> dict[str, Any]:
        return cls.model_json_schema(by_alias=True)
