#!/usr/bin/env bash
# The whole test suite: static checks (ruff, mypy --strict, import layers), the real Kubernetes
# control plane the tests run against (built from Go modules into a cache outside the repo,
# keyed by version: about 10 minutes cold, about a second when cached), then pytest.
# Installs what it needs on a fresh machine: apt packages, the Go-built binaries, a venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "the tests build Kubernetes from Go modules: install Go (go.dev/doc/install) or put it on PATH" >&2; exit 2; }
bash scripts/venv.sh
export PATH="$root/.venv/bin:$PATH"
echo "== ruff"; ruff check src tests bench harness
echo "== mypy --strict"; mypy
echo "== import layers"; lint-imports
echo "== real Kubernetes control plane (hack/k8s/build.sh)"; bash hack/k8s/build.sh
echo "== pytest"; pytest -q -p no:cacheprovider "$@"
