"""Fixtures for the host tests.

Shared by two families of tests, each keeping its fixtures in its own module:

* containerd runtime upgrades (``test_connect.py``, ``test_containerd.py``):
  ``runtime_fixtures.py`` — the estate (packages, private sshd and containerd, a container) and
  the figures printed at the end of the run;
* etcd (``etcdlib.py``): the etcd binaries and live clusters.
"""

from __future__ import annotations

from tests.k8s.kubelib import own_cluster  # a control plane for hosts that are nodes

from .etcdlib import etcd_binaries, make_cluster
from .runtime_fixtures import at_start, estate, pytest_terminal_summary, ssh

__all__ = ["at_start", "estate", "etcd_binaries", "make_cluster", "own_cluster",
           "pytest_terminal_summary", "ssh"]
