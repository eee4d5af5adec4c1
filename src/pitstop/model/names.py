"""Names and labels, checked as Kubernetes checks them.

Names in a configuration reach files (run directories, pid files named after etcd members),
terminals (every table pitstop prints) and commands (``kubectl``, ``ssh``, ``etcd --name``). So
each is checked when the file is read, with the rule Kubernetes applies to that kind of object:

=========================  ===================================================================
DNS-1123 subdomain         node, workload, PodDisruptionBudget, apiserver, controller and etcd
                           member names, ``metadata.name``: lowercase letters, digits, ``-``
                           and ``.``, each dot-separated part starting and ending with a letter
                           or digit; at most 253 characters
DNS-1123 label             namespaces: the same without dots, at most 63 characters
cluster name               a DNS-1123 subdomain (it is also the value of the label ``name``
                           that wave, window and target selectors match)
label value                node pools (a pool is a node label's value: ``Standard_D4s_v3``,
                           ``m5.large``), label values: letters, digits, ``-``, ``_`` and ``.``,
                           starting and ending with a letter or digit; at most 63 characters
label key                  ``[prefix/]name``: the prefix a DNS-1123 subdomain, the name as a
                           label value (not empty)
=========================  ===================================================================

Three labels hold more than a Kubernetes label value, and their values follow their own rule:
``name``, the label every cluster carries with its name (a DNS-1123 subdomain, as cluster
names); the cluster label ``pitstop.dev/context`` that ``pitstop inventory`` records (a
kubeconfig context name: printable text); and node labels under ``taint.pitstop.dev/`` (a
node's taints of one key, ``value:Effect`` joined by ``,``; the key is the prefix followed by
the taint's key, which may have a prefix of its own: ``taint.pitstop.dev/example.com/gpu``).

Every string of every configuration file is also refused when it holds a control character or a
bidirectional-formatting character (see :data:`FORBIDDEN_CHARACTERS`): they reorder or hide what
a terminal shows.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, Field

__all__ = [
    "CONTEXT_LABEL",
    "DNS1123_LABEL_MAX",
    "DNS1123_SUBDOMAIN_MAX",
    "FORBIDDEN_CHARACTERS",
    "LABEL_VALUE_MAX",
    "NAME_LABEL",
    "TAINT_LABEL_PREFIX",
    "Annotations",
    "ApiServerName",
    "ClusterName",
    "ComponentName",
    "EtcdMemberName",
    "HostAddress",
    "InstanceName",
    "LabelError",
    "Labels",
    "LoginName",
    "MetadataName",
    "Namespace",
    "NodeName",
    "ObjectName",
    "PdbName",
    "PlainName",
    "PoolName",
    "WorkloadName",
    "check_annotations",
    "check_label_key",
    "check_labels",
    "check_namespace",
    "check_pdb_name",
    "check_selector_value",
    "forbidden_character",
    "is_label_value",
    "is_subdomain",
]

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63
ANNOTATIONS_MAX_BYTES = 256 * 1024  # Kubernetes' limit on the annotations of one object

# Labels pitstop inventory writes that are not Kubernetes labels (kept equal to pitstop.kube's).
CONTEXT_LABEL = "pitstop.dev/context"
NAME_LABEL = "name"  # every cluster's label with its name (Cluster.full_labels)
TAINT_LABEL_PREFIX = "taint.pitstop.dev/"

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(rf"^{_LABEL}$")
_DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_QUALIFIED_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_TAINTS_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?:[A-Za-z]*"
                        r"(,(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?:[A-Za-z]*)*$")
_COMPONENT_RE = re.compile(r"^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$")
_PLAIN_RE = re.compile(r"^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$")
_LOGIN_RE = re.compile(r"^[A-Za-z0-9_][-A-Za-z0-9_.]*\$?$")
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?"
                          r"(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*\.?$")

# Control characters (C0 but tab and newline, DEL, C1) and the characters that reorder or
# isolate text (bidirectional formatting), plus the Unicode line and paragraph separators.
FORBIDDEN_CHARACTERS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def forbidden_character(text: str) -> str | None:
    """A description of the first control or bidirectional character in ``text``, or None."""
    m = FORBIDDEN_CHARACTERS.search(text)
    if m is None:
        return None
    return f"U+{ord(m[0]):04X} at character {m.start() + 1}"


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _checked(value: str, ok: bool, what: str, rule: str, fix: str) -> str:
    if not ok:
        raise ValueError(f"{_shown(value)} is not a valid {what}: {rule}. Fix: {fix}")
    return value


_SUBDOMAIN_RULE = ("a DNS-1123 subdomain, as Kubernetes requires: lowercase letters, digits, "
                   "'-' and '.', each dot-separated part starting and ending with a letter or "
                   f"digit, at most {DNS1123_SUBDOMAIN_MAX} characters")
_LABEL_RULE = ("a DNS-1123 label, as Kubernetes requires: lowercase letters, digits and '-', "
               f"starting and ending with a letter or digit, at most {DNS1123_LABEL_MAX} "
               "characters")
_VALUE_RULE = ("letters, digits, '-', '_' and '.', starting and ending with a letter or digit, "
               f"at most {LABEL_VALUE_MAX} characters, as Kubernetes requires of label values")


def is_subdomain(value: str, limit: int = DNS1123_SUBDOMAIN_MAX) -> bool:
    return len(value) <= limit and _DNS1123_SUBDOMAIN_RE.match(value) is not None


def is_label_value(value: str) -> bool:
    """A non-empty Kubernetes label value."""
    return len(value) <= LABEL_VALUE_MAX and _QUALIFIED_RE.match(value) is not None


def _subdomain(what: str, example: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        return _checked(value, is_subdomain(value), what, _SUBDOMAIN_RULE,
                        f"rename it, e.g. {example}")
    return check


def check_namespace(value: str) -> str:
    return _checked(value, len(value) <= DNS1123_LABEL_MAX
                    and _DNS1123_LABEL_RE.match(value) is not None, "namespace", _LABEL_RULE,
                    "use the namespace's name as Kubernetes has it, e.g. kube-system")


def _pool(value: str) -> str:
    return _checked(value, is_label_value(value), "node pool name",
                    "a pool is the value of a node label, so its name is a label value: "
                    + _VALUE_RULE, "rename it, e.g. general or m5.large")


def _component(value: str) -> str:
    return _checked(value, len(value) <= DNS1123_LABEL_MAX
                    and _COMPONENT_RE.match(value) is not None, "component name",
                    "letters, digits, '-', '_' and '.', starting and ending with a letter or "
                    f"digit, at most {DNS1123_LABEL_MAX} characters",
                    "write it as the catalog does, e.g. coredns or metrics-server")


def _plain(value: str) -> str:
    return _checked(value, len(value) <= DNS1123_SUBDOMAIN_MAX
                    and _PLAIN_RE.match(value) is not None, "name",
                    "letters, digits, '-', '_' and '.', starting and ending with a letter or "
                    f"digit, at most {DNS1123_SUBDOMAIN_MAX} characters",
                    "rename it, e.g. eu-nights")


def _login(value: str) -> str:
    return _checked(value, len(value) <= 32 and _LOGIN_RE.match(value) is not None,
                    "login name", "letters, digits, '_', '-' and '.', not starting with '-' or "
                    "'.', at most 32 characters (what useradd accepts)", "e.g. root or deploy")


def _address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    return _checked(value, len(value) <= DNS1123_SUBDOMAIN_MAX
                    and _HOSTNAME_RE.match(value) is not None, "host address",
                    "an IPv4 or IPv6 address, or a host name (letters, digits, '-' and '.', "
                    f"each part starting and ending with a letter or digit, at most "
                    f"{DNS1123_SUBDOMAIN_MAX} characters)", "e.g. 10.0.0.7 or node-a.example.com")


def _instance(value: str) -> str:
    """apiserver and control-plane instances: a host's name (DNS-1123 subdomain) or its IP."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    return _subdomain("control-plane instance name", "cp-1")(value)


def _object_name(value: str) -> str:
    """Any object's name as the API accepts in a path: not '.' or '..', no '/' or '%'."""
    ok = (0 < len(value) <= DNS1123_SUBDOMAIN_MAX and value not in (".", "..")
          and not any(c in value for c in "/%") and not value.isspace()
          and FORBIDDEN_CHARACTERS.search(value) is None)
    return _checked(value, ok, "object name", "any name the Kubernetes API accepts in a path: "
                    f"not '.' or '..', without '/' or '%', at most {DNS1123_SUBDOMAIN_MAX} "
                    "characters", "write the object's name as kubectl shows it")


def _schema(pattern: str, max_length: int) -> dict[str, Any]:
    return {"pattern": pattern, "maxLength": max_length}


_SUB_PATTERN = rf"^{_LABEL}(\.{_LABEL})*$"
_VALUE_PATTERN = r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"

MetadataName = Annotated[str, AfterValidator(_subdomain("name", "acme")),
                         Field(json_schema_extra=_schema(_SUB_PATTERN, DNS1123_SUBDOMAIN_MAX))]
ClusterName = Annotated[str, AfterValidator(_subdomain("cluster name", "prod-eu-1")),
                        Field(json_schema_extra=_schema(_SUB_PATTERN, DNS1123_SUBDOMAIN_MAX))]
NodeName = Annotated[str, AfterValidator(_subdomain("node name", "stg-gen-01")),
                     Field(json_schema_extra=_schema(_SUB_PATTERN, DNS1123_SUBDOMAIN_MAX))]
WorkloadName = Annotated[str, AfterValidator(_subdomain("workload name", "checkout")),
                         Field(json_schema_extra=_schema(_SUB_PATTERN, DNS1123_SUBDOMAIN_MAX))]
check_pdb_name = _subdomain("PodDisruptionBudget name", "checkout")
PdbName = Annotated[str, AfterValidator(check_pdb_name),
                    Field(json_schema_extra=_schema(_SUB_PATTERN, DNS1123_SUBDOMAIN_MAX))]
EtcdMemberName = Annotated[str, AfterValidator(_subdomain("etcd member name", "etcd-1")),
                           Field(json_schema_extra=_schema(_SUB_PATTERN, DNS1123_SUBDOMAIN_MAX))]
ApiServerName = Annotated[str, AfterValidator(_instance),
                          Field(json_schema_extra={"maxLength": DNS1123_SUBDOMAIN_MAX})]
InstanceName = ApiServerName
Namespace = Annotated[str, AfterValidator(check_namespace),
                      Field(json_schema_extra=_schema(rf"^{_LABEL}$", DNS1123_LABEL_MAX))]
PoolName = Annotated[str, AfterValidator(_pool),
                     Field(json_schema_extra=_schema(_VALUE_PATTERN, LABEL_VALUE_MAX))]
ComponentName = Annotated[str, AfterValidator(_component),
                          Field(json_schema_extra=_schema(_COMPONENT_RE.pattern,
                                                          DNS1123_LABEL_MAX))]
PlainName = Annotated[str, AfterValidator(_plain),
                      Field(json_schema_extra=_schema(_PLAIN_RE.pattern, DNS1123_SUBDOMAIN_MAX))]
LoginName = Annotated[str, AfterValidator(_login),
                      Field(json_schema_extra=_schema(_LOGIN_RE.pattern, 32))]
HostAddress = Annotated[str, AfterValidator(_address),
                        Field(json_schema_extra={"maxLength": DNS1123_SUBDOMAIN_MAX})]
ObjectName = Annotated[str, AfterValidator(_object_name),
                       Field(json_schema_extra={"maxLength": DNS1123_SUBDOMAIN_MAX})]


# -- labels ---------------------------------------------------------------------------------


class LabelError(ValueError):
    """A bad label key or value; ``key`` says which entry of the map (so that the error names
    the key's field and line, not the whole map)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _is_label_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    return is_label_value(name) and (not slash or is_subdomain(prefix))


def check_label_key(key: str) -> str:
    """A Kubernetes label key: ``[prefix/]name``; or ``taint.pitstop.dev/`` followed by a taint
    key (itself ``[prefix/]name``), as ``pitstop inventory`` records taints."""
    taint = key.removeprefix(TAINT_LABEL_PREFIX)
    ok = _is_label_key(key) or (taint != key and _is_label_key(taint))
    try:
        return _checked(key, ok, "label key",
                        "[prefix/]name, the prefix a DNS-1123 subdomain (at most "
                        f"{DNS1123_SUBDOMAIN_MAX} characters), the name {_VALUE_RULE}",
                        "write e.g. app or example.com/tier")
    except ValueError as exc:
        raise LabelError(key, str(exc)) from None


def _label_value_ok(key: str, value: str) -> bool:
    if key == NAME_LABEL:
        return is_subdomain(value)
    if key == CONTEXT_LABEL:
        return (0 < len(value) <= DNS1123_SUBDOMAIN_MAX
                and FORBIDDEN_CHARACTERS.search(value) is None)
    if key.startswith(TAINT_LABEL_PREFIX):
        return len(value) <= DNS1123_SUBDOMAIN_MAX and _TAINTS_RE.match(value) is not None
    return value == "" or is_label_value(value)


def check_selector_value(key: str, value: str) -> str:
    """A value a selector compares with the label ``key``: as that label's values."""
    if not _label_value_ok(key, value):
        rule = (_SUBDOMAIN_RULE + " (the label name holds a cluster's name)"
                if key == NAME_LABEL else
                f"the context label holds printable text of at most {DNS1123_SUBDOMAIN_MAX} "
                "characters" if key == CONTEXT_LABEL else
                "a taint label holds value:Effect pairs joined by ','"
                if key.startswith(TAINT_LABEL_PREFIX) else
                "empty, or " + _VALUE_RULE)
        raise LabelError(key, f"{_shown(value)} is not a valid value of label {key!r}: "
                         f"{rule}. Fix: write e.g. production or eu-west")
    return value


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        check_label_key(key)
        check_selector_value(key, value)
    return labels


def check_annotations(annotations: dict[str, str]) -> dict[str, str]:
    size = 0
    for key, value in annotations.items():
        check_label_key(key)
        size += len(key.encode("utf-8")) + len(value.encode("utf-8"))
    if size > ANNOTATIONS_MAX_BYTES:
        raise ValueError(f"the annotations hold {size} bytes, more than the "
                         f"{ANNOTATIONS_MAX_BYTES} Kubernetes allows on one object. Fix: "
                         "shorten or remove some")
    return annotations


Labels = Annotated[dict[str, str], AfterValidator(check_labels)]
Annotations = Annotated[dict[str, str], AfterValidator(check_annotations)]
