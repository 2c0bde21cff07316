#!/usr/bin/env bash
# The whole test suite: installs what it needs (venv, PostgreSQL, OpenLDAP's slapd and ldap-utils, Chromium for
# tests/browser, when root on Debian), then pytest on SQLite and PostgreSQL (the tests start their own PostgreSQL and LDAP
# servers), alembic check, ruff, mypy and import-linter. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test

need=()
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v ldapsearch >/dev/null || need+=(ldap-utils)
command -v slapd >/dev/null || [ -x /usr/sbin/slapd ] || need+=(slapd)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)  # tests/browser (Playwright)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need[@]}" >/dev/null
  elif [ "${CI:-}" = true ]; then
    echo "test: missing ${need[*]} and cannot install them" >&2
    exit 1
  else
    echo "test: ${need[*]} missing; the tests that need them will be skipped" >&2
  fi
fi

status=0
echo "== ruff"; .venv/bin/ruff check . || status=1
echo "== mypy"; .venv/bin/mypy || status=1
echo "== import-linter (layers: pyproject.toml [tool.importlinter])"; .venv/bin/lint-imports --no-cache || status=1
echo "== alembic check"
tmp=$(mktemp -d)
SDS_DATABASE_URL="sqlite:///$tmp/check.sqlite3" .venv/bin/sds db upgrade >/dev/null &&
  SDS_DATABASE_URL="sqlite:///$tmp/check.sqlite3" .venv/bin/sds db check || status=1
rm -rf "$tmp"
echo "== pytest"
.venv/bin/pytest "$@" || status=$?
exit $status
