#!/usr/bin/env bash
# The main job: set up, then plan the example fleet's upgrade and explain the plan.
# (Until `pitstop demo` exists, this walks through `pitstop plan` on examples/.)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/venv.sh
export PATH="$root/.venv/bin:$PATH"
target="kubernetes=1.34.2,containerd=2.1.4,etcd=3.6.5,coredns=1.12.1"
files=(-f examples/fleet.yaml -f examples/policy.yaml)
echo "\$ pitstop validate ${files[*]}"
pitstop validate "${files[@]}"
echo
echo "\$ pitstop plan ${files[*]} --target $target --start 2026-12-01T08:00:00+00:00"
set +e
pitstop plan "${files[@]}" --target "$target" --now 2026-11-26T00:00:00+00:00 \
  --start 2026-12-01T08:00:00+00:00
rc=$?
set -e
echo
echo "(exit code $rc: 0 = ready, 1 = blocked by findings — see the blocking rows above)"
echo
echo "\$ pitstop explain ${files[*]} --target $target --step prod-us-1"
pitstop explain "${files[@]}" --target "$target" --now 2026-11-26T00:00:00+00:00 \
  --step prod-us-1 | head -60 || true
