#!/usr/bin/env bash
# Create .venv with the Python named in .python-version (lava-nc caps Python at 3.10) and install
# the project with its test extras. Re-runs are no-ops until pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
want="$(tr -d '[:space:]' < .python-version)"

is_wanted() { [ -x "$1" ] && [ "$("$1" -c 'import platform; print(platform.python_version())' 2>/dev/null)" = "$want" ]; }

if ! is_wanted .venv/bin/python; then
  candidates=()
  if command -v pyenv >/dev/null 2>&1; then candidates+=("$(pyenv root)/versions/$want/bin/python"); fi
  candidates+=("$HOME/.pyenv/versions/$want/bin/python" "/root/.pyenv/versions/$want/bin/python"
               "$(command -v python3.10 || true)" "$(command -v python3 || true)")
  python=""
  for c in "${candidates[@]}"; do
    if [ -n "$c" ] && is_wanted "$c"; then python="$c"; break; fi
  done
  if [ -z "$python" ]; then
    echo "error: Python $want not found (lava-nc 0.10 needs Python 3.10). Install it, e.g. 'pyenv install $want'." >&2
    exit 1
  fi
  rm -rf .venv
  "$python" -m venv .venv
fi

stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
