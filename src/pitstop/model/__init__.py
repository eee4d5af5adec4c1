"""Configuration objects (Kubernetes-style, ``apiVersion: pitstop.dev/v1alpha1``)."""

from pitstop.model.common import API_VERSION, LabelSelector, Metadata, Quantity
from pitstop.model.fleet import (
    AddOn,
    ApiObjectRef,
    ApiServer,
    Cluster,
    ContainerRuntime,
    ControlPlane,
    ControlPlaneComponent,
    Etcd,
    EtcdMember,
    Fleet,
    FleetSpec,
    Node,
    NodePool,
    PodDisruptionBudget,
    Workload,
)
from pitstop.model.policy import (
    Approval,
    Blackout,
    MaintenanceWindow,
    PoolPolicy,
    StepEstimates,
    UpgradePolicy,
    UpgradePolicySpec,
    Waiver,
    Wave,
)
from pitstop.model.target import UpgradeTarget, UpgradeTargetSpec, parse_target_text

KINDS = {"Fleet": Fleet, "UpgradePolicy": UpgradePolicy, "UpgradeTarget": UpgradeTarget}

__all__ = [
    "API_VERSION",
    "KINDS",
    "AddOn",
    "ApiObjectRef",
    "ApiServer",
    "Approval",
    "Blackout",
    "Cluster",
    "ContainerRuntime",
    "ControlPlane",
    "ControlPlaneComponent",
    "Etcd",
    "EtcdMember",
    "Fleet",
    "FleetSpec",
    "LabelSelector",
    "MaintenanceWindow",
    "Metadata",
    "Node",
    "NodePool",
    "PodDisruptionBudget",
    "PoolPolicy",
    "Quantity",
    "StepEstimates",
    "UpgradePolicy",
    "UpgradePolicySpec",
    "UpgradeTarget",
    "UpgradeTargetSpec",
    "Waiver",
    "Wave",
    "Workload",
    "parse_target_text",
]
