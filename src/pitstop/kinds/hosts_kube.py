"""Hosts that are nodes of live clusters as a backend kind (:mod:`pitstop.compose`): the
runtime and etcd on the hosts over SSH, cordon and drain through the API server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.backend import Backend
from pitstop.compose import HOST_COMPONENTS, HostsOnNodes
from pitstop.compose import plan_problems as both_problems
from pitstop.errors import ConfigError
from pitstop.hosts.backend import HostsBackend
from pitstop.kinds.api import Prepared, RunOptions
from pitstop.kinds.hosts import access_problems, checked_inventory
from pitstop.kinds.kube import describe_contexts, prepare_kube, reopen_kube
from pitstop.kube.fleet import KubeFleet
from pitstop.planner.plan import StepAction

if TYPE_CHECKING:
    from pitstop.config import LoadedConfig
    from pitstop.executor.run import RunDir
    from pitstop.planner import Plan

__all__ = ["HostsKubeKind"]


class HostsKubeKind:
    name = "hosts+kube"
    help = ("hosts that are nodes of live clusters: the runtime on the host over SSH, the "
            "drain through the API server")

    def prepare(self, cfg: LoadedConfig, plan: Plan, options: RunOptions) -> Prepared:
        inventory = checked_inventory(cfg, self.name)
        hosts = {n.name for c in inventory.spec.clusters for n in c.nodes}
        spec = prepare_kube(
            cfg, plan, options, what="hosts+kube",
            problems=lambda clusters, hook: both_problems(inventory, plan, clusters,
                                                          control_plane_hook=hook),
            upgrades_node=lambda step: step.action == StepAction.UPGRADE_NODES and any(
                c.component not in HOST_COMPONENTS for c in step.changes),
            runtime_on_hosts=hosts)
        access = access_problems(cfg, inventory, None)
        if access:  # e.g. a malformed SSH key: named by file and field, before anything is made
            raise ConfigError(access)
        record = {**HostsOnNodes.record({**HostsBackend.run_record(), "hosts": sorted(hosts)},
                                        spec.to_record()), "mode": options.mode}
        fleet = cfg.fleet

        def make(run_dir: Path) -> Backend:
            return HostsOnNodes(KubeFleet(spec, run_dir),
                                HostsBackend.create(run_dir, inventory, fleet))

        return Prepared(record, make, self.describe(record))

    def reopen(self, run: RunDir) -> Backend:
        return HostsOnNodes(reopen_kube(run.backend["kube"], run.path),
                            HostsBackend.open(run.path))

    def describe(self, record: dict[str, Any]) -> str:
        hosts = record.get("hosts", {}).get("hosts") or []
        return (f"{len(hosts)} host(s) over SSH that are nodes of "
                + describe_contexts(record.get("kube", {})))
