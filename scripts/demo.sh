#!/usr/bin/env bash
# The main job: set up, then plan the example fleet's upgrade and explain the plan.
# (Until `pitstop demo` exists, this walks through `pitstop plan` on examples/.)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/venv.sh
export PATH="$root/.venv/bin:$PATH"
files=(-f examples/fleet.yaml -f examples/policy.yaml -f examples/target.yaml)
echo "\$ pitstop validate ${files[*]}"
pitstop validate "${files[@]}"
echo
echo "\$ pitstop plan ${files[*]}"
set +e
pitstop plan "${files[@]}"
rc=$?
set -e
echo
echo "(exit code $rc: 0 = ready, 1 = blocked by findings — see the blocking rows above)"
echo
echo "\$ pitstop explain ${files[*]} --step prod-us-1/0"
pitstop explain "${files[@]}" --step prod-us-1/0 || true
