"""The shared harness of the tests and the benchmarks: real components started for them (a
Kubernetes control plane with kwok nodes) and the objects they are fed. Not part of pitstop and
not shipped with it; ``bench/`` imports it, never ``tests/``."""
