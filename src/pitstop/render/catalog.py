"""The version catalog for people (tables) and programs (JSON, YAML)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pitstop.render.safe import markup
from pitstop.render.table import emit_document, print_table

if TYPE_CHECKING:
    from rich.console import Console

    from pitstop.catalog import Catalog

__all__ = ["catalog_dict", "render_catalog"]


def catalog_dict(catalog: Catalog) -> dict[str, Any]:
    return {
        "kubernetes": [
            {"minor": str(r.minor), "released": r.released.isoformat(),
             "endOfLife": r.end_of_life.isoformat(), "eolEstimated": r.eol_estimated,
             "latestPatch": str(r.latest)}
            for r in catalog.kubernetes.values()
        ],
        "skewPolicy": {
            "apiserverMaxSpread": catalog.skew.apiserver_max_spread,
            "kubeletMaxOlder": catalog.skew.kubelet_max_older,
            "kubeProxyMaxOlder": catalog.skew.kube_proxy_max_older,
            "controllersMaxOlder": catalog.skew.controllers_max_older,
        },
        "containerd": [
            {"line": str(ln.line), "latestPatch": str(ln.latest),
             "endOfLife": ln.end_of_life.isoformat() if ln.end_of_life else None,
             "supports": {str(k): str(v) for k, v in sorted(ln.supports.items())}}
            for ln in catalog.runtimes.get("containerd", ())
        ],
        "etcd": {
            "lines": {str(k): str(v) for k, v in catalog.etcd_lines.items()},
            "kubernetes": {str(k): {"kubeadm": str(v.kubeadm),
                                    "supportedLines": [str(x) for x in v.supported_lines]}
                           for k, v in sorted(catalog.etcd_for_kubernetes.items())},
        },
        "knownBad": [
            {"component": kb.component, "versions": kb.describe_versions(), "reason": kb.reason,
             "condition": kb.condition or None, "links": list(kb.links)}
            for kb in catalog.known_bad
        ],
        "apis": [
            {"apiVersion": a.api_version, "kind": a.kind,
             "deprecatedIn": str(a.deprecated_in) if a.deprecated_in else None,
             "removedIn": str(a.removed_in) if a.removed_in else None,
             "replacement": a.replacement}
            for a in catalog.apis
        ],
        "sources": catalog.sources,
    }


def render_catalog(catalog: Catalog, fmt: str, console: Console, section: str | None) -> None:
    doc = catalog_dict(catalog)
    if section:
        doc = {section: doc[section]}
    if fmt in ("json", "yaml"):
        emit_document(console, doc, fmt)
        return
    first = True
    for name, rows in doc.items():
        if not isinstance(rows, list) or not rows:
            if isinstance(rows, dict) and name != "sources":
                console.print(f"[bold]{markup(name)}[/]: {markup(json.dumps(rows))}")
            continue
        if not first:
            console.out("")
        first = False
        cols = list(rows[0].keys())
        print_table(console, cols, [[_cell(r[c]) for c in cols] for r in rows], title=name)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}≥{v}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)
