#!/usr/bin/env bash
# Our LDAP server against OpenLDAP slapd on identical synthetic SDS data (bench/ldapkit), for each N in
# ${PRACTICES:-1000 8000} practices: a differential test of ~400 searches, then ldapsearch -f throughput and
# server CPU per search. Prints each run's table and its verdict line
#   ldap_vs_slapd: diff=<n> throughput_ratio=<target/slapd> cpu_per_search_ratio=<target/slapd>
# Targets: diff=0, throughput_ratio >= 0.5 (2 client processes), cpu_per_search_ratio <= 3.
#
#   bash bench/ldap_vs_slapd.sh [--practices "1000 8000"] [--procs "1 2"] [--rounds 2] [--no-bench]
#                               [other options of python -m bench.ldapkit.harness, e.g. --second-slapd]
# TARGET_START (a shell snippet given DATA_LDIF, PORT, WORK, PYTHON) replaces the default target:
#   export SDS_DATABASE_URL=sqlite:///$WORK/sds.sqlite3 SDS_HTTP_BIND= SDS_SSP_BIND= SDS_LDAP_BIND=127.0.0.1:$PORT
#   sds db upgrade && sds import "$DATA_LDIF" && exec sds serve
# Exit status: 0 only if every run had diff=0 and right answers under load.
set -euo pipefail
cd "$(dirname "$0")/.."
practices=${PRACTICES:-1000 8000}
procs="1 2"
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --practices) practices=$2; shift ;;
    --procs) procs=$2; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) extra+=("$1") ;;
  esac
  shift
done
export PATH=$PATH:/usr/sbin:/sbin
if ! command -v slapd >/dev/null || ! command -v slapadd >/dev/null || ! command -v ldapsearch >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing slapd and ldap-utils (apt-get)" >&2
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           slapd ldap-utils >/dev/null; }
  else
    echo "slapd and ldap-utils are needed: sudo apt-get install slapd ldap-utils" >&2
    exit 3
  fi
fi
scripts/bootstrap.sh test
source .venv/bin/activate
status=0
for n in $practices; do
  echo "== N=$n practices"
  python -m bench.ldapkit.harness --practices "$n" --procs "$procs" ${extra[@]+"${extra[@]}"} || status=$?
done
exit $status
