"""The HostInventory object and what `pitstop apply --backend hosts` refuses before it creates
a run or contacts a host (no root, no hosts needed: every refusal here happens first)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pitstop.config import load_files
from pitstop.errors import ConfigError
from pitstop.model import HostInventory

SSH = {"user": "pitstop", "port": 2222, "identityFile": "/etc/pitstop/id_ed25519",
       "knownHostsFile": "/etc/pitstop/known_hosts"}


def inventory(nodes: list[dict[str, object]], **cluster: object) -> dict[str, object]:
    return {"apiVersion": "pitstop.dev/v1alpha1", "kind": "HostInventory",
            "metadata": {"name": "lab"},
            "spec": {"clusters": [{"name": "lab", "nodes": nodes, **cluster}]}}


def fleet(nodes: list[str]) -> dict[str, object]:
    return {"apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "lab"},
            "spec": {"clusters": [{
                "name": "lab", "environment": "test",
                "controlPlane": {"apiServers": [{"name": "cp-1", "version": "1.24.17"}],
                                 "controllerManager": {"version": "1.24.17"},
                                 "scheduler": {"version": "1.24.17"}},
                "nodePools": [{"name": "hosts", "nodes": [
                    {"name": n, "kubelet": "1.24.17",
                     "containerRuntime": {"name": "containerd",
                                          "version": "1.6.20~ds1-1+deb12u2"}}
                    for n in nodes]}]}]}}


def write(tmp: Path, name: str, doc: dict[str, object]) -> str:
    p = tmp / f"{name}.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(p)


def pitstop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pitstop", *args], capture_output=True,
                          text=True, timeout=120, check=False)


FULL = inventory(
    [{"name": "node-a", "address": "10.0.0.7",
      "runtime": {"control": {"type": "systemd", "unit": "containerd"}},
      "verify": [{"name": "app", "command": "curl -fsS http://127.0.0.1:8080/healthz",
                  "timeout": "20s"}]},
     {"name": "node-b", "address": "10.0.0.8", "sudo": False,
      "ssh": {**SSH, "user": "root"},
      "runtime": {"socket": "/run/c/c.sock", "control": {
          "type": "process", "root": "/var/lib/c", "state": "/run/c", "pidFile": "/run/c.pid",
          "logFile": "/var/log/c.log"}}},
     {"name": "node-c", "local": True}],
    ssh=SSH,
    etcd={"token": "lab-etcd", "binaries": {"3.4.23": "/usr/bin", "3.5.1": "/opt/etcd-3.5.1"},
          "control": {"type": "local-process", "runDir": "/var/lib/pitstop/etcd"},
          "snapshotDir": "/var/backups/etcd", "restoreDir": "/var/lib/etcd-restored",
          "members": [{"name": f"etcd-{i}", "clientUrl": f"http://10.0.0.{i}:2379",
                       "peerUrl": f"http://10.0.0.{i}:2380", "dataDir": "/var/lib/etcd"}
                      for i in (1, 2, 3)]})


def test_inventory_loads_and_survives_the_run_directory(tmp_path: Path) -> None:
    cfg = load_files([write(tmp_path, "hosts", FULL)])
    inv = cfg.hosts
    assert inv is not None and cfg.sources == {"HostInventory/lab": str(tmp_path / "hosts.yaml")}
    c = inv.cluster("lab")
    assert c is not None and [n.name for n in c.nodes] == ["node-a", "node-b", "node-c"]
    a, b, local = c.nodes
    assert c.ssh_for(a) == c.ssh and c.ssh_for(b) is b.ssh and local.local
    assert a.runtime.control.type == "systemd" and b.runtime.control.type == "process"
    assert a.verify[0].timeout.total_seconds() == 20 and not b.sudo
    assert c.etcd is not None and c.etcd.member_timeout.total_seconds() == 60
    # the run directory keeps it as JSON; `pitstop resume` reads it back unchanged
    again = HostInventory.model_validate_json(inv.model_dump_json(by_alias=True))
    assert again == inv


def test_key_material_is_refused_and_never_echoed(tmp_path: Path) -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH " \
          "PRIVATE KEY-----\n"
    doc = inventory([{"name": "node-a", "address": "10.0.0.7",
                      "ssh": {**SSH, "identityFile": key, "password": "hunter2"}}])
    with pytest.raises(ConfigError) as err:
        load_files([write(tmp_path, "hosts", doc)])
    text = str(err.value)
    assert "identityFile: this looks like key material: give the path of the key file" in text
    assert "unknown field 'password'" in text
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in text and "hunter2" not in text


def test_ssh_nodes_need_a_key_and_known_hosts(tmp_path: Path) -> None:
    doc = inventory([{"name": "node-a", "address": "10.0.0.7"},
                     {"name": "node-b", "address": "10.0.0.8", "local": True}])
    with pytest.raises(ConfigError) as err:
        load_files([write(tmp_path, "hosts", doc)])
    text = str(err.value)
    assert "node 'node-b': set exactly one of address and local" in text
    doc = inventory([{"name": "node-a", "address": "10.0.0.7",
                      "ssh": {"knownHostsFile": "/k"}}])
    with pytest.raises(ConfigError, match="SSH needs identityFile and knownHostsFile"):
        load_files([write(tmp_path, "hosts", doc)])


def test_apply_on_hosts_refuses_what_the_inventory_does_not_cover(tmp_path: Path) -> None:
    f = write(tmp_path, "fleet", fleet(["node-a", "node-x"]))
    hosts = write(tmp_path, "hosts", FULL)
    runs = tmp_path / "runs"
    target = "containerd=1.6.20~ds1-1+deb12u3"
    # plan accepts the inventory (and ignores it)
    plan = pitstop("plan", "-f", f, "-f", hosts, "--target", target)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    # no inventory: bad input
    r = pitstop("apply", "-f", f, "--target", target, "--backend", "hosts", "-y",
                "--runs-dir", str(runs))
    assert r.returncode == 2 and "--backend hosts needs a HostInventory" in r.stderr
    # a node the inventory lacks, and the kubelet: refused, no run created
    r = pitstop("apply", "-f", f, "-f", hosts, "--target", f"{target},kubernetes=1.25.16",
                "--backend", "hosts", "-y", "--runs-dir", str(runs))
    assert r.returncode == 1, r.stdout + r.stderr
    text = " ".join(r.stderr.split())
    assert "the hosts backend cannot carry this plan out" in text
    assert "node(s) node-x are not in the HostInventory of cluster lab" in text
    assert "kubelet is not upgraded by the hosts backend" in text
    assert "upgrade-apiserver is not done by the hosts backend" in text
    assert not runs.exists() or not any(runs.iterdir())
