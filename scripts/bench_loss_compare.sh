#!/usr/bin/env bash
# Forward + backward of the CL and CWCL losses: cwcl's tiled path (and its
# plain one), and the plain loss in Python PyTorch (system python3-torch),
# each size, map and implementation in its own process, all with jemalloc
# (page retention) and the same torch thread count. Prints a Markdown table
# (docs/performance.md); "x CL" is against CL of the same implementation and
# size in the same run.
#
#   scripts/bench_loss_compare.sh [build dir] > /tmp/loss_table.md
#   LOSSES="cl cwcl:power cwcl:kernel" DIMS="256 384" SIZES="4096 16384 65536" scripts/bench_loss_compare.sh
set -euo pipefail
build=${1:-build/release}
threads=${THREADS:-2}
sizes=${SIZES:-"4096 8192 16384 65536"}
dims=${DIMS:-256}
losses=${LOSSES:-"cl cwcl:affine"}  # kind[:weight map]; power is gamma 8, kernel tau 0.1
plain_max=${PLAIN_MAX:-16384}       # the plain losses need several N x N float matrices
implementations=${IMPLEMENTATIONS:-"tiled plain python"}
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
conf=retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1
here=$(cd "$(dirname "$0")" && pwd)

run() {  # prints one JSON line
  "$@" 2>/dev/null || echo '{"failed": true}'
}

echo "| D | N | implementation | loss | seconds | x CL | x floor | floor (3 products) s | extra memory MiB |"
echo "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"
for d in $dims; do
  for n in $sizes; do
    declare -A cl_seconds=()
    for loss in $losses; do
      kind=${loss%%:*}
      map=${loss#*:}
      [[ $map == "$loss" ]] && map=affine
      for impl in $implementations; do
        case $impl in
          tiled | plain)
            [[ $impl == tiled ]] || (( n <= plain_max )) || continue
            json=$(run "$build/cwcl" --threads "$threads" bench loss -n "$n" --dim "$d" --kind "$kind" --weights "$map" \
              --gamma 8 --kernel-tau 0.1 --path "$impl") ;;
          python)
            (( n <= plain_max )) || continue
            json=$(LD_PRELOAD=$jemalloc MALLOC_CONF=$conf run /usr/bin/python3 "$here/bench_loss_python.py" -n "$n" \
              --dim "$d" --kind "$kind" --weights "$map" --gamma 8 --tau 0.1 --threads "$threads") ;;
        esac
        name="$impl"; [[ $impl == python ]] && name="python plain" || name="cwcl $impl"
        label=$kind; [[ $kind == cwcl ]] && label="cwcl $map"
        line=$(/usr/bin/python3 - "$d" "$n" "$name" "$label" "$json" "${cl_seconds[$impl]:-}" <<'PY'
import json, sys
d, n, name, label, raw, cl = sys.argv[1:]
j = json.loads(raw)
if j.get("failed"):
    print(f"| {d} | {n} | {name} | {label} | failed | | | | |")
else:
    x_cl = f"{j['seconds'] / float(cl):.2f}" if cl and label != "cl" else ""
    print(f"| {d} | {n} | {name} | {label} | {j['seconds']:.3f} | {x_cl} | {j['ratio_to_floor']:.2f} | "
          f"{j['floor_seconds']:.3f} | {j['extra_mib']:.0f} |")
PY
)
        echo "$line"
        if [[ $kind == cl ]]; then
          cl_seconds[$impl]=$(echo "$json" | /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("seconds", ""))')
        fi
      done
    done
    unset cl_seconds
  done
done
