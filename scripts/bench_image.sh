#!/usr/bin/env bash
# ResNet image-tower training speed, cwcl against the same tower in Python
# PyTorch (docs/performance.md "Images"): `cwcl bench image` exports its
# initial tower, scripts/bench_image_python.py rebuilds it (same weights, same
# random batch: both report the same loss), each in its own process; then the
# training loader alone on the emoji benchmark's manifest (decode, random
# resized crop, colour jitter in background threads). Prints a Markdown table.
#
#   scripts/bench_image.sh [cwcl] [manifest] > /tmp/image_table.md
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cwcl=${1:-$here/../build/release/cwcl}
manifest=${2:-runs/emoji/train.jsonl}
threads=${THREADS:-2}
batch=${BATCH:-64}
steps=${STEPS:-20}
size=${SIZE:-64}
width=${WIDTH:-32}
# shellcheck source=bench_python_env.sh
source "$here/bench_python_env.sh"

common=(--width "$width" --size "$size")
"$cwcl" bench image "${common[@]}" --steps 1 --export "$export_dir/tower" > /dev/null
rows=("$("$cwcl" --threads "$threads" bench image "${common[@]}" -b "$batch" --steps "$steps")")
rows+=("$("${preload[@]}" "$python" "$here/bench_image_python.py" "$export_dir/tower" -b "$batch" --steps "$steps" \
          --threads "$threads")")
echo "| implementation | width | side | batch | images/s | s/step | loss after $((steps + 2)) steps |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for row in "${rows[@]}"; do
  "$python" - "$row" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
name = d["impl"] + (f" (torch {d['torch']})" if "torch" in d else "")
print(f"| {name} | {d['width']} | {d['image_size']} | {d['batch']} | {d['samples_per_s']:.1f} | "
      f"{d['seconds_per_step']:.3f} | {d['loss']:.6f} |")
PY
done
if [[ -f $manifest ]]; then
  # The step at batch 256, then the loader alone on the manifest.
  "$cwcl" --threads "$threads" bench image "${common[@]}" -b 256 --steps 2 --manifest "$manifest" |
    "$python" -c '
import json, sys
step, loader = (json.loads(line) for line in sys.stdin.read().splitlines())
print()
rate, fed, name = step["samples_per_s"], loader["images_per_s"], loader["loader"]
print(f"Batches of 256: the step {rate:.0f} images/s, the loader alone {fed:.0f} images/s ({name}).")
'
fi
