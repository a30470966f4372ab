#!/usr/bin/env bash
# The job-queue benchmark: due work at 1 000 and 100 000 connections on PostgreSQL.
# Usage: scripts/bench-claim.sh [postgres://user@host/db]   (results: docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p feedkeeper --bench claim -- "${1:-postgres://postgres@127.0.0.1:5432/postgres}"
