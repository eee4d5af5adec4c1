"""Where the Kubernetes client may write key material, and how none of it is left behind.

A kubeconfig carries its client key, client certificate and CA inline
(``client-key-data``, ``client-certificate-data``, ``certificate-authority-data``; an exec
plugin may answer with ``clientKeyData``), but Python's TLS loads them only from files. The
official client's loader therefore writes each one to a temporary file and removes it only at
exit (``atexit``): a pitstop killed (SIGKILL, OOM, power loss) would leave the key in the
temporary directory.

So pitstop hands the loader a directory of its own for those files (:func:`key_dir`), one per
process, made on first use with mode 0700 under a per-user root that is itself 0700 and owned
by this user, checked rather than trusted:

* ``$XDG_RUNTIME_DIR/pitstop`` when ``$XDG_RUNTIME_DIR`` is a 0700 directory of this user (a
  tmpfs on systemd machines: the files never reach a disk), else
  ``<tempdir>/pitstop-<uid>`` (``$TMPDIR``, else ``/tmp``);
* the process's directory is ``keys-<pid>-<start time>`` (the start time from
  ``/proc/<pid>/stat`` tells a dead process's directory from a live one whose pid was reused);
* it is removed when the process exits, and a pitstop that starts removes the directories of
  processes that are gone (:func:`sweep`), so the key of a killed pitstop lasts only until the
  next one starts.

A root that exists but is not a directory of this user with mode 0700 (someone else made it
first, or a symlink) is refused with :class:`KeyDirError`, never used.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from pitstop.backend import BackendError

__all__ = ["KeyDirError", "key_dir", "key_root", "sweep"]

_ENTRY = re.compile(r"^keys-(\d+)-(\d+)$")
_lock = threading.Lock()
_mine: dict[int, Path] = {}  # pid -> its key directory (a forked child makes its own)


class KeyDirError(BackendError):
    """The directory for key material is not safe to use."""


def _private_dir(path: Path) -> str | None:
    """Why ``path`` is not a directory of this user with mode 0700 (None: it is)."""
    try:
        st = path.lstat()
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory (a symlink or a file)"
    if st.st_uid != os.geteuid():
        return f"it belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()})"
    if stat.S_IMODE(st.st_mode) & 0o077:
        return f"its mode is {stat.S_IMODE(st.st_mode):04o}, not 0700"
    return None


def key_root(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user root of the key directories (see the module docstring); not created."""
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR") or ""
    if runtime and os.path.isabs(runtime) and _private_dir(Path(runtime)) is None:
        return Path(runtime) / "pitstop"
    return Path(tempfile.gettempdir()) / f"pitstop-{os.geteuid()}"


def _make_private(path: Path) -> None:
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    why = _private_dir(path)
    if why is not None:
        raise KeyDirError(
            f"{path} cannot hold kubeconfig key material: {why}. Fix: remove it (or make it "
            f"`mkdir -m 0700 {path}` as this user), or set $XDG_RUNTIME_DIR to a private "
            "directory of yours")


def _start_time(pid: int) -> str | None:
    """The start time of a live process (clock ticks since boot; "0" where /proc is missing),
    None when it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # /proc works: the process is gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "0"
        return "0"
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def sweep(root: Path) -> list[Path]:
    """Remove the key directories under ``root`` of processes that are gone; those removed."""
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _ENTRY.match(entry.name)
        if m is None or int(m[1]) == os.getpid():
            continue
        if _start_time(int(m[1])) == m[2]:
            continue  # its process still runs
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    return removed


def _remove(path: Path, owner: int) -> None:
    if os.getpid() == owner:  # not in a forked child: the directory is its parent's
        shutil.rmtree(path, ignore_errors=True)


def key_dir(environ: Mapping[str, str] | None = None) -> Path:
    """This process's private directory for key material (created 0700 on first use, after a
    :func:`sweep` of the directories of processes that are gone; removed at exit). Made again
    if it was removed meanwhile. :class:`KeyDirError` when the root is not safe."""
    with _lock:
        pid = os.getpid()
        known = _mine.get(pid)
        if known is not None and _private_dir(known) is None:
            return known
        root = key_root(environ)
        _make_private(root)
        sweep(root)
        mine = root / f"keys-{pid}-{_start_time(pid) or '0'}"
        _make_private(mine)
        if known != mine:
            atexit.register(_remove, mine, pid)
        _mine[pid] = mine
        return mine
