# Sourced by scripts/demo and scripts/test: makes .venv with mistgrid installed in it.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
EXTRAS=${MISTGRID_EXTRAS:-}

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "mistgrid needs Python >= 3.11 (on Debian: apt-get install python3)" >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  PY=$(find_python)
  if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing python3-venv with apt-get" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PY" -m venv "$VENV"
    else
      echo "cannot create a virtualenv: install python3-venv (apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi

STAMP="$VENV/.mistgrid-installed"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1) extras=[$EXTRAS]"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "installing mistgrid and its dependencies into .venv" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT${EXTRAS:+[$EXTRAS]}"
  echo "$WANT" > "$STAMP"
fi
