"""The Docker Engine estate: Debian's docker.io at two builds, a private dockerd with
live-restore and a long-lived container; everything undone afterwards.

Built on top of the containerd estate (``estate.py``), whose machine-wide lock, packages
(``containerd runc busybox-static openssh-server``) and OpenSSH server it shares. Set-up:

1. Record what dpkg has (docker.io included), what apt holds, and which of the paths dockerd or
   its package may create exist; install ``docker.io`` when missing (exactly what that install
   adds is recorded, as the containerd estate does).
2. Debian bookworm offers docker.io at one build only: build a local apt repository
   (``estate.LocalRepo``: the downloaded .deb repackaged at a higher build with ``dpkg-deb``,
   a ``deb [trusted=yes] file:`` source in a temporary sources.list.d file), so the apt flow
   stays real. The repackaged build carries the same binaries: like a Debian binNMU, it reports
   the same ``docker version``.
3. A private containerd (``estate.Containerd``: own root, state, socket) for dockerd, and
   dockerd with its own ``--data-root``, ``--exec-root``, ``-H unix://`` socket, ``--pidfile``
   and ``daemon.json`` (``live-restore: true``, ``containerd`` = the private socket, vfs
   storage, no iptables, no bridge, its own cgroup parent).
4. An image made offline (``docker import`` of a tarball of a busybox-static rootfs) and a
   container sleeping for ever (``--network none``).

No systemd here: both daemons are plain processes; ``policy-rc.d`` keeps the package's init
script from starting a system dockerd (created for the session when missing).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pitstop.hosts.containerd import ProcessDaemon
from pitstop.hosts.docker import DockerActuator, dockerd_process

from .estate import (
    APT,
    Containerd,
    Estate,
    EstateError,
    LocalRepo,
    apt_install,
    apt_mark,
    dpkg_config_only,
    dpkg_installed,
    holds,
    madison,
    pid_alive,
    sh,
    start_ticks,
)
from .runtime_fixtures import figure

PACKAGE = "docker.io"
POLICY_RC = Path("/usr/sbin/policy-rc.d")
# Paths dockerd, its CLI or its package may create outside the estate's own directories.
SYSTEM_PATHS = ("/etc/docker/key.json", "/etc/docker", "/run/docker/plugins", "/run/docker",
                "/var/run/docker", "/var/lib/docker", "/root/.docker")


def installed_docker() -> str | None:
    return dpkg_installed().get(PACKAGE)


@dataclass
class Dockerd:
    """The private dockerd, started and stopped with raw commands (independent of the code
    under test, which restarts it through ``ProcessDaemon`` with the same pid file)."""

    dir: Path
    containerd: str  # the private containerd's socket
    cgroup_parent: str = field(default_factory=lambda: f"pitstop-docker-{secrets.token_hex(3)}")
    container: str = ""
    container_id: str = ""
    container_pid: int = 0
    container_start: int = 0

    @property
    def address(self) -> str:
        return str(self.dir / "docker.sock")

    @property
    def config(self) -> str:
        return str(self.dir / "daemon.json")

    @property
    def pid_file(self) -> str:
        return str(self.dir / "daemon.pid")

    @property
    def log(self) -> str:
        return str(self.dir / "dockerd.log")

    def process(self) -> ProcessDaemon:
        return dockerd_process(data_root=str(self.dir / "data"),
                               exec_root=str(self.dir / "exec"), address=self.address,
                               config=self.config, pid_file=self.pid_file, log_file=self.log)

    def actuator(self) -> DockerActuator:
        return DockerActuator(self.process(), address=self.address, config_path=self.config,
                              package=PACKAGE)

    def write_config(self, *, live_restore: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        Path(self.config).write_text(json.dumps({
            "live-restore": live_restore,
            "containerd": self.containerd,
            "storage-driver": "vfs",
            "iptables": False,
            "ip-masq": False,
            "bridge": "none",
            "userland-proxy": False,
            "cgroup-parent": self.cgroup_parent,
            "exec-opts": ["native.cgroupdriver=cgroupfs"],
        }, indent=2) + "\n")

    def docker(self, *args: str, check: bool = True, timeout: float = 120,
               stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        if stdin is not None:
            r = subprocess.run(["docker", "-H", f"unix://{self.address}", *args], input=stdin,
                               capture_output=True, timeout=timeout, check=False)
            out = subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(),
                                              r.stderr.decode())
            if check and r.returncode != 0:
                raise EstateError(f"docker {' '.join(args)}: {out.stderr[-2000:]}")
            return out
        r2 = sh(["docker", "-H", f"unix://{self.address}", *args], check=False, timeout=timeout)
        if check and r2.returncode != 0:
            raise EstateError(f"docker {' '.join(args)}: {(r2.stderr or r2.stdout)[-2000:]}")
        return r2

    def daemon_pid(self) -> int | None:
        try:
            pid = int(Path(self.pid_file).read_text().strip())
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            return None
        return pid if f"unix://{self.address}" in cmd and pid_alive(pid) else None

    def version(self) -> str:
        return self.docker("version", "--format", "{{.Server.Version}}").stdout.strip()

    def live_restore(self) -> bool:
        return self.docker("info", "--format", "{{.LiveRestoreEnabled}}").stdout.strip() == "true"

    def start(self) -> None:
        if self.daemon_pid() is not None:
            return
        for sub in ("data", "exec"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        inner = (f"echo $$ > {self.pid_file}; exec {' '.join(self.process().argv)} "
                 f">> {self.log} 2>&1")
        sh(["setsid", "-f", "sh", "-c", inner])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.docker("version", check=False, timeout=15).returncode == 0:
                return
            time.sleep(0.1)
        raise EstateError(f"dockerd did not answer: {Path(self.log).read_text()[-3000:]}")

    def stop(self) -> None:
        pid = self.daemon_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)

    def mounts(self) -> list[str]:
        """Mount points under the estate's directory, deepest first."""
        found = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == str(self.dir) or point.startswith(f"{self.dir}/"):
                found.append(point)
        return sorted(found, key=len, reverse=True)

    def reload(self) -> None:
        """SIGHUP: dockerd re-reads daemon.json (live-restore included) without a restart."""
        pid = self.daemon_pid()
        assert pid is not None
        want = json.loads(Path(self.config).read_text())["live-restore"]
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while self.live_restore() != want:
            if time.monotonic() > deadline:
                raise EstateError("dockerd did not apply live-restore on SIGHUP")
            time.sleep(0.1)

    def restart_if_stale(self) -> None:
        pid = self.daemon_pid()
        exe = os.readlink(f"/proc/{pid}/exe") if pid else ""
        if pid is None or exe.endswith("(deleted)"):
            self.stop()
            self.start()

    def make_image(self, rootfs: Path) -> None:
        tar = self.dir / "rootfs.tar"
        with tarfile.open(tar, "w") as t:
            t.add(rootfs, arcname=".")
        self.docker("import", str(tar), "pitstop-keeper:1")
        tar.unlink()

    def run_container(self) -> None:
        self.container = f"keeper-{secrets.token_hex(3)}"
        self.container_id = self.docker(
            "run", "-d", "--network", "none", "--name", self.container, "pitstop-keeper:1",
            "/bin/sleep", "1000000").stdout.strip()
        self.container_pid = self.inspect_pid()
        self.container_start = start_ticks(self.container_pid)

    def inspect_pid(self) -> int:
        return int(self.docker("inspect", "--format", "{{.State.Pid}}",
                               self.container_id).stdout.strip())

    def state(self) -> tuple[str, int] | None:
        r = self.docker("inspect", "--format", "{{.State.Status}}|{{.State.Pid}}",
                        self.container_id, check=False)
        if r.returncode != 0:
            return None
        status, _, pid = r.stdout.strip().partition("|")
        return status, int(pid)

    def remove(self) -> None:
        if self.container_id and self.daemon_pid() is None:
            with contextlib.suppress(EstateError):
                self.start()
        if self.daemon_pid() is not None:
            if self.container_id:
                self.docker("rm", "-f", self.container_id, check=False)
            self.docker("rmi", "-f", "pitstop-keeper:1", check=False)
        if self.container_pid:
            deadline = time.monotonic() + 10
            while pid_alive(self.container_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.stop()
        # dockerd bind-mounts its data root onto itself (shared propagation) and, with
        # live-restore and running containers, leaves it mounted when it stops; the next dockerd
        # finds it shared and forgets to unmount it. Unmount what is left under the estate.
        for mount in self.mounts():
            sh(["umount", mount], check=False)
        for d in sorted(glob.glob(f"/sys/fs/cgroup/*/{self.cgroup_parent}/*"))\
                + sorted(glob.glob(f"/sys/fs/cgroup/*/{self.cgroup_parent}")):
            with contextlib.suppress(OSError):
                os.rmdir(d)


@dataclass
class DockerEstate:
    base: Estate
    dir: Path
    from_version: str = ""
    to_version: str = ""
    offered: list[str] = field(default_factory=list)
    containerd: Containerd = field(init=False)
    dockerd: Dockerd = field(init=False)
    repo: LocalRepo = field(init=False)
    docker_before: str | None = None
    config_only_before: set[str] = field(default_factory=set)
    holds_before: set[str] = field(default_factory=set)
    installed_by_us: list[str] = field(default_factory=list)
    existed: dict[str, bool] = field(default_factory=dict)
    created_policy_rc: bool = False
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.containerd = Containerd(self.dir / "ctrd", f"pitstop-d-{secrets.token_hex(3)}")
        self.dockerd = Dockerd(self.dir / "docker", self.containerd.address)
        self.repo = LocalRepo(self.dir / "repo")

    @classmethod
    def open(cls, base: Estate) -> DockerEstate:
        est = cls(base, Path(tempfile.mkdtemp(prefix="pitstop-docker-")))
        try:
            est._setup()
        except BaseException:
            est.close()
            raise
        return est

    def _setup(self) -> None:
        self.existed = {p: os.path.lexists(p) for p in SYSTEM_PATHS}
        before = dpkg_installed()
        self.docker_before = before.get(PACKAGE)
        self.config_only_before = dpkg_config_only()
        self.holds_before = holds()
        if not POLICY_RC.exists():
            POLICY_RC.write_text("#!/bin/sh\n# pitstop tests: no service starts\nexit 101\n")
            POLICY_RC.chmod(0o755)
            self.created_policy_rc = True
        if not madison(PACKAGE):
            sh([*APT, "update"])
        offered = madison(PACKAGE)
        if not offered:
            raise EstateError("apt offers no docker.io build")
        self.from_version = offered[0]
        if self.docker_before is None:
            plan = sh([*APT, "-s", "--no-install-recommends", "install",
                       f"{PACKAGE}={self.from_version}"]).stdout
            self.installed_by_us = sorted(
                {m.group(1) for m in re.finditer(r"(?m)^Inst (\S+)", plan)} - set(before))
        if self.docker_before != self.from_version:
            apt_install(f"{PACKAGE}={self.from_version}")
            self.notes.append(f"installed {PACKAGE} {self.from_version} "
                              f"(+ {' '.join(self.installed_by_us)})")
        t = time.monotonic()
        self.to_version = self.repo.build(PACKAGE, self.from_version)
        self.offered = madison(PACKAGE)
        figure("docker.io local repository (download, repackage, index)",
               f"{time.monotonic() - t:.1f} s: {self.to_version} repackaged from "
               f"{self.from_version}")
        self.containerd.prepare()
        self.containerd.start()
        self.dockerd.write_config(live_restore=True)
        self.dockerd.start()
        self.dockerd.make_image(self.containerd.dir / "rootfs")
        self.dockerd.run_container()

    def reset(self) -> None:
        """Start build installed and running, live-restore on, the container untouched."""
        for held in holds() - self.holds_before:
            apt_mark("unhold", held)
        if installed_docker() != self.from_version:
            apt_install(f"{PACKAGE}={self.from_version}")
        self.dockerd.restart_if_stale()
        if not self.dockerd.live_restore():
            self.dockerd.write_config(live_restore=True)
            self.dockerd.reload()

    def close(self) -> None:
        errors: list[str] = []

        def step(what: str, fn: object) -> None:
            try:
                fn()  # type: ignore[operator]
            except Exception as exc:
                errors.append(f"{what}: {exc}")

        step("container and dockerd", self.dockerd.remove)
        step("containerd", self.containerd.remove)
        step("holds", self._restore_holds)
        step("packages", self._restore_packages)
        step("local repository", self.repo.remove)
        step("paths", self._remove_paths)
        if self.created_policy_rc:
            step("policy-rc.d", POLICY_RC.unlink)
        if os.environ.get("PITSTOP_TEST_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise EstateError("docker tear-down left work undone: " + "; ".join(errors))

    def _restore_holds(self) -> None:
        for p in holds() - self.holds_before:
            apt_mark("unhold", p)

    def _restore_packages(self) -> None:
        if self.docker_before is not None:
            if installed_docker() != self.docker_before:
                apt_install(f"{PACKAGE}={self.docker_before}")
            return
        ours = [p for p in self.installed_by_us if p in dpkg_installed()]
        safe = Estate._safe_to_purge(ours)
        rc = self.config_only_before
        if [p for p in safe if p not in rc]:
            sh([*APT, "purge", *[p for p in safe if p not in rc]])
        if [p for p in safe if p in rc]:
            sh([*APT, "remove", *[p for p in safe if p in rc]])

    def _remove_paths(self) -> None:
        left = []
        for path, existed in self.existed.items():  # files, then directories, children first
            if existed or not os.path.lexists(path):
                continue
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except OSError:
                left.append(f"{path}: {sorted(os.listdir(path)) if os.path.isdir(path) else ''}")
        if left:
            raise EstateError(f"left behind: {'; '.join(left)}")


@pytest.fixture(scope="session")
def docker_estate(estate: Estate) -> Iterator[DockerEstate]:
    """Fails (never skips) when it cannot be built."""
    try:
        est = DockerEstate.open(estate)
    except EstateError as exc:
        pytest.fail(str(exc), pytrace=False)
    figure("docker.io builds", f"{est.from_version} -> {est.to_version} "
                               f"(apt offers: {', '.join(est.offered)})")
    for note in est.notes:
        print(f"docker estate: {note}")
    try:
        yield est
    finally:
        est.close()


@pytest.fixture
def docker_at_start(docker_estate: DockerEstate) -> DockerEstate:
    docker_estate.reset()
    d = docker_estate.dockerd
    assert d.state() == ("running", d.container_pid), "the container is not as it was"
    assert pid_alive(d.container_pid, d.container_start)
    return docker_estate
