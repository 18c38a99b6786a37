#!/usr/bin/env bash
# Create or update .venv with the given extras ("worker" or "worker,gcp,dev").
# Safe to run again: it reinstalls only when pyproject.toml, constraints.txt or the extras changed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-worker}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "LaxAI Train needs Python 3.11 (found $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=".venv/.laxai-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16) $extras"
if [ -f "$stamp" ] && grep -qxF "$want" "$stamp"; then
  exit 0
fi
echo "Installing LaxAI Train [$extras] into .venv (torch is large: the first run takes a few minutes)..." >&2
.venv/bin/python -m pip install -q -c constraints.txt -e ".[$extras]" 2>&1 | grep -v "is ignored: it is neither" >&2 || true
.venv/bin/python -c "import orchestrator, worker, bot" # fail here, not later, if the install broke
printf '%s\n' "$want" >> "$stamp"
