#!/usr/bin/env bash
# Our LDAP server against OpenLDAP slapd on identical synthetic SDS data (bench/ldapkit), for each N in
# ${PRACTICES:-1000 8000} practices: a differential test of ~400 searches, then ldapsearch -f throughput and
# server CPU per search. Prints each run's table and its verdict line
#   ldap_vs_slapd: diff=<n> throughput_ratio=<target/slapd> cpu_per_search_ratio=<target/slapd>
# Targets (issue 12): diff=0, throughput_ratio >= 1.0 (the last --procs value) and cpu_per_search_ratio <= 1.5
# with the answer cache on (the default); with --cache-off each N is run again with SDS_LDAP_CACHE_BYTES=0 and
# that run's verdict line starts "ldap_vs_slapd_cache_off:" (target: throughput_ratio >= 0.6).
#
#   bash bench/ldap_vs_slapd.sh [--practices "1000 8000"] [--procs "1 2"] [--rounds 2] [--no-bench] [--cache-off]
#                               [other options of python -m bench.ldapkit.harness, e.g. --second-slapd]
# TARGET_START (a shell snippet given DATA_LDIF, PORT, WORK, PYTHON) replaces the default target:
#   export SDS_DATABASE_URL=sqlite:///$WORK/sds.sqlite3 SDS_HTTP_BIND= SDS_SSP_BIND= SDS_LDAP_BIND=127.0.0.1:$PORT
#   sds db upgrade && sds import "$DATA_LDIF" && exec sds serve
# Exit status: 0 only if every run had diff=0 and right answers under load.
set -euo pipefail
cd "$(dirname "$0")/.."
practices=${PRACTICES:-1000 8000}
procs="1 2"
cache_off=0
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --practices) practices=$2; shift ;;
    --procs) procs=$2; shift ;;
    --cache-off) cache_off=1 ;;
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
  if [ "$cache_off" = 1 ]; then
    echo "== N=$n practices, answer cache off (SDS_LDAP_CACHE_BYTES=0)"
    SDS_LDAP_CACHE_BYTES=0 python -m bench.ldapkit.harness --practices "$n" --procs "$procs" ${extra[@]+"${extra[@]}"} \
      | sed -u 's/^ldap_vs_slapd:/ldap_vs_slapd_cache_off:/' || status=$?
  fi
done
exit $status
