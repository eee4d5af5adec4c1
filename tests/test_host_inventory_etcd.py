"""The etcd part of a HostInventory: client TLS settings (paths only, consistent with the
client URLs), members' own flags; refused with the field named when the file is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pitstop.config import load_files
from pitstop.errors import ConfigError

KEY = ("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n"
       "-----END PRIVATE KEY-----\n")


def inventory(scheme: str = "https", **etcd: Any) -> dict[str, Any]:
    return {"apiVersion": "pitstop.dev/v1alpha1", "kind": "HostInventory",
            "metadata": {"name": "lab"},
            "spec": {"clusters": [{"name": "lab", "etcd": {
                "token": "t", "binaries": {"3.4.23": "/usr/bin"},
                "control": {"type": "local-process", "runDir": "/run/etcd"},
                "snapshotDir": "/var/backups/etcd", "restoreDir": "/var/lib/etcd-restored",
                "members": [{"name": "etcd-1", "clientUrl": f"{scheme}://10.0.0.1:2379",
                             "peerUrl": f"{scheme}://10.0.0.1:2380", "dataDir": "/var/lib/etcd",
                             "extraFlags": ["--cert-file=/etc/etcd/etcd-1.crt"]}],
                **etcd}}]}}


def load(tmp: Path, doc: dict[str, Any]) -> Any:
    p = tmp / "hosts.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_files([p]).hosts


def test_client_tls_paths_are_read(tmp_path: Path) -> None:
    tls = {"caFile": "/etc/pitstop/ca.crt", "certFile": "/etc/pitstop/c.crt",
           "keyFile": "/etc/pitstop/c.key"}
    inv = load(tmp_path, inventory(clientTls=tls))
    et = inv.spec.clusters[0].etcd
    assert et.client_tls.ca_file == "/etc/pitstop/ca.crt"
    assert et.client_tls.key_file == "/etc/pitstop/c.key"
    assert et.members[0].extra_flags == ["--cert-file=/etc/etcd/etcd-1.crt"]
    # a CA alone (no client-cert-auth) is enough
    assert load(tmp_path, inventory(clientTls={"caFile": "/ca.crt"})).spec.clusters[0].etcd


@pytest.mark.parametrize(("doc", "field", "words"), [
    (inventory(), "spec.clusters[0].etcd", "is https: set clientTls"),
    (inventory("http", clientTls={"caFile": "/ca.crt"}), "spec.clusters[0].etcd",
     "is not https://"),
    (inventory(clientTls={"caFile": "/ca.crt", "certFile": "/c.crt"}),
     "spec.clusters[0].etcd.clientTls", "certFile and keyFile go together"),
    (inventory(clientTls={"caFile": "/ca.crt", "certFile": "/c.crt", "keyFile": KEY}),
     "spec.clusters[0].etcd.clientTls.keyFile", "looks like key material"),
    (inventory(clientTls={"caFile": "/ca.crt", "keyPem": "x"}),
     "spec.clusters[0].etcd.clientTls.keyPem", "unknown field"),
])
def test_bad_etcd_tls_is_refused_naming_the_field(tmp_path: Path, doc: dict[str, Any],
                                                  field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, doc)
    text = str(err.value)
    assert "hosts.yaml:" in text and f"{field}:" in text and words in text, text
    assert "MIGHAgEA" not in text  # key material is never echoed
