"""Backend kinds, registered in one place: what ``--backend`` accepts, how a run on each is
checked and made, and how a later process reopens it (:class:`BackendKind`).

A new backend — a provider's node groups, an add-on backend, the operator's store-backed runs —
is one module here implementing :class:`BackendKind`, and one line in :data:`KINDS`.
"""

from __future__ import annotations

from pitstop.errors import RunRefused
from pitstop.kinds.api import BackendKind, Prepared, RunOptions
from pitstop.kinds.hosts import HostsKind
from pitstop.kinds.hosts_kube import HostsKubeKind
from pitstop.kinds.kube import KubeKind
from pitstop.kinds.telemetry import WithTelemetry
from pitstop.kinds.twin import TwinKind

__all__ = ["KINDS", "BackendKind", "Prepared", "RunOptions", "kind"]

_REAL: tuple[BackendKind, ...] = (HostsKind(), KubeKind(), HostsKubeKind())
_ALL: tuple[BackendKind, ...] = (TwinKind(), *(WithTelemetry(k) for k in _REAL))
KINDS: dict[str, BackendKind] = {k.name: k for k in _ALL}


def kind(name: object) -> BackendKind:
    """The registered kind of that name; a run recorded with another is refused."""
    found = KINDS.get(str(name))
    if found is None:
        raise RunRefused(f"backend {name!r} is not one this build of pitstop drives (it drives "
                         f"{', '.join(KINDS)})")
    return found
