"""Runs by name: finding a run from its id, listing the runs of a runs directory, and what a
run's record says about it (status, backend, clusters, times, progress).

Kept light at import (no pydantic, no planner): the ``RUN`` argument of every run command is
resolved here while the command line is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pitstop.executor.vocabulary import RunStatus

__all__ = ["DEFAULT_RUNS_DIRS", "FINAL_STATUSES", "RunInfo", "RunRefError", "audit_times",
           "backend_summary", "backend_text", "hosts_of", "list_runs", "read_run_info",
           "resolve_run", "runs_under", "short_time"]

DEFAULT_RUNS_DIRS = (".pitstop/runs", ".pitstop/demo")  # `apply`/`rehearse`, and `demo`
FINAL_STATUSES = tuple(s.value for s in RunStatus if s.final)  # the run will not go on


class RunRefError(ValueError):
    """A run reference that names no run, or several."""


def _is_run(path: Path) -> bool:
    return (path / "run.json").is_file()


def runs_under(root: Path) -> Iterator[Path]:
    try:
        children = sorted(root.iterdir())
    except OSError:
        return
    yield from (p for p in children if p.is_dir() and _is_run(p))


def _where(dirs: Sequence[Path]) -> str:
    return " or ".join(str(d) for d in dirs) or "(no runs directory)"


def resolve_run(ref: str, runs_dirs: Sequence[Path], *, files: bool = False) -> Path:
    """The run directory ``ref`` names: a run directory itself, or a run id — whole, or its
    start or end (``20261130-0700``, ``842a60``) when that names exactly one run under
    ``runs_dirs``. With ``files``, an existing file is returned as it is (``audit verify``
    takes an ``audit.jsonl``). Raises :class:`RunRefError` with what was searched and how to
    fix it."""
    path = Path(ref)
    if files and (path.is_file() or path.suffix == ".jsonl"):
        return path  # a missing audit.jsonl is for `audit verify` to report (exit 1)
    if path.is_dir():
        if _is_run(path):
            return path
        inside = list(runs_under(path))
        hint = (f"; it holds {len(inside)} run(s): `pitstop runs --runs-dir {ref}` lists them"
                if inside else "")
        raise RunRefError(f"{ref} is a directory but not a pitstop run directory (no "
                          f"run.json){hint}.")
    if not ref or "/" in ref or ref.startswith("."):
        raise RunRefError(f"{ref!r}: no such run directory. Pass a run directory or a run id "
                          "(`pitstop runs` lists them).")
    runs = [p for d in runs_dirs for p in runs_under(d)]
    exact = [p for p in runs if p.name == ref]
    found = exact or [p for p in runs if p.name.startswith(ref) or p.name.endswith(ref)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise RunRefError(f"no run {ref!r} under {_where(runs_dirs)} ({len(runs)} run(s) "
                          "there). Pass a run directory, or a run id or its start or end, "
                          "with --runs-dir DIR where the runs are; `pitstop runs` lists them.")
    shown = ", ".join(str(p) for p in found[:8]) + (" …" if len(found) > 8 else "")
    raise RunRefError(f"{ref!r} matches {len(found)} runs: {shown}. Pass more of the id, or "
                      "the run directory.")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a run directory says about its run, read without loading its plan."""

    run_id: str
    path: Path
    status: str
    reason: str
    request: str
    backend: dict[str, Any]
    clusters: tuple[str, ...]
    created: str  # wall clock, ISO-8601
    started: str | None  # the backend's clock (virtual on the twin), ISO-8601
    finished: str | None  # set once the run ended for good (FINAL_STATUSES)
    steps_done: int
    steps_total: int

    @property
    def virtual(self) -> bool:
        return self.backend.get("kind") == "twin"

    def to_dict(self) -> dict[str, Any]:
        return {"runId": self.run_id, "path": str(self.path), "status": self.status,
                "reason": self.reason, "request": self.request or None,
                "backend": backend_summary(self.backend), "clusters": list(self.clusters),
                "created": self.created, "started": self.started, "finished": self.finished,
                "clock": "virtual" if self.virtual else "wall",
                "steps": {"done": self.steps_done, "total": self.steps_total}}


def audit_times(path: Path) -> tuple[str | None, str | None]:
    """The first record's time (the run's start) and the time of the last record of the run
    ending (``run-completed``, ``run-rolled-back``, ``run-aborted``, ``run-paused``)."""
    first: str | None = None
    last_end: str | None = None
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if first is None or '"action": "run-' in line:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if first is None:
                        first = str(rec.get("time") or "") or None
                    if str(rec.get("action", "")).removeprefix("run-") in (
                            *FINAL_STATUSES, RunStatus.PAUSED):
                        last_end = str(rec.get("time") or "") or None
    except OSError:
        return None, None
    return first, last_end


def read_run_info(path: Path) -> RunInfo:
    """A run's record: ``run.json``, the journal's status and steps, the audit log's times."""
    from pitstop.errors import RunDamaged
    from pitstop.store import SqliteRunStore, StepRecord

    steps: list[StepRecord] = []
    try:
        meta = json.loads((path / "run.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError) as exc:
        meta = {"runId": path.name}
        status, reason, request = "damaged", f"run.json: {exc}", ""
    else:
        try:
            journal = SqliteRunStore(path / "journal.sqlite")
        except RunDamaged as exc:  # listed, not trusted: `pitstop resume` says what to do
            status, reason, request = "damaged", str(exc), ""
        else:
            try:
                status, reason, request = (journal.get("status"), journal.get("reason"),
                                           journal.get("request"))
                steps = journal.steps()
            finally:
                journal.close()
    clusters = tuple(dict.fromkeys(s.step_id.split("/", 1)[0] for s in steps)) or tuple(
        meta.get("labels", {}))
    started, ended = audit_times(path / "audit.jsonl")
    return RunInfo(run_id=str(meta.get("runId", path.name)), path=path, status=status or "?",
                   reason=reason, request=request, backend=dict(meta.get("backend", {})),
                   clusters=clusters, created=str(meta.get("created", "")),
                   started=started, finished=ended if status in FINAL_STATUSES else None,
                   steps_done=sum(1 for s in steps if s.status == "done"),
                   steps_total=len(steps))


def list_runs(runs_dirs: Sequence[Path]) -> list[RunInfo]:
    """Every run under ``runs_dirs``, newest first (by creation, on the wall clock)."""
    runs = [read_run_info(p) for d in runs_dirs for p in runs_under(d)]
    return sorted(runs, key=lambda r: (r.created, r.run_id), reverse=True)


def backend_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The parts of a run's backend record a person or a program reading a listing needs."""
    kind = str(record.get("kind", "?"))
    out: dict[str, Any] = {"kind": kind, "rehearsal": kind == "twin"}
    if record.get("mode"):
        out["mode"] = record["mode"]
    kube = record.get("kube", record) if kind in ("kube", "hosts+kube") else None
    if isinstance(kube, dict) and kube.get("contexts"):
        out["contexts"] = dict(kube["contexts"])
    return out


def hosts_of(run_path: Path, record: dict[str, Any]) -> list[str]:
    """``node (address)`` of every host in a hosts run's inventory (kept in its directory)."""
    rec = record.get("hosts", record) if record.get("kind") == "hosts+kube" else record
    name = rec.get("inventory") if isinstance(rec, dict) else None
    if not name:
        return []
    try:
        doc = json.loads((run_path / str(name)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [f"{n.get('name')} ({'local' if n.get('local') else n.get('address')})"
            for c in doc.get("spec", {}).get("clusters", []) for n in c.get("nodes", [])]


def backend_text(record: dict[str, Any], *, long: bool = False,
                 hosts: Sequence[str] = ()) -> str:
    """``twin (rehearsal)``, ``kube: staging-eu → kind-staging``, ``hosts: n1 (10.0.0.1)`` …
    for a run; ``long`` says everything (the summary after a run), else the first few."""
    kind = str(record.get("kind", "?"))
    if kind == "twin":
        text = "twin (rehearsal)"
        if long:
            text += ": a simulated copy of the fleet, in virtual time; nothing real is changed"
        return text
    kube = record.get("kube", record) if kind in ("kube", "hosts+kube") else {}
    contexts = dict(kube.get("contexts") or {}) if isinstance(kube, dict) else {}
    if contexts:
        shown = _few([f"{c} → {ctx}" for c, ctx in contexts.items()], long)
        text = f"{kind}: contexts {shown}"
        if hosts:
            text += f"; hosts {_few(hosts, long)}"
        return text
    if hosts:
        return f"{kind}: {_few(hosts, long)}"
    return kind


def _few(items: Sequence[str], long: bool) -> str:
    if long or len(items) <= 3:
        return ", ".join(items)
    return f"{', '.join(items[:3])} +{len(items) - 3}"


def short_time(iso: str | None) -> str:
    """``2026-11-30T07:00:00.000000Z`` → ``2026-11-30 07:00`` (UTC); ``—`` when unknown."""
    if not iso:
        return "—"
    try:
        t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return (t.astimezone(UTC) if t.tzinfo else t).strftime("%Y-%m-%d %H:%M")
