"""Reading configuration files: YAML documents → validated objects, with errors that name the
file, the line, the field, what was expected and how to fix it."""

from __future__ import annotations

import difflib
import functools
import math
import re
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
    JudgeConfig,
    Metadata,
    UpgradePolicy,
    UpgradeTarget,
    UpgradeTargetSpec,
    parse_target_text,
)
from pitstop.model.limits import (
    MAX_ALIAS_VALUES,
    MAX_COUNT,
    MAX_DOCUMENTS,
    MAX_FILE_BYTES,
    MAX_GATE_COUNT,
    MAX_LATENCY_MS,
    MAX_PARALLELISM,
    MAX_PROBLEMS,
    MAX_QUANTITY,
    MAX_YAML_DEPTH,
)
from pitstop.model.names import LabelError, forbidden_character

__all__ = ["LoadedConfig", "load_documents", "load_files", "load_judge_config",
           "target_from_text"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
# Scalar tags pitstop reads (the YAML 1.1 core: what SafeLoader resolves plain scalars to).
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_NON_TEXT = {_TAG + t for t in ("int", "float", "bool", "null", "timestamp")}
_INT64 = 2**63 - 1
# Characters YAML itself refuses in a stream (NUL, C0 but tab/LF/CR, DEL, C1 but NEL) and the
# ones pitstop refuses (NEL, bidirectional formatting, line/paragraph separators): found before
# parsing, to name their line and column.
_BAD_RAW = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
    "\u2066-\u2069\ufffe\uffff]")


@dataclass
class _Doc:
    file: str
    data: Any
    lines: dict[Path_, int]
    start_line: int
    raw: dict[Path_, str] = field(default_factory=dict)  # text of plain scalars read as non-str


@dataclass
class LoadedConfig:
    """Everything read from the ``-f`` files: one fleet (clusters of every Fleet merged), at most
    one policy and at most one target."""

    fleet: Fleet | None = None
    policy: UpgradePolicy | None = None
    target: UpgradeTarget | None = None
    faults: FaultScenario | None = None
    hosts: HostInventory | None = None  # where the nodes are (the hosts backend)
    judge: JudgeConfig | None = None  # how `pitstop judge` compares canary and baseline
    sources: dict[str, str] = field(default_factory=dict)  # kind/name → file


class _Refused(Exception):
    """A problem found while composing; carries its line, field path and text."""

    def __init__(self, line: int | None, path: Path_, message: str, fix: str) -> None:
        super().__init__(message)
        self.line, self.path, self.message, self.fix = line, path, message, fix


@dataclass
class _Anchor:
    value: Any
    values: int  # how many values it holds (what an alias to it adds)
    depth: int  # how deep it nests


class _Composer:
    """YAML events → plain Python data with a line for every value, within the limits:
    nesting depth, values reached through aliases, and no duplicate or non-text keys. Built
    from the parser's events (never PyYAML's recursive composer and constructor) so that no
    input recurses or expands without bound."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.anchors: dict[str, _Anchor] = {}
        self.open_anchors: set[str] = set()
        self.alias_values = 0
        self.lines: dict[Path_, int] = {}
        self.raw: dict[Path_, str] = {}

    def document(self) -> tuple[Any, int]:
        """Compose the next document: (data, line of its start)."""
        start = self.loader.get_event()  # DocumentStartEvent
        self.anchors = {}
        self.lines = {}
        self.raw = {}
        data, _, _ = self.node((), 1)
        self.loader.get_event()  # DocumentEndEvent
        return data, start.start_mark.line + 1

    def node(self, path: Path_, depth: int) -> tuple[Any, int, int]:
        """(value, values it holds, its nesting depth)."""
        event = self.loader.get_event()
        line = event.start_mark.line + 1
        self.lines[path] = line
        if isinstance(event, yaml.AliasEvent):
            return self.alias(str(event.anchor), path, line, depth)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.open_anchors.add(anchor)
        try:
            if isinstance(event, yaml.ScalarEvent):
                value, count, nested = self.scalar(event, path, line), 1, 0
            elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                if depth > MAX_YAML_DEPTH:
                    raise _Refused(line, path, f"the document nests deeper than "
                                   f"{MAX_YAML_DEPTH} levels (the limit MAX_YAML_DEPTH).",
                                   "no pitstop field nests so deep: check the brackets and "
                                   "indentation.")
                self.collection_tag(event, path, line)
                if isinstance(event, yaml.SequenceStartEvent):
                    value, count, nested = self.sequence(path, depth)
                else:
                    value, count, nested = self.mapping(path, depth)
            else:  # pragma: no cover - the parser yields nothing else here
                raise _Refused(line, path, "unexpected YAML event.", "")
        finally:
            if anchor is not None:
                self.open_anchors.discard(anchor)
        if anchor is not None:
            self.anchors[anchor] = _Anchor(value, count, nested)
        return value, count, nested

    def alias(self, name: str, path: Path_, line: int, depth: int) -> tuple[Any, int, int]:
        if name in self.open_anchors:
            raise _Refused(line, path, f"the alias *{name} refers to the value it is part of "
                           "(a recursive alias).", f"remove *{name} or write the value out.")
        target = self.anchors.get(name)
        if target is None:
            raise _Refused(line, path, f"the alias *{name} names no anchor before it.",
                           f"define &{name} before using *{name}, or write the value out.")
        self.alias_values += target.values
        if self.alias_values > MAX_ALIAS_VALUES:
            raise _Refused(line, path, f"aliases expand to more than {MAX_ALIAS_VALUES:,} "
                           "values (the limit MAX_ALIAS_VALUES; nested aliases multiply: a "
                           "'billion laughs').", "write the values out, or alias less.")
        if depth + target.depth > MAX_YAML_DEPTH + 1:
            raise _Refused(line, path, f"the alias *{name} nests the document deeper than "
                           f"{MAX_YAML_DEPTH} levels (the limit MAX_YAML_DEPTH).",
                           "write the value out at a shallower place.")
        return target.value, target.values, target.depth

    def collection_tag(self, event: Any, path: Path_, line: int) -> None:
        tag = event.tag
        want = _TAG + ("seq" if isinstance(event, yaml.SequenceStartEvent) else "map")
        if tag not in (None, "!", want):
            raise _Refused(line, path, f"the YAML tag {tag} is not supported.",
                           "remove the tag: pitstop reads plain mappings and lists.")

    def sequence(self, path: Path_, depth: int) -> tuple[list[Any], int, int]:
        out: list[Any] = []
        count, nested = 1, 1
        while not self.loader.check_event(yaml.SequenceEndEvent):
            value, n, d = self.node((*path, len(out)), depth + 1)
            out.append(value)
            count += n
            nested = max(nested, d + 1)
        self.loader.get_event()
        return out, count, nested

    def mapping(self, path: Path_, depth: int) -> tuple[dict[str, Any], int, int]:
        out: dict[str, Any] = {}
        key_lines: dict[str, int] = {}
        count, nested = 1, 1
        while not self.loader.check_event(yaml.MappingEndEvent):
            key, line = self.key(path)
            if key in key_lines:
                raise _Refused(line, (*path, key), f"the key {key!r} is given twice, on lines "
                               f"{key_lines[key]} and {line} (YAML would keep only the last, "
                               "which is not what a reader of the first sees).",
                               "remove one of them.")
            key_lines[key] = line
            value, n, d = self.node((*path, key), depth + 1)
            out[key] = value
            count += n
            nested = max(nested, d + 1)
        self.loader.get_event()
        return out, count, nested

    def key(self, path: Path_) -> tuple[str, int]:
        """A mapping key: its text as written (``on`` stays ``on``; YAML 1.1 would read the
        boolean true)."""
        event = self.loader.peek_event()
        line = event.start_mark.line + 1
        if not isinstance(event, yaml.ScalarEvent):
            raise _Refused(line, path, "a key must be text, not a list, a mapping or an alias.",
                           "write the key as plain text.")
        self.loader.get_event()
        if event.tag is None and event.implicit[0] and event.value == "<<":
            raise _Refused(line, (*path, "<<"), "YAML merge keys (<<) are not supported.",
                           "write the keys out.")
        self.check_text(event.value, line, (*path, event.value), "key")
        if event.anchor is not None:
            raise _Refused(line, path, "anchors on keys are not supported.",
                           "remove the &anchor from the key.")
        return event.value, line

    def check_text(self, text: str, line: int, path: Path_, what: str) -> None:
        bad = forbidden_character(text)
        if bad is not None:
            raise _Refused(line, path, f"this {what} holds the control or bidirectional "
                           f"character {bad}, which pitstop refuses (it would hide or reorder "
                           "what a terminal shows).", "remove it, or write the text without it.")

    def scalar(self, event: Any, path: Path_, line: int) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag not in _SCALAR_TAGS:
            raise _Refused(line, path, f"the YAML tag {tag} is not supported.",
                           "remove the tag; quote the value if it is text.")
        if tag == _TAG + "str":
            self.check_text(event.value, line, path, "value")
            return event.value
        if tag == _TAG + "int" and len(event.value) > 40:
            raise _Refused(line, path, f"an integer of {len(event.value)} characters is larger "
                           "than any field accepts.", "write a smaller number.")
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            value = self.loader.yaml_constructors[tag](self.loader, node)
        except (ValueError, KeyError, TypeError, OverflowError, AttributeError, IndexError,
                yaml.YAMLError) as exc:
            shown = event.value if len(event.value) <= 40 else event.value[:37] + "..."
            kind = tag.removeprefix(_TAG)
            what = {"timestamp": "a date", "bool": "a boolean", "int": "an integer",
                    "float": "a number", "null": "null"}.get(kind, kind)
            detail = (str(exc) if isinstance(exc, ValueError | OverflowError)
                      else "not written as one")
            raise _Refused(line, path, f"{shown!r} is not {what} ({detail}).",
                           "quote the value if it is text, or write a valid one "
                           "(dates as YYYY-MM-DD).") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise _Refused(line, path, f"{event.value!r} is not a finite number.",
                           "write a finite number.")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT64:
            raise _Refused(line, path, f"{event.value!r} is beyond a 64-bit integer.",
                           "write a smaller number.")
        if tag in _NON_TEXT and event.implicit[0]:
            self.raw[path] = event.value
        return value


def _line_of(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _compose(text: str, file: str) -> list[_Doc]:
    m = _BAD_RAW.search(text)
    if m is not None:
        line, col = _line_of(text, m.start())
        raise ConfigError([ConfigProblem(
            file, line, "", f"column {col}: the control or bidirectional character "
            f"U+{ord(m[0]):04X} is not allowed in a configuration file.",
            "remove it (an editor may show it as ^@, ^? or not at all).")])
    loader = _Loader(text)
    docs: list[_Doc] = []
    composer = _Composer(loader)
    try:
        loader.get_event()  # StreamStartEvent
        while not loader.check_event(yaml.StreamEndEvent):
            if len(docs) >= MAX_DOCUMENTS:
                raise _Refused(None, (), f"the file holds more than {MAX_DOCUMENTS:,} documents "
                               "(the limit MAX_DOCUMENTS).", "split it into several files.")
            data, start = composer.document()
            docs.append(_Doc(file, data, composer.lines, start, composer.raw))
    except _Refused as exc:
        raise ConfigError([ConfigProblem(file, exc.line, _field_path(exc.path), exc.message,
                                         exc.fix)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = mark.line + 1 if mark is not None else None
        what = exc.problem or "not valid YAML"
        if "maximum nesting depth" in what:  # libyaml's own bound, far past pitstop's
            raise ConfigError([ConfigProblem(
                file, at, "", f"the document nests deeper than {MAX_YAML_DEPTH} levels (the "
                "limit MAX_YAML_DEPTH).", "no pitstop field nests so deep: check the brackets "
                "and indentation.")]) from None
        raise ConfigError(
            [
                ConfigProblem(
                    file, at, "", f"YAML syntax error: {what}" + (
                        f" ({exc.context})" if exc.context else ""
                    ) + ".",
                    "check indentation and quoting on that line and the one before it.",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"not valid YAML: {exc}.",
                                         "check the file's encoding and characters.")]) from None
    finally:
        loader.dispose()
    return docs


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


@functools.cache
def _words(model: type[BaseModel]) -> list[str]:
    """The sorted vocabulary of ``model`` (computed once per kind)."""
    return sorted(_vocabulary(model))


def _model_args(annotation: Any) -> Iterable[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _model_args(arg)


def _field_path(loc: Sequence[str | int]) -> str:
    text = ""
    if len(loc) > 12:  # a runaway nesting: its start and its end say where
        return f"{_field_path(loc[:6])}...{_field_path(loc[-2:])}"
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


# Upper bounds of fields, named in the message of a value above them.
_NAMED_BOUNDS: dict[object, str] = {
    MAX_GATE_COUNT: "MAX_GATE_COUNT",
    MAX_PARALLELISM: "MAX_PARALLELISM",
    MAX_LATENCY_MS: "MAX_LATENCY_MS: an hour",
    MAX_QUANTITY: "MAX_QUANTITY: int64, as Kubernetes quantities",
    MAX_COUNT: "MAX_COUNT: int32, as counts of the Kubernetes API",
}


def _problems(doc: _Doc, exc: ValidationError, model: type[BaseModel]) -> list[ConfigProblem]:
    out: list[ConfigProblem] = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        # Drop pydantic's union/validator tags such as 'str' or 'int' that are not YAML keys.
        while loc and isinstance(loc[-1], str) and tuple(loc) not in doc.lines and len(loc) > 1 \
                and tuple(loc[:-1]) in doc.lines and err["type"] not in ("missing",
                                                                          "extra_forbidden"):
            loc = loc[:-1]
        keyed = (err.get("ctx") or {}).get("error")
        if isinstance(keyed, LabelError):  # a map's entry: name the key, on its own line
            loc = [*loc, keyed.key]
        field_name = _field_path(loc)
        kind = err["type"]
        msg = str(err["msg"]).removeprefix("Value error, ")
        fix = ""
        if kind == "missing":
            msg = "this field is required but missing."
            fix = f"add `{loc[-1]}:` here." if loc else ""
        elif kind == "extra_forbidden":
            key = str(loc[-1]) if loc else ""
            close = difflib.get_close_matches(key, _words(model), n=1)
            msg = f"unknown field {key!r}."
            fix = f"did you mean `{close[0]}`?" if close else "remove it (keys are camelCase)."
        else:
            msg, _, fix = msg.partition(" Fix: ")
            bound = (err.get("ctx") or {}).get("le")
            if kind == "less_than_equal" and bound in _NAMED_BOUNDS:
                msg = msg.rstrip(".") + f" (the limit {_NAMED_BOUNDS[bound]})"
                fix = fix or f"write at most {bound}."
            if not msg.endswith("."):
                msg += "."
            got = err.get("input")
            if isinstance(got, str) and ("\n" in got or "PRIVATE KEY" in got):
                msg += " (the value is not shown: it may be a secret)"
            elif (isinstance(got, str | int | float | bool) or got is None) and (
                    kind != "value_error"):  # pitstop's own checks name the value
                msg += f" Got {_shown(got)}."
            written = doc.raw.get(tuple(loc))
            if written is not None and kind == "string_type":
                msg += (f" YAML read the unquoted {written!r} as {_shown(got)}; quote it to "
                        "keep it as text.")
                fix = fix or f"write \"{written}\"."
            if fix:
                fix = fix if fix.endswith((".", "?")) else fix + "."
            elif kind.endswith(("_type", "_parsing")) or kind in ("literal_error", "enum"):
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
            f"expected {API_VERSION!r}, got {_shown(api_version)}.",
            f"write `apiVersion: {API_VERSION}`.",
        )])
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError([ConfigProblem(
            doc.file, doc.lines.get(("kind",), doc.start_line), "kind",
            f"unknown kind {_shown(kind)}.", f"use one of {', '.join(sorted(KINDS))}.",
        )])
    model = KINDS[kind]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(doc, exc, model)) from None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:76] + "...'"


def _capped(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """At most MAX_PROBLEMS problems, and a last one counting the rest."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    rest = problems[MAX_PROBLEMS:]
    files = sorted({p.file for p in rest})
    return [*problems[:MAX_PROBLEMS], ConfigProblem(
        ", ".join(files[:3]) + (", ..." if len(files) > 3 else ""), None, "",
        f"{len(rest)} more problems are not shown (the limit MAX_PROBLEMS is "
        f"{MAX_PROBLEMS}).", "fix those shown first.")]


def load_documents(text: str, file: str = "<input>") -> list[BaseModel]:
    """Validate every document of one YAML text; all problems of a document are reported."""
    problems: list[ConfigProblem] = []
    objects: list[BaseModel] = []
    for doc in _compose(text, file):
        try:
            objects.append(_validate(doc))
        except ConfigError as exc:
            problems.extend(exc.problems)
        if len(problems) > MAX_PROBLEMS:
            break
    if problems:
        raise ConfigError(_capped(problems))
    return objects


def _read(path: Path, given: str, option: str = "-f") -> str | ConfigProblem:
    """The text of one ``-f`` file (or of ``option``), read with the size cap, or the problem
    that stopped it."""
    if not given.strip():
        return ConfigProblem(option, None, "", "an empty path was given.",
                             f"pass the path of a file, e.g. {option} "
                             f"{'fleet.yaml' if option == '-f' else 'FILE'}.")
    try:
        if path.is_dir():
            return ConfigProblem(str(path), None, "", "this is a directory, not a file.",
                                 "pass a YAML file inside it, e.g. -f "
                                 f"{path / 'fleet.yaml'}.")
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return ConfigProblem(str(path), None, "", "file not found.",
                             f"check the path given to {option}.")
    except OSError as exc:
        return ConfigProblem(str(path), None, "", f"cannot read: {exc.strerror or exc}.",
                             "check the path and its permissions.")
    if len(data) > MAX_FILE_BYTES:
        return ConfigProblem(str(path), None, "", f"the file is larger than "
                             f"{MAX_FILE_BYTES // 2**20} MiB (the limit MAX_FILE_BYTES).",
                             "pass a configuration file; split a very large fleet into "
                             "several files.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return ConfigProblem(str(path), line, "", f"not UTF-8 text (byte {exc.start + 1}: "
                             f"{exc.reason}).", "save the file as UTF-8.")


# Kinds of which one object may be given: the LoadedConfig attribute, and how to fix a second.
_SINGLE: dict[str, tuple[str, str]] = {
    "UpgradePolicy": ("policy", "merge the policies into one object."),
    "UpgradeTarget": ("target", "keep one target object, or use --target."),
    "FaultScenario": ("faults", "list every fault in one FaultScenario object."),
    "HostInventory": ("hosts", "list every cluster in one HostInventory object."),
    "JudgeConfig": ("judge", "list every metric in one JudgeConfig object."),
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
        text = _read(path, str(p))
        if isinstance(text, ConfigProblem):
            problems.append(text)
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
        raise ConfigError(_capped(problems))
    if clusters and fleet_meta is not None:
        out.fleet = Fleet.model_construct(
            api_version=API_VERSION,
            kind="Fleet",
            metadata=fleet_meta,
            spec=FleetSpec.model_construct(clusters=[c for _, c in clusters.values()]),
        )
    return out


def load_judge_config(path: str | Path, option: str = "--config") -> JudgeConfig:
    """The one JudgeConfig object of the file at ``path`` (``pitstop judge --config``)."""
    text = _read(Path(path), str(path), option)
    if isinstance(text, ConfigProblem):
        raise ConfigError([text])
    objects = load_documents(text, str(path))
    judges = [o for o in objects if isinstance(o, JudgeConfig)]
    others = [o for o in objects if not isinstance(o, JudgeConfig)]
    if others or len(judges) != 1:
        what = (f"a {type(others[0]).__name__} object" if others
                else f"{len(judges)} JudgeConfig objects")
        raise ConfigError([ConfigProblem(str(path), None, "kind", f"the file holds {what}; "
                                         f"{option} takes one JudgeConfig object.",
                                         "write one document with `kind: JudgeConfig`.")])
    return judges[0]


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
