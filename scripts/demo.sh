#!/usr/bin/env bash
# The main job: set up, then run `pitstop demo` — the example fleet's upgrade planned,
# rehearsed on the twin with an injected canary failure (automatic rollback), fixed and
# rehearsed cleanly, with an HTML report.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/venv.sh
export PATH="$root/.venv/bin:$PATH"
exec pitstop demo "$@"
