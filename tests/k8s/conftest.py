"""Session-scoped real Kubernetes control plane (see harness/controlplane.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness.controlplane import ControlPlane, default_version

from .kubelib import Scratch, own_cluster, running

__all__ = ["control_plane", "k8s_version", "own_cluster", "scratch"]


@pytest.fixture(scope="session")
def k8s_version() -> str:
    """The Kubernetes version under test: $PITSTOP_K8S_VERSION, else the newest pinned one."""
    return default_version()


@pytest.fixture(scope="session")
def control_plane(k8s_version: str) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on loopback.

    Fails (never skips) when the binaries are not built: run hack/k8s/build.sh.
    """
    with running(lambda: ControlPlane(k8s_version)) as cp:
        yield cp


@pytest.fixture
def scratch(control_plane):
    """Namespaces and nodes a test makes on the shared cluster, removed after it."""
    s = Scratch(control_plane)
    try:
        yield s
    finally:
        s.cleanup()
