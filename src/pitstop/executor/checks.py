"""What the executor checks before a step starts — approvals, the maintenance window, the live
skew check — and after the last one: the observed fleet against where the plan ends.

Each check either returns (go on) or raises :class:`~pitstop.executor.context.Stop` with a
reason that says what is wrong and what to do; none of them changes the fleet.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pitstop.backend import BackendError, ClusterObservation
from pitstop.calendar import next_allowed_start
from pitstop.catalog import load_catalog
from pitstop.executor.context import RunContext, Stop
from pitstop.executor.integrity import counted_approvals
from pitstop.executor.skew import (
    CHECKED_ACTIONS,
    describe_apiservers,
    live_skew_problems,
    observed_versions,
    silent_apiservers,
)
from pitstop.executor.vocabulary import Act, RunStatus, StepStatus
from pitstop.planner.plan import Phase, Step, StepAction
from pitstop.versions import VersionError, parse_version, version_key

__all__ = ["await_approval", "await_window", "check_live_skew", "final_check"]


def await_approval(ctx: RunContext, step: Step) -> None:
    """A step that needs approvals waits for enough distinct allowed approvers, each with the
    audit record that says so (an approval in the journal alone does not count)."""
    if not step.requires_approval:
        return
    need = next((a for a in ctx.run.plan.approvals if a.cluster == step.cluster), None)
    required = need.required if need else 1
    allowed = set(need.approvers) if need and need.approvers else None
    got, ignored = counted_approvals(ctx.run, step.id, allowed)
    if len(got) < required:
        note = (f"; not counted: {', '.join(ignored)} (no matching audit record, or not an "
                "allowed approver)" if ignored else "")
        who = f" from {', '.join(sorted(allowed))}" if allowed else ""
        raise Stop(RunStatus.PAUSED, f"step {step.id} waits for {required} approval(s){who} "
                   f"(has {len(got)}{': ' + ', '.join(got) if got else ''}{note}): run "
                   f"`pitstop approve {ctx.run.path} --step {step.id} --as NAME`, then "
                   f"`pitstop resume {ctx.run.path}`")


def await_window(ctx: RunContext, step: Step) -> None:
    labels = ctx.run.labels.get(step.cluster, {"name": step.cluster})
    now = datetime.fromtimestamp(ctx.now(), UTC)
    start = next_allowed_start(ctx.run.policy, labels, now)
    if start is None:
        raise Stop(RunStatus.PAUSED, f"no maintenance window opens for cluster {step.cluster} "
                   "within a year: check the policy's windows and blackouts")
    wait = (start - now).total_seconds()
    if wait > 0:
        ctx.audit("window-wait", f"outside the maintenance window: step {step.id} waits "
                  f"until {start.isoformat()}", step.id)
        ctx.sleep_checked(wait)


def check_live_skew(ctx: RunContext, step: Step) -> None:
    """Observe the cluster and pause (never fail, never skip) when it, or any state the step
    would pass through, breaks a skew rule (:mod:`pitstop.executor.skew`). ``resume`` comes
    back here and checks again."""
    if ctx.catalog is None:
        ctx.catalog = load_catalog()
    if step.action not in CHECKED_ACTIONS:
        return
    try:
        obs = ctx.backend.observe(step.cluster)
        silent = silent_apiservers(obs, ctx.backend.health(step.cluster), step)
    except BackendError as exc:
        raise Stop(RunStatus.PAUSED, f"step {step.id}: cannot observe {step.cluster} for the "
                   f"live skew check: {exc}. Fix the connection or permissions, then "
                   f"`pitstop resume {ctx.run.path}`") from None
    at = datetime.fromtimestamp(ctx.now(), UTC)
    waivers = [w for w in ctx.run.policy.spec.waivers if w.active(at)]
    problems = live_skew_problems(obs, step, ctx.catalog, waivers)
    versions = {"apiservers": dict(obs.apiservers),
                "kube-controller-manager": obs.controller_manager,
                "kube-scheduler": obs.scheduler}
    if not problems and not silent:
        # "unjudged": the backend reports no apiserver version (hosts), so no rule applies
        ctx.effects.record(step.id, Act.SKEW_CHECK, step.cluster,
                           "ok" if observed_versions(obs) is not None else "unjudged", versions)
        return
    found = [f"{p.violation.rule} {p.when}: {p.violation.message}" for p in problems] + [
        f"kube-apiserver {n} does not answer, so its version is unknown (it may still be "
        "the old one)" for n in silent]
    ctx.effects.record(step.id, Act.SKEW_CHECK, step.cluster, "paused", versions,
                       {"violations": found})
    apis = dict(obs.apiservers)
    oldest = min(apis.values(), key=version_key) if apis else ""
    behind = sorted(n for n, v in apis.items() if v == oldest)
    who = (f"; kube-apiserver {', '.join(behind)} still at {oldest}"
           if len(set(apis.values())) > 1 else "")
    why = (f"step {step.id} not started: the live cluster would break the skew policy — "
           + "; ".join(found) + f" (observed: {describe_apiservers(obs)}; "
           f"kube-controller-manager {obs.controller_manager or '?'}; kube-scheduler "
           f"{obs.scheduler or '?'}{who}). Bring the cluster back to the state the plan "
           f"expects (e.g. upgrade that instance again), then `pitstop resume "
           f"{ctx.run.path}`: the check runs again before the step")
    ctx.journal.set_step(step.id, StepStatus.PAUSED, ctx.now(), why)
    ctx.audit("skew-pause", why, step.id, cluster=step.cluster, violations=found,
              observed=versions)
    raise Stop(RunStatus.PAUSED, why)


# -- the end of a run: the fleet where the plan ends -------------------------------------------

def _same(seen: str | None, want: str) -> bool:
    if not seen:
        return False
    try:
        return parse_version(seen) == parse_version(want)
    except VersionError:
        return seen.strip() == want.strip()


def expected_end(ctx: RunContext) -> dict[str, dict[tuple[str, str], str]]:
    """Per cluster, ``(kind, name) → version`` where the plan leaves each thing it changes:
    ``("apiserver", instance)``, ``("kube-controller-manager", "")``, ``("etcd", member)``,
    ``(component, node)`` for node components (the replacement node for a replaced one), and
    ``("addon", name)``. The last step that moves a thing decides."""
    replaced = {(a.step_id, a.target): str(a.detail["replaced-by"])
                for a in ctx.journal.actions(kind=Act.NODE_DONE) if a.detail.get("replaced-by")}
    out: dict[str, dict[tuple[str, str], str]] = {}
    for s in ctx.run.plan.steps:
        want = out.setdefault(s.cluster, {})
        if s.phase is Phase.NODES:
            for node in s.targets:
                name = replaced.get((s.id, node), node)
                for c in s.changes:
                    want[(c.component, name)] = c.to_version
        elif s.action == StepAction.UPGRADE_APISERVER:
            for t in s.targets:
                want[("apiserver", t)] = s.to_version
        elif s.action == StepAction.PROVIDER_UPGRADE_CONTROL_PLANE:
            want[("apiserver", "*")] = s.to_version
            want[("kube-controller-manager", "")] = s.to_version
            want[("kube-scheduler", "")] = s.to_version
        elif s.action in (StepAction.UPGRADE_CONTROLLER_MANAGER, StepAction.UPGRADE_SCHEDULER):
            want[(s.component, "")] = s.to_version
        elif s.action == StepAction.UPGRADE_ETCD_MEMBER:
            for t in s.targets:
                want[("etcd", t)] = s.to_version
        elif s.action == StepAction.UPGRADE_ADDON:
            want[("addon", s.targets[0])] = s.to_version
    return out


def _seen(obs: ClusterObservation, kind: str, name: str) -> tuple[bool, str | None]:
    """(observable, version): whether this backend reports the thing at all, and what."""
    if kind == "apiserver":
        if not obs.apiservers:
            return False, None
        if name == "*":
            versions = set(obs.apiservers.values())
            return True, versions.pop() if len(versions) == 1 else ", ".join(sorted(versions))
        return True, obs.apiservers.get(name)
    if kind == "kube-controller-manager":
        return bool(obs.controller_manager), obs.controller_manager or None
    if kind == "kube-scheduler":
        return bool(obs.scheduler), obs.scheduler or None
    if kind == "etcd":
        if not obs.etcd:
            return False, None
        m = next((m for m in obs.etcd if m.name == name), None)
        return True, m.version if m is not None else None
    if kind == "addon":
        return bool(obs.addons), obs.addons.get(name)
    node = obs.node(name)
    return True, node.version_of(kind) if node is not None else None


def final_check(ctx: RunContext) -> list[str]:
    """Every thing the plan changes, observed where the plan leaves it; the differences (empty:
    the fleet is where the plan ends). What the backend does not report is not judged, and the
    journal says so (``final-check`` outcome ``unjudged: …``)."""
    problems: list[str] = []
    unjudged: list[str] = []
    for cluster, want in expected_end(ctx).items():
        try:
            obs = ctx.backend.observe(cluster)
        except BackendError as exc:
            problems.append(f"cluster {cluster} cannot be observed ({exc})")
            continue
        for (kind, name), version in sorted(want.items()):
            observable, seen = _seen(obs, kind, name)
            what = f"{kind} {name}".strip() if kind != "apiserver" or name != "*" else \
                "kube-apiserver"
            if not observable:
                unjudged.append(f"{cluster}: {what}")
            elif not _same(seen, version):
                problems.append(f"{cluster}: {what} is at {seen or 'nothing (not found)'}, the "
                                f"plan ends at {version}")
    outcome = "ok" if not problems else "differs"
    if unjudged and not problems:
        outcome = "ok; unjudged: " + ", ".join(sorted(set(unjudged))[:20])
    ctx.effects.record("", Act.FINAL_CHECK, "fleet", outcome, {},
                       {"differences": problems[:200], "unjudged": sorted(set(unjudged))[:200]})
    return problems
