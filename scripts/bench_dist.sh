#!/usr/bin/env bash
# Distributed training and GradCache accumulation, measured through
# `cwcl train` (docs/performance.md, "Ranks and accumulation"):
#  1. peak memory against the global batch, without accumulation (one chunk)
#     and with chunks of 16 (run.accum_steps = B / 16), for the Whisper top-2
#     tower and the image tower; the slope of a least-squares line gives MiB
#     per sample of the global batch, and its inverse the batch per GiB;
#  2. samples/s with 1 and 2 ranks (cwcl train --nproc), the bytes each rank
#     sends per step and the share of a step spent inside collectives.
# Each run is its own process; peak memory is the process's peak RSS.
#
#   scripts/bench_dist.sh [cwcl] [work dir] > /tmp/dist_tables.md
#   PARTS=ranks scripts/bench_dist.sh     # one part: memory or ranks
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cwcl=${1:-$here/build/release/cwcl}
work=${2:-/tmp/cwcl_bench_dist}
utterances=${UTTERANCES:-512}
speech_batches=${SPEECH_BATCHES:-"32 64 128 256"}
image_batches=${IMAGE_BATCHES:-"256 512 1024 2048"}
parts=${PARTS:-"memory ranks"}
mkdir -p "$work"
cd "$work"

if [ ! -s speech/manifest.jsonl ]; then
  # Lines of six words: utterances of similar length (about 1.5-2.5 s), so
  # that batches of any size pad alike and memory grows with the batch alone.
  awk -v n="$utterances" 'NF == 6 && k++ < n' "$here/data/slurp/lm.txt" > texts.txt
  "$cwcl" synth texts.txt -o speech --format flac --voices espeak:en-us,espeak:en > /dev/null 2>&1
fi
cat > whisper.toml <<TOML
[run]
steps = 2
log_every = 1
checkpoint_every = 1000
[model]
tower = "whisper"
whisper_training = "top"
top_blocks = 2
[data]
train = "$work/speech/manifest.jsonl"
TOML
cat > image.toml <<TOML
[run]
steps = 2
log_every = 1
checkpoint_every = 1000
[model]
tower = "image"
[data]
train = "/usr/share/datasets/fashion-mnist"
TOML

field() { grep -o "\"$1\":[0-9.e+-]*" | tail -1 | cut -d: -f2 || true; }

train() {  # <config> <run name> [--set ...]: prints the summary line
  local config=$1 name=$2
  shift 2
  rm -rf "runs/$name"
  "$cwcl" train "$config" --set run.out="$work/runs/$name" "$@" 2> "runs.$name.err" ||
    { cat "runs.$name.err" >&2; exit 1; }
}
mkdir -p runs

# Caches (features, text stores) are built once, outside the measured runs.
train whisper.toml warm --set run.batch_size=16 > /dev/null
train image.toml warm-image --set run.batch_size=16 > /dev/null

fit() {  # "x y" lines -> slope (least squares)
  awk '{ n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2 }
       END { printf "%.4f", (n * sxy - sx * sy) / (n * sxx - sx * sx) }'
}

if [[ " $parts " == *" memory "* ]]; then
  echo "| tower | global batch | chunks | peak RSS MiB | samples/s |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  summary=()
  for tower in whisper image; do
    batches=$speech_batches
    [ "$tower" = image ] && batches=$image_batches
    for mode in whole chunked; do
      points=""
      for b in $batches; do
        k=1
        [ "$mode" = chunked ] && k=$(( b / 16 ))
        out=$(train "$tower.toml" "$tower-$b-$k" --set run.batch_size="$b" --set run.accum_steps="$k")
        rss=$(echo "$out" | field peak_rss_mib)
        secs=$(echo "$out" | field seconds)
        printf '| %s | %d | %d | %.0f | %.1f |\n' "$tower" "$b" "$k" "$rss" "$(awk -v s="$secs" -v b="$b" 'BEGIN { print 2 * b / s }')"
        points+="$b $rss"$'\n'
      done
      slope=$(printf '%s' "$points" | fit)
      # A slope under 0.01 MiB per sample is within the noise of a peak RSS.
      summary+=("| $tower | $mode | $slope | $(awk -v s="$slope" 'BEGIN { if (s > 0.01) printf "%.0f", 1024 / s; else print "flat: not limited by activations" }') |")
    done
  done
  echo
  echo "| tower | batch | MiB per sample of the global batch (slope) | global batch per GiB |"
  echo "| --- | --- | ---: | ---: |"
  printf '%s\n' "${summary[@]}"
fi
if [[ " $parts " == *" ranks "* ]]; then
  echo
  echo "| work | ranks x torch threads | global batch | samples/s | bytes sent per step per rank | time in collectives |"
  echo "| --- | --- | ---: | ---: | ---: | ---: |"
  for work_kind in "whisper-top2:whisper.toml:32" "whisper-head:whisper.toml:256" "image:image.toml:512"; do
    IFS=: read -r name config b <<< "$work_kind"
    extra=()
    [ "$name" = whisper-head ] && extra=(--set model.whisper_training=frozen)
    for layout in 1x1 1x2 2x1; do
      ranks=${layout%x*} threads=${layout#*x}
      train "$config" "$name-$layout" --set run.batch_size="$b" --set run.steps=12 --set run.log_every=6 \
        --set run.threads="$threads" "${extra[@]}" --nproc "$ranks" > /dev/null
      line=$(tail -1 "runs/$name-$layout/metrics.jsonl")  # steps 7-12: after warm-up
      sps=$(echo "$line" | field samples_per_s)
      bytes=$(echo "$line" | field comm_bytes_per_step)
      frac=$(echo "$line" | field comm_fraction)
      printf '| %s | %s | %d | %.0f | %s | %s |\n' "$name" "$layout" "$b" "$sps" \
        "$( [ -n "$bytes" ] && awk -v x="$bytes" 'BEGIN { printf "%.2f MiB", x / 1048576 }' || echo -)" \
        "$( [ -n "$frac" ] && awk -v x="$frac" 'BEGIN { printf "%.0f%%", 100 * x }' || echo -)"
    done
  done
fi
