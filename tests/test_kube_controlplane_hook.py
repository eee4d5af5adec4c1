"""The control-plane command hook refuses a bad configuration with a message that names what
is wrong and the fix (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pitstop.errors import PitstopError
from pitstop.kube.controlplane import CommandControlPlaneUpgrader, ControlPlaneHookError


@pytest.mark.parametrize(("command", "addresses", "says"), [
    ("ssh {instance} upgrade", {}, "is not a list of arguments"),
    ([], {}, "is not a list of arguments"),
    (["ssh", "{host}", "upgrade"], {}, "uses {host}, which is not a placeholder"),
    (["ssh", "{instance", "upgrade"], {}, "write a literal brace"),
    (["/no/such/upgrade-cp", "{instance}"], {}, "is not an executable file or on PATH"),
    (["true"], {"cp-a": "https://10.0.0.1:6443"}, "is not COMPONENT/INSTANCE"),
    (["true"], {"kube-apiserver/cp-a": "10.0.0.1:6443"}, "write it as https://HOST:PORT"),
])
def test_bad_hook_configuration_is_refused_clearly(tmp_path: Path, command: object,
                                                   addresses: dict[str, str], says: str) -> None:
    with pytest.raises(ControlPlaneHookError) as err:
        CommandControlPlaneUpgrader(command, tmp_path, addresses)  # type: ignore[arg-type]
    assert says in str(err.value) and "Fix:" in str(err.value)
    assert isinstance(err.value, PitstopError) and err.value.exit_code == 2


def test_a_good_template_is_accepted(tmp_path: Path) -> None:
    hook = CommandControlPlaneUpgrader(
        ["env", "{instance}", "sudo", "upgrade-cp", "{component}", "{version}", "{cluster}"],
        tmp_path, {"kube-scheduler/cp-a": "https://10.0.0.1:10259"})
    assert hook.command[1] == "{instance}"
