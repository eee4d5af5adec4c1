"""Benchmark: the twin at 500 nodes and 5,000 pods — observe() latency (cold and warm) and the
wall time to simulate a drain of every node, one after another.

    .venv/bin/python bench/twin_scale.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from harness.fleets import big_fleet

from pitstop.twin import Twin


def main() -> None:
    t = Twin.create(big_fleet(), seed=3, state_path=Path(tempfile.mkdtemp()) / "big.db")
    t0 = time.perf_counter()
    obs = t.observe("big")
    cold = time.perf_counter() - t0
    slowest = 0.0
    observes = 0
    start = time.perf_counter()
    for name in [n.name for n in obs.nodes]:
        t.cordon("big", name, "drain")
        while True:
            t1 = time.perf_counter()
            now = t.observe("big")
            slowest = max(slowest, time.perf_counter() - t1)
            observes += 1
            left = [p for p in now.pods_on(name) if p.owner_kind != "DaemonSet"]
            if not left:
                break
            for p in left:
                if not p.deleting:
                    t.evict("big", p.namespace, p.name, p.uid)
            t.clock.sleep(5)
        t.uncordon("big", name)
    drain = time.perf_counter() - start
    print(f"twin: {len(obs.nodes)} nodes, {len(obs.pods)} pods")
    print(f"observe cold: {cold * 1000:.1f} ms; slowest of {observes} warm observes: "
          f"{slowest * 1000:.1f} ms")
    print(f"simulated drain of every node, one at a time: {drain:.1f} s wall, "
          f"{t.clock.now() / 3600:.1f} h virtual ({t.clock.now() / drain:,.0f}× real time)")


if __name__ == "__main__":
    main()
