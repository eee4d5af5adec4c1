#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in .venv and install pitstop with its dev tools.
# Re-installs only when pyproject.toml changed. Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PITSTOP_PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "pitstop needs Python >= 3.11 (found: $("$py" --version 2>&1)); set PITSTOP_PYTHON" >&2
  exit 2
fi
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi
stamp="$root/.venv/.pitstop-installed"
want="$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
if [ ! -x "$root/.venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$py" -m venv "$root/.venv"
  "$root/.venv/bin/pip" install -q --disable-pip-version-check -e "$root[dev]"
  echo "$want" > "$stamp"
fi
