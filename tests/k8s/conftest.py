"""Session-scoped real Kubernetes control plane (see tests/k8s/controlplane.py)."""

from __future__ import annotations

import pytest

from .controlplane import BinariesMissing, ControlPlane, default_version
from .kubelib import Scratch


@pytest.fixture(scope="session")
def k8s_version() -> str:
    """The Kubernetes version under test: $PITSTOP_K8S_VERSION, else the newest pinned one."""
    return default_version()


@pytest.fixture(scope="session")
def control_plane(k8s_version: str):
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on loopback.

    Fails (never skips) when the binaries are not built: run hack/k8s/build.sh.
    """
    try:
        cp = ControlPlane(k8s_version)
    except BinariesMissing as e:
        pytest.fail(str(e), pytrace=False)
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def scratch(control_plane):
    """Namespaces and nodes a test makes on the shared cluster, removed after it."""
    s = Scratch(control_plane)
    try:
        yield s
    finally:
        s.cleanup()
