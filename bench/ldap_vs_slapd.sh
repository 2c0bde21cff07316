#!/usr/bin/env bash
# Our LDAP server against OpenLDAP slapd on identical data (../shared/bench/ldap_vs_slapd.sh), at N=1000
# and N=8000 practices with 1 and 2 client processes. Prints each run's verdict line:
#   ldap_vs_slapd: diff=<n> throughput_ratio=<r> cpu_per_search_ratio=<c>
# Targets: diff=0, throughput_ratio >= 0.5 (2 client processes), cpu_per_search_ratio <= 3.
set -euo pipefail
cd "$(dirname "$0")/.."
kit=${SDS_BENCH_KIT:-../shared/bench/ldap_vs_slapd.sh}
scripts/bootstrap.sh test
source .venv/bin/activate
status=0
for n in ${PRACTICES:-1000 8000}; do
  echo "== N=$n practices"
  bash "$kit" --practices "$n" --procs "1 2" "$@" | tail -n 12 || status=1
done
exit $status
