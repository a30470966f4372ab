#!/usr/bin/env bash
# The widget benchmark: /w/{id}, /w/{id}.json and a stored image variant (/i/…/640.webp) against
# nginx serving the same bytes from files (BENCH_ROWS=widget or =images for those rows only),
# wrk at 64 and 256 connections, in one run. Results: docs/benchmarks.md.
# Needs wrk and nginx: apt-get install wrk nginx-light
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk nginx; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install wrk nginx-light" >&2; exit 1; }
done
exec cargo bench -p feedkeeper --bench widget
