"""etcd with client and peer TLS and ``--client-cert-auth``: certificates made here with the
openssl command, a real 3-member cluster on loopback, pitstop's etcdctl calls with the
inventory's ``clientTls``.

* A wrong CA (or a client certificate the members do not trust, or a missing key file) is
  refused by `pitstop apply --backend hosts` before a run is created, naming the file, the field
  and the fix; no member is touched.
* An https client URL without ``clientTls``, or key material in it, is refused when the file is
  read.
* The rolling upgrade 3.4.23 → 3.5.1 works over TLS with a writer running (the writer, too,
  needs the client certificate), and the snapshot restore brings back a 3.4.23 TLS cluster.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from pitstop.hosts.etcd import EtcdActuator, EtcdError, LocalProcessControl, diagnose_tls

from .etcdlib import NEW, OLD, MakeCluster, Writer, make_pki, put, read_prefix
from .runtime_fixtures import figure
from .test_apply_etcd import pitstop, write_files


def test_bad_client_tls_is_refused_before_a_run_naming_file_and_field(
        make_cluster: MakeCluster, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    live = make_cluster(OLD, pki=pki)
    pids = live.pids()
    runs = tmp_path / "runs"
    hosts = tmp_path / "hosts.yaml"
    cases = [
        ("caFile", {"caFile": str(pki.other_ca), "certFile": str(pki.client_cert),
                    "keyFile": str(pki.client_key)},
         f"is not signed by the CA in {pki.other_ca}", "set caFile to the CA that signed"),
        ("certFile", {"caFile": str(pki.ca), "certFile": str(pki.other_cert),
                      "keyFile": str(pki.other_key)},
         f"refused the client certificate {pki.other_cert}", "use a client certificate signed"),
        ("certFile", {"caFile": str(pki.ca)},
         "requires a client certificate (--client-cert-auth) and none is configured",
         "set certFile and keyFile"),
        ("keyFile", {"caFile": str(pki.ca), "certFile": str(pki.client_cert),
                     "keyFile": str(tmp_path / "gone.key")},
         f"{tmp_path / 'gone.key'} does not exist", "give the path of the PEM file"),
    ]
    for field, tls, message, fix in cases:
        files = write_files(tmp_path, live, pki, tls=tls)
        t0 = time.monotonic()
        r = pitstop("apply", *files, "--target", f"etcd={NEW}", "--backend", "hosts", "-y",
                    "--runs-dir", str(runs))
        took = time.monotonic() - t0
        text = " ".join(r.stderr.split())
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"{hosts}: spec.clusters[0].etcd.clientTls.{field}:" in text, text
        assert message in text and f"Fix: {fix}" in text and "Nothing was changed" in text, text
        assert "Traceback" not in r.stderr
        assert not runs.exists() or not any(runs.iterdir())  # no run was created
        figure(f"etcd TLS: bad {field} refused by apply", f"{took:.1f} s: {text}")
    # untouched: the same processes, still 3.4.23, healthy
    assert live.pids() == pids
    obs = live.actuator.health()
    assert [o.version for o in obs] == [OLD] * 3 and all(o.healthy for o in obs)

    # the file itself: https without clientTls, key material instead of a path
    inv = yaml.safe_load(hosts.read_text())
    del inv["spec"]["clusters"][0]["etcd"]["clientTls"]
    hosts.write_text(yaml.safe_dump(inv, sort_keys=False))
    r = pitstop("validate", "-f", str(hosts))
    text = " ".join(r.stderr.split())
    assert r.returncode == 2 and f"{hosts}:" in text and "spec.clusters[0].etcd" in text, text
    assert "is https: set clientTls" in text
    inv["spec"]["clusters"][0]["etcd"]["clientTls"] = {
        "caFile": str(pki.ca), "certFile": str(pki.client_cert),
        "keyFile": pki.client_key.read_text()}
    hosts.write_text(yaml.safe_dump(inv, sort_keys=False))
    r = pitstop("validate", "-f", str(hosts))
    text = " ".join(r.stderr.split())
    assert r.returncode == 2 and "spec.clusters[0].etcd.clientTls.keyFile" in text, text
    assert "looks like key material" in text
    assert pki.client_key.read_text().splitlines()[1] not in r.stderr + r.stdout


def test_actuator_errors_name_the_tls_field(make_cluster: MakeCluster, tmp_path: Path) -> None:
    """The same diagnosis reaches the errors of a run (e.g. certificates rotated between apply
    and resume): the gate's problems and the snapshot's refusal name the field and the file."""
    pki = make_pki(tmp_path / "pki")
    live = make_cluster(OLD, pki=pki)
    wrong = EtcdActuator(replace(live.cluster, client_tls=pki.client(pki.other_ca)),
                         LocalProcessControl(live.root / "run"))
    g = wrong.gate()
    joined = " ".join(g.problems)
    assert not g.ok and "clientTls.caFile: the server certificate at https://127.0.0.1:" in joined
    assert f"is not signed by the CA in {pki.other_ca}" in joined, joined
    with pytest.raises(EtcdError) as err:
        wrong.snapshot(tmp_path / "snap.db")
    assert "no healthy member to take it from" in str(err.value)
    assert "clientTls.caFile: the server certificate at" in str(err.value), str(err.value)
    assert not (tmp_path / "snap.db").exists()
    # a TLS member reached without clientTls: the clientUrl is named
    none = EtcdActuator(replace(live.cluster, client_tls=None),
                        LocalProcessControl(live.root / "run"))
    problems = none.check_access()
    assert problems and all(d is not None and d.field == "clientUrl" for _, d, _ in problems), \
        problems
    assert diagnose_tls("all fine", None) is None
    assert [o.version for o in live.actuator.health()] == [OLD] * 3


def test_rolling_upgrade_and_restore_over_tls(make_cluster: MakeCluster, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    live = make_cluster(OLD, pki=pki)
    a = live.actuator
    eps = [m.client_url for m in live.cluster.members]
    for i in range(100):
        put(eps[i % 3], f"/k/{i:03d}", f"v{i}")
    writer = Writer(eps, "/w/", max_seconds=300, min_interval=0.005)
    writer.start()
    try:
        report = a.upgrade(NEW, tmp_path / "snapshots" / "pre.db", member_timeout=60)
        assert writer.wait_acked_after(time.monotonic(), count=20)
    finally:
        writer.stop()
    assert [o.version for o in a.health()] == [NEW] * 3
    assert [m.was_leader for m in report.members] == [False, False, True]
    stored = read_prefix(eps[0], "/w/")
    lost = [k for _, k in writer.acked if k not in stored]
    assert not lost, f"{len(lost)} acknowledged keys lost: {lost[:5]}"
    gaps = {m.name: writer.longest_gap(m.stopping_at or 0, m.healthy_at or 0)
            for m in report.members}
    figure("etcd rolling upgrade over TLS (client-cert-auth)",
           f"{report.seconds:.1f} s, {len(writer.acked)} puts acknowledged, none lost; longest "
           "write gap per member: " + ", ".join(f"{k} {v:.2f} s" for k, v in gaps.items()))

    t0 = time.monotonic()
    rr = a.restore(report.snapshot.path, OLD, live.root / "restored")
    took = time.monotonic() - t0
    obs = a.health()
    assert [o.version for o in obs] == [OLD] * 3 and all(o.healthy for o in obs)
    assert len(read_prefix(eps[2], "/k/")) == 100
    assert all("--client-cert-auth" in rr.cluster.flags(m) for m in rr.cluster.members)
    figure("etcd restore over TLS", f"{took:.1f} s, {rr.key_count} keys at revision "
           f"{rr.snapshot.revision}")
