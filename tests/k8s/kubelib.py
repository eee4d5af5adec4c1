"""Helpers for the tests that drive the real control plane: starting one for a test (failing,
never skipping, when its binaries are not built) and a module's own cluster; the manifests,
waits and watchers live in :mod:`harness.kube`, shared with the benchmarks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from harness.controlplane import BinariesMissing, ControlPlane
from harness.kube import (
    KWOK_TOLERATION,
    POOL_LABEL,
    PdbWatch,
    ReadyFloorWatch,
    Scratch,
    apply,
    bare_pod,
    daemonset,
    deployment,
    kwok_node,
    node_ready,
    pdb,
    pod_ready,
    pods,
    quiet_cluster,
    statefulset,
    wait_for,
    wait_settled,
)

__all__ = ["KWOK_TOLERATION", "POOL_LABEL", "PdbWatch", "ReadyFloorWatch", "Scratch", "apply",
           "bare_pod", "daemonset", "deployment", "kwok_node", "node_ready", "own_cluster",
           "pdb", "pod_ready", "pods", "quiet_cluster", "running", "statefulset", "wait_for",
           "wait_settled"]


@contextlib.contextmanager
def running(make: Callable[[], ControlPlane] = ControlPlane) -> Iterator[ControlPlane]:
    """A control plane started for the caller and stopped after; the test fails (never skips)
    when its binaries are not built, saying how to build them."""
    try:
        cp = make()
    except BinariesMissing as e:
        pytest.fail(str(e), pytrace=False)
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[ControlPlane]:
    """A control plane of the test module's own (import this fixture into the module): for
    tests whose inventory must see only their nodes, or that kill pitstop mid-run."""
    with running() as cp:
        yield cp
