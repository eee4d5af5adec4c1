"""Real hosts as a backend kind: container runtimes and etcd members over SSH, as a
HostInventory (``-f hosts.yaml``) says."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pitstop.backend import Backend
from pitstop.errors import ConfigError, ConfigProblem, RunRefused
from pitstop.hosts.backend import (
    HostsBackend,
    credential_problems,
    etcd_access_problems,
    plan_problems,
)
from pitstop.kinds.api import Prepared, RunOptions

if TYPE_CHECKING:
    from pitstop.config import LoadedConfig
    from pitstop.executor.run import RunDir
    from pitstop.model import HostInventory
    from pitstop.planner import Plan

__all__ = ["HostsKind", "access_problems", "checked_inventory"]


def checked_inventory(cfg: LoadedConfig, kind: str) -> HostInventory:
    """The HostInventory of ``cfg``; refused when there is none."""
    if cfg.hosts is None:
        raise ConfigError([ConfigProblem(
            "-f", None, "", f"--backend {kind} needs a HostInventory.",
            "pass -f hosts.yaml holding `kind: HostInventory` (docs/runtime-upgrades.md).")])
    return cfg.hosts


def access_problems(cfg: LoadedConfig, inventory: HostInventory,
                    plan: Plan | None) -> list[ConfigProblem]:
    """What keeps pitstop from reaching the hosts as the inventory says — an SSH key or
    known_hosts file that cannot be used, an etcd CA that does not fit (``plan``: the etcd
    members it changes) — each named by file and field, before anything is made."""
    source = cfg.sources.get(f"HostInventory/{inventory.metadata.name}", "-f")
    return (etcd_access_problems(inventory, plan, source) if plan is not None else []) + \
        credential_problems(inventory, source)


def _describe_hosts(inventory_names: list[str]) -> str:
    shown = ", ".join(inventory_names[:8]) + (f" and {len(inventory_names) - 8} more"
                                              if len(inventory_names) > 8 else "")
    return f"{len(inventory_names)} host(s) over SSH: {shown}"


class HostsKind:
    name = "hosts"
    help = "real hosts over SSH (container runtimes, etcd members), as a HostInventory says"

    def prepare(self, cfg: LoadedConfig, plan: Plan, options: RunOptions) -> Prepared:
        inventory = checked_inventory(cfg, self.name)
        problems = plan_problems(inventory, plan)
        if problems:
            raise RunRefused("the hosts backend cannot carry this plan out:\n  - "
                             + "\n  - ".join(problems))
        access = access_problems(cfg, inventory, plan)
        if access:  # e.g. a wrong etcd CA, a malformed SSH key: named by file and field
            raise ConfigError(access)
        record = {**HostsBackend.run_record(), "mode": options.mode,
                  "hosts": sorted(n.name for c in inventory.spec.clusters for n in c.nodes)}
        fleet = cfg.fleet

        def make(run_dir: Any) -> Backend:
            return HostsBackend.create(run_dir, inventory, fleet)

        return Prepared(record, make, self.describe(record))

    def reopen(self, run: RunDir) -> Backend:
        return HostsBackend.open(run.path)

    def describe(self, record: dict[str, Any]) -> str:
        return _describe_hosts([str(h) for h in record.get("hosts") or ()])
