"""The version catalog: what pitstop knows about releases, skew, runtimes, etcd, known-bad
versions and removed APIs. Facts live in YAML data files (``catalog/data``); rules that use them
live in :mod:`pitstop.catalog.rules`.

The catalog is loaded once and is immutable; the planner receives it as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pitstop.errors import CatalogError
from pitstop.versions import Minor, Version, VersionError, parse_version

__all__ = [
    "AddOnLine",
    "ApiDeprecation",
    "Catalog",
    "EtcdForKubernetes",
    "KnownBad",
    "KubernetesRelease",
    "RuntimeLine",
    "SkewPolicy",
    "UpgradeFloor",
    "load_catalog",
]

DATA_FILES = ("kubernetes.yaml", "runtimes.yaml", "etcd.yaml", "known-bad.yaml", "apis.yaml",
              "addons.yaml")


@dataclass(frozen=True, slots=True)
class SkewPolicy:
    apiserver_max_spread: int
    kubelet_max_older: int
    kubelet_legacy_before: Minor
    kubelet_legacy_max_older: int
    kube_proxy_max_older: int
    kube_proxy_max_skew_to_kubelet: int
    controllers_max_older: int
    kubectl_max_spread: int
    # kube-proxy before this minor: fewer minors behind the apiservers, and fewer minors from
    # its node's kubelet (version-skew policy: "kube-proxy < 1.25 may only be up to two ...")
    kube_proxy_legacy_before: Minor
    kube_proxy_legacy_max_older: int
    kube_proxy_legacy_max_skew_to_kubelet: int

    def kubelet_allowance(self, kubelet: Minor) -> int:
        """How many minors older than the newest apiserver a kubelet of this minor may be."""
        if kubelet < self.kubelet_legacy_before:
            return self.kubelet_legacy_max_older
        return self.kubelet_max_older

    def kube_proxy_allowance(self, kube_proxy: Minor) -> int:
        """How many minors older than the newest apiserver a kube-proxy of this minor may be."""
        if kube_proxy < self.kube_proxy_legacy_before:
            return self.kube_proxy_legacy_max_older
        return self.kube_proxy_max_older

    def kube_proxy_kubelet_allowance(self, kube_proxy: Minor) -> int:
        """How many minors older or newer than its node's kubelet a kube-proxy of this minor may
        be."""
        if kube_proxy < self.kube_proxy_legacy_before:
            return self.kube_proxy_legacy_max_skew_to_kubelet
        return self.kube_proxy_max_skew_to_kubelet


@dataclass(frozen=True, slots=True)
class UpgradeFloor:
    """A release line that may be entered from ``source`` only at ``minimum`` or later (catalog
    ``upgradeFrom``): etcd 3.6 from 3.5.26+. The planner makes it a hop to the latest catalog
    patch of ``source`` before entering ``line``, and the rules refuse a cluster whose etcd
    members run ``line`` beside a ``source`` member below ``minimum``."""

    component: str
    line: Minor
    source: Minor
    minimum: Version
    reason: str = ""

    def describe(self) -> str:
        return (f"{self.component} {self.line} may be entered only from {self.minimum} or later "
                f"of {self.source}" + (f" ({self.reason.rstrip('.')})" if self.reason else ""))


@dataclass(frozen=True, slots=True)
class KubernetesRelease:
    minor: Minor
    released: date
    end_of_life: date
    latest: Version
    eol_estimated: bool = False
    source: str = ""


@dataclass(frozen=True, slots=True)
class RuntimeLine:
    runtime: str
    line: Minor
    latest: Version
    end_of_life: date | None
    supports: dict[Minor, Version]  # Kubernetes minor -> minimum runtime patch
    removed_config_keys: tuple[str, ...] = ()
    config_versions: tuple[int, ...] = ()
    lts: bool = False
    upgrade_from: tuple[UpgradeFloor, ...] = ()  # floors to enter this line (upgradeFrom)

    def supports_kubernetes(self, version: Version, kubernetes: Minor) -> bool:
        minimum = self.supports.get(kubernetes)
        return minimum is not None and version >= minimum


@dataclass(frozen=True, slots=True)
class EtcdForKubernetes:
    kubeadm: Version
    supported_lines: tuple[Minor, ...]
    minimum: Version


@dataclass(frozen=True, slots=True)
class KnownBad:
    component: str
    low: Version | None
    high: Version | None
    versions: tuple[Version, ...]
    reason: str
    links: tuple[str, ...]
    condition: str = ""

    def matches(self, component: str, version: Version) -> bool:
        if component != self.component:
            return False
        if self.versions:
            return any(version == v for v in self.versions)
        core = parse_version(version.core())
        return (self.low is None or core >= self.low) and (self.high is None or core <= self.high)

    def describe_versions(self) -> str:
        if self.versions:
            return ", ".join(str(v) for v in self.versions)
        return f"{self.low}–{self.high}"


@dataclass(frozen=True, slots=True)
class ApiDeprecation:
    api_version: str
    kind: str
    deprecated_in: Minor | None
    removed_in: Minor | None
    replacement: str | None
    replacement_available_in: Minor | None


@dataclass(frozen=True, slots=True)
class AddOnLine:
    name: str
    line: Minor
    kubernetes: tuple[Minor, ...]
    source: str = ""


@dataclass(frozen=True)
class Catalog:
    skew: SkewPolicy
    kubernetes: dict[Minor, KubernetesRelease]
    runtimes: dict[str, tuple[RuntimeLine, ...]]
    crio_tracks_kubernetes: bool
    etcd_lines: dict[Minor, Version]
    etcd_for_kubernetes: dict[Minor, EtcdForKubernetes]
    known_bad: tuple[KnownBad, ...]
    apis: tuple[ApiDeprecation, ...]
    coredns: dict[Minor, Version]
    cni: tuple[AddOnLine, ...]
    sources: dict[str, str] = field(default_factory=dict)  # file name -> where it was read
    etcd_upgrade_from: tuple[UpgradeFloor, ...] = ()  # etcd.yaml lines[].upgradeFrom
    # Memo of pure rule verdicts keyed by the versions judged (see rules.py); never part of
    # the catalog's identity.
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    # -- Kubernetes ------------------------------------------------------------------------
    def newest_minor(self) -> Minor:
        return max(self.kubernetes)

    def release(self, minor: Minor) -> KubernetesRelease | None:
        return self.kubernetes.get(minor)

    def latest_patch(self, minor: Minor) -> Version | None:
        rel = self.kubernetes.get(minor)
        return rel.latest if rel else None

    def knows_kubernetes(self, version: Version) -> bool:
        rel = self.kubernetes.get(version.line)
        return rel is not None and version.patch <= rel.latest.patch

    def end_of_life(self, minor: Minor) -> date | None:
        rel = self.kubernetes.get(minor)
        return rel.end_of_life if rel else None

    # -- runtimes --------------------------------------------------------------------------
    def runtime_line(self, runtime: str, version: Version) -> RuntimeLine | None:
        for line in self.runtimes.get(runtime, ()):
            if line.line == version.line:
                return line
        return None

    def runtime_supports(self, runtime: str, version: Version, kubernetes: Minor) -> bool | None:
        """True/False when the catalog knows; None when it knows nothing of that runtime line.
        CRI-O 1.N serves exactly Kubernetes 1.N."""
        if runtime == "cri-o":
            if not self.crio_tracks_kubernetes:
                return None
            return version.line == kubernetes
        line = self.runtime_line(runtime, version)
        if line is None:
            return None
        return line.supports_kubernetes(version, kubernetes)

    def runtime_paths(self, runtime: str, current: Version, target: Version
                      ) -> list[list[Version]]:
        """Ways to go from ``current`` to ``target``, shortest first, each a list of versions to
        install in turn. containerd upgrades one release line at a time — the latest patch of
        the current line first (its last releases prepare the configuration for the next one),
        then the latest patch of each line in between — except that a long-term-support line may
        go straight to the next LTS line (containerd RELEASES.md, "Upgrade Path"). A line's
        ``upgradeFrom`` floor is a hop too (:meth:`unmet_floor` tells when the catalog has no
        patch that meets it)."""
        if runtime != "containerd" or current.line == target.line:
            return [[target] if target != current else []]
        lines = self.runtimes.get(runtime, ())
        head = [ln.latest for ln in lines if ln.line == current.line and ln.latest > current]
        between = [ln for ln in lines if current.line < ln.line < target.line]
        sequential = [*head, *(ln.latest for ln in between), target]
        cur = next((ln for ln in lines if ln.line == current.line), None)
        tgt = next((ln for ln in lines if ln.line == target.line), None)
        paths = [sequential]
        if cur is not None and tgt is not None and cur.lts and tgt.lts and not any(
                ln.lts for ln in between):
            paths = [[*head, target], sequential]
        return [self._with_floor_hops(runtime, current, p) for p in paths]

    def runtime_path(self, runtime: str, current: Version, target: Version) -> list[Version]:
        """The line-by-line path (see :meth:`runtime_paths`)."""
        return self.runtime_paths(runtime, current, target)[-1]

    # -- upgrade-from floors ---------------------------------------------------------------
    def upgrade_floors(self, component: str) -> tuple[UpgradeFloor, ...]:
        if component == "etcd":
            return self.etcd_upgrade_from
        return tuple(f for ln in self.runtimes.get(component, ()) for f in ln.upgrade_from)

    def upgrade_floor(self, component: str, source: Minor, line: Minor) -> UpgradeFloor | None:
        """The floor for entering ``line`` from ``source``, if the catalog states one."""
        for f in self.upgrade_floors(component):
            if f.source == source and f.line == line:
                return f
        return None

    def latest_of_line(self, component: str, line: Minor) -> Version | None:
        if component == "etcd":
            return self.etcd_lines.get(line)
        rl = self.runtime_line(component, Version(line.major, line.minor, 0))
        return rl.latest if rl is not None else None

    def _with_floor_hops(self, component: str, current: Version, path: list[Version]
                         ) -> list[Version]:
        """``path`` with a hop to the latest catalog patch of a line before leaving it wherever
        the line entered next has a floor that the version reached is below."""
        out: list[Version] = []
        prev = current
        for hop in path:
            floor = self.upgrade_floor(component, prev.line, hop.line)
            if hop.line != prev.line and floor is not None and prev < floor.minimum:
                latest = self.latest_of_line(component, prev.line)
                if latest is not None and latest > prev:
                    out.append(latest)
                    prev = latest
            out.append(hop)
            prev = hop
        return out

    def unmet_floor(self, component: str, current: Version, path: list[Version]
                    ) -> UpgradeFloor | None:
        """The first floor that ``current`` followed by ``path`` enters a line without meeting
        (the catalog knows no patch of the source line at or above it); None when all are met."""
        prev = current
        for hop in path:
            floor = self.upgrade_floor(component, prev.line, hop.line)
            if hop.line != prev.line and floor is not None and prev < floor.minimum:
                return floor
            prev = hop
        return None

    # -- etcd ------------------------------------------------------------------------------
    def etcd_supported(self, etcd: Version, kubernetes: Minor) -> bool | None:
        info = self.etcd_for_kubernetes.get(kubernetes)
        if info is None:
            return None
        return etcd.line in info.supported_lines and etcd >= info.minimum

    def etcd_path(self, current: Version, target: Version) -> list[Version]:
        """etcd upgrades one minor at a time: the latest patch of each line in between, then the
        target; and before entering a line whose ``upgradeFrom`` floor ``current`` is below, the
        latest patch of the line it leaves (3.5.24 → 3.5.35 → 3.6.8: 3.6 needs 3.5.26+).
        :meth:`unmet_floor` tells when the catalog has no patch that meets a floor."""
        if current.line == target.line:
            return [target] if target != current else []
        between = sorted(ln for ln in self.etcd_lines if current.line < ln < target.line)
        return self._with_floor_hops(
            "etcd", current, [self.etcd_lines[ln] for ln in between] + [target])

    # -- known bad, APIs, add-ons ----------------------------------------------------------
    def known_bad_for(self, component: str, version: Version) -> list[KnownBad]:
        return [kb for kb in self.known_bad if kb.matches(component, version)]

    def removed_by(self, minor: Minor) -> dict[tuple[str, str], ApiDeprecation]:
        """APIs no longer served by Kubernetes ``minor``."""
        return {
            (a.api_version, a.kind): a
            for a in self.apis
            if a.removed_in is not None and a.removed_in <= minor
        }

    def deprecated_at(self, minor: Minor) -> dict[tuple[str, str], ApiDeprecation]:
        return {
            (a.api_version, a.kind): a
            for a in self.apis
            if a.deprecated_in is not None and a.deprecated_in <= minor
            and (a.removed_in is None or a.removed_in > minor)
        }


# ---------------------------------------------------------------------------------------------
# Loading


class _Reader:
    """Reads one data file and turns bad values into CatalogError naming file and field."""

    def __init__(self, name: str, source: str, data: Any) -> None:
        self.name = name
        self.source = source
        if not isinstance(data, dict) or data.get("schemaVersion") != 1:
            raise CatalogError(f"{source}: expected a mapping with `schemaVersion: 1`")
        self.data = data

    def fail(self, where: str, what: str) -> CatalogError:
        return CatalogError(f"{self.source}: {where}: {what}")

    def version(self, value: Any, where: str) -> Version:
        try:
            return parse_version(str(value))
        except VersionError as exc:
            raise self.fail(where, str(exc)) from None

    def minor(self, value: Any, where: str) -> Minor:
        v = self.version(value if str(value).count(".") >= 2 else f"{value}.0", where)
        return v.line

    def date(self, value: Any, where: str, *, optional: bool = False) -> date | None:
        if value is None and optional:
            return None
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise self.fail(where, f"{value!r} is not a date YYYY-MM-DD") from None

    def get(self, mapping: Any, key: str, where: str) -> Any:
        if not isinstance(mapping, dict) or key not in mapping:
            raise self.fail(where, f"missing key {key!r}")
        return mapping[key]


def _read_files(directory: Path | None) -> dict[str, tuple[str, Any]]:
    out: dict[str, tuple[str, Any]] = {}
    shipped = resources.files("pitstop.catalog") / "data"
    for name in DATA_FILES:
        override = directory / name if directory is not None else None
        try:
            if override is not None and override.is_file():
                text, source = override.read_text(encoding="utf-8"), str(override)
            else:
                text, source = (shipped / name).read_text(encoding="utf-8"), f"catalog/{name}"
        except FileNotFoundError:
            raise CatalogError(f"catalog data file {name} is missing from the package") from None
        try:
            out[name] = (source, yaml.safe_load(text))
        except yaml.YAMLError as exc:
            raise CatalogError(f"{source}: not valid YAML: {exc}") from None
    return out


def load_catalog(directory: str | Path | None = None) -> Catalog:
    """Load the shipped catalog; files in ``directory`` replace shipped files of the same name."""
    d = Path(directory) if directory is not None else None
    if d is not None and not d.is_dir():
        raise CatalogError(f"--catalog {d}: not a directory")
    files = _read_files(d)
    readers = {name: _Reader(name, src, data) for name, (src, data) in files.items()}

    k = readers["kubernetes.yaml"]
    sp = k.get(k.data, "skewPolicy", "skewPolicy")
    legacy = k.get(sp, "kubeletMaxOlderLegacy", "skewPolicy")
    proxy_legacy = k.get(sp, "kubeProxyMaxOlderLegacy", "skewPolicy")
    proxy_kubelet_legacy = k.get(sp, "kubeProxyMaxSkewToKubeletLegacy", "skewPolicy")
    proxy_before = k.minor(k.get(proxy_legacy, "before", "skewPolicy.kubeProxyMaxOlderLegacy"),
                           "skewPolicy.kubeProxyMaxOlderLegacy.before")
    if k.minor(k.get(proxy_kubelet_legacy, "before", "skewPolicy.kubeProxyMaxSkewToKubeletLegacy"),
               "skewPolicy.kubeProxyMaxSkewToKubeletLegacy.before") != proxy_before:
        raise k.fail("skewPolicy.kubeProxyMaxSkewToKubeletLegacy.before",
                     "must be the same minor as kubeProxyMaxOlderLegacy.before (one legacy rule "
                     "for kube-proxy)")
    skew = SkewPolicy(
        apiserver_max_spread=int(k.get(sp, "apiserverMaxSpread", "skewPolicy")),
        kubelet_max_older=int(k.get(sp, "kubeletMaxOlder", "skewPolicy")),
        kubelet_legacy_before=k.minor(k.get(legacy, "before", "kubeletMaxOlderLegacy"),
                                      "skewPolicy.kubeletMaxOlderLegacy.before"),
        kubelet_legacy_max_older=int(k.get(legacy, "minors", "kubeletMaxOlderLegacy")),
        kube_proxy_max_older=int(k.get(sp, "kubeProxyMaxOlder", "skewPolicy")),
        kube_proxy_max_skew_to_kubelet=int(k.get(sp, "kubeProxyMaxSkewToKubelet", "skewPolicy")),
        controllers_max_older=int(k.get(sp, "controllersMaxOlder", "skewPolicy")),
        kubectl_max_spread=int(k.get(sp, "kubectlMaxSpread", "skewPolicy")),
        kube_proxy_legacy_before=proxy_before,
        kube_proxy_legacy_max_older=int(k.get(proxy_legacy, "minors",
                                              "skewPolicy.kubeProxyMaxOlderLegacy")),
        kube_proxy_legacy_max_skew_to_kubelet=int(k.get(
            proxy_kubelet_legacy, "minors", "skewPolicy.kubeProxyMaxSkewToKubeletLegacy")),
    )
    releases: dict[Minor, KubernetesRelease] = {}
    for i, rel in enumerate(k.get(k.data, "releases", "releases")):
        where = f"releases[{i}]"
        minor = k.minor(k.get(rel, "minor", where), f"{where}.minor")
        released = k.date(k.get(rel, "released", where), f"{where}.released")
        eol = k.date(k.get(rel, "endOfLife", where), f"{where}.endOfLife")
        assert released is not None and eol is not None
        releases[minor] = KubernetesRelease(
            minor=minor,
            released=released,
            end_of_life=eol,
            latest=k.version(k.get(rel, "latestPatch", where), f"{where}.latestPatch"),
            eol_estimated=bool(rel.get("eolEstimated", False)),
            source=str(rel.get("source", "")),
        )

    r = readers["runtimes.yaml"]
    runtimes: dict[str, tuple[RuntimeLine, ...]] = {}
    for runtime in ("containerd",):
        lines: list[RuntimeLine] = []
        for i, ln in enumerate(r.get(r.get(r.data, runtime, runtime), "lines", runtime)):
            where = f"{runtime}.lines[{i}]"
            supports = {
                r.minor(kmin, f"{where}.supports"): r.version(v, f"{where}.supports[{kmin}]")
                for kmin, v in (ln.get("supports") or {}).items()
            }
            lines.append(RuntimeLine(
                runtime=runtime,
                line=r.minor(r.get(ln, "line", where), f"{where}.line"),
                latest=r.version(r.get(ln, "latestPatch", where), f"{where}.latestPatch"),
                end_of_life=r.date(ln.get("endOfLife"), f"{where}.endOfLife", optional=True),
                supports=supports,
                removed_config_keys=tuple(str(x) for x in ln.get("removedConfigKeys") or ()),
                config_versions=tuple(int(x) for x in ln.get("configVersions") or ()),
                lts=bool(ln.get("lts", False)),
                upgrade_from=_floors(r, runtime, ln, where),
            ))
        runtimes[runtime] = tuple(sorted(lines, key=lambda x: x.line))
        _check_floor_sources(r, runtime, {ln.line: ln.latest for ln in lines},
                             [f for ln in lines for f in ln.upgrade_from], f"{runtime}.lines")
    crio = r.data.get("cri-o") or {}

    e = readers["etcd.yaml"]
    etcd_lines: dict[Minor, Version] = {}
    etcd_floors: list[UpgradeFloor] = []
    for i, ln in enumerate(e.get(e.data, "lines", "lines")):
        where = f"lines[{i}]"
        etcd_lines[e.minor(e.get(ln, "line", where), f"{where}.line")] = e.version(
            e.get(ln, "latestPatch", where), f"{where}.latestPatch")
        etcd_floors.extend(_floors(e, "etcd", ln, where))
    _check_floor_sources(e, "etcd", etcd_lines, etcd_floors, "lines")
    etcd_k8s = {}
    for kmin, info in (e.get(e.data, "kubernetes", "kubernetes") or {}).items():
        where = f"kubernetes[{kmin}]"
        etcd_k8s[e.minor(kmin, where)] = EtcdForKubernetes(
            kubeadm=e.version(e.get(info, "kubeadm", where), f"{where}.kubeadm"),
            supported_lines=tuple(e.minor(x, f"{where}.supportedLines")
                                  for x in e.get(info, "supportedLines", where)),
            minimum=e.version(e.get(info, "minimum", where), f"{where}.minimum"),
        )

    b = readers["known-bad.yaml"]
    known_bad = []
    for i, ent in enumerate(b.get(b.data, "entries", "entries")):
        where = f"entries[{i}]"
        vs = b.get(ent, "versions", where)
        low = high = None
        listed: tuple[Version, ...] = ()
        if isinstance(vs, dict):
            low = b.version(b.get(vs, "from", f"{where}.versions"), f"{where}.versions.from")
            high = b.version(b.get(vs, "to", f"{where}.versions"), f"{where}.versions.to")
        elif isinstance(vs, list):
            listed = tuple(b.version(x, f"{where}.versions") for x in vs)
        else:
            raise b.fail(f"{where}.versions", "expected {from, to} or a list of versions")
        known_bad.append(KnownBad(
            component=str(b.get(ent, "component", where)),
            low=low, high=high, versions=listed,
            reason=str(b.get(ent, "reason", where)),
            links=tuple(str(x) for x in ent.get("links") or ()),
            condition=str(ent.get("condition") or ""),
        ))

    a = readers["apis.yaml"]

    def opt_minor(value: Any, where: str) -> Minor | None:
        return None if value in (None, "") else a.minor(value, where)

    apis = tuple(
        ApiDeprecation(
            api_version=str(a.get(ent, "apiVersion", f"apis[{i}]")),
            kind=str(a.get(ent, "kind", f"apis[{i}]")),
            deprecated_in=opt_minor(ent.get("deprecatedIn"), f"apis[{i}].deprecatedIn"),
            removed_in=opt_minor(ent.get("removedIn"), f"apis[{i}].removedIn"),
            replacement=ent.get("replacement") or None,
            replacement_available_in=opt_minor(ent.get("replacementAvailableIn"),
                                               f"apis[{i}].replacementAvailableIn"),
        )
        for i, ent in enumerate(a.get(a.data, "apis", "apis"))
    )

    ad = readers["addons.yaml"]
    coredns = {ad.minor(kmin, "coredns"): ad.version(v, f"coredns[{kmin}]")
               for kmin, v in (ad.data.get("coredns") or {}).items()}
    cni = tuple(
        AddOnLine(
            name=str(ad.get(ent, "name", f"cni[{i}]")),
            line=ad.minor(ad.get(ent, "line", f"cni[{i}]"), f"cni[{i}].line"),
            kubernetes=tuple(ad.minor(x, f"cni[{i}].kubernetes")
                             for x in ad.get(ent, "kubernetes", f"cni[{i}]")),
            source=str(ent.get("source", "")),
        )
        for i, ent in enumerate(ad.data.get("cni") or ())
    )
    return Catalog(
        skew=skew,
        kubernetes=dict(sorted(releases.items())),
        runtimes=runtimes,
        crio_tracks_kubernetes=bool(crio.get("tracksKubernetesMinor", True)),
        etcd_lines=dict(sorted(etcd_lines.items())),
        etcd_for_kubernetes=etcd_k8s,
        known_bad=tuple(known_bad),
        apis=apis,
        coredns=coredns,
        cni=cni,
        sources={name: src for name, (src, _) in files.items()},
        etcd_upgrade_from=tuple(etcd_floors),
    )


def _floors(rd: _Reader, component: str, entry: Any, where: str) -> tuple[UpgradeFloor, ...]:
    """A line entry's ``upgradeFrom: {<source line>: <minimum patch>}`` (with an optional
    ``upgradeFromReason``): to enter this line, a member or node must run the minimum or later
    of the source line."""
    raw = entry.get("upgradeFrom") if isinstance(entry, dict) else None
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        raise rd.fail(f"{where}.upgradeFrom", "expected a mapping {<line>: <minimum patch>}, "
                      'e.g. {"3.5": "3.5.26"}')
    line = rd.minor(rd.get(entry, "line", where), f"{where}.line")
    reason = str(entry.get("upgradeFromReason") or "")
    out: list[UpgradeFloor] = []
    for src, minimum in raw.items():
        at = f"{where}.upgradeFrom[{src}]"
        source = rd.minor(src, at)
        floor = rd.version(minimum, at)
        if floor.line != source:
            raise rd.fail(at, f"{floor} is not a patch of line {source}")
        if not source < line:
            raise rd.fail(at, f"line {source} is not older than {line}, so it cannot lead "
                          "into it")
        out.append(UpgradeFloor(component, line, source, floor, reason))
    return tuple(out)


def _check_floor_sources(rd: _Reader, component: str, latest: dict[Minor, Version],
                         floors: list[UpgradeFloor], where: str) -> None:
    """Every floor names a line the file knows; a floor above that line's latest patch is
    allowed (the planner then refuses with the rule named) but not a floor of an unknown line."""
    for f in floors:
        if f.source not in latest:
            raise rd.fail(f"{where}[{f.line}].upgradeFrom[{f.source}]",
                          f"{component} line {f.source} is not in the catalog")
