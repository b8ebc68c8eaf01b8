#!/usr/bin/env bash
# Whisper-tower training speed, fp32 vs bf16 autocast, cwcl against the same
# tower in Python PyTorch (docs/performance.md "Precision"): `cwcl bench
# tower` exports its initial tower, scripts/bench_tower_python.py rebuilds it
# (same weights, same random batches: both report the same loss), and each
# implementation and precision runs in its own process. On a GPU machine,
# DEVICE=cuda (and COMPILE=1 for torch.compile rows). Prints a Markdown table.
#
#   scripts/bench_tower.sh [cwcl] > /tmp/tower_table.md
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cwcl=${1:-$here/../build/release/cwcl}
device=${DEVICE:-cpu}
threads=${THREADS:-2}
batch=${BATCH:-32}
frames=${FRAMES:-200}
steps=${STEPS:-10}
# shellcheck source=bench_python_env.sh
source "$here/bench_python_env.sh"

"$cwcl" bench tower --steps 1 --export "$export_dir/tower" --device "$device" > /dev/null
common=(--batch "$batch" --frames "$frames" --steps "$steps" --device "$device")
rows=()
for precision in fp32 bf16; do
  rows+=("$("$cwcl" --threads "$threads" bench tower "${common[@]}" --precision "$precision")")
  rows+=("$("${preload[@]}" "$python" "$here/bench_tower_python.py" "$export_dir/tower" "${common[@]}" \
            --threads "$threads" --precision "$precision")")
  if [[ -n "${COMPILE:-}" ]]; then
    rows+=("$("$python" "$here/bench_tower_python.py" "$export_dir/tower" "${common[@]}" \
              --threads "$threads" --precision "$precision" --compile)")
  fi
done
echo "| implementation | precision | device | samples/s | s/step | loss after $((steps + 2)) steps |"
echo "| --- | --- | --- | ---: | ---: | ---: |"
for row in "${rows[@]}"; do
  "$python" - "$row" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
name = d["impl"] + (f" (torch {d['torch']})" if "torch" in d else "")
print(f"| {name} | {d['precision']} | {d['device']} | {d['samples_per_s']:.1f} | {d['seconds_per_step']:.3f} | {d['loss']:.6f} |")
PY
done
