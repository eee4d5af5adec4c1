"""The containerd estate fixtures (see estate.py) and the figures the runtime tests report."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pitstop.hosts.connect import SSHHost

from .estate import Estate, EstateError

# Figures the tests measure, printed at the end of the run (and by the tests themselves, so
# they show with -s). Also written as JSON to $PITSTOP_FIGURES when set.
FIGURES: list[tuple[str, str]] = []


def figure(name: str, value: str) -> None:
    FIGURES.append((name, value))
    print(f"FIGURE {name}: {value}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("pitstop host figures")
    for name, value in FIGURES:
        terminalreporter.write_line(f"{name}: {value}")
    out = os.environ.get("PITSTOP_FIGURES")
    if out:
        Path(out).write_text(json.dumps(dict(FIGURES), indent=2) + "\n")


@pytest.fixture(scope="session")
def estate() -> Iterator[Estate]:
    """Packages, a private sshd and containerd with a running container; undone afterwards.

    Fails (never skips) when it cannot be built: these tests are the proof that the runtime
    upgrade works on real components.
    """
    try:
        est = Estate.open()
    except EstateError as exc:
        pytest.fail(str(exc), pytrace=False)
    figure("containerd builds", f"{est.from_version} -> {est.to_version} "
                                f"(apt offers: {', '.join(est.offered)})")
    for note in est.notes:
        print(f"estate: {note}")
    try:
        yield est
    finally:
        est.close()


@pytest.fixture
def at_start(estate: Estate) -> Estate:
    """The host at the start build, the daemon running it, the container untouched."""
    estate.reset()
    c = estate.containerd
    row = c.task_row()
    assert row == (c.container_pid, "RUNNING"), f"the container is not as it was: {row}"
    return estate


@pytest.fixture
def ssh(estate: Estate) -> Iterator[SSHHost]:
    host = SSHHost("127.0.0.1", port=estate.sshd.port, user="root",
                   client_keys=[estate.sshd.client_key], known_hosts=estate.sshd.known_hosts,
                   name="node-a")
    try:
        yield host
    finally:
        host.close()
