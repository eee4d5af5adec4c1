"""Checks of the versions a cluster runs now, against the catalog: end of life, runtime support,
known-bad releases, and the version-skew rules of :mod:`pitstop.catalog.rules`.

All work on :class:`pitstop.catalog.rules.ClusterVersions`, which groups nodes running the same
versions, so a cluster of thousands of nodes costs a handful of catalog look-ups.
"""

from __future__ import annotations

from collections.abc import Sequence

from pitstop.catalog import KnownBad
from pitstop.catalog.rules import SUPPORT_GAPS, Violation, check_cluster
from pitstop.preflight.context import ClusterContext, listed, objects
from pitstop.preflight.findings import Finding, Severity
from pitstop.versions import Minor, Version

__all__ = [
    "check_end_of_life",
    "check_known_bad_running",
    "check_runtime_support",
    "check_skew",
]


def _where(components: Sequence[str], nodes: Sequence[str]) -> str:
    """``kube-apiserver cp-1 and cp-2, kube-scheduler plus 3 node(s) (n1, n2 and n3)`` from
    components written ``"<kind> <name>"`` or ``"<kind>"``."""
    groups: dict[str, list[str]] = {}
    for c in components:
        kind, _, name = c.partition(" ")
        names = groups.setdefault(kind, [])
        if name:
            names.append(name)
    text = ", ".join(f"{kind} {listed(names, 3)}" if names else kind
                     for kind, names in groups.items())
    if nodes:
        text += (" plus " if text else "") + f"{len(nodes)} node(s) ({listed(nodes, 3)})"
    return text


def check_end_of_life(ctx: ClusterContext) -> list[Finding]:
    """``end-of-life`` (warning): the cluster runs a Kubernetes minor (its oldest kube-apiserver,
    or any kubelet) or a containerd release line past its end of life at ``now``. It gets no
    more security or bug fixes."""
    cat = ctx.catalog
    today = ctx.now.date()
    state = ctx.versions
    out: list[Finding] = []

    oldest = state.oldest_apiserver.line
    minors: dict[Minor, tuple[list[str], list[str]]] = {}
    minors[oldest] = ([f"kube-apiserver {n}" for n, v in state.apiservers if v.line == oldest],
                      [])
    for g in state.node_groups:
        minors.setdefault(g.kubelet.line, ([], []))[1].extend(g.nodes)
    supported = [m for m, rel in cat.kubernetes.items() if rel.end_of_life >= today]
    for minor, (components, nodes) in sorted(minors.items()):
        rel = cat.release(minor)
        if rel is None or rel.end_of_life >= today:
            continue
        est = " (estimated)" if rel.eol_estimated else ""
        to = f"{min(supported)} or newer" if supported else "a supported minor"
        nodes.sort()
        out.append(ctx.finding(
            "end-of-life", Severity.WARNING,
            f"Kubernetes {minor} reached end of life on {rel.end_of_life}{est} and gets no more "
            f"security fixes; it runs on {_where(components, nodes)}.",
            f"Upgrade to Kubernetes {to} (one minor at a time; `pitstop plan` orders the steps).",
            objects([c.removeprefix("kube-apiserver ") for c in components], nodes),
        ))

    lines: dict[Minor, dict[Minor, list[str]]] = {}  # containerd line -> kubelet minor -> nodes
    for g in state.node_groups:
        if g.runtime == "containerd":
            lines.setdefault(g.runtime_version.line, {}).setdefault(
                g.kubelet.line, []).extend(g.nodes)
    for line, by_kubelet in sorted(lines.items()):
        rl = cat.runtime_line("containerd", Version(line.major, line.minor, 0))
        if rl is None or rl.end_of_life is None or rl.end_of_life >= today:
            continue
        nodes = sorted(n for ns in by_kubelet.values() for n in ns)
        out.append(ctx.finding(
            "end-of-life", Severity.WARNING,
            f"containerd {line} reached end of life on {rl.end_of_life} and gets no more "
            f"security fixes; it runs on {len(nodes)} node(s) ({listed(nodes, 3)}).",
            _eol_runtime_fix(ctx, line, by_kubelet),
            objects(nodes),
        ))
    return out


def _eol_runtime_fix(ctx: ClusterContext, line: Minor, by_kubelet: dict[Minor, list[str]]) -> str:
    """Where to take containerd off an end-of-life ``line``: for each kubelet minor its nodes
    run, the oldest newer line still supported whose latest patch the catalog says supports
    that kubelet; where there is none, the kubelet must move first."""
    cat = ctx.catalog
    today = ctx.now.date()
    live = [ln for ln in cat.runtimes.get("containerd", ()) if ln.line > line
            and (ln.end_of_life is None or ln.end_of_life >= today)]
    to: dict[str, list[Minor]] = {}
    stuck: list[Minor] = []
    for minor in sorted(by_kubelet):
        fit = next((ln for ln in live if ln.supports_kubernetes(ln.latest, minor)), None)
        if fit is None:
            stuck.append(minor)
        else:
            to.setdefault(f"containerd {fit.line} ({fit.latest})", []).append(minor)
    parts: list[str] = []
    for where, minors in to.items():
        whom = ("" if len(to) == 1 and not stuck else
                f" on the nodes with kubelet {listed([str(m) for m in minors])}")
        parts.append(f"Upgrade containerd to {where}{whom}, one release line at a time, "
                     "draining each node.")
    for minor in stuck:
        nodes = sorted(by_kubelet[minor])
        known = sorted({m for ln in live for m in ln.supports})
        served = (f" (they serve Kubernetes {known[0]}–{known[-1]})" if known else "")
        parts.append(
            f"No containerd line that is still supported supports kubelet {minor}{served}, "
            f"so on {listed(nodes, 3)} the kubelet must move first: upgrade Kubernetes on "
            "these nodes towards a minor such a line serves, then containerd (`pitstop plan` "
            "orders both in one drain, every state supported).")
    return " ".join(parts)


def check_runtime_support(ctx: ClusterContext) -> list[Finding]:
    """``runtime-unsupported`` (warning): a node's container runtime version is not supported
    for its kubelet's minor according to the catalog. ``runtime-unknown`` (info): the catalog
    knows nothing of that runtime line, so support cannot be judged."""
    cat = ctx.catalog
    groups: dict[tuple[str, Version, Minor], list[str]] = {}
    for g in ctx.versions.node_groups:
        groups.setdefault((g.runtime, g.runtime_version, g.kubelet.line), []).extend(g.nodes)
    out: list[Finding] = []
    for (runtime, version, minor), nodes in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1], kv[0][2])):
        nodes.sort()
        supported = cat.runtime_supports(runtime, version, minor)
        if supported is True:
            continue
        where = f"{len(nodes)} node(s) ({listed(nodes, 3)})"
        if supported is None:
            out.append(ctx.finding(
                "runtime-unknown", Severity.INFO,
                f"The catalog has no data on {runtime} {version.line}, so whether {runtime} "
                f"{version} supports kubelet {minor} on {where} cannot be checked.",
                f"Check {runtime}'s release notes for Kubernetes {minor}, or add the line to "
                "the catalog (runtimes.yaml in a --catalog directory).",
                objects(nodes),
            ))
            continue
        out.append(ctx.finding(
            "runtime-unsupported", Severity.WARNING,
            f"{runtime} {version} does not support kubelet {minor} per the catalog: {where} run "
            "an untested combination that may fail to start or run pods.",
            _runtime_fix(ctx, runtime, version, minor),
            objects(nodes),
        ))
    return out


def _runtime_fix(ctx: ClusterContext, runtime: str, version: Version, minor: Minor) -> str:
    if runtime == "cri-o":
        return f"Run CRI-O {minor} with kubelet {minor} (CRI-O tracks the Kubernetes minor)."
    options = [f"{ln.line} ({ln.supports[minor]}+)"
               for ln in ctx.catalog.runtimes.get(runtime, ()) if minor in ln.supports]
    own = ctx.catalog.runtime_line(runtime, version)
    if own is not None and minor in own.supports:
        return (f"Upgrade {runtime} on these nodes to {own.supports[minor]} or newer "
                f"(same line, a patch upgrade).")
    if options:
        return (f"Move {runtime} on these nodes to a line that supports Kubernetes {minor}: "
                f"{listed(options)}, one line at a time.")
    return f"Use a {runtime} release documented to support Kubernetes {minor}."


def check_known_bad_running(ctx: ClusterContext) -> list[Finding]:
    """``known-bad-running`` (warning): a component runs a version the catalog lists as known
    bad (etcd members of a managed etcd, Kubernetes control-plane components, kubelets and
    kube-proxies, container runtimes), with the catalog's reason and links."""
    cat = ctx.catalog
    state = ctx.versions
    running: dict[tuple[str, Version], tuple[list[str], list[str]]] = {}
    kubelets: dict[tuple[str, Version], set[Minor]] = {}  # runtime -> kubelet minors beside it

    def add(component: str, version: Version, what: str = "", nodes: Sequence[str] = ()) -> None:
        comps, ns = running.setdefault((component, version), ([], []))
        if what and what not in comps:
            comps.append(what)
        ns.extend(nodes)

    for name, v in state.etcd:
        add("etcd", v, f"etcd {name}")
    for name, v in state.apiservers:
        add("kubernetes", v, f"kube-apiserver {name}")
    add("kubernetes", state.controller_manager, "kube-controller-manager")
    add("kubernetes", state.scheduler, "kube-scheduler")
    if state.cloud_controller_manager is not None:
        add("kubernetes", state.cloud_controller_manager, "cloud-controller-manager")
    for g in state.node_groups:
        add("kubernetes", g.kubelet, "", g.nodes)
        if g.kube_proxy is not None and g.kube_proxy != g.kubelet:
            add("kubernetes", g.kube_proxy, "", g.nodes)
        add(g.runtime, g.runtime_version, "", g.nodes)
        kubelets.setdefault((g.runtime, g.runtime_version), set()).add(g.kubelet.line)

    out: list[Finding] = []
    for (component, version), (comps, nodes) in sorted(running.items(),
                                                       key=lambda kv: (kv[0][0], kv[0][1])):
        bad = cat.known_bad_for(component, version)
        if not bad:
            continue
        # One finding per component version (findings are deduplicated on their objects):
        # the unconditional entry first, the others summed up by when they bite.
        bad.sort(key=lambda kb: kb.condition != "")
        first, more = bad[0], bad[1:]
        node_list = sorted(set(nodes))
        extra = ""
        if more:
            extra = (f" {len(more)} more known issue(s) apply when: "
                     + "; ".join(kb.condition.rstrip(".") or "always" for kb in more) + ".")
        links = list(dict.fromkeys(link for kb in bad for link in kb.links))
        to = _fixed_release(ctx, component, version, kubelets.get((component, version), set()))
        out.append(ctx.finding(
            "known-bad-running", Severity.WARNING,
            f"{component} {version}, running on {_where(comps, node_list)}, is a known-bad "
            f"release: {first.reason.rstrip('.')}{_condition(first)}.{extra}",
            f"Move {component} off {version} to a fixed release{to}"
            + (f"; see {' '.join(links)}" if links else "") + ".",
            objects([c.split(" ", 1)[-1] for c in comps], node_list),
        ))
    return out


def _condition(kb: KnownBad) -> str:
    return f" (it bites when: {kb.condition.rstrip('.')})" if kb.condition else ""


def _fixed_release(ctx: ClusterContext, component: str, version: Version,
                   kubelets: set[Minor]) -> str:
    """`` such as X`` naming the latest patch of the same line when the catalog knows it, it
    is not itself unconditionally bad and, for a runtime, the catalog does not say it fails to
    support a kubelet minor running beside it (``kubelets``); else ``""``."""
    cat = ctx.catalog
    latest: Version | None
    if component == "etcd":
        latest = cat.etcd_lines.get(version.line)
    elif component == "kubernetes":
        latest = cat.latest_patch(version.line)
    else:
        line = cat.runtime_line(component, version)
        latest = line.latest if line is not None else None
    if latest is None or latest <= version:
        return ""
    if any(not kb.condition for kb in cat.known_bad_for(component, latest)):
        return ""
    unsupported = sorted(m for m in kubelets if cat.runtime_supports(component, latest, m)
                         is False)
    if unsupported:
        return (f" (its line's latest patch, {latest}, does not support kubelet "
                f"{listed([str(m) for m in unsupported])} per the catalog: choose a "
                f"{component} release that does, see `pitstop catalog {component}`)")
    return f" such as {latest}"


_SKEW_FIX = {
    "apiserver-skew": "Finish the control-plane upgrade: bring every kube-apiserver to the same "
                      "minor before changing anything else.",
    "controller-skew": "Bring kube-controller-manager, kube-scheduler and "
                       "cloud-controller-manager to the kube-apiserver's minor (never newer).",
    "kubelet-skew": "Upgrade these nodes' kubelets (drain first, one minor at a time) before any "
                    "further control-plane upgrade; a kubelet newer than the apiserver needs the "
                    "apiserver upgraded first or the node replaced.",
    "kube-proxy-skew": "Bring kube-proxy to its node's kubelet minor, within the apiserver's "
                       "supported range.",
    "etcd-skew": "Finish the rolling etcd upgrade: every member on the same minor, one minor "
                 "at a time, after a verified snapshot.",
    "etcd-unsupported": "Move etcd to a version this Kubernetes minor supports (see the "
                        "catalog's etcd.yaml), after a verified snapshot.",
}


_SKEW_FIX_DEFAULT = ("Bring the components named back within the version-skew policy before "
                     "planning an upgrade.")


def check_skew(ctx: ClusterContext) -> list[Finding]:
    """``skew-violation`` (blocking): the versions running now already break a rule of
    :func:`pitstop.catalog.rules.check_cluster` (apiserver spread, controller, kubelet,
    kube-proxy or etcd skew). Planning from an unsupported state is refused until it is repaired.
    The rules' ``runtime-unsupported`` is reported by :func:`check_runtime_support` instead."""
    # One finding per problem: the same message about several etcd members is merged, and so
    # are messages about the same objects (a kubelet and its kube-proxy) — findings are told
    # apart by code, cluster and objects.
    by_message: dict[tuple[str, str], list[str]] = {}
    gaps: dict[str, list[str]] = {}
    for v in check_cluster(ctx.versions, ctx.catalog):
        if v.rule == "etcd-unsupported":
            gaps.setdefault(v.message, []).extend(v.objects)
        elif v.rule not in SUPPORT_GAPS:
            seen = by_message.setdefault((v.rule, v.message), [])
            seen.extend(o for o in v.objects if o not in seen)
    merged: dict[tuple[str, ...], list[Violation]] = {}
    for (rule, message), names in by_message.items():
        merged.setdefault(tuple(names), []).append(Violation(rule, message, tuple(names)))
    out: list[Finding] = []
    for objs, vs in merged.items():
        rules = list(dict.fromkeys(v.rule for v in vs))
        fixes = list(dict.fromkeys(_SKEW_FIX.get(r, _SKEW_FIX_DEFAULT) for r in rules))
        out.append(ctx.finding(
            "skew-violation", Severity.BLOCKING,
            "; ".join(v.message.rstrip(".") for v in vs) + f" ({', '.join(rules)}): the "
            "cluster already runs outside the supported version skew, and upgrading from here "
            "may break it further.",
            " ".join(fixes),
            objs,
        ))
    for message, members in gaps.items():
        out.append(ctx.finding(
            "etcd-unsupported", Severity.WARNING,
            f"{message}: a support gap the upgrade must close — the plan refuses any control-"
            "plane step that etcd does not support.",
            _SKEW_FIX["etcd-unsupported"] + " Add etcd=<version> to the target.",
            tuple(dict.fromkeys(members)),
        ))
    return out
