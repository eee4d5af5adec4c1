"""PromQL gates, pure: the built-in templates, filling them for a step, reducing an answer to
one value, and which firing alerts block a run.

* :func:`templates` — the built-in templates (``gates/templates/*.yaml``, package data), loaded
  and checked once: a name, the PromQL, what it measures, its direction, how its answer is
  reduced, what an empty answer means and its default success/failure conditions.
* :func:`step_fills` — the values a query's placeholders are filled with for one step:
  ``{cluster}``; ``{nodes}``, the step's targets; ``{canary}``, the nodes of the step's pool
  (the cluster's nodes for a step without a pool) that already run every node version the
  step moves to; ``{baseline}``, the other nodes of that pool. The node sets are regex
  alternations, each name escaped, ready for ``label=~"{nodes}"``; an empty set is a regex
  that matches nothing (so the query's answer is empty, judged by ``emptyResult``).
* :func:`reduce_values` — ``max``, ``min``, ``avg``, ``sum`` or ``last`` of the answer.
* :func:`blocking_alerts` — the firing alerts the policy's alert gates match.

The provider that asks the queries is :mod:`pitstop.gates.providers` (kind ``prometheus``);
the source that answers them sits behind :mod:`pitstop.backend.metrics`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

import yaml

from pitstop.backend.api import ClusterObservation
from pitstop.backend.metrics import FiringAlert
from pitstop.gates.condition import Condition
from pitstop.planner.plan import Step

__all__ = [
    "EMPTY_RESULTS",
    "NOTHING",
    "PLACEHOLDERS",
    "REDUCERS",
    "AlertMatch",
    "EmptyResult",
    "PromTemplate",
    "Reduce",
    "TemplateError",
    "blocking_alerts",
    "fill",
    "node_regex",
    "reduce_values",
    "step_fills",
    "template",
    "templates",
]

Reduce = Literal["max", "min", "avg", "sum", "last"]
REDUCERS: tuple[Reduce, ...] = ("max", "min", "avg", "sum", "last")
EmptyResult = Literal["error", "zero", "fail"]
EMPTY_RESULTS: tuple[EmptyResult, ...] = ("error", "zero", "fail")
PLACEHOLDERS = ("cluster", "nodes", "canary", "baseline")
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
NOTHING = "[^\\\\s\\\\S]"
"""The filling of an empty node set: a regex (written for a PromQL double-quoted string) that
matches no label value, so ``node=~"{canary}"`` selects nothing."""
_REGEX_SPECIAL = frozenset("\\.^$|?*+()[]{}")
_NODE_RUNTIMES = ("containerd", "cri-o", "docker")


class TemplateError(ValueError):
    """A built-in template that does not hold together (a packaging mistake), or an unknown
    template name."""


@dataclass(frozen=True, slots=True)
class PromTemplate:
    """One built-in PromQL template (see the module docstring)."""

    name: str
    measures: str
    direction: Literal["lower-is-better", "higher-is-better"]
    promql: str
    reduce: Reduce
    empty_result: EmptyResult
    success: str | None
    failure: str | None


def _template(entry: Any, where: str) -> PromTemplate:
    if not isinstance(entry, dict):
        raise TemplateError(f"{where}: not a mapping")
    keys = {"name", "measures", "direction", "promql", "reduce", "emptyResult",
            "successCondition", "failureCondition"}
    extra = set(entry) - keys
    if extra:
        raise TemplateError(f"{where}: unknown keys {sorted(extra)}")
    name = str(entry.get("name", ""))
    t = PromTemplate(name, str(entry.get("measures", "")), entry.get("direction", ""),
                     str(entry.get("promql", "")).strip(), entry.get("reduce", "max"),
                     entry.get("emptyResult", "error"), entry.get("successCondition"),
                     entry.get("failureCondition"))
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or not t.promql or not t.measures:
        raise TemplateError(f"{where}: a template needs a name, promql and measures")
    if t.direction not in ("lower-is-better", "higher-is-better"):
        raise TemplateError(f"{where} ({name}): direction {t.direction!r}")
    if t.reduce not in REDUCERS or t.empty_result not in EMPTY_RESULTS:
        raise TemplateError(f"{where} ({name}): reduce {t.reduce!r} / emptyResult "
                            f"{t.empty_result!r}")
    if t.success is None and t.failure is None:
        raise TemplateError(f"{where} ({name}): no default condition")
    for text in (t.success, t.failure):
        if text is not None:
            Condition.parse(str(text))
    return t


@functools.cache
def templates() -> Mapping[str, PromTemplate]:
    """The built-in templates by name, loaded and checked once."""
    out: dict[str, PromTemplate] = {}
    folder = resources.files("pitstop.gates") / "templates"
    for item in sorted(folder.iterdir(), key=lambda i: i.name):
        if not item.name.endswith(".yaml"):
            continue
        doc = yaml.safe_load(item.read_text(encoding="utf-8"))
        entries = doc.get("templates") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise TemplateError(f"{item.name}: no list of templates")
        for i, entry in enumerate(entries):
            t = _template(entry, f"{item.name}: templates[{i}]")
            if t.name in out:
                raise TemplateError(f"{item.name}: template {t.name} is defined twice")
            out[t.name] = t
    return MappingProxyType(out)


def template(name: str) -> PromTemplate:
    """The built-in template ``name``; :class:`TemplateError` names the known ones otherwise."""
    found = templates().get(name)
    if found is None:
        raise TemplateError(f"no built-in template {name!r} (known: "
                            f"{', '.join(sorted(templates()))})")
    return found


def _escape(name: str) -> str:
    regex = "".join("\\" + c if c in _REGEX_SPECIAL else c for c in name)
    return regex.replace("\\", "\\\\").replace('"', '\\"')


def node_regex(names: Iterable[str]) -> str:
    """``names`` as a regex alternation for a PromQL double-quoted string (each name escaped,
    sorted, without repeats); :data:`NOTHING` when there are none."""
    unique = sorted(set(names))
    return "|".join(_escape(n) for n in unique) if unique else NOTHING


def _plain(version: str | None) -> str:
    return (version or "").removeprefix("v")


def _node_sets(step: Step, obs: ClusterObservation | None) -> tuple[list[str], list[str]]:
    if obs is None:
        return [], []
    nodes = [n for n in obs.nodes if not step.pool or n.pool == step.pool]
    changes = [c for c in step.changes
               if c.component in ("kubelet", "kube-proxy", *_NODE_RUNTIMES)]
    if not changes:
        return [], [n.name for n in nodes]
    canary = [n.name for n in nodes
              if all(_plain(n.version_of(c.component)) == _plain(c.to_version)
                     for c in changes)]
    return canary, [n.name for n in nodes if n.name not in canary]


def step_fills(step: Step, targets: Sequence[str],
               obs: ClusterObservation | None) -> Mapping[str, str]:
    """What ``{cluster}``, ``{nodes}``, ``{canary}`` and ``{baseline}`` are for ``step`` (see
    the module docstring); without an observation the canary and baseline are empty."""
    canary, baseline = _node_sets(step, obs)
    return MappingProxyType({"cluster": step.cluster, "nodes": node_regex(targets),
                             "canary": node_regex(canary), "baseline": node_regex(baseline)})


def fill(promql: str, fills: Mapping[str, str]) -> str:
    """``promql`` with each ``{cluster}``, ``{nodes}``, ``{canary}`` and ``{baseline}``
    replaced (other braces — label matchers — are left alone)."""
    return _PLACEHOLDER_RE.sub(lambda m: fills.get(m.group(1), m.group(0)), promql)


def reduce_values(values: Sequence[float], how: Reduce) -> float:
    """One value from many: ``last`` is the last one (the newest point of a range); the
    caller handles an empty answer."""
    if not values:
        raise ValueError("nothing to reduce")
    if how == "max":
        return max(values)
    if how == "min":
        return min(values)
    if how == "sum":
        return math.fsum(values)
    if how == "avg":
        return math.fsum(values) / len(values)
    return values[-1]


# -- alert gates --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AlertMatch:
    """One firing alert an alert gate matched."""

    gate: str
    alert: FiringAlert

    @property
    def text(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.alert.labels.items())
                          if k != "alertname")
        return f"{self.alert.name}" + (f" ({shown})" if shown else "") + f" [gate {self.gate}]"


def _matches(alert: FiringAlert, names: Sequence[str], labels: Mapping[str, str],
             regex: Mapping[str, str]) -> bool:
    if names and alert.name not in names:
        return False
    if any(alert.labels.get(k) != v for k, v in labels.items()):
        return False
    return all(re.fullmatch(v, alert.labels.get(k, "")) is not None for k, v in regex.items())


def blocking_alerts(alerts: Iterable[FiringAlert],
                    gates: Iterable[tuple[str, Sequence[str], Mapping[str, str],
                                          Mapping[str, str]]]) -> list[AlertMatch]:
    """The firing ``alerts`` each gate matches: a gate is (name, alert names — any when empty,
    labels that must be equal, labels that must fully match a regex). In the order of the
    alerts, one entry per (gate, alert)."""
    rules = list(gates)
    return [AlertMatch(name, a) for a in alerts for name, names, labels, regex in rules
            if _matches(a, names, labels, regex)]
