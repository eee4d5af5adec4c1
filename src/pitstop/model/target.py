"""The upgrade target: desired versions per component.

Written on the command line (``kubernetes=1.34.2,containerd=2.1.4,etcd=3.5.21``) or as an
``UpgradeTarget`` object. Components: ``kubernetes`` (control plane, kubelet, kube-proxy),
``containerd``, ``cri-o``, ``etcd``, and add-ons by name (``coredns``, ``calico``, …).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from pitstop.model.common import API_VERSION, LabelSelector, Metadata, SpecModel, VersionStr

__all__ = ["UpgradeTarget", "UpgradeTargetSpec", "parse_target_text"]

CORE_COMPONENTS = ("kubernetes", "containerd", "cri-o", "etcd")
_COMPONENT_RE = re.compile(r"^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$")


class UpgradeTargetSpec(SpecModel):
    versions: dict[str, VersionStr] = Field(min_length=1)
    clusters: LabelSelector = Field(
        default_factory=LabelSelector, description="clusters the target applies to; all if empty"
    )

    @field_validator("versions")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _COMPONENT_RE.match(name) or len(name) > 63:
                shown = name if len(name) <= 40 else name[:37] + "..."
                raise ValueError(f"component name {shown!r} is not a plain name such as etcd "
                                 "(letters, digits, '-', '_' and '.', starting and ending with "
                                 "a letter or digit, at most 63 characters)")
        return value


class UpgradeTarget(SpecModel):
    api_version: Literal["pitstop.dev/v1alpha1"] = API_VERSION
    kind: Literal["UpgradeTarget"] = "UpgradeTarget"
    metadata: Metadata = Field(default_factory=lambda: Metadata(name="target"))
    spec: UpgradeTargetSpec


def parse_target_text(text: str) -> dict[str, str]:
    """Split ``kubernetes=1.34.2,containerd=2.1.4`` into a mapping; raises ValueError with the
    offending part named."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, version = part.partition("=")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(
                f"{part!r} is not COMPONENT=VERSION; write e.g. kubernetes=1.34.2,etcd=3.5.21"
            )
        if name.strip() in out:
            raise ValueError(f"component {name.strip()!r} is given twice")
        out[name.strip().lower()] = version.strip()
    if not out:
        raise ValueError("empty target; write e.g. kubernetes=1.34.2,containerd=2.1.4")
    return out
