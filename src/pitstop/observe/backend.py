"""A :class:`~pitstop.backend.Backend` that reports every call: a ``backend <method>`` span
(cluster, node, pod, key as attributes), a count per method and result, and each eviction's
answer — then hands the call to the backend it wraps, unchanged. Attributes it does not know
(the backend's optional parts: ``concurrent_calls``, ``metrics``, a twin's extras) are the
wrapped backend's."""

from __future__ import annotations

from typing import Any

from pitstop.backend import (
    Action,
    Backend,
    Clock,
    ClusterObservation,
    EvictionResult,
    HealthSignals,
    Operation,
)
from pitstop.observe.api import Attr
from pitstop.observe.session import Session

__all__ = ["TracedBackend"]


class TracedBackend:
    def __init__(self, inner: Backend, session: Session) -> None:
        self.inner = inner
        self.session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _call(self, method: str, attrs: dict[str, Attr], fn: Any, *args: Any) -> Any:
        with self.session.span(f"backend {method}", None, backend=self.inner.name, **attrs):
            try:
                result = fn(*args)
            except Exception:
                self.session.backend_call(method, ok=False)
                raise
        self.session.backend_call(method, ok=True)
        return result

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def clock(self) -> Clock:
        return self.inner.clock

    def observe(self, cluster: str) -> ClusterObservation:
        result: ClusterObservation = self._call("observe", {"cluster": cluster},
                                                self.inner.observe, cluster)
        return result

    def health(self, cluster: str) -> HealthSignals:
        result: HealthSignals = self._call("health", {"cluster": cluster}, self.inner.health,
                                           cluster)
        return result

    def cordon(self, cluster: str, node: str, reason: str) -> None:
        self._call("cordon", {"cluster": cluster, "node": node}, self.inner.cordon, cluster,
                   node, reason)

    def uncordon(self, cluster: str, node: str) -> None:
        self._call("uncordon", {"cluster": cluster, "node": node}, self.inner.uncordon,
                   cluster, node)

    def annotate(self, cluster: str, node: str, key: str, value: str | None) -> None:
        self._call("annotate", {"cluster": cluster, "node": node, "annotation": key},
                   self.inner.annotate, cluster, node, key, value)

    def evict(self, cluster: str, namespace: str, pod: str, uid: str) -> EvictionResult:
        result: EvictionResult = self._call(
            "evict", {"cluster": cluster, "pod": f"{namespace}/{pod}"}, self.inner.evict,
            cluster, namespace, pod, uid)
        self.session.eviction(str(result))
        return result

    def delete_pod(self, cluster: str, namespace: str, pod: str, uid: str) -> None:
        self._call("delete_pod", {"cluster": cluster, "pod": f"{namespace}/{pod}"},
                   self.inner.delete_pod, cluster, namespace, pod, uid)

    def start(self, cluster: str, key: str, action: Action) -> Operation:
        result: Operation = self._call(
            "start", {"cluster": cluster, "key": key, "action": type(action).__name__},
            self.inner.start, cluster, key, action)
        return result

    def poll(self, cluster: str, key: str) -> Operation:
        result: Operation = self._call("poll", {"cluster": cluster, "key": key},
                                       self.inner.poll, cluster, key)
        return result

    def close(self) -> None:
        self.inner.close()


def _conforms(backend: TracedBackend) -> Backend:  # mypy checks the proxy is a Backend
    return backend
