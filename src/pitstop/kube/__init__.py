"""The Kubernetes backend: the executor's backend interface over a real cluster, through the
official Kubernetes client (kubeconfig contexts, exec credential plugins, in-cluster config)."""

from pitstop.kube.backend import Call, KubeBackend, MetricsSource, RealClock, pod_readiness_metrics
from pitstop.kube.connect import KubeApi, connect
from pitstop.kube.nodecommand import CommandNodeUpgrader
from pitstop.kube.upgrade import KwokNodeUpgrader, NodeUpgrader, Refused, UpgradeContext

__all__ = ["Call", "CommandNodeUpgrader", "KubeApi", "KubeBackend", "KwokNodeUpgrader",
           "MetricsSource", "NodeUpgrader", "RealClock", "Refused", "UpgradeContext", "connect",
           "pod_readiness_metrics"]
