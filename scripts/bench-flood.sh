#!/usr/bin/env bash
# The flood benchmark: random widget addresses against one node on PostgreSQL while a real
# widget and a logged-in dashboard page are read and jobs run, without and with the flood.
# Results: docs/benchmarks.md. Needs wrk (apt-get install wrk) and a PostgreSQL server (the
# first argument, default postgres://postgres@127.0.0.1:5432/postgres; a database of its own is
# made there and dropped).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
exec cargo bench -p feedkeeper --bench flood -- "${1:-postgres://postgres@127.0.0.1:5432/postgres}"
