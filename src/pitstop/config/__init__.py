"""Reading configuration files: YAML documents → validated objects, with errors that name the
file, the line, the field, what was expected and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pitstop.errors import ConfigError, ConfigProblem
from pitstop.model import (
    API_VERSION,
    KINDS,
    FaultScenario,
    Fleet,
    FleetSpec,
    HostInventory,
    Metadata,
    UpgradePolicy,
    UpgradeTarget,
    UpgradeTargetSpec,
    parse_target_text,
)

__all__ = ["LoadedConfig", "load_documents", "load_files", "target_from_text"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple[str | int, ...]


@dataclass
class _Doc:
    file: str
    data: Any
    lines: dict[Path_, int]
    start_line: int


@dataclass
class LoadedConfig:
    """Everything read from the ``-f`` files: one fleet (clusters of every Fleet merged), at most
    one policy and at most one target."""

    fleet: Fleet | None = None
    policy: UpgradePolicy | None = None
    target: UpgradeTarget | None = None
    faults: FaultScenario | None = None
    hosts: HostInventory | None = None  # where the nodes are (the hosts backend)
    sources: dict[str, str] = field(default_factory=dict)  # kind/name → file


def _compose(text: str, file: str) -> list[_Doc]:
    loader = _Loader(text)
    docs: list[_Doc] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[Path_, int] = {}
            data = _build(loader, node, (), lines)
            docs.append(_Doc(file, data, lines, node.start_mark.line + 1))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or "not valid YAML"
        raise ConfigError(
            [
                ConfigProblem(
                    file, line, "", f"YAML syntax error: {what}" + (
                        f" ({exc.context})" if exc.context else ""
                    ) + ".",
                    "check indentation and quoting on that line and the one before it.",
                )
            ]
        ) from None
    finally:
        loader.dispose()
    return docs


def _build(loader: Any, node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key == "<<":
                raise ConfigError(
                    [ConfigProblem(
                        "", key_node.start_mark.line + 1, "<<",
                        "YAML merge keys are not supported.", "write the keys out.",
                    )]
                )
            key = str(key)
            out[key] = _build(loader, value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, child, (*path, i), lines) for i, child in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _vocabulary(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """Every key any nested model accepts, for 'did you mean' hints."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    words: set[str] = set()
    for name, info in model.model_fields.items():
        words.add(info.alias or name)
        for arg in _model_args(info.annotation):
            words |= _vocabulary(arg, seen)
    return words


def _model_args(annotation: Any) -> Iterable[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _model_args(arg)


def _field_path(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line_for(doc: _Doc, loc: Sequence[str | int]) -> int:
    path = tuple(loc)
    while path:
        if path in doc.lines:
            return doc.lines[path]
        path = path[:-1]
    return doc.start_line


def _problems(doc: _Doc, exc: ValidationError, model: type[BaseModel]) -> list[ConfigProblem]:
    vocab: set[str] | None = None
    out: list[ConfigProblem] = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        # Drop pydantic's union/validator tags such as 'str' or 'int' that are not YAML keys.
        while loc and isinstance(loc[-1], str) and tuple(loc) not in doc.lines and len(loc) > 1 \
                and tuple(loc[:-1]) in doc.lines and err["type"] not in ("missing",
                                                                          "extra_forbidden"):
            loc = loc[:-1]
        field_name = _field_path(loc)
        kind = err["type"]
        msg = str(err["msg"]).removeprefix("Value error, ")
        fix = ""
        if kind == "missing":
            msg = "this field is required but missing."
            fix = f"add `{loc[-1]}:` here." if loc else ""
        elif kind == "extra_forbidden":
            vocab = vocab if vocab is not None else _vocabulary(model)
            key = str(loc[-1]) if loc else ""
            close = difflib.get_close_matches(key, sorted(vocab), n=1)
            msg = f"unknown field {key!r}."
            fix = f"did you mean `{close[0]}`?" if close else "remove it (keys are camelCase)."
        else:
            if not msg.endswith("."):
                msg += "."
            got = err.get("input")
            if isinstance(got, str) and ("\n" in got or "PRIVATE KEY" in got):
                msg += " (the value is not shown: it may be a secret)"
            elif isinstance(got, str | int | float | bool) or got is None:
                msg += f" Got {got!r}."
            if kind.endswith(("_type", "_parsing")) or kind in ("literal_error", "enum"):
                fix = "use a value of the expected type."
        out.append(ConfigProblem(doc.file, _line_for(doc, loc), field_name, msg, fix))
    return out


def _validate(doc: _Doc) -> BaseModel:
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(
            doc.file, doc.start_line, "", "a document must be a mapping with apiVersion and kind.",
            f"start it with `apiVersion: {API_VERSION}` and `kind: Fleet` (or UpgradePolicy).",
        )])
    api_version = data.get("apiVersion")
    kind = data.get("kind")
    if api_version != API_VERSION:
        raise ConfigError([ConfigProblem(
            doc.file, doc.lines.get(("apiVersion",), doc.start_line), "apiVersion",
            f"expected {API_VERSION!r}, got {api_version!r}.",
            f"write `apiVersion: {API_VERSION}`.",
        )])
    if kind not in KINDS:
        raise ConfigError([ConfigProblem(
            doc.file, doc.lines.get(("kind",), doc.start_line), "kind",
            f"unknown kind {kind!r}.", f"use one of {', '.join(sorted(KINDS))}.",
        )])
    model = KINDS[kind]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(doc, exc, model)) from None


def load_documents(text: str, file: str = "<input>") -> list[BaseModel]:
    """Validate every document of one YAML text; all problems of a document are reported."""
    problems: list[ConfigProblem] = []
    objects: list[BaseModel] = []
    for doc in _compose(text, file):
        try:
            objects.append(_validate(doc))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return objects


# Kinds of which one object may be given: the LoadedConfig attribute, and how to fix a second.
_SINGLE: dict[str, tuple[str, str]] = {
    "UpgradePolicy": ("policy", "merge the policies into one object."),
    "UpgradeTarget": ("target", "keep one target object, or use --target."),
    "FaultScenario": ("faults", "list every fault in one FaultScenario object."),
    "HostInventory": ("hosts", "list every cluster in one HostInventory object."),
}


def load_files(paths: Sequence[str | Path]) -> LoadedConfig:
    """Read ``-f`` files (``-`` is not supported: pass a path). Fleets merge; policy and target
    may appear once."""
    out = LoadedConfig()
    problems: list[ConfigProblem] = []
    clusters: dict[str, tuple[str, Any]] = {}
    fleet_meta: Metadata | None = None
    for p in paths:
        path = Path(p)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(ConfigProblem(str(path), None, "", "file not found.",
                                          "check the path given to -f."))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(ConfigProblem(str(path), None, "", f"cannot read: {exc}.", ""))
            continue
        try:
            objects = load_documents(text, str(path))
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if not objects:
            problems.append(ConfigProblem(str(path), None, "", "the file holds no document.",
                                          "add a Fleet, UpgradePolicy or UpgradeTarget object."))
        for obj in objects:
            if isinstance(obj, Fleet):
                fleet_meta = fleet_meta or obj.metadata
                for c in obj.spec.clusters:
                    if c.name in clusters:
                        problems.append(ConfigProblem(
                            str(path), None, "spec.clusters",
                            f"cluster {c.name!r} is also defined in {clusters[c.name][0]}.",
                            "give each cluster one definition.",
                        ))
                    clusters[c.name] = (str(path), c)
                out.sources.setdefault(f"Fleet/{obj.metadata.name}", str(path))
            else:
                kind = type(obj).__name__
                attr, fix = _SINGLE[kind]
                if getattr(out, attr) is not None:
                    problems.append(ConfigProblem(
                        str(path), None, "kind", f"a second {kind}; only one may be given.", fix))
                setattr(out, attr, obj)
                out.sources[f"{kind}/{obj.metadata.name}"] = str(path)  # type: ignore[attr-defined]
    if problems:
        raise ConfigError(problems)
    if clusters and fleet_meta is not None:
        out.fleet = Fleet.model_construct(
            api_version=API_VERSION,
            kind="Fleet",
            metadata=fleet_meta,
            spec=FleetSpec.model_construct(clusters=[c for _, c in clusters.values()]),
        )
    return out


def target_from_text(text: str, base: UpgradeTarget | None = None) -> UpgradeTarget:
    """Build a target from ``--target`` text; entries override those of ``base``."""
    try:
        versions = parse_target_text(text)
        merged = {**(base.spec.versions if base else {}), **versions}
        spec = UpgradeTargetSpec.model_validate(
            {"versions": merged, "clusters": base.spec.clusters if base else {}}
        )
    except ValidationError as exc:
        problems = [
            ConfigProblem("--target", None, ".".join(str(p) for p in e["loc"]),
                          str(e["msg"]).removeprefix("Value error, ") + ".",
                          "write e.g. --target kubernetes=1.34.2,containerd=2.1.4")
            for e in exc.errors(include_url=False)
        ]
        raise ConfigError(problems) from None
    except ValueError as exc:
        raise ConfigError([ConfigProblem("--target", None, "", f"{exc}.", "")]) from None
    return UpgradeTarget(spec=spec)
