#!/usr/bin/env bash
# Forward + backward of the CL and CWCL losses: cwcl's tiled and plain paths
# and the plain loss in Python PyTorch (system python3-torch), each size and
# implementation in its own process, all with jemalloc (page retention) and
# the same torch thread count. Prints a Markdown table (docs/performance.md).
#
#   scripts/bench_loss_compare.sh [build dir] > /tmp/loss_table.md
set -euo pipefail
build=${1:-build/release}
threads=${THREADS:-2}
sizes=${SIZES:-"4096 8192 16384 65536"}
plain_max=${PLAIN_MAX:-16384}   # the plain loss needs several N x N float matrices
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
conf=retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1
here=$(cd "$(dirname "$0")" && pwd)

run() {  # prints one JSON line
  "$@" || echo '{"failed": true}'
}

echo "| N | implementation | loss | seconds | x floor | floor (3 products) s | extra memory MiB |"
echo "| ---: | --- | --- | ---: | ---: | ---: | ---: |"
for n in $sizes; do
  for kind in cl cwcl; do
    rows=()
    rows+=("cwcl tiled|$(run "$build/cwcl" --threads "$threads" bench loss -n "$n" --kind "$kind" --path tiled)")
    if (( n <= plain_max )); then
      rows+=("cwcl plain|$(run "$build/cwcl" --threads "$threads" bench loss -n "$n" --kind "$kind" --path plain)")
      rows+=("python plain|$(LD_PRELOAD=$jemalloc MALLOC_CONF=$conf run /usr/bin/python3 "$here/bench_loss_python.py" -n "$n" --kind "$kind" --threads "$threads")")
    fi
    for row in "${rows[@]}"; do
      name=${row%%|*}
      json=${row#*|}
      /usr/bin/python3 - "$n" "$name" "$kind" "$json" <<'PY'
import json, sys
n, name, kind, raw = sys.argv[1:]
d = json.loads(raw)
if d.get("failed"):
    print(f"| {n} | {name} | {kind} | failed | | | |")
else:
    print(f"| {n} | {name} | {kind} | {d['seconds']:.3f} | {d['ratio_to_floor']:.2f} | "
          f"{d['floor_seconds']:.3f} | {d['extra_mib']:.0f} |")
PY
    done
  done
done
