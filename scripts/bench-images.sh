#!/usr/bin/env bash
# Making image variants: feedkeeper against libvips (pyvips) doing the same work in-process, per
# format, on the same originals. Results: docs/benchmarks.md.
# Needs pyvips: apt-get install libvips42 && pip install pyvips
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import pyvips" 2>/dev/null || { echo "pyvips is missing: apt-get install libvips42 && pip install pyvips" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo bench -p feedkeeper --bench images -- --write "$work/originals"
ours=$(cargo bench -p feedkeeper --bench images -- --time "$work/originals" 2>/dev/null | tail -1)
theirs=$(python3 scripts/bench-images.py "$work/originals")
python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("| format | feedkeeper ms/image | libvips same work ms/image | ratio | libvips thumbnail ms/image | ratio | feedkeeper bytes/image | libvips bytes/image |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for f in ("jpeg", "webp", "avif"):
    o, s, t = ours[f], theirs[f]["same_work"], theirs[f]["thumbnail"]
    print(f"| {f} | {o['ms_per_image']:.1f} | {s['ms_per_image']:.1f} | {o['ms_per_image']/s['ms_per_image']:.2f}× | {t['ms_per_image']:.1f} | {o['ms_per_image']/t['ms_per_image']:.2f}× | {o['bytes_per_image']} | {s['bytes_per_image']} |")
PY
