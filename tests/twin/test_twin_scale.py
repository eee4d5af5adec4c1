"""A 500-node cluster with 5,000 pods: a full drain of every node keeps every PDB and brings
every pod back (how fast: bench/twin_scale.py prints it)."""

from __future__ import annotations

from pathlib import Path

from harness.fleets import APPS, NODES, REPLICAS, big_fleet

from pitstop.twin import Twin


def test_a_full_drain_of_500_nodes_keeps_pdbs_and_pods(tmp_path: Path) -> None:
    t = Twin.create(big_fleet(), seed=3, state_path=tmp_path / "big.db")
    obs = t.observe("big")
    assert (len(obs.nodes), len(obs.pods)) == (NODES, NODES + APPS * REPLICAS)

    for name in [n.name for n in obs.nodes]:
        t.cordon("big", name, "drain")
        while True:
            now = t.observe("big")
            left = [p for p in now.pods_on(name) if p.owner_kind != "DaemonSet"]
            if not left:
                break
            for p in left:
                if not p.deleting:
                    t.evict("big", p.namespace, p.name, p.uid)
            t.clock.sleep(5)
        t.uncordon("big", name)
    assert t.check_invariants() == []
    t.clock.sleep(60)  # the last replacements start
    final = t.observe("big")
    assert sum(p.ready for p in final.pods) == NODES + APPS * REPLICAS
    assert len(t.events(source="call", destructive=True)) >= 2 * NODES + APPS * REPLICAS
