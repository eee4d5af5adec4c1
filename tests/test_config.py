"""Bad input is reported with file, line, field and fix — never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pitstop.cli.main import main
from pitstop.config import load_documents, load_files, target_from_text
from pitstop.errors import ConfigError, ConfigProblem
from pitstop.model import Fleet, UpgradePolicy
from pitstop.model.limits import MAX_ALIAS_VALUES, MAX_FILE_BYTES, MAX_PROBLEMS

GOOD = """\
apiVersion: pitstop.dev/v1alpha1
kind: Fleet
metadata: {name: t}
spec:
  clusters:
  - name: a
    controlPlane:
      apiServers: [{name: cp1, version: "1.32.4"}]
      controllerManager: {version: "1.32.4"}
      scheduler: {version: "1.32.4"}
    nodePools:
    - name: p
      nodes:
      - name: n1
        kubelet: "1.32.4"
        containerRuntime: {name: containerd, version: "1.7.24"}
"""


def _err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_documents(text, "fleet.yaml")
    return info.value


def test_good_document_loads() -> None:
    (fleet,) = load_documents(GOOD, "fleet.yaml")
    assert fleet.spec.clusters[0].node_pools[0].nodes[0].kubelet == "1.32.4"  # type: ignore[attr-defined]


def test_missing_field_names_line_and_field() -> None:
    exc = _err(GOOD.replace('        kubelet: "1.32.4"\n', ""))
    (p,) = exc.problems
    assert (p.file, p.line) == ("fleet.yaml", 14)
    assert p.field == "spec.clusters[0].nodePools[0].nodes[0].kubelet"
    assert "required" in p.message and "kubelet:" in p.fix


def test_wrong_type() -> None:
    exc = _err(GOOD.replace("name: p\n", "name: p\n      controlPlane: maybe\n"))
    (p,) = exc.problems
    assert p.field == "spec.clusters[0].nodePools[0].controlPlane"
    assert p.line == 13 and "bool" in p.message and "'maybe'" in p.message


def test_unknown_field_suggests_spelling() -> None:
    exc = _err(GOOD.replace("        kubelet:", "        kubelt:"))
    msgs = {p.field: p for p in exc.problems}
    p = msgs["spec.clusters[0].nodePools[0].nodes[0].kubelt"]
    assert p.line == 15 and "`kubelet`" in p.fix


def test_unknown_version_and_float_version() -> None:
    exc = _err(GOOD.replace('kubelet: "1.32.4"', "kubelet: latest").replace(
        'scheduler: {version: "1.32.4"}', "scheduler: {version: 1.30}"))
    by_field = {p.field: p for p in exc.problems}
    assert "not a version" in by_field["spec.clusters[0].nodePools[0].nodes[0].kubelet"].message
    sched = by_field["spec.clusters[0].controlPlane.scheduler.version"]
    assert sched.line == 10 and "quote versions" in sched.message


def test_yaml_syntax_error_has_line() -> None:
    exc = _err(GOOD.replace("    nodePools:\n", "    nodePools:\n   - name: [\n"))
    (p,) = exc.problems
    assert p.line is not None and p.line >= 12
    assert "YAML syntax error" in p.message


def test_wrong_kind_and_api_version() -> None:
    assert "unknown kind 'Flet'" in str(_err(GOOD.replace("kind: Fleet", "kind: Flet")))
    assert "expected 'pitstop.dev/v1alpha1'" in str(
        _err(GOOD.replace("pitstop.dev/v1alpha1", "pitstop.dev/v1")))


def test_duplicate_cluster_across_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(GOOD)
    b.write_text(GOOD)
    with pytest.raises(ConfigError, match="also defined in"):
        load_files([a, b])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_files([tmp_path / "nope.yaml"])


def test_policy_validation_messages() -> None:
    policy = """\
apiVersion: pitstop.dev/v1alpha1
kind: UpgradePolicy
metadata: {name: p}
spec:
  maintenanceWindows:
  - {name: w, start: "22:00", duration: 4h, timeZone: Mars/Olympus}
  pools:
  - {strategy: in-place, maxUnavailable: 0}
  waivers:
  - {rule: known-bad, component: etcd, reason: short, expires: 2026-01-01, approvedBy: x}
"""
    with pytest.raises(ConfigError) as info:
        load_documents(policy, "policy.yaml")
    text = str(info.value)
    assert "policy.yaml:6: spec.maintenanceWindows[0].timeZone: unknown time zone" in text
    assert "policy.yaml:8: spec.pools[0]: in-place strategy needs maxUnavailable" in text
    assert "spec.waivers[0].reason" in text


def test_target_text() -> None:
    t = target_from_text("kubernetes=1.34.2, containerd=2.1.4")
    assert t.spec.versions == {"kubernetes": "1.34.2", "containerd": "2.1.4"}
    for bad, needle in [("kubernetes", "COMPONENT=VERSION"), ("kubernetes=latest", "not a version"),
                        ("", "empty target"), ("etcd=3.5.1,etcd=3.5.2", "given twice")]:
        with pytest.raises(ConfigError, match=needle):
            target_from_text(bad)


def test_unquoted_time_is_refused() -> None:
    policy = """\
apiVersion: pitstop.dev/v1alpha1
kind: UpgradePolicy
metadata: {name: p}
spec:
  maintenanceWindows:
  - {name: w, start: 22:00, duration: 4h}
"""
    with pytest.raises(ConfigError, match=r"policy.yaml:6: spec.maintenanceWindows\[0\].start: "
                                          r"1320 was read as a number; quote times"):
        load_documents(policy, "policy.yaml")


def test_policy_round_trips_through_json() -> None:
    from pitstop.model import UpgradePolicy

    text = (Path(__file__).resolve().parent.parent / "examples" / "policy.yaml").read_text()
    (policy,) = load_documents(text, "policy.yaml")
    assert isinstance(policy, UpgradePolicy)
    again = UpgradePolicy.model_validate_json(policy.model_dump_json(by_alias=True))
    assert again == policy


def test_a_second_object_of_a_single_kind_is_refused(tmp_path: Path) -> None:
    faults = ("apiVersion: pitstop.dev/v1alpha1\nkind: FaultScenario\nmetadata: {name: f}\n"
              "spec: {faults: [{type: pdbNeverAllows, pdb: a/b}]}\n")
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(faults)
    b.write_text(faults)
    with pytest.raises(ConfigError, match="a second FaultScenario; only one may be given"):
        load_files([a, b])


# -- input that must not hurt (issue: the config fuzz) ----------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "src" / "pitstop" / "examples"
FLEET = (EXAMPLES / "fleet.yaml").read_text()
POLICY = (EXAMPLES / "policy.yaml").read_text()


def _problem(text: str, file: str = "fleet.yaml") -> ConfigProblem:
    """The single problem of ``text``, which must name ``file`` and a line."""
    with pytest.raises(ConfigError) as info:
        load_documents(text, file)
    (p,) = info.value.problems
    assert p.file == file and p.line is not None, p
    return p


def _cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.output


LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]"
       for i in range(8)]) + "\n"


def test_billion_laughs_is_refused_at_the_alias_limit() -> None:
    """757 bytes that expand to 10⁸ values took 32 s and 2.4 GB: now refused as soon as the
    aliases expand past MAX_ALIAS_VALUES."""
    assert len(LAUGHS) < 800
    p = _problem(LAUGHS)
    assert "MAX_ALIAS_VALUES" in p.message and f"{MAX_ALIAS_VALUES:,}" in p.message
    assert p.fix


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a [1, [2, *a]]\n"])
def test_a_recursive_alias_is_refused(text: str) -> None:
    p = _problem(text)
    assert p.line == 1 and "recursive alias" in p.message


@pytest.mark.parametrize("depth", [65, 990, 100_000])
def test_deep_nesting_is_refused_at_the_depth_limit(depth: int) -> None:
    p = _problem("a: " + "[" * depth + "]" * depth + "\n")
    assert "MAX_YAML_DEPTH" in p.message and "64 levels" in p.message
    p = _problem("a: " + "{b: " * depth + "1" + "}" * depth + "\n")
    assert "MAX_YAML_DEPTH" in p.message


def test_nesting_within_the_limit_reaches_validation() -> None:
    p = _problem(GOOD.replace("metadata: {name: t}", "metadata: {name: t, labels: " + "[" * 60
                              + "]" * 60 + "}"))
    assert p.field == "metadata.labels" and "MAX_YAML_DEPTH" not in p.message


def test_aliases_within_the_limit_still_work() -> None:
    text = GOOD.replace('containerRuntime: {name: containerd, version: "1.7.24"}',
                        'containerRuntime: &rt {name: containerd, version: "1.7.24"}')
    text += ('      - name: n2\n        kubelet: "1.32.4"\n        containerRuntime: *rt\n')
    (fleet,) = load_documents(text, "fleet.yaml")
    assert isinstance(fleet, Fleet)
    n1, n2 = fleet.spec.clusters[0].node_pools[0].nodes
    assert n1.container_runtime == n2.container_runtime


@pytest.mark.parametrize(("replicas", "limit"), [("9223372036854775807", "MAX_COUNT"),
                                                 ("2147483648", "MAX_COUNT"),
                                                 ("10000000", "150000")])
def test_replicas_are_bounded_as_kubernetes_bounds_them(replicas: str, limit: str) -> None:
    """int32 as spec.replicas, and the pods of one cluster at Kubernetes' tested 150,000
    (10,000,000 replicas exhausted the memory of preflight and the twin)."""
    with pytest.raises(ConfigError) as info:
        load_documents(FLEET.replace("replicas: 4", f"replicas: {replicas}", 1), "fleet.yaml")
    (p,) = info.value.problems
    assert p.file == "fleet.yaml" and p.line is not None and limit in p.message, p
    assert p.fix


@pytest.mark.parametrize(("old", "new", "field", "needle"), [
    ("drainTimeout: 20m", "drainTimeout: .inf", "spec.pools[0].drainTimeout", "finite"),
    ("drainTimeout: 20m", "drainTimeout: -900", "spec.pools[0].drainTimeout", "from 0 to 366d"),
    ("soak: 10m", "soak: -300", "spec.pools[0].soak", "from 0 to 366d"),
    ("soak: 10m", "soak: -1000000000000", "spec.pools[0].soak", "from 0 to 366d"),
    ("soak: 10m", "soak: 367d", "spec.pools[0].soak", "longer than the limit"),
    ("soak: 10m", "soak: '-P1D'", "spec.pools[0].soak", "from 0 to 366d"),
    ("soak: 10m", "soak: " + "9" * 400 + "s", "spec.pools[0].soak", "not a duration"),
    ("soak: 10m", "soak: 1e400", "spec.pools[0].soak", "not a duration"),
    ("soak: 10m", "soak: 1.0e+400", "spec.pools[0].soak", "finite"),
    ("start: 2026-12-21", "start: 0001-01-01", "spec.blackouts[0].start", "1970-01-01"),
    ("end: 2027-01-04", "end: 9999-12-31", "spec.blackouts[0].end", "8999-12-31"),
    ("start: 2026-12-21", "start: 2026-02-30", "spec.blackouts[0].start", "not a date"),
    ("timeZone: Europe/Berlin", "timeZone: Europe", "spec.maintenanceWindows[0].timeZone",
     "unknown time zone 'Europe'"),
    ("timeZone: Europe/Berlin", "timeZone: localtime", "spec.maintenanceWindows[0].timeZone",
     "depend on the machine"),
    ("timeZone: Europe/Berlin", "timeZone: ../../etc/passwd",
     "spec.maintenanceWindows[0].timeZone", "unknown time zone"),
])
def test_policy_values_that_broke_plan_are_refused_at_load(old: str, new: str, field: str,
                                                           needle: str) -> None:
    """One validation, at load time: validate used to pass several of these and plan then
    failed with OverflowError (exit 3); negative bare numbers were accepted."""
    assert old in POLICY
    p = _problem(POLICY.replace(old, new, 1), "policy.yaml")
    assert p.field == field and needle in p.message, p
    assert p.fix


@pytest.mark.parametrize(("old", "new", "needle"), [
    ("memory: 61Gi", "memory: " + "9" * 400 + "Gi", "not a memory quantity"),
    ("memory: 61Gi", "memory: 9000000Ei", "int64"),
    ("cpu: 15650m", "cpu: '9223372036854775808'", "int64"),
    ("pods: 110", "pods: " + "9" * 4301, "larger than any field accepts"),
    ("pods: 110", "pods: !!int '" + "9" * 5000 + "'", "larger than any field accepts"),
    ("unschedulable", "unschedulable", ""),  # placeholder replaced below
])
def test_fleet_values_that_raised_are_refused_at_load(old: str, new: str, needle: str) -> None:
    if not needle:
        new_text = FLEET.replace("kernel: 6.8.0-49-generic", "unschedulable: !!bool 'maybe'", 1)
        p = _problem(new_text)
        assert "'maybe' is not a boolean" in p.message and p.field.endswith("unschedulable")
        return
    p = _problem(FLEET.replace(old, new, 1))
    assert needle in p.message, p


@pytest.mark.parametrize(("char", "shown"), [("\x00", "U+0000"), ("\x7f", "U+007F"),
                                             ("\x1b", "U+001B"), ("\u202e", "U+202E")])
def test_control_and_bidirectional_bytes_are_refused_with_line_and_column(char: str,
                                                                          shown: str) -> None:
    p = _problem(FLEET.replace("name: acme", f"name: ac{char}me", 1))
    assert p.line == 9 and shown in p.message and "column 11" in p.message


@pytest.mark.parametrize(("escaped", "shown"), [("\\e[31m", "U+001B"), ("\\a", "U+0007"),
                                                ("\\u202e", "U+202E"), ("\\0", "U+0000")])
def test_escaped_control_characters_in_values_and_keys_are_refused(escaped: str,
                                                                   shown: str) -> None:
    p = _problem(FLEET.replace("region: eu-west", f'region: "eu{escaped}west"', 1))
    assert p.field == "spec.clusters[0].labels.region" and shown in p.message
    p = _problem(FLEET.replace("region: eu-west", f'"reg{escaped}ion": eu-west', 1))
    assert shown in p.message and "key" in p.message


def test_kind_that_is_not_text_is_a_config_error() -> None:
    p = _problem(FLEET.replace("kind: Fleet", "kind: {}"))
    assert p.field == "kind" and "unknown kind {}" in p.message


def test_duplicate_keys_are_refused_naming_both_lines() -> None:
    """A reviewer reads maxUnavailable: 0; YAML kept the 1 and the fleet planned as ready."""
    text = POLICY.replace("      maxUnavailable: 0\n",
                          "      maxUnavailable: 0\n      maxUnavailable: 1\n")
    p = _problem(text, "policy.yaml")
    assert p.field == "spec.pools[0].maxUnavailable"
    assert "given twice, on lines 26 and 27" in p.message and p.line == 27
    assert "remove one" in p.fix


def test_yaml_11_boolean_keys_keep_the_text_written() -> None:
    """`on: x` is the label key `on`, never "True"; `on` and `'on'` are the same key."""
    text = POLICY.replace("matchLabels: {environment: staging}", "matchLabels: {on: x}", 1)
    (policy,) = load_documents(text, "policy.yaml")
    assert isinstance(policy, UpgradePolicy)
    assert policy.spec.waves[0].clusters.match_labels == {"on": "x"}
    p = _problem(POLICY.replace("matchLabels: {environment: staging}",
                                "matchLabels: {on: x, 'on': y}", 1), "policy.yaml")
    assert "given twice" in p.message


def test_unquoted_yaml_11_values_say_what_they_were_read_as() -> None:
    p = _problem(FLEET.replace("region: eu-west", "region: yes", 1))
    assert "unquoted 'yes' as True" in p.message and p.fix == 'write "yes".'


@pytest.mark.parametrize("key", ["'<<'", "<<"])
def test_a_merge_key_names_its_file(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_documents(GOOD.replace("metadata: {name: t}", f"metadata: {{name: t, {key}: x}}"),
                       "fleet.yaml")
    assert all(p.file == "fleet.yaml" and p.line == 3 for p in info.value.problems)
    assert "<<" in str(info.value)


@pytest.mark.parametrize(("tag", "needle"), [("!!python/object:os.system", "not supported"),
                                             ("!!binary", "not supported"),
                                             ("!custom", "not supported")])
def test_unknown_tags_are_refused(tag: str, needle: str) -> None:
    p = _problem(FLEET.replace("region: eu-west", f"region: {tag} eu-west", 1))
    assert needle in p.message


def test_file_read_problems_are_clear(tmp_path: Path) -> None:
    """-f "" said `.: cannot read: Is a directory`; -f /dev/zero read without end."""
    cases = {"": ("-f", "an empty path"), str(tmp_path): (str(tmp_path), "a directory"),
             "/dev/zero": ("/dev/zero", "MAX_FILE_BYTES")}
    for given, (file, needle) in cases.items():
        with pytest.raises(ConfigError) as info:
            load_files([given])
        (p,) = info.value.problems
        assert p.file == file and needle in p.message and p.fix, p
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than 16 MiB"):
        load_files([big])
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_files([latin])
    assert info.value.problems[0].line == 2 and "UTF-8" in info.value.problems[0].message


@pytest.mark.parametrize(("name", "rule"), [
    ("stg-gen-01[/nope]", "DNS-1123 subdomain"),
    ("stg-gen-01\\e[31m\\a", "U+001B"),
    ("../../x", "DNS-1123 subdomain"),
    ("a" * 254, "at most 253"),
    ("Upper", "DNS-1123 subdomain"),
    ("a..b", "DNS-1123 subdomain"),
])
def test_node_names_are_dns_subdomains(name: str, rule: str) -> None:
    p = _problem(FLEET.replace("name: stg-gen-01", f'name: "{name}"', 1))
    assert p.field == "spec.clusters[0].nodePools[0].nodes[0].name" and rule in p.message, p
    assert p.line == 36


def test_markup_in_a_node_name_is_refused_by_plan_and_rehearse(tmp_path: Path) -> None:
    """`stg-gen-01[/nope]` made plan and rehearse exit 3 (rich markup); now exit 2 at load."""
    bad = tmp_path / "fleet.yaml"
    bad.write_text(FLEET.replace("stg-gen-01", "stg-gen-01[/nope]"))
    for command in ("plan", "rehearse"):
        code, out = _cli(command, "-f", str(bad), "--target", "kubernetes=1.36.5",
                         "--now", "2026-06-01T00:00:00Z",
                         *(("--runs-dir", str(tmp_path / "runs")) if command == "rehearse"
                           else ()))
        assert code == 2, out
        assert f"{bad}:36: spec.clusters[0].nodePools[0].nodes[0].name" in out


@pytest.mark.parametrize(("old", "new", "field", "rule"), [
    ("- name: etcd-1", "- name: ../../x", "controlPlane.etcd.members[0].name", "subdomain"),
    ("- name: general", "- name: gen/eral", "nodePools[0].name", "label value"),
    ("- name: staging-eu", "- name: " + "s" * 254, "name", "at most 253"),
    ("- name: staging-eu", "- name: staging..eu", "name", "subdomain"),
    ("namespace: shop", "namespace: shop.eu", "workloads[0].namespace", "DNS-1123 label"),
    ("- name: cp-1", "- name: cp_1", "controlPlane.apiServers[0].name", "subdomain"),
    ("region: eu-west", "region: eu west", "labels.region", "label value"),
    ("region: eu-west", "-region: eu-west", "labels.-region", "label key"),
    ("region: eu-west", "a/b/c: eu-west", "labels.a/b/c", "label key"),
])
def test_names_and_labels_follow_kubernetes_rules(old: str, new: str, field: str,
                                                  rule: str) -> None:
    assert old in FLEET
    with pytest.raises(ConfigError) as info:
        load_documents(FLEET.replace(old, new, 1), "fleet.yaml")
    assert any(p.field.endswith(field) and rule in p.message and p.file == "fleet.yaml"
               and p.line is not None for p in info.value.problems), info.value


def test_names_kubernetes_accepts_are_accepted() -> None:
    """Node names with dots, pools named after instance types, labels with prefixes, and what
    `pitstop inventory` records (kubeconfig context, taints) all load."""
    text = (FLEET.replace("name: stg-gen-01", "name: ip-10-0-0-1.eu-west-1.compute.internal", 1)
            .replace("general", "Standard_D4s_v3")
            .replace("region: eu-west", "region: eu-west\n      topology.kubernetes.io/zone: a\n"
                     "      pitstop.dev/context: 'arn:aws:eks:eu-central-1:1:cluster/prod'", 1)
            .replace("kernel: 6.8.0-49-generic", "labels: {taint.pitstop.dev/dedicated: "
                     "'gpu:NoSchedule,:NoExecute', example.com/empty: '', "
                     "taint.pitstop.dev/kwok.x-k8s.io/node: ':NoSchedule'}", 1))
    (fleet,) = load_documents(text, "fleet.yaml")
    assert isinstance(fleet, Fleet)
    cluster = fleet.spec.clusters[0]
    assert cluster.node_pools[0].name == "Standard_D4s_v3"
    assert cluster.labels["pitstop.dev/context"] == "arn:aws:eks:eu-central-1:1:cluster/prod"


def test_host_inventory_names_that_reach_files_and_commands_are_refused() -> None:
    base = """\
apiVersion: pitstop.dev/v1alpha1
kind: HostInventory
metadata: {name: lab}
spec:
  clusters:
  - name: lab
    nodes:
    - {name: node-a, local: true}
    etcd:
      token: t
      binaries: {"3.5.26": /opt/etcd}
      control: {type: local-process, runDir: /var/lib/pitstop/etcd}
      snapshotDir: /s
      restoreDir: /r
      members:
      - {name: etcd-1, clientUrl: "http://10.0.0.1:2379", peerUrl: "http://10.0.0.1:2380",
         dataDir: /d}
"""
    assert load_documents(base, "hosts.yaml")
    for old, new, needle in [("name: etcd-1", "name: ../../x", "etcd member name"),
                             ("{name: node-a, local: true}",
                              "{name: node-a, address: -oProxyCommand=x}", "host address"),
                             ("{name: node-a, local: true}",
                              "{name: node-a, address: 10.0.0.1, ssh: {user: '-l root'}}",
                              "login name"),
                             ('clientUrl: "http://10.0.0.1:2379"', 'clientUrl: "file:///x"',
                              "not an etcd URL")]:
        with pytest.raises(ConfigError) as info:
            load_documents(base.replace(old, new), "hosts.yaml")
        assert any(needle in p.message and p.file == "hosts.yaml" for p in info.value.problems)


@pytest.mark.parametrize(("option", "value"), [("--now", "9999-12-31T23:59:59"),
                                               ("--now", "0001-01-01T00:00:00"),
                                               ("--start", "9999-12-31T23:59:59+00:00")])
def test_now_and_start_are_bounded(option: str, value: str) -> None:
    """--now 9999-12-31T23:59:59 overflowed in the calendar (exit 3)."""
    args = ["plan", "-f", str(EXAMPLES / "fleet.yaml"), "--target", "kubernetes=1.36.5"]
    if option == "--start":
        args += ["--now", "2026-06-01T00:00:00Z"]
    code, out = _cli(*args, option, value)
    assert code == 2, out
    assert f"{option}: " in out and "outside the times pitstop accepts" in out and "Fix:" in out


def test_what_validate_accepts_plan_accepts(tmp_path: Path) -> None:
    """The values that validate passed and plan then failed on: now both refuse (exit 2)."""
    for old, new in [("drainTimeout: 20m", "drainTimeout: .inf"),
                     ("soak: 10m", "soak: -1000000000000"),
                     ("end: 2027-01-04", "end: 9999-12-31")]:
        p = tmp_path / "policy.yaml"
        p.write_text(POLICY.replace(old, new, 1))
        files = ["-f", str(EXAMPLES / "fleet.yaml"), "-f", str(p)]
        validate, out_v = _cli("validate", *files)
        plan_code, out_p = _cli("plan", *files, "--target", "kubernetes=1.36.5",
                                "--now", "2026-06-01T00:00:00Z")
        assert (validate, plan_code) == (2, 2), (new, out_v, out_p)


def test_the_problems_reported_at_once_are_capped(tmp_path: Path) -> None:
    nodes = "".join(f"      - {{name: n{i}, kubelet: latest, containerRuntime: "
                    f"{{version: '1.7.24'}}}}\n" for i in range(MAX_PROBLEMS + 50))
    text = GOOD.replace("      nodes:\n", "      nodes:\n" + nodes)
    with pytest.raises(ConfigError) as info:
        load_documents(text, "fleet.yaml")
    problems = info.value.problems
    assert len(problems) == MAX_PROBLEMS + 1
    assert "more problems are not shown" in problems[-1].message


def test_every_example_loads() -> None:
    cfg = load_files(sorted(EXAMPLES.glob("*.yaml")))
    assert cfg.fleet is not None and cfg.policy is not None and cfg.target is not None


def test_the_labels_inventory_writes_are_the_ones_the_model_knows() -> None:
    from pitstop.kube.inventory import CONTEXT_LABEL, TAINT_LABEL_PREFIX
    from pitstop.model import names

    assert (names.CONTEXT_LABEL, names.TAINT_LABEL_PREFIX) == (CONTEXT_LABEL, TAINT_LABEL_PREFIX)


@pytest.mark.parametrize(("expression", "needle"), [
    ("{key: app, operator: In, values: []}", "needs values"),
    ("{key: app, operator: Exists, values: [x]}", "takes no values"),
    ("{key: 'a b', operator: Exists}", "label key"),
    ("{key: app, operator: In, values: ['x y']}", "label 'app'"),
])
def test_selector_expressions_are_checked_as_kubernetes_checks_them(expression: str,
                                                                     needle: str) -> None:
    text = POLICY.replace("matchLabels: {environment: staging}",
                          f"matchExpressions: [{expression}]", 1)
    p = _problem(text, "policy.yaml")
    assert p.field.startswith("spec.waves[0].clusters.matchExpressions[0]") and needle in p.message


def test_annotations_are_bounded_as_kubernetes_bounds_them() -> None:
    big = "x" * (256 * 1024)
    p = _problem(GOOD.replace("metadata: {name: t}", f"metadata: {{name: t, annotations: "
                              f"{{example.com/a: {big}}}}}"))
    assert "262144" in p.message and p.field == "metadata.annotations"
