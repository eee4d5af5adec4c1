"""The cluster-free parts of pitstop.kube: drift between two fleets, images, a workload's
requests, cluster names. The live parts are tested against a real control plane in
tests/k8s/test_inventory.py; the JSON vocabulary (quantities, pod requests, pools) in
tests/test_kube_parse.py."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from pitstop.config import load_files
from pitstop.kube.drift import fleet_drift
from pitstop.kube.inventory import _requests, cluster_name_for, split_image
from pitstop.kube.keydir import sweep
from pitstop.kube.redact import redact, redact_url
from pitstop.model import Fleet

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "pitstop" / "examples" / "fleet.yaml"


def _fleet() -> Fleet:
    fleet = load_files([EXAMPLE]).fleet
    assert fleet is not None
    return fleet


def test_identical_fleets_do_not_drift() -> None:
    assert fleet_drift(_fleet(), _fleet()) == []


def test_drift_names_each_difference() -> None:
    declared = _fleet()
    doc = declared.model_dump(by_alias=True, mode="json", exclude_none=True)
    c = doc["spec"]["clusters"][1]
    name = c["name"]
    c["controlPlane"]["apiServers"][0]["version"] = "v1.99.0"  # v prefix: compared as versions
    pool = c["nodePools"][0]
    gone = pool["nodes"].pop()["name"]
    pool["nodes"][0]["kubelet"] = "1.20.1"
    live = Fleet.model_validate(doc)
    found = {(d.what, d.subject) for d in fleet_drift(declared, live)}
    assert {("kube-apiserver", c["controlPlane"]["apiServers"][0]["name"]),
            ("node", gone), ("kubelet", pool["nodes"][0]["name"]),
            ("pool-size", pool["name"])} == found
    assert all(d.cluster == name for d in fleet_drift(declared, live))
    missing = fleet_drift(declared, live, [(name, "elsewhere")])
    assert [(d.what, d.live) for d in missing] == [("cluster", None)]


def test_images() -> None:
    assert split_image("registry.k8s.io:5000/kube-proxy:v1.36.2") == (
        "registry.k8s.io:5000/kube-proxy", "v1.36.2", "")
    assert split_image("quay.io/cilium/cilium:v1.16.1@sha256:ab") == (
        "quay.io/cilium/cilium", "v1.16.1", "sha256:ab")
    assert split_image("busybox") == ("busybox", "", "")


def test_a_workload_requests_what_its_largest_pod_does_else_its_template() -> None:
    template = {
        "containers": [{"resources": {"requests": {"cpu": "200m", "memory": "100Mi"}}}],
        "initContainers": [{"restartPolicy": "Always",
                            "resources": {"requests": {"cpu": "50m"}}}],
    }
    q = _requests(template, [])  # no pods: the template, as the API server would default it
    assert (q.millicpu, q.memory_bytes, q.cpu, q.memory) == (250, 100 * 2**20, "250m", "100Mi")
    # pods: the API server added the RuntimeClass overhead; during a rollout the larger counts
    old = {"spec": {**template, "overhead": {"cpu": "10m", "memory": "1Mi"}}}
    new = {"spec": {"containers": [{"resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}]}}
    q = _requests(template, [old, new])
    assert (q.millicpu, q.memory_bytes) == (1000, 101 * 2**20)
    assert _requests({"containers": [{}]}, []).cpu is None


def test_cluster_names_from_contexts() -> None:
    arn = "arn:aws:eks:eu-west-1:123456789012:cluster/Prod_EU"
    assert cluster_name_for(arn) == "arn-aws-eks-eu-west-1-123456789012-cluster-prod-eu"
    assert cluster_name_for("a", ["a", "a-2"]) == "a-3"


# -- key material of kubeconfigs --------------------------------------------------------------

KEY_MARKER = "PITSTOP-TEST-KEY-" + os.urandom(8).hex()
_CONNECT_AND_WAIT = """
import sys, time
from pitstop.kube.connect import connect
api = connect(sys.argv[1])
print("connected", flush=True)
if sys.argv[2] == "wait":
    time.sleep(300)
"""


def _inline_kubeconfig(path: Path) -> Path:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {
            "server": "https://127.0.0.1:1",
            "certificate-authority-data": b64("-----BEGIN CERTIFICATE-----\nCA\n")}}],
        "users": [{"name": "x", "user": {
            "client-certificate-data": b64("-----BEGIN CERTIFICATE-----\nCERT\n"),
            "client-key-data": b64(f"-----BEGIN PRIVATE KEY-----\n{KEY_MARKER}\n"
                                   "-----END PRIVATE KEY-----\n")}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}))
    path.chmod(0o600)
    return path


def _holding_the_key(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and KEY_MARKER in p.read_text("latin-1")]


def _private(d: Path) -> bool:
    st = d.lstat()
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def test_a_killed_pitstop_leaves_its_key_only_in_a_private_directory_swept_at_start(
        tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"  # the child's temporary directory, shared like /tmp
    tmp.mkdir()
    tmp.chmod(0o1777)
    kubeconfig = _inline_kubeconfig(tmp_path / "kubeconfig")
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "KUBECONFIG")}
    env.update(TMPDIR=str(tmp), HOME=str(tmp_path))
    child = subprocess.Popen([sys.executable, "-c", _CONNECT_AND_WAIT, str(kubeconfig), "wait"],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "connected"
        held = _holding_the_key(tmp)
        assert held, "the client loaded the inline key without writing it: nothing to check"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert _holding_the_key(tmp) == held  # SIGKILL: no exit handler ran
    for path in held:  # each in a 0700 directory of this user, inside another one
        assert _private(path.parent) and _private(path.parent.parent), path
        assert path.parent.name.startswith(f"keys-{child.pid}-")
        assert not path.stat().st_mode & 0o077
    # the next pitstop that connects removes the dead one's directory, and its own at exit
    done = subprocess.run([sys.executable, "-c", _CONNECT_AND_WAIT, str(kubeconfig), "exit"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert _holding_the_key(tmp) == []
    assert not any(p.name.startswith("keys-") for p in tmp.rglob("*"))


def test_the_sweep_removes_the_directories_of_processes_that_are_gone(tmp_path: Path) -> None:
    parent = os.getppid()
    started = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[19]
    alive = tmp_path / f"keys-{parent}-{started}"
    reused = tmp_path / f"keys-{parent}-{int(started) + 1}"  # that pid, another process
    gone = tmp_path / "keys-999999999-1"
    other = tmp_path / "not-a-key-directory"
    for d in (alive, reused, gone, other):
        d.mkdir()
        (d / "tmpkey").write_text("key")
    assert sorted(sweep(tmp_path)) == sorted([reused, gone])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])


def test_a_key_directory_someone_else_could_read_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"  # $XDG_RUNTIME_DIR, as systemd makes it
    run.mkdir(mode=0o700)
    (run / "pitstop").mkdir(mode=0o755)
    (run / "pitstop").chmod(0o755)
    kubeconfig = _inline_kubeconfig(tmp_path / "kubeconfig")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run), "HOME": str(tmp_path)}
    env.pop("KUBECONFIG", None)
    res = subprocess.run([sys.executable, "-m", "pitstop", "inventory", "--kubeconfig",
                          str(kubeconfig)], capture_output=True, text=True, env=env,
                         timeout=60, check=False)
    assert res.returncode == 2, res.stderr
    assert f"{run / 'pitstop'} cannot hold kubeconfig key material: its mode is 0755" in (
        res.stderr)
    assert "Fix:" in res.stderr and "Traceback" not in res.stderr
    assert list((run / "pitstop").iterdir()) == []  # nothing was written there


def test_credentials_are_redacted_from_messages() -> None:
    assert redact("no answer from https://admin:PASS@127.0.0.1:1 (x)") == (
        "no answer from https://admin:***@127.0.0.1:1 (x)")
    assert redact_url("https://t0ken@h:6443") == "https://***@h:6443"
    assert redact_url("https://10.0.0.1:6443/api") == "https://10.0.0.1:6443/api"
    assert redact("Invalid header value b'Bearer s3cr3t\\nx'") == (
        "Invalid header value b'Bearer ***'")
    assert redact("Authorization: Basic YWRtaW46UEFTUw==") == "Authorization: Basic ***"
    assert redact("GET /x?access_token=abc&limit=1") == "GET /x?access_token=***&limit=1"
    assert redact('{"token": "abc", "kind": "ExecCredential"}') == (
        '{"token": "***", "kind": "ExecCredential"}')
    assert redact("-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY----- end") == (
        "[private key] end")
    assert redact("basic auth is off") == "basic auth is off"
