"""Upgrading Docker Engine (dockerd) in place on a host, with its containers kept running.

The same shape as :class:`~pitstop.hosts.containerd.ContainerdActuator` (facts → check →
snapshot → upgrade → verify → rollback, the :class:`~pitstop.hosts.containerd.RuntimeActuator`
protocol), and the same package, restart, verification and rollback flow, which
:class:`DockerActuator` inherits. What differs:

``facts``
    The package is ``docker.io`` (Debian, Ubuntu) or ``docker-ce`` (Docker's repository), or
    any name given. The daemon's version comes from ``docker version`` (the Engine API over
    the unix socket); ``live-restore`` from ``daemon.json`` and from the daemon itself
    (``docker info``: ``LiveRestoreEnabled``); the containers (id, name, state, PID) from
    ``docker ps`` / ``docker inspect``.
``check``
    Without live-restore, stopping dockerd stops every container: an upgrade of a host with
    running containers is refused (``live-restore-off``) with the fix — enable it and reload
    the daemon (SIGHUP or ``systemctl reload docker``: live-restore is applied on reload, no
    restart), or drain the node. ``daemon.json`` saying true while the daemon runs without it
    (not reloaded) is refused the same way. Live restore covers patch releases only (Docker:
    "only supported when installing patch releases (YY.MM.x), not for major (YY.MM) daemon
    upgrades"), so a change of release line with running containers is refused
    (``live-restore-line``). Plus everything the containerd actuator checks that is not
    containerd's configuration: target offered, package installed, not held, a way back.
``snapshot`` / ``verify``
    Every container as a task of containerd's ``moby`` namespace (docker runs its containers
    through containerd): id, state, PID, process start time, and its shim. After the restart
    the daemon must answer at the target's release, from the installed binary (a rebuild of one
    release — a Debian binNMU — reports the same version: the binary tells them apart), and
    every container running before must run after with the same id, PID and start time.

dockerd is restarted by a :class:`~pitstop.hosts.containerd.DaemonControl`: systemd
(``docker`` unit) on real hosts, :func:`dockerd_process` where there is no systemd.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pitstop.catalog import Catalog
from pitstop.hosts import debversion, facts
from pitstop.hosts.connect import CommandFailed, Host
from pitstop.hosts.containerd import (
    ContainerdActuator,
    DaemonControl,
    DaemonInfo,
    Problem,
    ProcessDaemon,
    RuntimeFacts,
    RuntimeUnavailable,
    Severity,
    Snapshot,
    TaskState,
    task_states,
)
from pitstop.hosts.facts import FactError
from pitstop.hosts.packages import TERMS, PackageManager
from pitstop.redact import Redactor

__all__ = ["DockerActuator", "DockerFacts", "dockerd_process"]

_REDACT = Redactor()
NAMESPACE = "moby"  # the containerd namespace dockerd runs its containers in


@dataclass(frozen=True, slots=True)
class DockerFacts(RuntimeFacts):
    live_restore_config: bool | None = None  # daemon.json "live-restore"; None: not set
    live_restore_daemon: bool | None = None  # docker info; None: the daemon does not answer
    swarm: str = ""  # docker info Swarm.LocalNodeState (live-restore is refused in a swarm)
    containers: tuple[TaskState, ...] = ()  # every container, as the snapshot sees them
    names: tuple[tuple[str, str], ...] = ()  # (id, name)

    def running(self) -> tuple[TaskState, ...]:
        return tuple(t for t in self.containers if t.status == "RUNNING")

    def name(self, container_id: str) -> str:
        return dict(self.names).get(container_id, container_id[:12])


def dockerd_process(*, data_root: str, exec_root: str, address: str, config: str,
                    pid_file: str, log_file: str, binary: str = "dockerd",
                    extra_args: Sequence[str] = ()) -> ProcessDaemon:
    """dockerd as a detached process (hosts without systemd): its own data and exec roots,
    socket and configuration file (``daemon.json``: put ``live-restore``, ``containerd``,
    storage and network options there). ``pid_file`` is the wrapper's; dockerd keeps its own
    in ``exec_root/dockerd.pid`` (the two must differ: dockerd refuses a pid file naming a
    live process, itself included)."""
    argv = [binary, "--data-root", data_root, "--exec-root", exec_root,
            "-H", f"unix://{address}", "--config-file", config,
            "--pidfile", f"{exec_root.rstrip('/')}/dockerd.pid", *extra_args]
    return ProcessDaemon(argv, pid_file=pid_file, log_file=log_file,
                         match=f"-H unix://{address}")


class DockerActuator(ContainerdActuator):
    """Docker Engine installed from apt (``docker.io`` or ``docker-ce``) or dnf
    (``docker-ce``); see the module docstring.

    ``target`` versions are package builds (``20.10.24+dfsg1-1+deb12u1+b6``,
    ``5:24.0.7-1~debian.12~bookworm``), or a release number (``24.0.7``) meaning the newest
    offered build of that release.
    """

    runtime = "docker"

    def __init__(self, daemon: DaemonControl, *,
                 address: str = "/run/docker.sock",
                 config_path: str = "/etc/docker/daemon.json",
                 package: str = "docker.io",
                 packages: PackageManager | None = None,
                 catalog: Catalog | None = None,
                 docker: str = "docker",
                 install_timeout: float = 900.0, ready_timeout: float = 60.0) -> None:
        super().__init__(daemon, address=address, config_path=config_path, package=package,
                         packages=packages, catalog=catalog, crictl="",
                         install_timeout=install_timeout, ready_timeout=ready_timeout)
        self.docker = docker

    # -- the docker CLI --------------------------------------------------------------------
    def _cli(self, *args: str) -> list[str]:
        return facts.docker_command(self.docker, self.address, *args)

    def _answers(self, host: Host) -> str:
        r = host.run(self._cli(*facts.DOCKER_VERSION_ARGS), timeout=15, sudo=True)
        try:
            facts.parse_docker_version(r)
        except FactError as exc:
            return exc.message
        return ""

    def daemon_info(self, host: Host) -> tuple[DaemonInfo | None, str]:
        r = host.run(self._cli(*facts.DOCKER_VERSION_ARGS), timeout=30, sudo=True)
        try:
            build = facts.parse_docker_version(r)
        except FactError as exc:
            return None, exc.message
        pid, current = self.daemon_process(host)
        return DaemonInfo(build.version, build.revision, pid, current), ""

    def daemon_runs(self, daemon: DaemonInfo | None, build: str) -> bool:
        """The daemon answers, reports the release of ``build`` (``20.10.24+dfsg1`` for
        ``20.10.24+dfsg1-1+deb12u1+b6``) and runs the installed binary. Two builds of one
        release report the same version: after the install the old daemon runs a replaced
        (deleted) binary, which is what tells them apart."""
        if daemon is None or daemon.binary_current is False:
            return False
        return debversion.upstream(daemon.version.lstrip("v")) == debversion.upstream(build)

    # -- facts -----------------------------------------------------------------------------
    def facts(self, host: Host) -> DockerFacts:
        installed = self.packages.installed(host, self.package)
        candidates = self.packages.candidates(host, self.package)
        held = self.packages.held(host, (self.package,))
        daemon, daemon_error = self.daemon_info(host)
        config = facts.parse_daemon_json(
            host.run(facts.cat_command(self.config_path), timeout=30, sudo=True),
            self.config_path)
        live: bool | None = None
        swarm = ""
        containers: tuple[TaskState, ...] = ()
        names: tuple[tuple[str, str], ...] = ()
        if daemon is not None:
            try:
                info = facts.parse_docker_info(host.run(self._cli(*facts.DOCKER_INFO_ARGS),
                                                        timeout=30, sudo=True))
            except FactError as exc:
                daemon_error = f"docker info failed: {exc.message}"
            else:
                live, swarm = info.live_restore, info.swarm
            containers, names = self._containers(host)
        return DockerFacts(host.name, self.runtime, self.package, installed, candidates, held,
                           daemon, daemon_error, self.address, self.config_path, config.present,
                           None, config.keys, config.error, self.packages.kind(host),
                           live_restore_config=config.live_restore, live_restore_daemon=live,
                           swarm=swarm, containers=containers, names=names)

    def _containers(self, host: Host) -> tuple[tuple[TaskState, ...], tuple[tuple[str, str], ...]]:
        ids = facts.parse_docker_ps(host.run(self._cli(*facts.DOCKER_PS_ARGS), timeout=30,
                                             sudo=True, check=True))
        if not ids:
            return (), ()
        r = host.run(self._cli(*facts.docker_inspect_args(ids)), timeout=60, sudo=True)
        try:
            rows = facts.parse_docker_inspect(r)
        except FactError:
            raise CommandFailed(r, _REDACT) from None
        states = task_states(host, [(NAMESPACE, c.id, c.pid, c.status) for c in rows])
        return tuple(states), tuple((c.id, c.name) for c in rows)

    # -- check -----------------------------------------------------------------------------
    def check(self, facts: RuntimeFacts, target: str) -> list[Problem]:
        out = super().check(facts, target)
        if not isinstance(facts, DockerFacts) or facts.daemon is None:
            return out  # daemon down: super() warned; there is no running container to keep
        running = facts.running()
        listed = ", ".join(facts.name(t.id) for t in running[:5]) + \
            (f" and {len(running) - 5} more" if len(running) > 5 else "")
        if not facts.live_restore_daemon:
            drain = (f"or drain the host (move or stop its containers) and upgrade it "
                     f"empty. A daemon in a swarm ({facts.swarm}) cannot use live-restore: "
                     f"drain the node (docker node update --availability drain)."
                     if facts.swarm == "active" else
                     "or drain the host (move or stop its containers) and upgrade it empty.")
            reloaded = facts.live_restore_config is True
            message = (f"{facts.host}: dockerd runs without live-restore"
                       + (f" ({facts.config_path} sets it, but the daemon was not reloaded "
                          f"since)" if reloaded else "")
                       + ", so restarting it for the upgrade stops every container")
            enable = ("" if reloaded else
                      f'set "live-restore": true in {facts.config_path}, then ')
            fix = (f"{enable}reload the daemon — `systemctl reload docker` or `kill -HUP "
                   f"<dockerd pid>`: live-restore is applied on reload, without stopping "
                   f"anything — check `docker info` shows \"Live Restore Enabled: true\", and "
                   f"run the upgrade again; {drain}")
            if running:
                out.append(Problem(Severity.ERROR, "live-restore-off",
                                   f"{message} ({len(running)} running: {listed}).", fix))
            else:
                out.append(Problem(Severity.WARNING, "live-restore-off",
                                   f"{message}; none runs now.", fix))
        build = self.resolve(target, facts.candidates) or target
        if facts.installed is not None and running:
            have, want = _line(facts.installed), _line(build)
            if have and want and have != want:
                out.append(Problem(
                    Severity.ERROR, "live-restore-line",
                    f"{facts.host}: docker {debversion.upstream(facts.installed)} → "
                    f"{debversion.upstream(build)} changes the release line ({have} → {want}); "
                    f"live-restore keeps containers only across patch releases of one line, so "
                    f"the {len(running)} running container(s) ({listed}) could be lost.",
                    "drain the host (move or stop its containers) and upgrade it empty, or "
                    f"upgrade to the newest {have}.x build only."))
        return out

    def _catalog_checks(self, facts: RuntimeFacts, build: str) -> list[Problem]:
        """The catalog has no Docker Engine lines: only a downgrade is worth a word."""
        if facts.installed is not None and \
                TERMS[facts.manager].compare(build, facts.installed) < 0:
            return [Problem(Severity.WARNING, "downgrade",
                            f"{facts.host}: {build} is older than the installed "
                            f"{facts.installed}.")]
        return []

    # -- snapshot --------------------------------------------------------------------------
    def snapshot(self, host: Host) -> Snapshot:
        daemon, why = self.daemon_info(host)
        if daemon is None:
            raise RuntimeUnavailable(host.name, f"{host.name}: {self.runtime} does not answer "
                                                f"on {self.address}: {why}")
        containers, _ = self._containers(host)
        return Snapshot(host.name, time.time(), daemon, containers)


def _line(build: str) -> str:
    """``20.10`` of ``20.10.24+dfsg1-1+deb12u1+b6``; ``24.0`` of ``5:24.0.7-1~debian.12``."""
    parts = debversion.upstream(build).split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else ""

