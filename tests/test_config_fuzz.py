"""Hostile configuration files: a seeded, deterministic fuzz of the loader and of what runs
after it (issue: ~15 internal errors and hangs from a 4,000-case fuzz of the config files).

Every input is written to a file and read with :func:`pitstop.config.load_files`. When it
loads, it is planned with the objects it did not replace, exactly as ``pitstop plan`` does in
process (``make_plan``, ``schedule_plan``, the JSON plan document). A sample also goes through
the command line (``pitstop validate`` then ``pitstop plan`` with click's CliRunner, as JSON, a
table or Markdown). What must
hold for every input:

* no exception but :class:`~pitstop.errors.PitstopError` (a ``ConfigError`` when loading), no
  exit code 3;
* every problem names its file (the path given, or ``-f`` for a path that is not one);
* no input runs past :data:`PER_INPUT_S` seconds: a per-input alarm stops it and the test fails
  naming the input (a bound on hangs, not a speed assertion);
* what ``validate`` accepts, ``plan`` accepts too (it may block: exit 1, never 2 or 3).

The inputs are mutations of the shipped examples (``src/pitstop/examples``), of a small fleet
cut out of the example fleet, and of a FaultScenario and a HostInventory, by category: hostile
scalars, hostile names, keys (duplicates, YAML 1.1 booleans, merge keys, non-text), structure
(alias bombs, recursive aliases, nesting, tags, many documents), bytes (control characters,
flips, truncation, invalid UTF-8), files (``""``, a directory, ``/dev/zero``, a file over the
size limit) and the ``--now``/``--start``/``--target`` options. The same seeds give the same
inputs on every run.
"""

from __future__ import annotations

import json
import random
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import pytest
import yaml
from click.testing import CliRunner

import pitstop.catalog
from pitstop.calendar import schedule_plan
from pitstop.catalog import Catalog, load_catalog
from pitstop.cli.main import main
from pitstop.config import LoadedConfig, load_files
from pitstop.errors import ConfigError, PitstopError
from pitstop.model import Fleet, Metadata, UpgradePolicy, UpgradeTarget
from pitstop.model.limits import MAX_FILE_BYTES
from pitstop.planner import make_plan
from pitstop.render import plan_document

EXAMPLES = Path(__file__).resolve().parent.parent / "src" / "pitstop" / "examples"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
PER_INPUT_S = 5.0
TARGET = "kubernetes=1.36.5,containerd=2.3.7,etcd=3.6.8"

# Inputs per category (≥ 10,000 in all); each category has its own seed.
SIZES = {"scalars": 3600, "names": 1200, "keys": 1500, "structure": 900, "bytes": 2800,
         "files": 12, "options": 40}
CLI_EVERY = 60  # every 60th input of the file categories also goes through the CLI


def _small_fleet() -> str:
    """The example fleet's first cluster, cut to two nodes per pool: cheap to load and plan,
    yet with every part (HA control plane, etcd members, pools, workloads, PDBs, add-ons)."""
    doc = yaml.safe_load((EXAMPLES / "fleet.yaml").read_text())
    cluster = doc["spec"]["clusters"][0]
    for pool in cluster["nodePools"]:
        pool["nodes"] = pool["nodes"][:2]
    names = {n["name"] for p in cluster["nodePools"] for n in p["nodes"]}
    for w in cluster.get("workloads", []):
        if w.get("nodes"):
            w["nodes"] = [n for n in w["nodes"] if n in names] or sorted(names)[:1]
    doc["spec"]["clusters"] = [cluster]
    return str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100))


FAULTS = """\
apiVersion: pitstop.dev/v1alpha1
kind: FaultScenario
metadata: {name: bad-night}
spec:
  faults:
  - {type: canaryErrorRate, cluster: staging-eu, pool: general, errorRate: 0.25}
  - {type: runtimeUpgradeFails, cluster: staging-eu, nodes: [stg-gen-01]}
  - {type: nodeNeverReady, pool: general, count: 1, component: kubelet}
  - {type: apiserverLatency, afterSteps: 2, latencyMs: 1500}
  - {type: pdbNeverAllows, pdb: shop/checkout}
  - {type: processCrash, at: 2h}
"""

HOSTS = """\
apiVersion: pitstop.dev/v1alpha1
kind: HostInventory
metadata: {name: lab}
spec:
  parallelism: 4
  clusters:
  - name: staging-eu
    ssh: {user: pitstop, port: 2222, identityFile: /etc/pitstop/id_ed25519,
          knownHostsFile: /etc/pitstop/known_hosts, connectTimeout: 10s}
    nodes:
    - name: stg-gen-01
      address: 10.0.0.7
      packageManager: apt
      runtime:
        control: {type: systemd, unit: containerd}
      verify:
      - {name: app-answers, command: "curl -fsS http://127.0.0.1:8080/healthz", timeout: 20s}
    - {name: stg-gen-02, local: true, runtime: {name: docker}}
    etcd:
      token: lab-etcd
      binaries: {"3.5.26": /opt/etcd-3.5.26, "3.6.8": /opt/etcd-3.6.8}
      control: {type: local-process, runDir: /var/lib/pitstop/etcd}
      snapshotDir: /var/backups/etcd
      restoreDir: /var/lib/etcd-restored
      members:
      - {name: etcd-1, clientUrl: "http://10.0.0.1:2379", peerUrl: "http://10.0.0.1:2380",
         dataDir: /var/lib/etcd}
"""

BASES: dict[str, str] = {
    "small-fleet": _small_fleet(),
    "fleet": (EXAMPLES / "fleet.yaml").read_text(),
    "policy": (EXAMPLES / "policy.yaml").read_text(),
    "target": (EXAMPLES / "target.yaml").read_text(),
    "faults": FAULTS,
    "hosts": HOSTS,
}
# How often each base is mutated: the full example fleet is slow to plan, so it is rarer.
WEIGHTS = {"small-fleet": 40, "fleet": 3, "policy": 30, "target": 10, "faults": 8, "hosts": 9}

# -- hostile values, as YAML source text ------------------------------------------------------

BIG = ["9223372036854775807", "9223372036854775808", "10000000", "2147483647", "2147483648",
       "-1", "-300", "-900", "-1000000000000", "0", "1" + "0" * 400, "9" * 4301, "9" * 5000,
       "0x7fffffffffffffff", "-0o777", "1_000_000", "190:20:30", "+12", "1e400", "99999999999"]
FLOATS = [".inf", "-.inf", ".nan", ".NaN", "1.0e+400", "-1.0e+400", "1.0e-400", "0.000001",
          "-0.0", "1.5", "1.30", "3.14159265358979323846264338327950288"]
DATES = ["2026-02-30", "2026-13-01", "0001-01-01", "9999-12-31", "1969-12-31", "1970-01-01",
         "8999-12-31", "9000-01-01", "2026-06-01T25:00:00Z", "9999-12-31T23:59:59-05:00",
         "0001-01-01T00:00:00+14:00", "2026-06-01 10:00:00 +99", "2026-06-01t10:00:00.999999999z",
         "'9999-12-31'", "'0001-01-01T00:00:00+14:00'", "'2026-02-30'"]
SPECIAL = ["yes", "no", "on", "off", "y", "n", "~", "null", "true", "False", "!!bool 'maybe'",
           "!!int 'x'", "!!float 'y'", "!!timestamp 'z'", "!!null 'q'", "!!binary aGVsbG8=",
           "!!python/object:os.system x", "!custom x", "!!str", "!!set {a, b}", "!!omap [a: 1]",
           "!!pairs [a: 1]", "{}", "[]", "[[[[[[[[]]]]]]]]", "{a: {b: {c: {d: 1}}}}", "*nothing",
           "&a [*a]", "'", '"', "{", "[", "|", ">", "&x 1", "? a", "- a", ": x"]
TEXTS = ['"stg-gen-01[/nope]"', '"[bold]x[/bold]"', '"[link=file:///etc/passwd]x[/link]"',
         '"../../x"', '"../../../etc/passwd"', '"/etc/passwd"', '"a/b"', '"a\\x1b[31mred"',
         '"bell\\a"', '"nul\\0x"', '"esc\\e]0;title\\a"', '"rtl\\u202eevil"', '"iso\\u2066x"',
         '"nel\\Nx"', '"ls\\Lx"', '"tab\\tx"', '"line\\nbreak"', '"cr\\rx"', '"del\\x7f"',
         '"c1\\x9b31m"', '"' + "a" * 300 + '"', '"' + "a" * 254 + '"', '"' + "a" * 64 + '"',
         '"' + "x" * 70000 + '"', '"Europe"', '"localtime"', '"posixrules"', '"Factory"',
         '"UTC"', '"Etc/GMT+14"', '"Mars/Olympus"', '"../zoneinfo/UTC"', '"America/"', '""',
         '" "', '"CAPS"', '"a..b"', '".hidden"', '"-lead"', '"trail-"', '"%2e%2e"', '"*"',
         '"ünïcödé"', '"日本"', '"a b"', '"a:b"', '"$(reboot)"', '"`id`"', '"; rm -rf /"',
         '"--help"', '"-oProxyCommand=x"', '"PRIVATE KEY"', '"\\uFEFFbom"', '"\\u200bzw"']
DURATIONS = ['"-5m"', '"1e400s"', '"' + "9" * 400 + 's"', '"P-1D"', '"-P1D"', '"P99999999D"',
             '"P1000D"', '"PT0S"', '"0s"', '"367d"', '"366d"', '"52w2d"', '"1w1d"', '"500ms"',
             '"1.5h"', '"1h30m"', '"' + "1h" * 200 + '"', '"1.0.0s"', '"5 m"', '"inf s"', "300",
             "-300", "1e10", "31622400", "31622401"]
QUANTITIES = ['"' + "9" * 400 + 'Gi"', '"' + "9" * 30 + 'Ei"', '"1e3"', '"15650m"', '"0.0001"',
              '"8Ei"', '"7Ei"', '"16Ei"', '"-1Gi"', '"1.5"', '"9223372036854775807m"',
              '"9223372036854775808"', '"1.' + "9" * 29 + '"', '"101%"', '"-1%"',
              '"' + "9" * 50 + '%"', '"100%"', '"0%"', '"25 %"', '"2147483648"']
VERSIONS = ['"1.999999999999.0"', '"1.999999999.0"', '"1.2.3-' + "a" * 200 + '"', '"v1.35.8"',
            "1.30", "1.35", '"01.2.3"', '"1.35.8-rc.1"', '"1.6.20~ds1-1+deb12u3"',
            '"' + "9" * 5000 + '.1.1"', '"1.36.5"', '"3.6.8"', '"0.0.0"']
HOSTILE = BIG + FLOATS + DATES + SPECIAL + TEXTS + DURATIONS + QUANTITIES + VERSIONS

NAMES = ['"stg-gen-01[/nope]"', '"stg-gen-01\\x1b[31m\\x07"', '"../../x"', '"../../../tmp/x"',
         '"a/b"', '"a..b"', '"A-Upper"', '"under_score"', '"' + "a" * 64 + '"',
         '"' + "a" * 253 + '"', '"' + "a" * 254 + '"', '"' + "a" * 300 + '"', '"ok.dotted.name"',
         '"ok-name"', '"x"', '""', '"-x"', '"x-"', '"x."', '"10.0.0.1"', '"::1"', '"*"',
         '"m5.large"', '"Standard_D4s_v3"', '"name with space"', '"ünï"', '"a\\tb"',
         '"[red]x"', '"$(id)"', '"x;y"', '"%"', '"."', '".."', '"x\\u202e"', "123", "on",
         "~", "1.5", "[a, b]", "{a: b}"]
NAME_KEYS = {"name", "namespace", "nodePool", "pool", "cluster", "pdb", "instances", "nodes",
             "pools", "address", "user", "component", "unit", "key", "values", "kind",
             "apiVersion", "timeZone", "metric", "approvedBy", "approvers"}

KEYS = ["on", "yes", "no", "off", "y", "true", "null", "~", "'<<'", "<<", "'on'", "1", "1.5",
        "2026-01-01", "[a]", "{a: b}", "? [x]", "!!int 1", "&k key", "*k", '"ke\\x1by"',
        '"' + "k" * 300 + '"', '""', "kubelet", "Name", "max-unavailable", "maxunavailable",
        "example.com/ok", "a/b/c", "-bad", "bad-", "kubernetes.io/" + "x" * 64, '"k\\u202e"',
        "matchLabels", "spec", "apiVersion", "kind"]

LABEL_KEYS = ["on", "yes", "'<<'", "example.com/ok", "a/b/c", "-bad", "x" * 64, "x" * 63,
              "Ünï", "app", "pitstop.dev/context", "taint.pitstop.dev/dedicated", "/x", "x/",
              "kubernetes.io/" + "x" * 63, "a" * 254 + "/x", '"k\\x1b"', '"k\\u202e"', "1", "~"]
LABEL_VALUES = ['"ok"', '""', '"x y"', '"' + "v" * 64 + '"', '"v" ', '"-v"', "yes", "1", "~",
                '"a:b"', '":NoSchedule"', '"gpu:NoSchedule,spot:NoExecute"', '"v\\x1b"',
                '"arn:aws:eks:eu-central-1:123456789012:cluster/prod"', "[a]", "{a: b}",
                '"[/nope]"']

_SLOT = re.compile(r"(?P<key>[A-Za-z][-A-Za-z0-9./]*): (?P<val>[^,{}\[\]\n#]*[^,{}\[\]\n# ])")


@dataclass(frozen=True)
class Case:
    category: str
    index: int
    base: str  # which BASES entry it mutates ("" for file cases)
    what: str  # the mutation, for the failure message
    text: bytes | None  # file content; None: ``special`` names the path
    special: str = ""  # "", "empty-path", "directory", "dev-zero", "missing", "big", ...
    options: tuple[str, ...] = ()  # --now/--start of the CLI run ("options" category)
    target: str = TARGET  # --target of the CLI run

    def __str__(self) -> str:
        return f"{self.category} #{self.index} ({self.base or self.special}: {self.what})"


# -- mutators ----------------------------------------------------------------------------------


def _slots(text: str) -> list[re.Match[str]]:
    return list(_SLOT.finditer(text))


def _replace_value(rng: random.Random, text: str, values: list[str],
                   keys: set[str] | None = None) -> tuple[str, str]:
    slots = [m for m in _slots(text) if keys is None or m["key"] in keys]
    if not slots:
        return text, "no slot"
    m = rng.choice(slots)
    value = rng.choice(values)
    return text[:m.start("val")] + value + text[m.end("val"):], f"{m['key']}: {value[:40]}"


def _pick_base(rng: random.Random) -> str:
    names = list(WEIGHTS)
    return rng.choices(names, weights=[WEIGHTS[n] for n in names])[0]


def _scalars(rng: random.Random) -> tuple[str, str, str]:
    base = _pick_base(rng)
    text, what = BASES[base], []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        text, w = _replace_value(rng, text, HOSTILE)
        what.append(w)
    return base, text, "; ".join(what)


def _names(rng: random.Random) -> tuple[str, str, str]:
    base = _pick_base(rng)
    text, what = _replace_value(rng, BASES[base], NAMES, NAME_KEYS)
    if rng.random() < 0.3:  # a label key or value instead
        lines = text.split("\n")
        at = [i for i, line in enumerate(lines) if re.search(r"(labels|matchLabels): \{", line)]
        if at:
            i = rng.choice(at)
            entry = f"{rng.choice(LABEL_KEYS)}: {rng.choice(LABEL_VALUES)}, "
            lines[i] = re.sub(r"(labels|matchLabels): \{", lambda m: m[0] + entry, lines[i],
                              count=1)
            text, what = "\n".join(lines), f"label entry {entry[:60]}"
    return base, text, what


def _keys(rng: random.Random) -> tuple[str, str, str]:
    base = _pick_base(rng)
    lines = BASES[base].split("\n")
    block = [i for i, line in enumerate(lines) if re.match(r"^\s*(- )?[A-Za-z][\w]*: ", line)]
    i = rng.choice(block)
    line = lines[i]
    indent = re.match(r"^\s*(- )?", line)
    assert indent is not None
    pad = " " * len(indent[0])
    op = rng.randrange(4)
    if op == 0:  # the same key again, with another value (the maxUnavailable: 0 / 1 case)
        key = line[len(indent[0]):].split(":", 1)[0]
        lines.insert(i + 1, f"{pad}{key}: {rng.choice([*HOSTILE[:30], '1', '0', 'x'])}")
        return base, "\n".join(lines), f"duplicate {key} after line {i + 1}"
    if op == 1:  # rename the key
        key = rng.choice(KEYS)
        rest = line[len(indent[0]):].split(":", 1)[1]
        lines[i] = f"{indent[0]}{key}:{rest}"
        return base, "\n".join(lines), f"key {key[:40]} on line {i + 1}"
    if op == 2:  # add a key
        key = rng.choice(KEYS)
        lines.insert(i + 1, f"{pad}{key}: {rng.choice(['x', '1', '{}', 'on'])}")
        return base, "\n".join(lines), f"extra key {key[:40]} after line {i + 1}"
    flow = [j for j, line in enumerate(lines) if "{" in line]  # a key inside a flow mapping
    if not flow:
        return base, "\n".join(lines), "no flow mapping"
    j = rng.choice(flow)
    key = rng.choice(KEYS)
    lines[j] = lines[j].replace("{", "{" + f"{key}: 1, ", 1)
    return base, "\n".join(lines), f"flow key {key[:40]} on line {j + 1}"


def _bomb(levels: int, width: int) -> str:
    out = ["bomb:", f"  l0: &l0 [{', '.join(['lol'] * width)}]"]
    for k in range(1, levels):
        out.append(f"  l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * width)}]")
    return "\n".join(out)


def _structure(rng: random.Random) -> tuple[str, str, str]:
    base = _pick_base(rng)
    text = BASES[base]
    op = rng.randrange(9)
    if op == 0:  # billion laughs at the top level or inside metadata
        levels, width = rng.randint(2, 9), rng.randint(2, 10)
        bomb = _bomb(levels, width)
        if rng.random() < 0.5:
            return base, text + "\n" + bomb + "\n", f"alias bomb {levels}x{width} at the end"
        nested = bomb.replace("\n", "\n    ").replace("bomb:", "annotations:", 1)
        return base, re.sub(r"(?m)^metadata:.*$", "metadata:\n  name: bomb\n  " + nested,
                            text, count=1), f"alias bomb {levels}x{width} in metadata"
    if op == 1:  # recursive aliases
        forms = ["&a [*a]", "&a {x: *a}", "&a [1, [2, *a]]", "&a {k: [*a]}"]
        form = rng.choice(forms)
        text, what = _replace_value(rng, text, [form])
        return base, text, f"recursive alias {what}"
    if op == 2:  # deep nesting, flow or block
        depth = rng.choice([10, 60, 63, 64, 65, 100, 990, 5000, 100_000])
        kind = rng.randrange(3)
        if kind == 0:
            nested = "[" * depth + "]" * depth
        elif kind == 1:
            nested = "{a: " * depth + "1" + "}" * depth
        else:
            nested = "\n" + "\n".join("  " * (k + 2) + "a:" for k in range(min(depth, 3000))) + " 1"
        text, what = _replace_value(rng, text, [nested])
        return base, text, f"nesting {depth} ({('flow list', 'flow map', 'block')[kind]}) {what}"
    if op == 3:  # anchors and aliases that are fine, and merge keys that are not
        text, what = _replace_value(rng, text, ["&x v1", "*x", "<<: *x", "{<<: {a: 1}}",
                                                "&y {a: 1}", "!!map {a: 1}", "!!seq [1]"])
        return base, text, f"anchor/alias {what}"
    if op == 4:  # many documents
        n = rng.choice([2, 3, 10, 1000, 10_001])
        doc = rng.choice(["---\n", "--- ~\n", "--- {}\n", "--- []\n", "---\n" + text])
        return base, text + "\n" + doc * n if len(doc) < 50 else text + "\n" + doc * min(n, 3), \
            f"{n} more documents"
    if op == 5:  # explicit tags on collections
        tag = rng.choice(["!!omap", "!!set", "!!pairs", "!!python/tuple", "!foo", "!!str",
                          "!!binary", "!!timestamp"])
        lines = text.split("\n")
        i = rng.randrange(len(lines))
        lines[i] = re.sub(r": (\{|\[)", lambda m: f": {tag} {m[1]}", lines[i], count=1)
        return base, "\n".join(lines), f"tag {tag} on line {i + 1}"
    if op == 6:  # a document that is not a mapping
        doc = rng.choice(["[]", "1", "~", "'x'", "[apiVersion, kind]", "!!set {}", "&a *a"])
        return base, doc + "\n", f"document {doc}"
    if op == 7:  # the same object twice, or a second kind in the same file
        other = rng.choice(list(BASES.values()))
        return base, text + "\n---\n" + other, "two documents"
    # an anchor used far from where it is defined, and aliases of aliases (all fine)
    return base, text.replace("metadata:", "metadata: &meta", 1) + "\nextra: *meta\n", \
        "alias of metadata"


_RAW = ["\x00", "\x7f", "\x1b", "\x07", "\x85", "\u202e", "\u2066", "\ufeff", "\r", "\t",
        "\x0c", "\x9b", "\u2028", "\ud7ff", "\ue000", "\U0001f600"]


def _bytes(rng: random.Random) -> tuple[str, bytes, str]:
    base = _pick_base(rng)
    data = bytearray(BASES[base].encode("utf-8"))
    op = rng.randrange(7)
    at = rng.randrange(len(data))
    if op == 0:  # a character YAML or pitstop refuses, raw
        ch = rng.choice(_RAW)
        data[at:at] = ch.encode("utf-8", "surrogatepass")
        return base, bytes(data), f"raw U+{ord(ch):04X} at byte {at}"
    if op == 1:  # random bytes, including invalid UTF-8
        n = rng.randint(1, 8)
        data[at:at] = bytes(rng.randrange(256) for _ in range(n))
        return base, bytes(data), f"{n} random bytes at {at}"
    if op == 2:  # flip bits
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        return base, bytes(data), "bit flips"
    if op == 3:  # truncate
        return base, bytes(data[:at]), f"truncated at {at}"
    lines = bytes(data).split(b"\n")
    i = rng.randrange(len(lines))
    if op == 4:  # delete or duplicate a line
        if rng.random() < 0.5:
            del lines[i]
            return base, b"\n".join(lines), f"line {i + 1} deleted"
        lines.insert(i, lines[i])
        return base, b"\n".join(lines), f"line {i + 1} twice"
    if op == 5:  # indentation
        lines[i] = (b"  " + lines[i]) if rng.random() < 0.5 else lines[i][2:]
        return base, b"\n".join(lines), f"line {i + 1} re-indented"
    j = rng.randrange(len(lines))  # swap two lines
    lines[i], lines[j] = lines[j], lines[i]
    return base, b"\n".join(lines), f"lines {i + 1} and {j + 1} swapped"


def cases(category: str) -> list[Case]:
    """The inputs of one category: the same on every run (a seed per category)."""
    rng = random.Random(f"pitstop-config-fuzz/{category}")
    out: list[Case] = []
    n = SIZES[category]
    if category == "files":
        specials = ["empty-path", "directory", "dev-zero", "missing", "big", "dev-null"]
        for i in range(n):
            s = specials[i % len(specials)]
            out.append(Case(category, i, "", s, None, special=s))
        return out
    if category == "options":
        times = ["9999-12-31T23:59:59", "0001-01-01T00:00:00", "1969-12-31T23:59:59Z",
                 "8999-12-31T23:59:59+14:00", "9000-01-01", "2026-06-01T00:00:00+23:59",
                 "garbage", "", "2026-06-01", "1970-01-01T00:00:00-14:00",
                 "9999-12-31T23:59:59.999999+00:00", "2026-02-30T00:00:00Z"]
        targets = [TARGET, "kubernetes=" + "9" * 5000, "kubernetes=1.36.5,\x1b=1.0",
                   "kubernetes=1.999999999999.0", "=,=,=", "coredns=1.14.2,CoreDNS=1.14.2",
                   "kubernetes=1.36.5,etcd=" + "1" * 200, "kube rnetes=1.36.5"]
        for i in range(n):
            opts: tuple[str, ...] = ("--now", "2026-06-01T00:00:00Z")
            target = TARGET
            if i % 3 == 0:
                opts = ("--now", rng.choice(times))
            elif i % 3 == 1:
                opts = (*opts, "--start", rng.choice(times))
            else:
                target = rng.choice(targets)
            out.append(Case(category, i, "small-fleet",
                            " ".join(o[:40] for o in opts) + f" --target {target[:40]!r}",
                            BASES["small-fleet"].encode(), options=opts, target=target))
        return out
    for i in range(n):
        if category == "bytes":
            base, data, what = _bytes(rng)
            out.append(Case(category, i, base, what, data))
            continue
        make: Callable[[random.Random], tuple[str, str, str]] = {
            "scalars": _scalars, "names": _names, "keys": _keys, "structure": _structure}[category]
        base, text, what = make(rng)
        out.append(Case(category, i, base, what, text.encode("utf-8")))
    return out


# -- running one input ---------------------------------------------------------------------------


class Hang(BaseException):
    """Raised by the per-input alarm (a BaseException: no ``except Exception`` swallows it)."""


@contextmanager
def bounded(seconds: float) -> Iterator[None]:
    def ring(_signum: int, _frame: FrameType | None) -> None:
        raise Hang

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def companions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The unmutated files a mutated one is planned with."""
    d = tmp_path_factory.mktemp("companions")
    out = {}
    for name in ("small-fleet", "policy", "target"):
        out[name] = d / f"{name}.yaml"
        out[name].write_text(BASES[name])
    return out


@pytest.fixture(scope="module")
def base_config(companions: dict[str, Path]) -> LoadedConfig:
    return load_files([companions["small-fleet"], companions["policy"], companions["target"]])


def _path_for(case: Case, tmp: Path) -> str:
    if case.special == "empty-path":
        return ""
    if case.special == "directory":
        return str(tmp)
    if case.special == "dev-zero":
        return "/dev/zero"
    if case.special == "dev-null":
        return "/dev/null"
    if case.special == "missing":
        return str(tmp / "nope.yaml")
    p = tmp / f"{case.base or 'input'}.yaml"
    if case.special == "big":  # a valid-looking file, one byte over the limit
        with p.open("wb") as f:
            f.write(b"# " + b"x" * (MAX_FILE_BYTES - 2) + b"\n")
        return str(p)
    assert case.text is not None
    p.write_bytes(case.text)
    return str(p)


def _check_problems(exc: ConfigError, given: set[str], case: Case) -> None:
    assert exc.problems, f"{case}: a ConfigError without problems"
    for p in exc.problems:
        assert p.file and (p.file in given or p.file in ("-f", "--target")
                           or p.file.startswith(tuple(given))), (
            f"{case}: a problem that names no given file: {p.render()!r}")
        assert p.message, f"{case}: a problem without a message"


def _plan(cfg: LoadedConfig, base: LoadedConfig, catalog: Catalog) -> None:
    """Plan what was loaded, with the base objects it did not replace: as ``pitstop plan``."""
    fleet: Fleet | None = cfg.fleet or base.fleet
    policy = cfg.policy or base.policy or UpgradePolicy(metadata=Metadata(name="default"))
    target: UpgradeTarget | None = cfg.target or base.target
    assert fleet is not None and target is not None
    result = make_plan(fleet, target, policy, catalog, now=NOW)
    labels = {c.name: c.full_labels for c in fleet.spec.clusters}
    schedule = schedule_plan(result, policy, labels, NOW) if result.steps else None
    json.dumps(plan_document(result, schedule), allow_nan=False)


def run_case(case: Case, tmp: Path, base: LoadedConfig, catalog: Catalog) -> tuple[str, float]:
    """Load (and plan) one input; returns (outcome, seconds). Fails the test on an internal
    error, a problem without its file, or a hang."""
    start = time.perf_counter()
    path = _path_for(case, tmp)
    outcome = "loaded"
    try:
        with bounded(PER_INPUT_S):
            try:
                cfg = load_files([path])
            except ConfigError as exc:
                _check_problems(exc, {path}, case)
                outcome = "refused"
            else:
                try:
                    _plan(cfg, base, catalog)
                    outcome = "planned"
                except PitstopError:
                    outcome = "plan refused"
    except Hang:
        pytest.fail(f"{case}: still running after {PER_INPUT_S} s (a hang)")
    except AssertionError:
        raise
    except Exception as exc:  # any other exception is the bug this test hunts
        pytest.fail(f"{case}: internal error {type(exc).__name__}: {str(exc)[:300]}")
    return outcome, time.perf_counter() - start


# -- the command line: validate, then plan, in process ---------------------------------------


@pytest.fixture(scope="module")
def cached_catalog() -> Iterator[None]:
    """Each command loads the shipped catalog (~0.3 s); the real one, loaded once, is reused
    (the inputs here never touch the catalog)."""
    real = pitstop.catalog.load_catalog
    loaded: dict[str | None, Catalog] = {}

    def cached(catalog_dir: str | None = None) -> Catalog:
        if catalog_dir not in loaded:
            loaded[catalog_dir] = real(catalog_dir)
        return loaded[catalog_dir]

    pitstop.catalog.load_catalog = cached  # type: ignore[assignment]
    try:
        yield
    finally:
        pitstop.catalog.load_catalog = real


def run_cli(case: Case, tmp: Path, companions: dict[str, Path]) -> tuple[int, int]:
    """``pitstop validate`` and ``pitstop plan`` on the input (with the companions it does
    not replace): (validate's exit, plan's exit). Fails on exit 3, an unnamed file or a hang."""
    path = _path_for(case, tmp)
    files = [path]
    if case.base in ("policy", "target", "faults", "hosts") or case.special:
        files.append(str(companions["small-fleet"]))
    if case.base not in ("policy",):
        files.append(str(companions["policy"]))
    options = list(case.options or ("--now", "2026-06-01T00:00:00Z"))
    args_f = [a for f in files for a in ("-f", f)]
    runner = CliRunner()
    codes = []
    output = ("json", "table", "markdown")[case.index % 3]  # the renderers see what loaded
    for args in (["validate", *args_f], ["plan", *args_f, "--target", case.target, "-o",
                                          output, *options]):
        try:
            with bounded(PER_INPUT_S):
                r = runner.invoke(main, args, env={"PITSTOP_DEBUG": ""})
        except Hang:
            pytest.fail(f"{case}: pitstop {args[0]} still running after {PER_INPUT_S} s")
        out = r.output
        assert r.exit_code != 3, f"{case}: pitstop {args[0]} exit 3: {out[-600:]}"
        assert r.exception is None or isinstance(r.exception, SystemExit), (
            f"{case}: pitstop {args[0]} raised {r.exception!r}")
        if r.exit_code == 2:
            named = any(f and f in out for f in files) or "-f:" in out or "--now" in out \
                or "--start" in out or "--target" in out
            assert named, f"{case}: pitstop {args[0]} exit 2 names no file: {out[-600:]}"
        codes.append(r.exit_code)
    return codes[0], codes[1]


# -- the tests ---------------------------------------------------------------------------------


def _run_category(category: str, tmp_path: Path, base: LoadedConfig, catalog: Catalog,
                  companions: dict[str, Path]) -> None:
    inputs = cases(category)
    assert len(inputs) == SIZES[category]
    outcomes: dict[str, int] = {}
    slowest = (0.0, "")
    for case in inputs:
        work = tmp_path / f"{case.index % 8}"
        work.mkdir(exist_ok=True)
        outcome, seconds = run_case(case, work, base, catalog)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if seconds > slowest[0]:
            slowest = (seconds, str(case))
        if case.index % CLI_EVERY == 0 or category in ("files", "options"):
            validate, plan = run_cli(case, work, companions)
            assert validate in (0, 2), f"{case}: validate exit {validate}"
            if validate == 0 and category != "options":
                assert plan in (0, 1), (
                    f"{case}: validate accepted it, plan exited {plan} (they must agree)")
            key = f"cli validate {validate}, plan {plan}"
            outcomes[key] = outcomes.get(key, 0) + 1
    print(f"\n{category}: {len(inputs)} inputs, {outcomes}, slowest {slowest[0]:.2f} s: "
          f"{slowest[1]}")
    # Each category must reach the refusals it is about: of the loader, or (options) of plan.
    refused = sum(n for k, n in outcomes.items() if k == "refused" or k.endswith("plan 2"))
    assert refused > 0, f"{category}: no input was refused: {outcomes}"


@pytest.mark.parametrize("category", list(SIZES))
def test_hostile_configuration_files(category: str, tmp_path: Path, base_config: LoadedConfig,
                                     catalog: Catalog, companions: dict[str, Path],
                                     cached_catalog: None) -> None:
    _run_category(category, tmp_path, base_config, catalog, companions)


def test_the_fuzz_covers_at_least_ten_thousand_inputs() -> None:
    counted = sum(len(cases(c)) for c in SIZES)
    assert counted >= 10_000, counted
    # deterministic: the same seed, the same inputs
    assert [c.text for c in cases("bytes")[:50]] == [c.text for c in cases("bytes")[:50]]


def test_the_alarm_bounds_a_hang() -> None:
    """The per-input bound works: a loop that never ends is stopped and reported."""
    def forever() -> None:
        with bounded(0.2):
            while True:
                pass

    with pytest.raises(Hang):
        forever()


def test_mutated_inputs_still_load_and_plan_often(tmp_path: Path, base_config: LoadedConfig,
                                                  catalog: Catalog) -> None:
    """The fuzz reaches the planner: among the scalar and key mutations, many load (a value
    that is only unusual) and are planned, so validate → plan is exercised, not only refusals."""
    outcomes: dict[str, int] = {}
    for case in cases("scalars")[:400]:
        outcome, _ = run_case(case, tmp_path, base_config, catalog)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("planned", 0) >= 40, outcomes
    assert outcomes.get("refused", 0) >= 40, outcomes


def test_bases_load_unmutated(tmp_path: Path) -> None:
    """Every base loads as it is: a refusal in the fuzz comes from its mutation."""
    for name, text in BASES.items():
        p = tmp_path / f"{name}.yaml"
        p.write_text(text)
        load_files([p])

