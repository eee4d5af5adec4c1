"""Integrity checks for the shipped version catalog (src/pitstop/catalog/data/*.yaml).

The files are read with yaml.safe_load directly, independently of any loader code, so a broken
loader cannot hide broken data (and the other way round).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

DATA_DIR = Path(__file__).resolve().parents[1] / "src" / "pitstop" / "catalog" / "data"
FILES = [
    "kubernetes.yaml",
    "runtimes.yaml",
    "etcd.yaml",
    "known-bad.yaml",
    "apis.yaml",
    "addons.yaml",
]

PATCH_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
MINOR_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)$")
API_VERSION_RE = re.compile(r"^([a-z0-9.-]+/)?v\d+((alpha|beta)\d+)?$")


def load(name: str) -> Any:
    with (DATA_DIR / name).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def patch(v: Any) -> tuple[int, int, int]:
    assert isinstance(v, str), f"version {v!r} must be a quoted string"
    m = PATCH_RE.match(v)
    assert m, f"{v!r} is not MAJOR.MINOR.PATCH"
    return int(m[1]), int(m[2]), int(m[3])


def minor(v: Any) -> tuple[int, int]:
    assert isinstance(v, str), f"minor {v!r} must be a quoted string"
    m = MINOR_RE.match(v)
    assert m, f"{v!r} is not MAJOR.MINOR"
    return int(m[1]), int(m[2])


def minor_of(v: str) -> tuple[int, int]:
    return patch(v)[:2]


def fmt(m: tuple[int, int]) -> str:
    return f"{m[0]}.{m[1]}"


def is_date(v: Any) -> bool:
    return isinstance(v, dt.date) and not isinstance(v, dt.datetime)


@pytest.fixture(scope="module")
def kube() -> dict[str, Any]:
    doc: dict[str, Any] = load("kubernetes.yaml")
    return doc


@pytest.fixture(scope="module")
def kube_minors(kube: dict[str, Any]) -> list[str]:
    return [r["minor"] for r in kube["releases"]]


# --------------------------------------------------------------------------- every file


@pytest.mark.parametrize("name", FILES)
def test_file_parses_with_schema_version_1(name: str) -> None:
    doc = load(name)
    assert isinstance(doc, dict)
    assert doc.get("schemaVersion") == 1


@pytest.mark.parametrize("name", FILES)
def test_versions_are_quoted(name: str) -> None:
    """A plain (unquoted) scalar that looks like a version is a mistake waiting to happen:
    1.30 loads as the float 1.3. Every version-like value must be quoted."""
    text = (DATA_DIR / name).read_text(encoding="utf-8")
    version_like = re.compile(r"^v?\d+\.\d+(\.\d+)?$")
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.ScalarEvent) and event.style is None:
            line = event.start_mark.line + 1 if event.start_mark else "?"
            assert not version_like.match(event.value), f"{name}:{line}: quote {event.value!r}"


def _walk_versions(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every value under a key that names a full patch version."""
    keys = {"latestPatch", "kubeadm", "minimum", "from", "to"}
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}"
            if k in keys and not isinstance(v, dict | list):
                found.append((p, v))
            elif k == "versions" and isinstance(v, list):
                found += [(f"{p}[{i}]", x) for i, x in enumerate(v)]
            elif k in ("supports", "upgradeFrom") and isinstance(v, dict):
                found += [(f"{p}.{mk}", x) for mk, x in v.items()]
            else:
                found += _walk_versions(v, p)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _walk_versions(v, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("name", FILES)
def test_every_version_string_is_major_minor_patch(name: str) -> None:
    for where, value in _walk_versions(load(name)):
        assert isinstance(value, str), f"{name}{where}: {value!r} must be quoted"
        assert PATCH_RE.match(value), f"{name}{where}: {value!r} is not MAJOR.MINOR.PATCH"


# --------------------------------------------------------------------------- kubernetes.yaml


def test_skew_policy_values(kube: dict[str, Any]) -> None:
    sp = kube["skewPolicy"]
    assert sp == {
        "apiserverMaxSpread": 1,
        "kubeletMaxOlder": 3,
        "kubeletMaxOlderLegacy": {"before": "1.25", "minors": 2},
        "kubeProxyMaxOlder": 3,
        # version-skew-policy.md: "kube-proxy < 1.25 may only be up to two minor versions
        # older than kube-apiserver" and "... older or newer than the kubelet instance it runs
        # alongside"
        "kubeProxyMaxOlderLegacy": {"before": "1.25", "minors": 2},
        "kubeProxyMaxSkewToKubelet": 3,
        "kubeProxyMaxSkewToKubeletLegacy": {"before": "1.25", "minors": 2},
        "controllersMaxOlder": 1,
        "kubectlMaxSpread": 1,
    }


def test_kubernetes_minors_contiguous(kube: dict[str, Any]) -> None:
    minors = [minor(r["minor"]) for r in kube["releases"]]
    assert minors[0] == (1, 24)
    assert minors[-1] >= (1, 37)
    for a, b in itertools.pairwise(minors):
        assert b == (a[0], a[1] + 1), f"gap or disorder between {fmt(a)} and {fmt(b)}"


def test_kubernetes_release_entries(kube: dict[str, Any]) -> None:
    prev_released: dt.date | None = None
    for r in kube["releases"]:
        m = r["minor"]
        assert is_date(r["released"]), f"{m}: released must be a YYYY-MM-DD date"
        assert is_date(r["endOfLife"]), f"{m}: endOfLife must be a YYYY-MM-DD date"
        assert r["released"] < r["endOfLife"], m
        assert minor_of(r["latestPatch"]) == minor(m), f"{m}: latestPatch {r['latestPatch']}"
        assert str(r["source"]).startswith("https://"), m
        assert r.get("eolEstimated", False) in (True, False)
        if prev_released is not None:
            assert r["released"] > prev_released, f"{m} released before its predecessor"
        prev_released = r["released"]
        # roughly 14 months of support (12 + 2), with some slack for early/late EOLs
        days = (r["endOfLife"] - r["released"]).days
        assert 330 <= days <= 480, f"{m}: {days} days of support looks wrong"


# --------------------------------------------------------------------------- runtimes.yaml


def test_containerd_lines(kube_minors: list[str]) -> None:
    doc = load("runtimes.yaml")
    lines = doc["containerd"]["lines"]
    parsed = [minor(entry["line"]) for entry in lines]
    assert parsed == sorted(parsed), "containerd lines must be oldest first"
    assert len(set(parsed)) == len(parsed), "duplicate containerd line"
    for entry in lines:
        line = minor(entry["line"])
        assert minor_of(entry["latestPatch"]) == line, entry["line"]
        eol = entry["endOfLife"]
        assert eol is None or is_date(eol), entry["line"]
        assert entry.get("eolEstimated", False) in (True, False)
        supports = entry["supports"]
        assert isinstance(supports, dict)
        for kminor, minimum in supports.items():
            assert kminor in kube_minors, f"{entry['line']}: unknown Kubernetes minor {kminor}"
            assert minor_of(minimum) == line, f"{entry['line']}: {kminor} -> {minimum}"
            assert patch(minimum) <= patch(entry["latestPatch"]), (
                f"{entry['line']}: minimum {minimum} for {kminor} is newer than latestPatch"
            )
        # a newer Kubernetes minor never needs an older containerd patch of the same line
        mins = [patch(supports[k]) for k in sorted(supports, key=minor)]
        assert mins == sorted(mins), f"{entry['line']}: supports minimums not monotonic"
        assert isinstance(entry["removedConfigKeys"], list)
        assert all(isinstance(k, str) and k for k in entry["removedConfigKeys"])
        versions = entry["configVersions"]
        assert versions
        assert all(isinstance(v, int) for v in versions)
        assert versions == sorted(set(versions))
    by_line = {e["line"]: e for e in lines}
    removed_20 = {k.rsplit(".", 1)[-1] for k in by_line["2.0"]["removedConfigKeys"]}
    assert {
        "systemd_cgroup",
        "default_runtime",
        "runtime_engine",
        "runtime_root",
        "disable_cgroup",
        "CriuPath",
        "untrusted_workload_runtime",
    } <= removed_20
    assert 3 in by_line["2.0"]["configVersions"]
    assert 3 not in by_line["1.7"]["configVersions"]
    assert doc["cri-o"]["tracksKubernetesMinor"] is True


# --------------------------------------------------------------------------- etcd.yaml


def test_etcd(kube_minors: list[str]) -> None:
    doc = load("etcd.yaml")
    lines = [entry["line"] for entry in doc["lines"]]
    parsed = [minor(x) for x in lines]
    assert parsed == sorted(parsed)
    assert len(set(parsed)) == len(parsed)
    for entry in doc["lines"]:
        assert minor_of(entry["latestPatch"]) == minor(entry["line"])
        eol = entry.get("endOfLife")
        assert eol is None or is_date(eol)
    kmap = doc["kubernetes"]
    assert set(kmap) == set(kube_minors), "etcd map must cover exactly the known minors"
    for kminor, e in kmap.items():
        kubeadm = e["kubeadm"]
        supported = e["supportedLines"]
        assert supported, kminor
        assert all(s in lines for s in supported), f"{kminor}: unknown etcd line in {supported}"
        assert fmt(minor_of(kubeadm)) in supported, f"{kminor}: kubeadm {kubeadm} not in lines"
        assert patch(e["minimum"]) <= patch(kubeadm), kminor
        assert all(minor(s) >= minor_of(e["minimum"]) for s in supported), kminor
        if "asOf" in e:
            assert minor_of(e["asOf"]) == minor(kminor)
    # kubeadm's etcd never goes backwards across minors
    ordered = [patch(kmap[k]["kubeadm"]) for k in sorted(kmap, key=minor)]
    assert all(b >= a or b[:2] == a[:2] for a, b in itertools.pairwise(ordered))


def _check_upgrade_from(name: str, entries: list[dict[str, Any]]) -> int:
    """``upgradeFrom: {<older line>: <minimum patch of that line>}`` on a line entry: the older
    line is in the file, the minimum is a patch of it, and the file's latest patch of that line
    meets it (else the planner would refuse every upgrade into the line). Returns how many."""
    latest = {e["line"]: e["latestPatch"] for e in entries}
    count = 0
    for e in entries:
        floors = e.get("upgradeFrom")
        if floors is None:
            assert "upgradeFromReason" not in e, f"{name} {e['line']}: a reason without a floor"
            continue
        assert isinstance(floors, dict) and floors, f"{name} {e['line']}: upgradeFrom"
        assert isinstance(e.get("upgradeFromReason"), str) and "https://" in e[
            "upgradeFromReason"], f"{name} {e['line']}: upgradeFromReason with its source link"
        for src, minimum in floors.items():
            assert minor(src) < minor(e["line"]), f"{name} {e['line']}: {src} is not older"
            assert src in latest, f"{name} {e['line']}: unknown line {src}"
            assert minor_of(minimum) == minor(src), f"{name} {e['line']}: {minimum} not of {src}"
            assert patch(minimum) <= patch(latest[src]), (
                f"{name} {e['line']}: floor {minimum} above the latest {src} patch {latest[src]}")
            count += 1
    return count


def test_upgrade_from_floors() -> None:
    etcd = load("etcd.yaml")["lines"]
    assert _check_upgrade_from("etcd.yaml", etcd) >= 1
    # etcd 3.6 may be entered only from 3.5.26+ (zombie members, known-bad.yaml)
    by_line = {e["line"]: e for e in etcd}
    assert by_line["3.6"]["upgradeFrom"] == {"3.5": "3.5.26"}
    assert "zombie" in by_line["3.6"]["upgradeFromReason"]
    _check_upgrade_from("runtimes.yaml", load("runtimes.yaml")["containerd"]["lines"])


# --------------------------------------------------------------------------- known-bad.yaml


def test_known_bad() -> None:
    doc = load("known-bad.yaml")
    entries = doc["entries"]
    assert entries
    for e in entries:
        assert e["component"] in {"etcd", "containerd", "kubernetes", "runc", "cri-o", "coredns"}
        assert isinstance(e["reason"], str)
        assert e["reason"].strip()
        links = e["links"]
        assert isinstance(links, list)
        assert links
        assert any(str(u).startswith("https://") for u in links), e["reason"]
        assert all(str(u).startswith("https://") for u in links)
        assert isinstance(e.get("condition", ""), str)
        v = e["versions"]
        if isinstance(v, dict):
            assert set(v) == {"from", "to"}
            assert patch(v["from"]) <= patch(v["to"]), v
            assert minor_of(v["from"]) == minor_of(v["to"]), f"range {v} spans lines"
        else:
            assert isinstance(v, list)
            assert v
            for x in v:
                patch(x)

    def covers(component: str, version: str) -> list[dict[str, Any]]:
        out = []
        for e in entries:
            if e["component"] != component:
                continue
            v = e["versions"]
            if isinstance(v, dict):
                if patch(v["from"]) <= patch(version) <= patch(v["to"]):
                    out.append(e)
            elif version in v:
                out.append(e)
        return out

    # facts the catalog must carry
    for ver in ["3.5.0", "3.5.1", "3.5.2"]:
        assert any(e["condition"] == "" for e in covers("etcd", ver)), ver
    assert not any(e["condition"] == "" for e in covers("etcd", "3.5.26"))
    hit = covers("containerd", "2.2.0")
    assert any("#12612" in e["reason"] or any("12612" in u for u in e["links"]) for e in hit)
    assert any("mirrors" in e["condition"] and "config_path" in e["condition"] for e in hit)


# --------------------------------------------------------------------------- apis.yaml


def test_apis(kube_minors: list[str]) -> None:
    doc = load("apis.yaml")
    apis = doc["apis"]
    newest = max(minor(m) for m in kube_minors)
    seen: set[tuple[str, str]] = set()
    for a in apis:
        key = (a["apiVersion"], a["kind"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        assert API_VERSION_RE.match(a["apiVersion"]), a["apiVersion"]
        assert re.fullmatch(r"[A-Z][A-Za-z]+", a["kind"]), a["kind"]
        assert not a["kind"].endswith("List")
        dep, rem = a["deprecatedIn"], a["removedIn"]
        if dep is None:
            assert "alpha" in a["apiVersion"], f"{key}: only alpha versions may lack deprecatedIn"
            assert rem is not None, key
        else:
            assert minor(dep) <= newest, f"{key}: deprecated in the future"
        if rem is not None:
            assert minor(rem) <= newest, f"{key}: removal in the future belongs in plannedRemovalIn"
            if dep is not None:
                assert minor(rem) >= minor(dep), key
        if "plannedRemovalIn" in a:
            assert rem is None, key
            assert minor(a["plannedRemovalIn"]) > newest, key
        assert "replacement" in a, f"{key}: replacement must be present (null = none)"
        repl = a["replacement"]
        if repl is not None:
            assert API_VERSION_RE.match(repl), repl
            assert repl != a["apiVersion"], key
            assert a["replacementAvailableIn"] is not None, key
            minor(a["replacementAvailableIn"])
            # a replacement must not itself be listed as removed
            for b in apis:
                if (b["apiVersion"], b["kind"]) == (repl, a["kind"]):
                    assert b["removedIn"] is None, f"{key}: replacement {repl} is removed"
        else:
            assert a.get("replacementAvailableIn") is None, key

    def get(api_version: str, kind: str) -> dict[str, Any]:
        return next(a for a in apis if (a["apiVersion"], a["kind"]) == (api_version, kind))

    expected = {
        ("extensions/v1beta1", "Deployment"): "1.16",
        ("extensions/v1beta1", "Ingress"): "1.22",
        ("networking.k8s.io/v1beta1", "Ingress"): "1.22",
        ("admissionregistration.k8s.io/v1beta1", "ValidatingWebhookConfiguration"): "1.22",
        ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition"): "1.22",
        ("batch/v1beta1", "CronJob"): "1.25",
        ("policy/v1beta1", "PodDisruptionBudget"): "1.25",
        ("policy/v1beta1", "PodSecurityPolicy"): "1.25",
        ("autoscaling/v2beta2", "HorizontalPodAutoscaler"): "1.26",
        ("storage.k8s.io/v1beta1", "CSIStorageCapacity"): "1.27",
        ("flowcontrol.apiserver.k8s.io/v1beta2", "FlowSchema"): "1.29",
        ("flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema"): "1.32",
    }
    for key, removed in expected.items():
        assert get(*key)["removedIn"] == removed, key
    assert get("policy/v1beta1", "PodDisruptionBudget")["replacement"] == "policy/v1"
    assert get("policy/v1beta1", "PodSecurityPolicy")["replacement"] is None
    assert any(a["apiVersion"].startswith("resource.k8s.io/") for a in apis)


# --------------------------------------------------------------------------- addons.yaml


def test_addons(kube_minors: list[str]) -> None:
    doc = load("addons.yaml")
    coredns = doc["coredns"]
    assert set(coredns) == set(kube_minors)
    ordered = [patch(coredns[k]) for k in sorted(coredns, key=minor)]
    assert ordered == sorted(ordered), "kubeadm's CoreDNS never goes backwards"
    seen: set[tuple[str, str]] = set()
    for c in doc["cni"]:
        assert c["name"] in {"calico", "cilium"}
        key = (c["name"], c["line"])
        assert key not in seen
        seen.add(key)
        minor(c["line"])
        ks = c["kubernetes"]
        assert ks, key
        assert all(k in kube_minors for k in ks), key
        assert [minor(k) for k in ks] == sorted(minor(k) for k in ks), key
        assert str(c["source"]).startswith("https://"), key
