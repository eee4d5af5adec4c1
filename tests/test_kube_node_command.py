"""The node upgrade command and the detached-command machinery it shares with the
control-plane hook, without a cluster: bad configurations refused with the fix (exit 2), the
run record that `pitstop resume` rebuilds the backend from, and the states of a real detached
command — exited with its status and output, still running, timed out, vanished without a
status, and a process id reused by another process. (On a real control plane:
tests/k8s/test_apply_kube_command.py.)"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pitstop.errors import ConfigError, PitstopError
from pitstop.kube.command import CommandStatus, command_status, launch, proc_start
from pitstop.kube.fleet import KubeFleetSpec, make_node_upgrader
from pitstop.kube.nodecommand import CommandNodeUpgrader, NodeCommandError, node_report
from pitstop.kube.upgrade import KwokNodeUpgrader


def _until(read: Callable[[], CommandStatus], state: str, what: str) -> CommandStatus:
    deadline = time.monotonic() + 30
    while True:
        st = read()
        if st.state == state:
            return st
        assert time.monotonic() < deadline, f"{what}: still {st.state}"
        time.sleep(0.05)


@pytest.mark.parametrize(("command", "says"), [
    ("ssh {node} upgrade", "is not a list of arguments"),
    ([], "is not a list of arguments"),
    (["ssh", "{host}", "upgrade"], "uses {host}, which is not a placeholder"),
    (["ssh", "{instance}", "upgrade"], "uses {instance}, which is not a placeholder"),
    (["ssh", "{node", "upgrade"], "write a literal brace"),
    (["/no/such/upgrade-kubelet", "{node}"], "is not an executable file or on PATH"),
])
def test_a_bad_node_command_is_refused_clearly(tmp_path: Path, command: object,
                                               says: str) -> None:
    with pytest.raises(NodeCommandError) as err:
        CommandNodeUpgrader(command, tmp_path)  # type: ignore[arg-type]
    assert says in str(err.value) and "Fix:" in str(err.value)
    assert isinstance(err.value, PitstopError) and err.value.exit_code == 2


def test_bad_timeouts_and_a_good_template(tmp_path: Path) -> None:
    with pytest.raises(NodeCommandError, match="verify_timeout_s is 0"):
        CommandNodeUpgrader(["true"], tmp_path, verify_timeout_s=0)
    up = CommandNodeUpgrader(["env", "{node}", "{component}", "{version}", "{cluster}"],
                             tmp_path)
    assert up.command == ("env", "{node}", "{component}", "{version}", "{cluster}")


def test_make_node_upgrader_pairs_the_upgrader_and_its_command(tmp_path: Path) -> None:
    assert isinstance(make_node_upgrader("kwok"), KwokNodeUpgrader)
    up = make_node_upgrader("command", command=("true", "{node}"), state_dir=tmp_path,
                            verify_timeout_s=7)
    assert isinstance(up, CommandNodeUpgrader) and up.verify_timeout_s == 7
    for kind, command, says in (("command", (), "--node-command"),
                                ("kwok", ("true",), "--node-upgrader command"),
                                ("ssh", (), "unknown node upgrader")):
        with pytest.raises(ConfigError) as err:
            make_node_upgrader(kind, command=command)
        assert says in str(err.value)


def test_the_run_record_keeps_the_node_command() -> None:
    spec = KubeFleetSpec(kubeconfig="/k", contexts={"c": "ctx"}, node_upgrader="command",
                         control_plane_addresses={},
                         node_command=("ssh", "{node}", "up", "{version}"),
                         node_verify_timeout_s=12.5, node_command_timeout_s=99.0)
    assert KubeFleetSpec.from_record(spec.to_record()) == spec
    old = KubeFleetSpec(kubeconfig=None, contexts={"c": "ctx"}).to_record()
    for key in ("nodeCommand", "nodeVerifyTimeout", "nodeCommandTimeout"):
        del old[key]  # a run made before the node command existed
    back = KubeFleetSpec.from_record(old)
    assert (back.node_upgrader, back.node_command, back.node_verify_timeout_s) == (
        "kwok", (), 300.0)


def test_node_report_reads_the_kubelets_own_status() -> None:
    node = {"status": {
        "nodeInfo": {"kubeletVersion": "v1.36.3", "kubeProxyVersion": "",
                     "containerRuntimeVersion": "containerd://2.2.1"},
        "conditions": [{"type": "Ready", "status": "True",
                        "lastHeartbeatTime": "2026-11-26T10:00:05Z"}]}}
    kubelet = node_report(node, "kubelet")
    assert (kubelet.version, kubelet.ready, kubelet.heartbeat) == (
        "1.36.3", "True", datetime(2026, 11, 26, 10, 0, 5, tzinfo=UTC).timestamp())
    runtime = node_report(node, "containerd")
    assert (runtime.field, runtime.runtime, runtime.version) == (
        "containerRuntimeVersion", "containerd", "2.2.1")
    proxy = node_report(node, "kube-proxy")
    assert (proxy.value, proxy.version) == ("", "")
    assert "kubeProxyVersion (empty), Ready True, last heartbeat 10:00:05Z" in proxy.text()
    assert not node_report(None, "kubelet").exists


def test_a_detached_command_exits_with_its_status_and_output(tmp_path: Path) -> None:
    data = launch(tmp_path, "kubelet-n1/1.36.3", ["/bin/sh", "-c", "echo one; echo two >&2; "
                                                  "exit 3"], 0.0, "the test command")
    assert Path(data["dir"]).name.startswith("kubelet-n1_1.36.3-0-")
    st = _until(lambda: command_status(data, 1.0, 0.0, 60.0), "exited", "exit 3")
    assert not st.succeeded and st.exit_status == "3" and st.ended > 0
    assert st.tail() == "one | two"
    assert st.failure("kubelet on node n1") == (
        f"kubelet on node n1: the upgrade command `/bin/sh -c 'echo one; echo two >&2; exit 3'`"
        f" exited 3: one | two ({st.log})")


def test_running_timed_out_vanished_and_a_reused_pid(tmp_path: Path) -> None:
    data = launch(tmp_path, "op", ["sleep", "60"], 0.0, "the test command")
    pid = int(data["pid"])
    try:
        assert data["pid_start"] == proc_start(pid)
        assert command_status(data, 10.0, 0.0, 60.0).state == "running"
        late = command_status(data, 100.0, 0.0, 60.0)
        assert late.state == "timed-out"
        assert "still running after 60s" in late.failure("x") and "left running" in \
            late.failure("x")
        # another process under the recorded pid is not the command
        other = {**data, "pid": os.getpid(), "pid_start": "1"}
        assert command_status(other, 10.0, 0.0, 60.0).state == "vanished"
    finally:
        os.killpg(os.getpgid(pid), signal.SIGKILL)  # the group this test launched
    st = _until(lambda: command_status(data, 10.0, 0.0, 60.0), "vanished", "killed")
    assert "ended without an exit status (killed?)" in st.failure("kubelet on node n1")



# -- secrets stay out of the run directory -------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["ssh", "{node}", "upgrade", "--password=hunter2"],
    ["ssh", "{node}", "upgrade", "--password", "hunter2"],
    ["curl", "-H", "Authorization: Bearer eyJhbGciOi.payload.sig", "https://{node}/up"],
    ["curl", "https://admin:hunter2@10.0.0.1/up?node={node}"],
])
def test_a_command_with_a_literal_secret_is_refused_without_showing_it(
        tmp_path: Path, command: list[str]) -> None:
    """Regression: --node-command and --control-plane-command were kept verbatim in run.json
    and output.log; a secret written in them is refused, naming the way out."""
    with pytest.raises(NodeCommandError) as err:
        CommandNodeUpgrader(command, tmp_path)
    text = str(err.value)
    assert "looks like a secret" in text and "{env:" in text
    assert "hunter2" not in text and "payload.sig" not in text


def test_a_file_named_by_a_secret_option_is_not_a_secret(tmp_path: Path) -> None:
    up = CommandNodeUpgrader(["ssh", "{node}", "upgrade", "--token-file", "/etc/pitstop/t"],
                             tmp_path)
    assert up.command[-1] == "/etc/pitstop/t"


def test_env_placeholders_are_read_at_launch_and_never_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PITSTOP_TEST_TOKEN", raising=False)
    template = ["/bin/sh", "-c", 'test "$1" = "$PITSTOP_TEST_TOKEN"', "up",
                "{env:PITSTOP_TEST_TOKEN}", "{node}"]
    with pytest.raises(NodeCommandError, match="PITSTOP_TEST_TOKEN is not set"):
        CommandNodeUpgrader(template, tmp_path)
    with pytest.raises(NodeCommandError, match="does not name an environment variable"):
        CommandNodeUpgrader(["true", "{env:}"], tmp_path)
    monkeypatch.setenv("PITSTOP_TEST_TOKEN", "s3cr3t-value")
    up = CommandNodeUpgrader(template, tmp_path)
    from pitstop.kube.command import expand, shown

    values = {"node": "n1"}
    assert expand(up.command, values)[4] == "s3cr3t-value"
    assert shown(up.command, values)[4] == "{env:PITSTOP_TEST_TOKEN}"
    data = launch(tmp_path, "kubelet-n1", expand(up.command, values), time.time(), "test",
                  shown(up.command, values))
    st = _until(lambda: command_status(data, time.time(), time.time() - 1, 60), "exited",
                "the command")
    assert st.succeeded  # it got the value
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert "s3cr3t-value" not in written and "{env:PITSTOP_TEST_TOKEN}" in written
    assert "s3cr3t-value" not in str(data)
