#!/usr/bin/env bash
# Create .venv (installing Debian's python3-venv when root and missing) and install the project into it.
# Usage: scripts/bootstrap.sh [extras]   e.g. scripts/bootstrap.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
extras=${1:-}

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "$@" >/dev/null
  else
    echo "bootstrap: please install: $*" >&2
    return 1
  fi
}

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    apt_install python3-venv
    "$PYTHON" -m venv "$VENV"
  fi
fi
stamp="$VENV/.installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  if [ -n "$extras" ]; then
    "$VENV/bin/python" -m pip install -q -e ".[$extras]"
  else
    "$VENV/bin/python" -m pip install -q -e .
  fi
  touch "$stamp"
fi
