"""pitstop.compose: hosts that are Kubernetes nodes, as one backend."""

from __future__ import annotations

from pathlib import Path

from pitstop.compose import HostsOnNodes
from pitstop.hosts.backend import HostsBackend
from pitstop.kube.fleet import KubeFleet, KubeFleetSpec
from pitstop.model import HostInventory


def test_closing_hosts_on_nodes_closes_the_hosts_backend_too(tmp_path: Path) -> None:
    """Regression: HostsOnNodes.close() closed only the Kubernetes part; the hosts backend's
    connections (and its operations in flight) were left alone."""
    inv = HostInventory.model_validate({
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "HostInventory",
        "metadata": {"name": "lab"},
        "spec": {"clusters": [{"name": "c1", "nodes": [{"name": "n1", "local": True}]}]}})
    hosts = HostsBackend(inv, tmp_path)
    hosts._host("c1", inv.spec.clusters[0].nodes[0])  # a connection to close
    assert hosts._hosts
    both = HostsOnNodes(KubeFleet(KubeFleetSpec(None, {}), None), hosts)
    both.close()
    assert hosts._hosts == {}
