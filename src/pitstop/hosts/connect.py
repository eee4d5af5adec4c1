"""Running commands on hosts: over SSH, or on this machine.

Both implementations satisfy :class:`Host`::

    host.run(["dpkg-query", "-W", "containerd"], timeout=30) -> CommandResult
    host.run("apt-mark showhold", timeout=30, sudo=True, check=True)

* ``cmd`` is an argument list (quoted for the remote shell by pitstop) or a shell string (run
  with ``sh -c``). ``timeout`` is in seconds; when it expires the command is killed (locally its
  whole process group; over SSH the remote side runs it under ``timeout --kill-after``, and the
  client gives up a few seconds later whatever the remote side does) and :class:`CommandTimeout`
  is raised.
* ``sudo=True`` runs the command as root: nothing is added when the login user already is root,
  otherwise ``sudo -n`` (never a password prompt: pitstop does not handle sudo passwords, so they
  cannot leak; configure NOPASSWD for the commands pitstop runs).
* ``check=True`` raises :class:`CommandFailed` on a non-zero exit code; otherwise the exit code
  is in the result.

Errors (all :class:`HostError`, itself a :class:`~pitstop.errors.PitstopError` and a
:class:`~pitstop.backend.api.BackendError`, since a call that could not be made is what the
backend protocol calls an error):

* :class:`HostKeyUnknown`: the host's key is not in the known_hosts file. pitstop never trusts
  a key it has not been given; the message says how to add one safely.
* :class:`HostKeyMismatch`: known_hosts holds a different key for this host.
* :class:`HostCredentialsUnusable`: the client key or the known_hosts file cannot be used
  (missing, unreadable, not a private key, protected by a passphrase, malformed). The same
  checks, without connecting, are :func:`identity_file_problem` and
  :func:`known_hosts_problem`, which a backend runs on every file an inventory names before it
  creates a run.
* :class:`HostUnreachable`, :class:`HostAuthFailed`, :class:`CommandTimeout`,
  :class:`CommandFailed`.

Why asyncssh (not paramiko): it verifies host keys against an OpenSSH known_hosts file by
default and reports an unknown or changed key as a distinct exception (paramiko's default
client policy has to be configured away from trust-on-first-use, and its known_hosts
handling does not cover ``@revoked``/``@cert-authority`` markers); it has per-command timeouts;
it is actively maintained and typed (``py.typed``); and its asyncio core multiplexes many hosts
on one thread. pitstop's code is synchronous, so :class:`SSHHost` runs asyncssh on one shared
background event loop and blocks on the result; :func:`run_many` gives parallelism across hosts
with a bounded thread pool.

Nothing secret is logged: commands and outputs go through :mod:`pitstop.redact` before
they reach :mod:`logging` or an exception message. Client keys are passed as file paths and
never read into messages.

This is the only module that imports asyncssh (a contract in ``pyproject.toml``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import asyncssh

from pitstop.backend.api import BackendError
from pitstop.redact import Redactor

__all__ = [
    "CommandFailed",
    "CommandResult",
    "CommandTimeout",
    "Host",
    "HostAuthFailed",
    "HostCredentialsUnusable",
    "HostError",
    "HostKeyMismatch",
    "HostKeyUnknown",
    "HostUnreachable",
    "LocalHost",
    "Outcome",
    "SSHHost",
    "identity_file_problem",
    "known_hosts_problem",
    "run_many",
]

log = logging.getLogger("pitstop.hosts")

Command = list[str] | str

# Output kept in exception messages (the full output is on the result / exception object).
_EXCERPT = 2000


# ---------------------------------------------------------------------------------------------
# Results and errors


@dataclass(frozen=True, slots=True)
class CommandResult:
    host: str
    command: str  # as run, redacted
    exit_code: int
    stdout: str
    stderr: str
    duration: float  # seconds

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class HostError(BackendError):
    """A command could not be run on a host, or failed in a way the caller asked to raise."""

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        super().__init__(message)


class HostKeyUnknown(HostError):
    """The host's key is not in known_hosts: pitstop will not talk to it."""


class HostKeyMismatch(HostError):
    """known_hosts holds a key for this host, and the host presented another one."""


class HostUnreachable(HostError):
    """No SSH connection: refused, no route, name not resolved, or no answer in time."""


class HostAuthFailed(HostError):
    """The host refused every key pitstop offered."""


class HostCredentialsUnusable(HostError):
    """A client key or the known_hosts file cannot be used: nothing was sent to the host."""


# ---------------------------------------------------------------------------------------------
# The files SSH needs, checked without connecting


def _unreadable(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{path} does not exist"
    if isinstance(exc, IsADirectoryError):
        return f"{path} is a directory, not a file"
    if isinstance(exc, PermissionError):
        return f"{path} is not readable by pitstop (user id {os.geteuid()})"
    return f"{path} cannot be read: {exc.strerror or exc}"


def identity_file_problem(path: str | Path) -> tuple[str, str]:
    """("", "") when ``path`` holds a private key SSH can use as it is; else (what is wrong,
    the fix). Read like :class:`SSHHost` reads it, without a passphrase (pitstop has none to
    give). The key itself never appears in the answer."""
    p = Path(path).expanduser()
    try:
        asyncssh.read_private_key(p)
    except OSError as exc:
        return _unreadable(p, exc), ("give the path of the private key file on the machine "
                                     "pitstop runs on, readable by the user pitstop runs as")
    except asyncssh.KeyImportError as exc:
        if "assphrase" in str(exc):
            return (f"{p} is protected by a passphrase, and pitstop uses neither passphrases "
                    "nor an agent", "give a key without a passphrase, kept readable only by "
                    "the user pitstop runs as (a key for pitstop alone)")
        return (f"{p} is not a private key SSH can read ({exc})",
                "give the private key file (not the .pub), in OpenSSH or PEM format")
    except ValueError as exc:
        return (f"{p} is not a private key SSH can read ({exc})",
                "give the private key file (not the .pub), in OpenSSH or PEM format")
    return "", ""


def known_hosts_problem(path: str | Path) -> tuple[str, str]:
    """("", "") when ``path`` is a known_hosts file SSH can read; else (what is wrong, the
    fix). An empty file is readable: every host is then unknown, which a run reports per host
    (:class:`HostKeyUnknown`)."""
    p = Path(path).expanduser()
    try:
        asyncssh.read_known_hosts(str(p))
    except OSError as exc:
        return _unreadable(p, exc), ("give the path of an OpenSSH known_hosts file on the "
                                     "machine pitstop runs on, readable by the user pitstop "
                                     "runs as")
    except ValueError as exc:
        return (f"{p} is not a known_hosts file SSH can read ({exc})",
                "fix or remove that line: each line is `HOST[,HOST…] KEYTYPE BASE64KEY` "
                "(`ssh-keyscan HOST` prints such lines)")
    return "", ""


class CommandTimeout(HostError):
    def __init__(self, host: str, message: str, *, command: str, timeout: float,
                 stdout: str = "", stderr: str = "") -> None:
        self.command = command
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(host, message)


class CommandFailed(HostError):
    def __init__(self, result: CommandResult, redactor: Redactor) -> None:
        self.result = result
        detail = redactor((result.stderr.strip() or result.stdout.strip())[-_EXCERPT:])
        super().__init__(
            result.host,
            f"{result.host}: `{result.command}` exited with {result.exit_code}"
            + (f": {detail}" if detail else ""),
        )


# ---------------------------------------------------------------------------------------------
# The protocol


@runtime_checkable
class Host(Protocol):
    """Somewhere pitstop can run commands."""

    @property
    def name(self) -> str: ...

    def run(self, cmd: Command, timeout: float = 60.0, *, sudo: bool = False,
            check: bool = False) -> CommandResult: ...

    def close(self) -> None: ...


def _as_shell(cmd: Command) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


def _finish(host: str, shown: str, exit_code: int, stdout: str, stderr: str, started: float,
            check: bool, redactor: Redactor) -> CommandResult:
    result = CommandResult(host, shown, exit_code, stdout, stderr, time.monotonic() - started)
    log.debug("%s: `%s` -> exit %d in %.2fs", host, shown, exit_code, result.duration)
    if exit_code != 0 and log.isEnabledFor(logging.DEBUG):
        log.debug("%s: stderr: %s", host, redactor(stderr[-_EXCERPT:]))
    if check and exit_code != 0:
        raise CommandFailed(result, redactor)
    return result


# ---------------------------------------------------------------------------------------------
# Local


class LocalHost:
    """This machine, through :mod:`subprocess`."""

    def __init__(self, name: str = "localhost", *, secrets: Iterable[str] = ()) -> None:
        self._name = name
        self._redact = Redactor(secrets)

    @property
    def name(self) -> str:
        return self._name

    def run(self, cmd: Command, timeout: float = 60.0, *, sudo: bool = False,
            check: bool = False) -> CommandResult:
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        if sudo and os.geteuid() != 0:
            argv = ["sudo", "-n", "--", *argv]
        shown = self._redact(_as_shell(cmd))
        log.debug("%s: run `%s` (timeout %ss%s)", self._name, shown, timeout,
                  ", sudo" if sudo else "")
        started = time.monotonic()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, errors="replace",
                                    start_new_session=True)
        except OSError as exc:
            result = CommandResult(self._name, shown, 127, "", str(exc),
                                   time.monotonic() - started)
            if check:
                raise CommandFailed(result, self._redact) from exc
            return result
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The command runs in its own session: kill everything it started.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            raise CommandTimeout(
                self._name,
                f"{self._name}: `{shown}` did not finish within {timeout:g}s and was killed",
                command=shown, timeout=timeout, stdout=stdout, stderr=stderr) from None
        return _finish(self._name, shown, proc.returncode, stdout, stderr, started, check,
                       self._redact)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"LocalHost({self._name!r})"


# ---------------------------------------------------------------------------------------------
# SSH


class _Loop:
    """One asyncio event loop in a daemon thread, shared by every :class:`SSHHost`."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="pitstop-ssh", daemon=True).start()
                cls._loop = loop
            return cls._loop

    @classmethod
    def call(cls, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, cls.get())
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise


_KILL_AFTER = 5.0  # seconds between TERM and KILL on the remote side
_GRACE = 10.0  # extra seconds the client waits beyond the remote timeout


class SSHHost:
    """A host reached over SSH with key authentication and a known_hosts file.

    The connection is opened on first use and kept for later commands; :meth:`close` ends it.
    Nothing is read from ``~/.ssh/config`` or an agent: what pitstop uses is what it is given.
    """

    def __init__(self, address: str, *, port: int = 22, user: str = "root",
                 client_keys: Sequence[str | Path], known_hosts: str | Path,
                 name: str | None = None, connect_timeout: float = 15.0,
                 secrets: Iterable[str] = ()) -> None:
        self.address = address
        self.port = port
        self.user = user
        self.client_keys = [str(k) for k in client_keys]
        self.known_hosts = str(known_hosts)
        self._name = name or (address if port == 22 else f"{address}:{port}")
        self.connect_timeout = connect_timeout
        self._redact = Redactor(secrets)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._is_root: bool | None = None
        self._conn_lock: asyncio.Lock | None = None

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"SSHHost({self.user}@{self.address}:{self.port})"

    # -- connection ------------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.address} port {self.port}"

    def _known_hosts_entry_exists(self) -> bool:
        try:
            known = asyncssh.read_known_hosts(self.known_hosts)
        except (OSError, ValueError):
            return False
        host_keys, ca_keys, _revoked, x509_certs, _rc, x509_subjects, _rs = known.match(
            self.address, self.address, self.port)
        return bool(host_keys or ca_keys or x509_certs or x509_subjects)

    async def _presented_key(self) -> str:
        """The fingerprint the host presents, for the error message (never trusted)."""
        try:
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(self.address, self.port, config=None), 5.0)
        except (OSError, asyncssh.Error, TimeoutError):
            return ""
        if key is None:
            return ""
        return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"

    def _unknown_key_message(self, presented: str) -> str:
        port_opt = f"-p {self.port} " if self.port != 22 else ""
        keygen_port = f"[{self.address}]:{self.port}" if self.port != 22 else self.address
        seen = f" The host presented {presented}." if presented else ""
        return (
            f"{self._name}: the SSH host key of {self._where()} is not in the known_hosts file "
            f"{self.known_hosts}; pitstop never trusts an unknown host key.{seen} To add it: "
            f"`ssh-keyscan {port_opt}{self.address} > /tmp/{self.address}.keys`, compare "
            f"`ssh-keygen -lf /tmp/{self.address}.keys` with the fingerprint read on the host "
            f"itself (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` at its console), then "
            f"append the matching line to {self.known_hosts} "
            f"(entries for a non-standard port are written as {keygen_port})."
        )

    async def _connect(self) -> asyncssh.SSHClientConnection:
        if self._conn_lock is None:
            self._conn_lock = asyncio.Lock()
        async with self._conn_lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            self._conn = None
            if not Path(self.known_hosts).is_file():
                raise HostKeyUnknown(self._name, self._unknown_key_message("")
                                     + f" ({self.known_hosts} does not exist.)")
            unusable = [what for what, _ in (*map(identity_file_problem, self.client_keys),
                                             known_hosts_problem(self.known_hosts)) if what]
            if unusable:
                raise HostCredentialsUnusable(
                    self._name, f"{self._name}: cannot connect to {self._where()}: "
                    + "; ".join(unusable) + ". Nothing was sent to the host.")
            try:
                conn = await asyncssh.connect(
                    self.address, self.port, username=self.user,
                    client_keys=self.client_keys, known_hosts=self.known_hosts,
                    agent_path=None, config=None, preferred_auth=["publickey"],
                    gss_auth=False, gss_kex=False,
                    connect_timeout=self.connect_timeout, login_timeout=self.connect_timeout,
                    keepalive_interval=30)
            except asyncssh.HostKeyNotVerifiable as exc:
                if self._known_hosts_entry_exists():
                    raise HostKeyMismatch(
                        self._name,
                        f"{self._name}: the SSH host key of {self._where()} does not match the "
                        f"key recorded in {self.known_hosts} ({exc.reason}). This may be an "
                        f"attack, or a host that was rebuilt: verify the new key out of band "
                        f"before replacing the entry.") from None
                raise HostKeyUnknown(self._name,
                                     self._unknown_key_message(await self._presented_key())
                                     ) from None
            except asyncssh.PermissionDenied as exc:
                raise HostAuthFailed(
                    self._name,
                    f"{self._name}: {self._where()} refused authentication as {self.user!r} with "
                    f"the key(s) {', '.join(self.client_keys) or '(none)'}: {exc.reason}. Check "
                    f"that the public key is in ~{self.user}/.ssh/authorized_keys on the host."
                ) from None
            except (TimeoutError, asyncssh.ConnectionLost) as exc:
                raise HostUnreachable(
                    self._name,
                    f"{self._name}: no SSH answer from {self._where()} within "
                    f"{self.connect_timeout:g}s ({type(exc).__name__})") from None
            except asyncssh.DisconnectError as exc:
                raise HostUnreachable(
                    self._name,
                    f"{self._name}: {self._where()} closed the SSH connection: {exc.reason}"
                ) from None
            except OSError as exc:
                raise HostUnreachable(
                    self._name,
                    f"{self._name}: cannot connect to {self._where()}: "
                    f"{exc.strerror or exc}") from None
            self._conn = conn
            log.debug("%s: connected as %s", self._name, self.user)
            return conn

    async def _run(self, command: str, timeout: float) -> tuple[int, str, str]:
        conn = await self._connect()
        try:
            done = await conn.run(command, check=False, timeout=timeout + _GRACE)
        except asyncssh.TimeoutError as exc:
            raise _RemoteTimeout(_text(exc.stdout), _text(exc.stderr)) from None
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, BrokenPipeError,
                ConnectionResetError, asyncssh.ChannelOpenError) as exc:
            self._conn = None
            raise HostUnreachable(self._name,
                                  f"{self._name}: SSH connection to {self._where()} lost: "
                                  f"{exc}") from None
        if done.exit_status is None or done.exit_status < 0:
            # Killed by a signal on the remote side.
            code = 128 + (signal.Signals[f"SIG{done.exit_signal[0]}"].value
                          if done.exit_signal and f"SIG{done.exit_signal[0]}" in
                          signal.Signals.__members__ else 0)
        else:
            code = done.exit_status
        return code, _text(done.stdout), _text(done.stderr)

    def _root(self) -> bool:
        if self._is_root is None:
            code, out, _ = _Loop.call(self._run("id -u", 30.0), 30.0 + 2 * _GRACE)
            self._is_root = code == 0 and out.strip() == "0"
        return self._is_root

    def run(self, cmd: Command, timeout: float = 60.0, *, sudo: bool = False,
            check: bool = False) -> CommandResult:
        inner = cmd if isinstance(cmd, str) else shlex.join(cmd)
        wrapped = f"timeout --kill-after={_KILL_AFTER:g} {timeout:g} sh -c {shlex.quote(inner)}"
        if sudo and not self._root():
            wrapped = f"sudo -n -- {wrapped}"
        shown = self._redact(inner)
        log.debug("%s: run `%s` (timeout %ss%s)", self._name, shown, timeout,
                  ", sudo" if sudo else "")
        started = time.monotonic()
        try:
            code, stdout, stderr = _Loop.call(self._run(wrapped, timeout),
                                              self.connect_timeout * 2 + timeout + 2 * _GRACE)
        except _RemoteTimeout as exc:
            raise self._timeout(shown, timeout, exc.stdout, exc.stderr) from None
        except TimeoutError:
            raise self._timeout(shown, timeout, "", "") from None
        elapsed = time.monotonic() - started
        # coreutils timeout exits 124 after TERM, 137 after KILL.
        if code in (124, 137) and elapsed >= timeout:
            raise self._timeout(shown, timeout, stdout, stderr)
        return _finish(self._name, shown, code, stdout, stderr, started, check, self._redact)

    def _timeout(self, shown: str, timeout: float, stdout: str, stderr: str) -> CommandTimeout:
        return CommandTimeout(
            self._name, f"{self._name}: `{shown}` did not finish within {timeout:g}s and was "
            f"killed", command=shown, timeout=timeout, stdout=stdout, stderr=stderr)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            async def _close() -> None:
                conn.close()
                await conn.wait_closed()
            with contextlib.suppress(TimeoutError, OSError, asyncssh.Error):
                _Loop.call(_close(), 10.0)


class _RemoteTimeout(Exception):
    def __init__(self, stdout: str, stderr: str) -> None:
        self.stdout = stdout
        self.stderr = stderr


def _text(data: object) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


# ---------------------------------------------------------------------------------------------
# Many hosts


H = TypeVar("H")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[H, T]):
    """What ``fn(host)`` returned, or the exception it raised."""

    host: H
    value: T | None = None
    error: BaseException | None = None
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def run_many(hosts: Sequence[H], fn: Callable[[H], T], limit: int) -> list[Outcome[H, T]]:
    """Call ``fn(host)`` for every host, at most ``limit`` at a time; results in input order.

    An exception in one call never stops the others: it is returned in that host's
    :class:`Outcome` (``KeyboardInterrupt`` and ``SystemExit`` still propagate).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")

    def one(host: H) -> Outcome[H, T]:
        started = time.monotonic()
        try:
            value = fn(host)
        except Exception as exc:
            return Outcome(host, None, exc, time.monotonic() - started)
        return Outcome(host, value, None, time.monotonic() - started)

    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(limit, len(hosts)),
                            thread_name_prefix="pitstop-host") as pool:
        return list(pool.map(one, hosts))
