#!/usr/bin/env bash
# Training speed of the batch part's frozen-encoder runs (docs/experiments.md
# "CWCL at large batch"): each map's resolved config from a finished
# `cwcl demo --preset batch` run, trained again for a few steps into a
# scratch folder, one map after the other on a quiet machine. Prints a
# Markdown table of median samples/s (the first logged interval, which holds
# the path measurement and the first epoch's loads, left out).
#
#   scripts/bench_batch_step.sh [cwcl] [demo-out] [batch]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cwcl=${1:-$here/../build/release/cwcl}
demo=${2:-runs/demo-batch}
batch=${3:-4096}
steps=${STEPS:-60}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "| batch | map | loss path | steps | median samples/s | x CL |"
echo "| ---: | --- | --- | ---: | ---: | ---: |"
cl_rate=""
for variant in cl power-8 kernel-calibrated; do
  config=$demo/runs/batch/batch-$batch-$variant/config.toml
  [[ -f $config ]] || { echo "bench_batch_step: $config missing (run cwcl demo --preset batch first)" >&2; exit 1; }
  "$cwcl" train "$config" --set "run.out=\"$scratch/$variant\"" --set "run.steps=$steps" \
    --set "optim.warmup=5" --set "run.checkpoint_every=$steps" --set "run.log_every=10" \
    > "$scratch/$variant.log" 2>&1 || { cat "$scratch/$variant.log" >&2; exit 1; }
  read -r rate path < <(python3 - "$scratch/$variant" <<'EOF'
import json, statistics, sys, tomllib
run = sys.argv[1]
rates = [json.loads(l)["samples_per_s"] for l in open(run + "/metrics.jsonl") if "samples_per_s" in l][1:]
with open(run + "/config.toml", "rb") as f:
    path = tomllib.load(f)["loss"].get("path", "?")
print(round(statistics.median(rates)), path)
EOF
)
  [[ -z $cl_rate ]] && cl_rate=$rate
  echo "| $batch | $variant | $path | $steps | $rate | $(python3 -c "print(f'{$rate / $cl_rate:.2f}')") |"
done
