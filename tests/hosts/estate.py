"""The real test estate for the host tests: Debian packages, a private OpenSSH server and a
private containerd with a long-lived container, all on this machine, all undone afterwards.

Set-up (as root; see ``Estate.open``):

1. Take a machine-wide lock (the abstract socket ``@pitstop-hosts-tests``): two test sessions
   must not install and purge containerd under each other.
2. Record what dpkg has installed and what apt holds; install what is missing of
   ``openssh-server containerd runc busybox-static`` (``apt-get update`` once, when needed).
3. Pick the containerd builds to go from and to by asking ``apt-cache madison``: the newest
   build is the target, the one before it the start. When apt offers only one build (or
   ``PITSTOP_TEST_LOCAL_REPO=1``), build a local apt repository with a repackaged copy of it at
   a higher version (``dpkg-deb``), so the apt flow stays real.
4. Install the start build, start ``sshd`` on 127.0.0.1 with a free port, its own host key,
   a generated client key and a known_hosts file holding the host key; start containerd with
   its own root, state, socket and config under a fresh temp dir; run a container from a
   busybox rootfs with ``ctr run -d --rootfs``.

Tear-down (``Estate.close``) undoes every step: container, daemons, holds, the containerd build
that was installed before (or a purge when there was none), the packages the session's own
install added (never a package another session installed meanwhile, nor one that such a
package now needs), the local repository and its apt lists, cgroup and /run directories it
created, temp dirs.

No systemd on these machines: containerd and sshd are plain processes. Nothing here touches
the default containerd socket, ``/etc/containerd`` or a system sshd. One thing cannot be moved:
containerd 1.6 shims put their socket in ``/run/containerd/s/<sha256 of address+id>``, a name
unique to this estate, removed when the container's task is deleted.

Environment:
    PITSTOP_TEST_LOCAL_REPO=1   use the repackaged local repository even when apt offers two
                                builds
    PITSTOP_TEST_KEEP=1         keep the temp dir (logs) after the session
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pitstop.hosts import debversion

PACKAGES = ("openssh-server", "containerd", "runc", "busybox-static")
LOCK_NAME = "\0pitstop-hosts-tests"
APT = ["apt-get", "-q", "-y", "-o", "DPkg::Lock::Timeout=600"]
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


class EstateError(RuntimeError):
    pass


def sh(argv: list[str] | str, *, check: bool = True, timeout: float = 900,
       cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    args = ["sh", "-c", argv] if isinstance(argv, str) else argv
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=APT_ENV,
                       cwd=cwd, check=False)
    if check and r.returncode != 0:
        raise EstateError(f"`{argv}` exited {r.returncode}: {(r.stderr or r.stdout)[-2000:]}")
    return r


def dpkg_installed() -> dict[str, str]:
    """package -> version of every installed package."""
    r = sh(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Package}|${Version}\n"])
    out = {}
    for line in r.stdout.splitlines():
        status, pkg, version = line.split("|", 2)
        if status.startswith("ii") or status.startswith("hi"):
            out[pkg] = version
    return out


def dpkg_config_only() -> set[str]:
    """Packages removed with their configuration files left ("rc")."""
    r = sh(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Package}\n"])
    return {pkg for status, _, pkg in (ln.partition("|") for ln in r.stdout.splitlines())
            if status.startswith("rc")}


def installed_version(package: str = "containerd") -> str | None:
    return dpkg_installed().get(package)


def holds() -> set[str]:
    return {x for x in sh(["apt-mark", "showhold"]).stdout.split() if x}


def madison(package: str) -> list[str]:
    """Offered builds, newest first."""
    r = sh(["apt-cache", "madison", package], check=False)
    found = {c[1].strip() for c in (ln.split("|") for ln in r.stdout.splitlines())
             if len(c) >= 3 and c[0].strip() == package}
    return sorted(found, key=debversion.sort_key, reverse=True)


def apt_install(*specs: str) -> None:
    sh([*APT, "--allow-downgrades", "--no-install-recommends",
        "-o", "Dpkg::Options::=--force-confold", "install", *specs])


def apt_mark(action: str, package: str) -> None:
    """``apt-mark hold|unhold``, waiting out a dpkg lock another session holds."""
    deadline = time.monotonic() + 600
    while True:
        r = sh(["apt-mark", "-o", "DPkg::Lock::Timeout=600", action, package], check=False)
        if r.returncode == 0:
            return
        if time.monotonic() > deadline or "lock" not in (r.stderr + r.stdout).lower():
            raise EstateError(f"apt-mark {action} {package} exited {r.returncode}: "
                              f"{(r.stderr or r.stdout)[-1000:]}")
        time.sleep(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    rest = stat.rpartition(")")[2].split()
    if rest[0] == "Z":
        return False
    return start_ticks is None or int(rest[19]) == start_ticks


def start_ticks(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])


# ---------------------------------------------------------------------------------------------


@dataclass
class Sshd:
    dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    created_run_sshd: bool = False

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.dir / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def log(self) -> Path:
        return self.dir / "sshd.log"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pitstop-test-host", "-f",
            str(self.host_key)])
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pitstop-test-client", "-f",
            str(self.client_key)])
        (self.dir / "authorized_keys").write_text(
            Path(f"{self.client_key}.pub").read_text())
        if not Path("/run/sshd").exists():  # privilege separation directory
            Path("/run/sshd").mkdir(mode=0o755)
            self.created_run_sshd = True
        last = ""
        for _attempt in range(5):
            self.port = free_port()
            cfg = self.dir / "sshd_config"
            cfg.write_text("\n".join([
                f"Port {self.port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {self.host_key}",
                f"PidFile {self.dir / 'sshd.pid'}",
                f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",
                "MaxSessions 64",
                "MaxStartups 64",
                "LogLevel VERBOSE",
                "",
            ]))
            log = self.log.open("ab")
            self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection(
                        ("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        break
                time.sleep(0.1)
            else:
                last = self.log.read_text(errors="replace")[-1000:]
                self.stop()
                continue
            if self.proc.poll() is None:
                pub = Path(f"{self.host_key}.pub").read_text().split()
                self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
                return
            last = self.log.read_text(errors="replace")[-1000:]
        raise EstateError(f"sshd did not start: {last}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self.created_run_sshd:
            with contextlib.suppress(OSError):
                Path("/run/sshd").rmdir()
            self.created_run_sshd = False


@dataclass
class Containerd:
    """A private containerd, started and stopped with raw commands (independent of the code
    under test, which restarts it through ``ProcessDaemon`` with the same pid file)."""

    dir: Path
    namespace: str
    container: str = ""
    container_pid: int = 0
    container_start: int = 0

    @property
    def address(self) -> str:
        return str(self.dir / "containerd.sock")

    @property
    def config(self) -> str:
        return str(self.dir / "config.toml")

    @property
    def pid_file(self) -> str:
        return str(self.dir / "containerd.pid")

    @property
    def log(self) -> str:
        return str(self.dir / "containerd.log")

    def argv(self) -> list[str]:
        return ["containerd", "--root", str(self.dir / "root"), "--state",
                str(self.dir / "state"), "--address", self.address, "--config", self.config]

    def prepare(self) -> None:
        for sub in ("root", "state", "opt", "fifo", "runc", "rootfs/bin", "rootfs/proc",
                    "rootfs/sys", "rootfs/dev", "rootfs/tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        Path(self.config).write_text("\n".join([
            "version = 2",
            f'root = "{self.dir / "root"}"',
            f'state = "{self.dir / "state"}"',
            "[grpc]",
            f'  address = "{self.address}"',
            '[plugins."io.containerd.internal.v1.opt"]',
            f'  path = "{self.dir / "opt"}"',
            "",
        ]))
        busybox = shutil.which("busybox") or "/bin/busybox"
        shutil.copy(busybox, self.dir / "rootfs/bin/busybox")
        for tool in ("sh", "sleep"):
            (self.dir / "rootfs/bin" / tool).symlink_to("busybox")

    def ctr(self, *args: str, check: bool = True, namespace: bool = True
            ) -> subprocess.CompletedProcess[str]:
        ns = ["-n", self.namespace] if namespace else []
        return sh(["ctr", "--address", self.address, *ns, *args], check=check, timeout=60)

    def daemon_pid(self) -> int | None:
        try:
            pid = int(Path(self.pid_file).read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        return pid if self.address in cmd and pid_alive(pid) else None

    def revision(self) -> str:
        text = self.ctr("version", namespace=False).stdout.split("Server:", 1)[1]
        m = re.search(r"Revision:\s*(\S+)", text)
        assert m, text
        return m.group(1)

    def start(self) -> None:
        if self.daemon_pid() is not None:
            return
        inner = f"echo $$ > {self.pid_file}; exec {' '.join(self.argv())} >> {self.log} 2>&1"
        sh(["setsid", "-f", "sh", "-c", inner])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.ctr("version", check=False, namespace=False).returncode == 0:
                return
            time.sleep(0.1)
        raise EstateError(f"containerd did not answer: {Path(self.log).read_text()[-2000:]}")

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

    def restart_if_stale(self, build: str) -> None:
        """Make the daemon run the installed binary ``build``."""
        pid = self.daemon_pid()
        exe = os.readlink(f"/proc/{pid}/exe") if pid else ""
        if pid is None or exe.endswith("(deleted)") or self.revision() != build:
            self.stop()
            self.start()

    def run_container(self) -> None:
        self.container = f"keeper-{secrets.token_hex(3)}"
        self.ctr("run", "-d", "--null-io", "--fifo-dir", str(self.dir / "fifo"), "--runc-root",
                 str(self.dir / "runc"), "--rootfs", str(self.dir / "rootfs"), self.container,
                 "/bin/sleep", "1000000")
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            cols = line.split()
            if cols[0] == self.container and cols[2] == "RUNNING":
                self.container_pid = int(cols[1])
                self.container_start = start_ticks(self.container_pid)
                return
        raise EstateError("the container did not start")

    def task_row(self) -> tuple[int, str] | None:
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            cols = line.split()
            if cols[0] == self.container:
                return int(cols[1]), cols[2]
        return None

    def shim_socket(self) -> str:
        digest = hashlib.sha256(
            f"{self.address}{self.namespace}{self.container}".encode()).hexdigest()
        return f"/run/containerd/s/{digest}"

    def remove(self) -> None:
        """Kill and delete the container, stop the daemon, remove cgroups it made."""
        if self.container and self.daemon_pid() is None:
            with contextlib.suppress(EstateError):
                self.start()
        if self.container and self.daemon_pid() is not None:
            self.ctr("task", "kill", "-s", "KILL", self.container, check=False)
            deadline = time.monotonic() + 10
            while pid_alive(self.container_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.ctr("task", "delete", self.container, check=False)
            self.ctr("container", "delete", self.container, check=False)
            self.ctr("namespaces", "remove", self.namespace, check=False, namespace=False)
        self.stop()
        for d in glob.glob(f"/sys/fs/cgroup/*/{self.namespace}"):
            with contextlib.suppress(OSError):
                os.rmdir(d)


# ---------------------------------------------------------------------------------------------


@dataclass
class LocalRepo:
    """A file: apt repository holding a repackaged containerd at a higher version."""

    dir: Path
    list_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.list_file = Path(f"/etc/apt/sources.list.d/pitstop-test-{self.dir.parent.name}.list")

    @staticmethod
    def bump(version: str) -> str:
        """A higher build string of the same length (the daemon reports its build string, so
        the repackaged binaries get it patched in place)."""
        m = re.search(r"(\d+)(\D*)$", version)
        if m is None or set(m.group(1)) == {"9"}:
            raise EstateError(f"cannot make a same-length higher version from {version}")
        digits = m.group(1)
        bumped = str(int(digits) + 1).rjust(len(digits), "0")
        return version[:m.start(1)] + bumped + m.group(2)

    def build(self, package: str, version: str) -> str:
        # apt reads file: repositories as its sandbox user (_apt): let it through the estate
        # dir (whose secrets, the ssh keys, stay 0600) and read the repository.
        self.dir.parent.chmod(0o711)
        self.dir.mkdir(mode=0o755, parents=True)
        sh(["apt-get", "download", f"{package}={version}"], cwd=str(self.dir))
        debs = list(self.dir.glob(f"{package}_*.deb"))
        assert len(debs) == 1, debs
        new = self.bump(version)
        tree = self.dir / "tree"
        sh(["dpkg-deb", "-R", str(debs[0]), str(tree)])
        control = tree / "DEBIAN/control"
        control.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {new}", control.read_text()))
        old_b, new_b = version.encode(), new.encode()
        for path in tree.rglob("*"):
            if path.is_file() and not path.is_symlink() and "DEBIAN" not in path.parts:
                data = path.read_bytes()
                if old_b in data:
                    path.write_bytes(data.replace(old_b, new_b))
        md5 = tree / "DEBIAN/md5sums"
        if md5.exists():  # keep dpkg --verify honest for the patched files
            lines = []
            for line in md5.read_text().splitlines():
                _, rel = line.split(None, 1)
                lines.append(f"{hashlib.md5((tree / rel).read_bytes()).hexdigest()}  {rel}")
            md5.write_text("\n".join(lines) + "\n")
        out = self.dir / f"{package}_{new.replace(':', '%3a')}_repack.deb"
        sh(["dpkg-deb", "-Zgzip", "-b", str(tree), str(out)])
        shutil.rmtree(tree)
        debs[0].unlink()
        fields = sh(["dpkg-deb", "-f", str(out)]).stdout.rstrip("\n")
        blob = out.read_bytes()
        (self.dir / "Packages").write_text(
            f"{fields}\nFilename: ./{out.name}\nSize: {len(blob)}\n"
            f"MD5sum: {hashlib.md5(blob).hexdigest()}\n"
            f"SHA256: {hashlib.sha256(blob).hexdigest()}\n\n")
        self.list_file.write_text(f"deb [trusted=yes] file:{self.dir} ./\n")
        sh(["apt-get", "update", "-q", "-o", f"Dir::Etc::sourcelist={self.list_file}",
            "-o", "Dir::Etc::sourceparts=-", "-o", "APT::Get::List-Cleanup=0"])
        return new

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.list_file.unlink()
        # apt names list files after the URI, "/" as "_" and "_" escaped as "%5f".
        mangled = str(self.dir).strip("/").replace("_", "*").replace("/", "_")
        for f in glob.glob(f"/var/lib/apt/lists/*{mangled}*") + glob.glob(
                f"/var/lib/apt/lists/partial/*{mangled}*"):
            with contextlib.suppress(OSError):
                os.unlink(f)


# ---------------------------------------------------------------------------------------------


@dataclass
class Estate:
    dir: Path
    from_version: str = ""
    to_version: str = ""
    offered: list[str] = field(default_factory=list)
    sshd: Sshd = field(init=False)
    containerd: Containerd = field(init=False)
    repo: LocalRepo | None = None
    # What the machine looked like.
    packages_before: dict[str, str] = field(default_factory=dict)
    installed_by_us: list[str] = field(default_factory=list)
    config_only_before: set[str] = field(default_factory=set)
    holds_before: set[str] = field(default_factory=set)
    created_run_containerd: list[str] = field(default_factory=list)
    lock: socket.socket | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sshd = Sshd(self.dir / "ssh")
        self.containerd = Containerd(self.dir / "ctrd", f"pitstop-t-{secrets.token_hex(3)}")

    @classmethod
    def open(cls) -> Estate:
        if os.geteuid() != 0:
            raise EstateError("the host tests install Debian packages and start containerd: "
                              "run them as root")
        # The lock is a socket in the abstract namespace: held while bound, released when this
        # process exits however it exits, and it leaves no file behind.
        lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # the other stream of scripts/test.sh may hold it for its whole session (its host
        # tests and everything after them): wait up to an hour, well within CI's limit
        deadline = time.monotonic() + 3600
        while True:
            try:
                lock.bind(LOCK_NAME)
                break
            except OSError:
                if time.monotonic() > deadline:
                    lock.close()
                    raise EstateError("another test session holds the containerd estate "
                                      "(abstract socket @pitstop-hosts-tests)") from None
                time.sleep(1)
        est = cls(Path(tempfile.mkdtemp(prefix="pitstop-hosts-")))
        est.lock = lock
        try:
            est._setup()
        except BaseException:
            est.close()
            raise
        return est

    def _setup(self) -> None:
        self.packages_before = dpkg_installed()
        self.config_only_before = dpkg_config_only()
        self.holds_before = holds()
        for d in ("/run/containerd/s", "/run/containerd/fifo", "/run/containerd/runc",
                  "/run/containerd"):
            if not os.path.exists(d):
                self.created_run_containerd.append(d)
        missing = [p for p in PACKAGES if p not in self.packages_before]
        if missing or len(madison("containerd")) == 0:
            sh([*APT, "update"])
        if missing:
            # Exactly what this install adds (other sessions may install packages meanwhile:
            # those are not ours to remove).
            plan = sh([*APT, "-s", "--no-install-recommends", "install", *missing]).stdout
            before = set(dpkg_installed())
            self.installed_by_us = sorted(
                {m.group(1) for m in re.finditer(r"(?m)^Inst (\S+)", plan)} - before)
            apt_install(*missing)
            self.notes.append(f"installed {' '.join(self.installed_by_us)}")
        self.offered = madison("containerd")
        if not self.offered:
            raise EstateError("apt offers no containerd build")
        if len(self.offered) >= 2 and os.environ.get("PITSTOP_TEST_LOCAL_REPO") != "1":
            self.to_version, self.from_version = self.offered[0], self.offered[1]
        else:
            self.from_version = self.offered[0]
            self.repo = LocalRepo(self.dir / "repo")
            self.to_version = self.repo.build("containerd", self.from_version)
            self.offered = madison("containerd")
            self.notes.append(f"local apt repository with containerd {self.to_version} "
                              f"repackaged from {self.from_version}")
        if installed_version() != self.from_version:
            apt_install(f"containerd={self.from_version}")
        self.sshd.start()
        self.containerd.prepare()
        self.containerd.start()
        self.containerd.run_container()

    def reset(self) -> None:
        """Back to the start build with the daemon running it and the container untouched."""
        for held in holds() - self.holds_before:
            apt_mark("unhold", held)
        if installed_version() != self.from_version:
            apt_install(f"containerd={self.from_version}")
        self.containerd.restart_if_stale(self.from_version)

    def close(self) -> None:
        errors: list[str] = []

        def step(what: str, fn: object) -> None:
            try:
                fn()  # type: ignore[operator]
            except Exception as exc:
                errors.append(f"{what}: {exc}")

        step("container and containerd", self.containerd.remove)
        step("sshd", self.sshd.stop)
        step("holds", self._restore_holds)
        step("packages", self._restore_packages)
        if self.repo is not None:
            step("local repository", self.repo.remove)
        step("/run/containerd", self._remove_run_dirs)
        if os.environ.get("PITSTOP_TEST_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        if self.lock is not None:
            self.lock.close()
            self.lock = None
        if errors:
            raise EstateError("tear-down left work undone: " + "; ".join(errors))

    def _restore_holds(self) -> None:
        now = holds()
        for p in now - self.holds_before:
            apt_mark("unhold", p)
        for p in self.holds_before - now:
            if p in dpkg_installed():
                apt_mark("hold", p)

    def _restore_packages(self) -> None:
        if not self.packages_before:
            return
        original = self.packages_before.get("containerd")
        if original is not None and installed_version() != original:
            apt_install(f"containerd={original}")
        ours = [p for p in self.installed_by_us if p in dpkg_installed()]
        safe = self._safe_to_purge(ours)
        # A package that was removed with its configuration files left ("rc") goes back to
        # that state; one dpkg did not know is purged.
        rc = self.config_only_before
        if [p for p in safe if p not in rc]:
            sh([*APT, "purge", *[p for p in safe if p not in rc]])
        if [p for p in safe if p in rc]:
            sh([*APT, "remove", *[p for p in safe if p in rc]])
        kept = sorted(set(ours) - set(safe))
        if kept:
            print(f"estate: left installed (other packages installed meanwhile need them): "
                  f"{' '.join(kept)}")
        # A package the session upgraded as a dependency goes back too.
        now = dpkg_installed()
        changed = [f"{p}={v}" for p, v in self.packages_before.items()
                   if p in now and now[p] != v and p in PACKAGES]
        if changed:
            apt_install(*changed)

    @staticmethod
    def _safe_to_purge(packages: list[str]) -> list[str]:
        """Those of ``packages`` whose purge removes nothing but ``packages``: a package
        another session installed meanwhile may depend on one of them."""

        def removes(pkgs: list[str]) -> set[str]:
            out = sh([*APT, "-s", "purge", *pkgs]).stdout
            return {m.group(1) for m in re.finditer(r"(?m)^(?:Purg|Remv) (\S+)", out)}

        allowed = set(packages)
        if not packages or removes(packages) <= allowed:
            return list(packages)
        safe = [p for p in packages if removes([p]) <= allowed]
        return safe if removes(safe) <= allowed else []

    def _remove_run_dirs(self) -> None:
        left = []
        for d in self.created_run_containerd:  # children first
            if not os.path.isdir(d):
                continue
            try:
                os.rmdir(d)
            except OSError:
                left.append(f"{d}: {sorted(os.listdir(d))}")
        if left:
            raise EstateError(f"left in /run: {'; '.join(left)}")
