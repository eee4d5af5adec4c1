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


# -- SSH credentials, checked before a run exists ------------------------------------------


def _keys(tmp: Path) -> dict[str, Path]:
    """Real files of every kind: a usable key, one with a passphrase, a public key given as the
    private one, garbage, a known_hosts file and a malformed one."""
    d = tmp / "keys"
    d.mkdir()
    for name, passphrase in (("good", ""), ("locked", "correct horse")):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "t", "-f",
                        str(d / name)], check=True)
    (d / "garbage").write_text("this is not a key\n")
    pub = (d / "good.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:2222 {pub[0]} {pub[1]}\n")
    (d / "bad_known_hosts").write_text("garbage\n")
    return {p.name: p for p in d.iterdir()}


def _one_node(tmp: Path, identity: Path, known_hosts: Path) -> str:
    return write(tmp, "hosts", inventory(
        [{"name": "node-a", "address": "127.0.0.1"}],
        ssh={"user": "root", "port": 2222, "identityFile": str(identity),
             "knownHostsFile": str(known_hosts)}))


@pytest.mark.parametrize(("identity", "known_hosts", "field", "words"), [
    ("garbage", "known_hosts", "spec.clusters[0].ssh.identityFile",
     "is not a private key SSH can read"),
    ("good.pub", "known_hosts", "spec.clusters[0].ssh.identityFile",
     "is not a private key SSH can read"),
    ("locked", "known_hosts", "spec.clusters[0].ssh.identityFile",
     "is protected by a passphrase"),
    ("absent", "known_hosts", "spec.clusters[0].ssh.identityFile", "does not exist"),
    ("good", "bad_known_hosts", "spec.clusters[0].ssh.knownHostsFile",
     "is not a known_hosts file SSH can read"),
])
def test_unusable_ssh_credentials_refuse_the_run_before_it_exists(
        tmp_path: Path, identity: str, known_hosts: str, field: str, words: str) -> None:
    """Regression: a malformed identity file gave exit 3 after the run directory was made."""
    keys = _keys(tmp_path)
    key = keys.get(identity, tmp_path / "keys" / identity)
    hosts = _one_node(tmp_path, key, keys[known_hosts])
    f = write(tmp_path, "fleet", fleet(["node-a"]))
    runs = tmp_path / "runs"
    r = pitstop("apply", "-f", f, "-f", hosts, "--target", "containerd=1.6.20~ds1-1+deb12u3",
                "--backend", "hosts", "-y", "--runs-dir", str(runs))
    assert r.returncode == 2, r.stdout + r.stderr
    text = " ".join(r.stderr.split())
    assert f"{hosts}: {field}:" in text and words in text, text
    assert "(SSH to node-a of cluster lab)" in text and "Nothing was created" in text
    assert "Traceback" not in r.stderr
    assert not runs.exists() or not any(runs.iterdir())
    # no key material in the message, whatever the file held
    for p in keys.values():
        body = p.read_text()
        if "PRIVATE KEY" in body:
            assert body.splitlines()[1] not in r.stdout + r.stderr


def test_credential_problems_name_each_file_once_where_it_is_set(tmp_path: Path) -> None:
    from pitstop.hosts.backend import credential_problems

    keys = _keys(tmp_path)
    inv = HostInventory.model_validate(inventory(
        [{"name": "node-a", "address": "10.0.0.7"}, {"name": "node-b", "address": "10.0.0.8"},
         {"name": "node-c", "address": "10.0.0.9",
          "ssh": {"identityFile": str(keys["locked"]),
                  "knownHostsFile": str(keys["known_hosts"])}},
         {"name": "node-d", "local": True}],
        ssh={"identityFile": str(keys["garbage"]), "knownHostsFile": str(keys["known_hosts"])}))
    problems = credential_problems(inv, "hosts.yaml")
    assert [(p.file, p.field) for p in problems] == [
        ("hosts.yaml", "spec.clusters[0].ssh.identityFile"),
        ("hosts.yaml", "spec.clusters[0].nodes[2].ssh.identityFile")]
    assert "(SSH to node-a, node-b of cluster lab)" in problems[0].message
    assert "passphrase" in problems[1].message and "node-c" in problems[1].message
    assert all(p.fix for p in problems)
    good = HostInventory.model_validate(inventory(
        [{"name": "node-a", "address": "10.0.0.7"}],
        ssh={"identityFile": str(keys["good"]), "knownHostsFile": str(keys["known_hosts"])}))
    assert credential_problems(good) == []
    # an empty known_hosts file is readable: the run reports the hosts it lacks, per host
    (tmp_path / "empty").write_text("")
    empty = HostInventory.model_validate(inventory(
        [{"name": "node-a", "address": "10.0.0.7"}],
        ssh={"identityFile": str(keys["good"]), "knownHostsFile": str(tmp_path / "empty")}))
    assert credential_problems(empty) == []


# -- the run directory's inventory.json holds no secret ------------------------------------

BEARER = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.abcdef0123"
PASSWORD = "hunter2-xyzzy"


def _with_secrets() -> HostInventory:
    return HostInventory.model_validate(inventory(
        [{"name": "node-a", "local": True, "verify": [
            {"name": "app", "command": f"curl -fsS -H 'Authorization: Bearer {BEARER}' "
                                       "http://127.0.0.1:8080/healthz"},
            {"name": "db", "command": f"mysql --user=probe --password={PASSWORD} -e 'select 1'"},
            {"name": "plain", "command": "test -S /run/containerd/containerd.sock"}]}]))


def test_inventory_json_holds_no_secret_and_resume_runs_the_same_commands(
        tmp_path: Path) -> None:
    """Regression: a verify command's Bearer token and --password=… landed in inventory.json."""
    from pitstop.hosts.backend import HostsBackend

    inv = _with_secrets()
    HostsBackend.create(tmp_path, inv, None).close()
    text = (tmp_path / "inventory.json").read_text()
    assert BEARER not in text and PASSWORD not in text
    assert "Authorization: [redacted]" in text and "--password=[redacted]" in text
    assert "test -S /run/containerd/containerd.sock" in text  # what is no secret stays
    secrets = tmp_path / "inventory-secrets.json"
    assert secrets.stat().st_mode & 0o777 == 0o600
    assert BEARER in secrets.read_text() and "test -S" not in secrets.read_text()
    reopened = HostsBackend.open(tmp_path)
    assert reopened.inventory == inv  # the resumed run runs the real commands
    reopened.close()


def test_a_run_missing_its_secrets_is_refused_not_run_redacted(tmp_path: Path) -> None:
    from pitstop.hosts.backend import HostsBackend, RunStateUnreadable

    HostsBackend.create(tmp_path, _with_secrets(), None).close()
    secrets = tmp_path / "inventory-secrets.json"
    kept = secrets.read_text()
    # the secrets of another inventory (another command) do not fit this one
    secrets.write_text(kept.replace("select 1", "select 2"))
    with pytest.raises(RunStateUnreadable, match=r"does not belong to inventory\.json"):
        HostsBackend.open(tmp_path)
    secrets.unlink()
    with pytest.raises(RunStateUnreadable, match=r"inventory-secrets\.json, which holds "
                                                 r"them, is missing"):
        HostsBackend.open(tmp_path)
    # an inventory with nothing to redact needs no secrets file
    plain = tmp_path / "plain"
    plain.mkdir()
    inv = HostInventory.model_validate(inventory([{"name": "node-a", "local": True}]))
    HostsBackend.create(plain, inv, None).close()
    assert not (plain / "inventory-secrets.json").exists()
    assert HostsBackend.open(plain).inventory == inv
