#!/usr/bin/env bash
# The whole test suite: static checks (ruff, mypy --strict, import layers) and pytest.
# Installs what it needs (a venv with the Python dependencies) on a fresh machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/venv.sh
export PATH="$root/.venv/bin:$PATH"
echo "== ruff"; ruff check src tests bench
echo "== mypy --strict"; mypy
echo "== import layers"; lint-imports
echo "== pytest"; pytest -q -p no:cacheprovider "$@"
