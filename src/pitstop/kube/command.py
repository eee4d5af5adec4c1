"""Detached upgrade commands: what the control-plane command hook
(:class:`~pitstop.kube.controlplane.CommandControlPlaneUpgrader`) and the node command
(:class:`~pitstop.kube.nodecommand.CommandNodeUpgrader`) share.

A command is given as a *template*: a list of arguments (never run through a shell) with
``{placeholder}`` fields, and ``{env:NAME}`` for a value read from pitstop's environment when
the command is launched (a token, a password): it is never written anywhere — not to run.json,
the operation's data, ``output.log`` or an error, which all show ``{env:NAME}``. A template
that holds a secret literally (``--password=…``, ``Bearer …``, a password in a URL) is refused:
it would be kept in the run directory. :func:`template_problems` says what is wrong with one,
each problem with its fix; :func:`expand` and :func:`shown` format it for running and for
showing.

:func:`launch` starts the formatted command **detached**: in its own session, its output in
``<dir>/output.log`` (the first line is the command, as pitstop wrote it), its exit status
written atomically to ``<dir>/status`` when it ends. It returns JSON data to keep with the
operation: the directory, the arguments, the process id and the process's start time
(``/proc/<pid>/stat``), so that a pitstop that died and came back — another process —
tells the command still running from a process that reused its id.

:func:`command_status` reads where a launched command is, from that data alone:
``running``, ``exited`` (with its status), ``vanished`` (gone without writing a status:
killed, or the machine restarted), or ``timed-out`` (still running after the timeout; it is
left running).
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
import shlex
import shutil
import string
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pitstop.backend import BackendError
from pitstop.observe.api import active as active_telemetry
from pitstop.redact import redact_text

__all__ = ["CLOCK_SKEW_S", "COMMAND_TIMEOUT_S", "ENV", "VERIFY_TIMEOUT_S", "CommandStatus",
           "command_status", "expand", "is_argv", "launch", "literal_secret", "proc_start",
           "shown", "template_problems"]

ENV = "env"  # {env:NAME}: NAME's value in pitstop's environment, at launch
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _FromEnvironment:
    def __format__(self, name: str) -> str:
        try:
            return os.environ[name]
        except KeyError:
            raise BackendError(f"the command reads {{env:{name}}}, but {name} is not set in "
                               "pitstop's environment. Fix: export it before `pitstop apply` "
                               "and `pitstop resume`") from None


class _Named:
    def __format__(self, name: str) -> str:
        return f"{{env:{name}}}"


def expand(template: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """The arguments to run: placeholders filled, ``{env:NAME}`` read from the environment."""
    return [arg.format(**values, **{ENV: _FromEnvironment()}) for arg in template]


def shown(template: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """The arguments as pitstop writes and shows them: ``{env:NAME}`` kept as it is."""
    return [arg.format(**values, **{ENV: _Named()}) for arg in template]


def literal_secret(command: Sequence[str]) -> str | None:
    """The first part of ``command`` that looks like a secret written literally (by
    :mod:`pitstop.redact`'s rules; a file path passed to an option named like a secret, such as
    ``--token-file /etc/x``, is not one), or None."""
    text = shlex.join(re.sub(r"\{env:[^}]*\}", "ENV", a) for a in command)
    masked = redact_text(text, mask="\x00")
    if masked == text:
        return None
    matcher = difflib.SequenceMatcher(None, text, masked, autojunk=False)
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            value = text[i1:i2].strip("'\"")
            if value and not value.startswith(("/", "~", "./", "../")):
                return value[:4] + "…" if len(value) > 4 else "…"
    return None

CLOCK_SKEW_S = 5.0  # between this machine and the cluster's, for times the cluster writes
COMMAND_TIMEOUT_S = 1800.0  # how long a launched command may run (default)
VERIFY_TIMEOUT_S = 300.0  # how long after it ended its result may take to show (default)
# Runs the command in a background subshell that outlives this shell and pitstop, and writes
# its exit status atomically when it ends; prints the subshell's pid.
_LAUNCH = ('status="$1"; log="$2"; shift 2; '
           '( "$@" >>"$log" 2>&1 </dev/null; rc=$?; '
           'printf "%s\\n" "$rc" >"$status.tmp" && mv "$status.tmp" "$status" ) '
           '>/dev/null 2>&1 </dev/null & echo $!')


def is_argv(command: object) -> bool:
    """``command`` is a non-empty list (or tuple) of strings."""
    return (not isinstance(command, str) and isinstance(command, Sequence) and bool(command)
            and all(isinstance(a, str) for a in command))


def template_problems(command: object, placeholders: Sequence[str], example: str) -> list[str]:
    """What is wrong with a command template (empty: nothing): not a list of strings, a
    placeholder that is not one of ``placeholders``, an unbalanced brace, an executable that
    is neither a file nor on ``PATH``. ``example``: a good template, shown in the fix."""
    if not is_argv(command):
        return [f"{command!r} is not a list of arguments. Fix: give the command as a list, "
                f"e.g. {example}"]
    assert isinstance(command, Sequence)
    out: list[str] = []
    for arg in command:
        try:
            names = [f for _, f, _, _ in string.Formatter().parse(arg) if f is not None]
        except ValueError as exc:
            out.append(f"argument {arg!r}: {exc}. Fix: write a literal brace as {{{{ or }}}}")
            continue
        unknown = [n for n in names if n not in placeholders and n != ENV]
        if unknown:
            out.append(f"argument {arg!r} uses {{{unknown[0]}}}, which is not a placeholder."
                       f" Fix: use only {', '.join('{' + p + '}' for p in placeholders)} and "
                       "{env:NAME}")
        for _, field, spec, _ in string.Formatter().parse(arg):
            if field != ENV:
                continue
            if not spec or not _ENV_NAME.match(spec):
                out.append(f"argument {arg!r}: {{env:{spec}}} does not name an environment "
                           "variable. Fix: write {env:NAME}, e.g. {env:UPGRADE_TOKEN}")
            elif spec not in os.environ:
                out.append(f"argument {arg!r} reads {{env:{spec}}}, but {spec} is not set in "
                           "pitstop's environment. Fix: export it before `pitstop apply` (and "
                           "before `pitstop resume`)")
    leaked = literal_secret(command)
    if leaked is not None:
        out.append(f"the command holds what looks like a secret written out ({leaked}); it "
                   "would be kept in the run directory and its logs. Fix: pass it through "
                   "pitstop's environment, e.g. --password={env:UPGRADE_PASSWORD}")
    exe = command[0]
    if "{" not in exe and shutil.which(exe) is None:
        out.append(f"{exe!r} is not an executable file or on PATH. Fix: give its absolute "
                   "path, or install it")
    return out


def proc_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of a live process; None when it is gone or a
    zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def launch(state_dir: Path, name: str, argv: Sequence[str], now: float,
           what: str, show: Sequence[str] | None = None) -> dict[str, Any]:
    """Start ``argv`` detached in a new directory under ``state_dir`` named after ``name``;
    the data :func:`command_status` reads. ``what`` names the command in errors (e.g. "the
    control-plane upgrade command"). ``show``: the arguments as written and kept (``{env:NAME}``
    unexpanded; default ``argv``) — in ``output.log``, the data and every message, redacted
    too. A command that cannot be started: BackendError."""
    kept = [redact_text(a) for a in (show if show is not None else argv)]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    opdir = state_dir / f"{safe}-{int(now)}-{secrets.token_hex(3)}"
    try:
        opdir.mkdir(parents=True)
    except OSError as exc:
        raise BackendError(f"cannot make the directory of {what}, {opdir}: {exc}") from None
    status, log = opdir / "status", opdir / "output.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"$ {shlex.join(kept)}\n")
    # the W3C trace context of the call that launches it (TRACEPARENT; none when not tracing)
    trace_env = active_telemetry().trace_environment()
    try:
        launched = subprocess.run(
            ["/bin/sh", "-c", _LAUNCH, "pitstop-hook", str(status), str(log), *argv],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
            start_new_session=True, cwd=opdir, check=False,
            env={**os.environ, **trace_env} if trace_env else None)
        pid = int(launched.stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise BackendError(f"could not launch {what} {shlex.join(kept)}: "
                           f"{redact_text(str(exc))}") from None
    return {"dir": str(opdir), "argv": kept, "pid": pid, "pid_start": proc_start(pid) or ""}


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    body = text.splitlines()[1:]  # the first line is the command, as pitstop wrote it
    last = [ln for ln in body if ln.strip()][-lines:]
    return " | ".join(last) if last else "(no output)"


@dataclass(frozen=True, slots=True)
class CommandStatus:
    """Where a launched command is (see :func:`command_status`)."""

    state: Literal["running", "exited", "vanished", "timed-out"]
    exit_status: str  # as the command's status file says ("" unless exited)
    ended: float  # when that status was written (POSIX seconds; 0 unless exited)
    pid: int
    command: str  # shell-quoted, for messages
    log: Path
    timeout_s: float

    @property
    def succeeded(self) -> bool:
        return self.state == "exited" and self.exit_status == "0"

    def tail(self, lines: int = 5) -> str:
        """The last non-empty lines of the command's output, joined by `` | ``."""
        return _tail(self.log, lines)

    def failure(self, what: str) -> str:
        """The message of a command that did not succeed; ``what`` names the subject (e.g.
        "kube-apiserver cp-a")."""
        if self.state == "vanished":
            return (f"{what}: the upgrade command `{self.command}` (pid {self.pid}) ended "
                    f"without an exit status (killed?); its output: {self.tail()} ({self.log})")
        if self.state == "timed-out":
            return (f"{what}: the upgrade command `{self.command}` is still running after "
                    f"{self.timeout_s:.0f}s (pid {self.pid}, left running); its output: "
                    f"{self.tail()} ({self.log})")
        return (f"{what}: the upgrade command `{self.command}` exited "
                f"{self.exit_status or '?'}: {self.tail()} ({self.log})")


def command_status(data: dict[str, Any], now: float, started: float,
                   timeout_s: float) -> CommandStatus:
    """Where the command :func:`launch` started (``data``) is at ``now``; ``started``: when
    the operation began, for ``timeout_s``."""
    opdir = Path(str(data["dir"]))
    status, log = opdir / "status", opdir / "output.log"
    cmd = shlex.join(data.get("argv") or [])
    pid = int(data.get("pid") or 0)
    alive = pid > 0 and (start := proc_start(pid)) is not None and (
        not data.get("pid_start") or start == data["pid_start"])
    try:  # read after the liveness check: a command gone has written its status
        text, ended = status.read_text().strip(), status.stat().st_mtime
    except OSError:
        if not alive:
            return CommandStatus("vanished", "", 0.0, pid, cmd, log, timeout_s)
        if now - started > timeout_s:
            return CommandStatus("timed-out", "", 0.0, pid, cmd, log, timeout_s)
        return CommandStatus("running", "", 0.0, pid, cmd, log, timeout_s)
    return CommandStatus("exited", text, ended, pid, cmd, log, timeout_s)
