#!/bin/bash
# Distributed training through the command (DESIGN.md contract 6):
#  - N ranks (cwcl train --nproc N, or the torchrun variables set by hand)
#    end with the weights of one process with the same global batch, for CL,
#    CWCL with each weight map, SigLIP, CWSigLIP and the cosine term, 2 and 3
#    ranks;
#  - GradCache accumulation (run.accum_steps) equals one whole-batch step,
#    alone and with ranks;
#  - a rank killed or stopped makes the job fail within the timeout with a
#    message naming it; SIGKILL of the whole job, then --resume with another
#    world size, ends with the uninterrupted run's weights.
# usage: dist_train.sh <cwcl> <work dir>
set -euo pipefail
cwcl=$1 work=$2
rm -rf "$work" && mkdir -p "$work/runs"
cd "$work"

fail() { echo "FAIL: $*" >&2; exit 1; }

printf '%s\n' "turn on the lights" "what is the weather" "play some jazz" "set an alarm for seven" \
  "turn the volume down" "tell me a joke" "what time is it" "book a table for two" "wake me up at six" \
  "call my mother" "how tall is the eiffel tower" "order a pizza" "remind me to buy milk" \
  "what is on my calendar" "send an email to john" "play the next song" "dim the lights in the kitchen" \
  "how is the traffic" "start the vacuum cleaner" "read the news" "what is two plus two" \
  "open the garage door" "cancel my meeting" "find a good restaurant" > texts.txt
"$cwcl" synth texts.txt -o speech --format flac --voices espeak:en-us,espeak:en > /dev/null 2>&1
# 24 utterances, global batch 12: 2 batches per epoch; 12 = 2 x 6 = 3 x 4.
cat > base.toml <<TOML
[run]
steps = 4
batch_size = 12
checkpoint_every = 2
log_every = 1
[model]
tower = "whisper"
head_hidden = 16
[data]
train = "$work/speech/manifest.jsonl"
TOML

train() {  # <run name> [cwcl train arguments...]
  local name=$1
  shift
  "$cwcl" train base.toml --set run.out="$work/runs/$name" "$@" > "runs/$name.out" 2> "runs/$name.err" ||
    { cat "runs/$name.err" >&2; fail "cwcl train $name $*"; }
}

same() {  # <run a> <run b>: weights equal up to float rounding
  local d m
  d=$("$cwcl" info --model "runs/$1" --compare "runs/$2")
  m=$(echo "$d" | grep -o '"max_abs_diff":[0-9.e+-]*' | cut -d: -f2)
  awk -v m="$m" 'BEGIN { exit !(m <= 1e-5) }' || fail "$2 differs from $1: $d"
  echo "$2 == $1 (max |diff| $m)"
}

# --- N ranks == 1 rank with the same global batch -------------------------
variants=(
  "cl:--set loss.kind=cl"
  "siglip:--set loss.kind=siglip"
  "cwsiglip:--set loss.kind=cwsiglip"
  "affine:--set loss.weights=affine"
  "relu:--set loss.weights=relu"
  "power:--set loss.weights=power"
  "kernel-calibrated:--set loss.weights=kernel --set loss.calibrate=3"
  "row_minmax:--set loss.weights=row_minmax --set loss.center=true"
  "identity:--set loss.weights=identity"
  "affine-one-direction:--set loss.weights=affine --set loss.directions=frozen_to_trained"
  "cosine:--set loss.kind=cosine"
  "cl-plus-cosine:--set loss.kind=cl --set loss.cosine_weight=0.5"
)
for v in "${variants[@]}"; do
  name=${v%%:*} args=${v#*:}
  # shellcheck disable=SC2086
  train "$name-1" $args
  # shellcheck disable=SC2086
  train "$name-2" $args --nproc 2
  same "$name-1" "$name-2"
done
for name in cl affine siglip; do
  args=$(printf '%s\n' "${variants[@]}" | grep "^$name:" | cut -d: -f2-)
  # shellcheck disable=SC2086
  train "$name-3" $args --nproc 3
  same "$name-1" "$name-3"
done
grep -q '"ranks":3' runs/cl-3.out || fail "the summary does not report 3 ranks"
[ -s runs/cl-3/logs/rank2.log ] || fail "rank 2 wrote no log"
[ "$(wc -l < runs/cl-3/metrics.jsonl)" = 4 ] || fail "metrics.jsonl of 3 ranks has $(wc -l < runs/cl-3/metrics.jsonl) lines, want 4"

# The same binary joined by hand with torchrun's variables.
port=$(( 20000 + RANDOM % 20000 ))
for r in 0 1; do
  RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$cwcl" train base.toml --set run.out="$work/runs/torchrun-env" --set loss.weights=affine \
    > "runs/torchrun-env.$r.out" 2>&1 &
done
wait
same affine-1 torchrun-env

# --- GradCache accumulation ------------------------------------------------
top="--set model.whisper_training=top --set model.top_blocks=1 --set run.steps=3"
# shellcheck disable=SC2086
train top-1 $top
# shellcheck disable=SC2086
train top-accum3 $top --set run.accum_steps=3
# shellcheck disable=SC2086
train top-2ranks-accum2 $top --set run.accum_steps=2 --nproc 2
same top-1 top-accum3
same top-1 top-2ranks-accum2

# --- bad splits are configuration errors -----------------------------------
set +e
"$cwcl" train base.toml --set run.out="$work/runs/bad" --nproc 5 > runs/bad.out 2>&1
rc=$?
set -e
[ $rc = 2 ] || fail "--nproc 5 with a global batch of 12 exited $rc, want 2"
grep -q "run.batch_size" runs/bad.out || fail "the split error does not name run.batch_size: $(cat runs/bad.out)"

# --- a non-finite loss skips the step on every rank -------------------------
# A learning rate of 1e30 sends the head's weights to infinity after one
# step; from then on every step's loss is NaN on both ranks: each is skipped
# and counted, and after 20 in a row both ranks stop with the same error
# (neither waits for the other in a backward pass the other skipped).
set +e
"$cwcl" train base.toml --set run.out="$work/runs/nan" --set optim.lr=1e30 --set optim.warmup=0 \
  --set run.steps=40 --nproc 2 > runs/nan.out 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "a run whose loss is NaN exited $rc, want 1:"$'\n'"$(cat runs/nan.out)"
grep -q "not finite for 20 steps in a row" runs/nan.out || fail "no non-finite message: $(cat runs/nan.out)"
grep -q "not finite for 20 steps in a row" runs/nan/logs/rank1.log || fail "rank 1 did not stop alike"
skipped=$(tail -1 runs/nan/metrics.jsonl | grep -o '"nonfinite_steps":[0-9]*' | cut -d: -f2)
[ "$skipped" -ge 19 ] || fail "metrics.jsonl counts $skipped non-finite steps"
echo "NaN loss: $skipped steps skipped on both ranks, then a clear stop"

# --- faults ----------------------------------------------------------------
# The pid of rank <r> among the launcher's children.
rank_pid() {
  local launcher=$1 r=$2 p
  for p in $(pgrep -P "$launcher"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "RANK=$r"; then echo "$p"; return; fi
  done
}
wait_for_file() {
  for _ in $(seq 1 1200); do [ -e "$1" ] && return 0; sleep 0.05; done
  fail "$1 never appeared"
}
long="$top --set run.steps=400 --set run.checkpoint_every=1 --set run.dist_timeout=5"

for how in KILL STOP; do
  # shellcheck disable=SC2086
  "$cwcl" train base.toml --set run.out="$work/runs/fault-$how" $long --nproc 2 > "runs/fault-$how.out" 2>&1 &
  launcher=$!
  wait_for_file "runs/fault-$how/checkpoints/step-00000002.pt"
  victim=$(rank_pid "$launcher" 1)
  [ -n "$victim" ] || fail "no rank 1 under launcher $launcher"
  kill -"$how" "$victim"
  start=$(date +%s)
  set +e
  wait "$launcher"
  rc=$?
  set -e
  took=$(( $(date +%s) - start ))
  [ $rc != 0 ] || fail "SIG$how of rank 1: the job exited 0"
  [ "$took" -le 60 ] || fail "SIG$how of rank 1: the job took $took s to fail"
  grep -q "peer error: rank 0: .*rank 1" "runs/fault-$how.out" ||
    fail "SIG$how of rank 1: rank 0 did not name it:"$'\n'"$(cat "runs/fault-$how.out")"
  [ -e "runs/fault-$how/model.pt" ] && fail "SIG$how: a model was written"
  pgrep -f "fault-$how" > /dev/null && fail "SIG$how: ranks of the failed job still run"
  echo "SIG$how of rank 1: the job failed in $took s (exit $rc): $(grep -o 'peer error: .*' "runs/fault-$how.out" | head -c 300)"
done

# SIGKILL of the launcher alone takes its ranks with it; --resume with 3
# ranks ends where an uninterrupted single process ends.
resume="$top --set run.steps=30 --set run.checkpoint_every=4"
# shellcheck disable=SC2086
train straight $resume
# shellcheck disable=SC2086
"$cwcl" train base.toml --set run.out="$work/runs/killed" $resume --nproc 2 > runs/killed.out 2>&1 &
launcher=$!
wait_for_file runs/killed/checkpoints/step-00000008.pt
kill -9 "$launcher"
wait "$launcher" 2>/dev/null || true
sleep 1
pgrep -f "runs/killed" > /dev/null && fail "ranks outlived the SIGKILLed launcher"
[ -e runs/killed/model.pt ] && fail "the run finished before it could be killed"
echo "killed after $(ls runs/killed/checkpoints | tr '\n' ' ')"
# shellcheck disable=SC2086
train killed $resume --nproc 3 --resume
grep -o '"resumed_at":[0-9]*' runs/killed.out
same straight killed
[ "$(wc -l < runs/killed/metrics.jsonl)" = "$(wc -l < runs/straight/metrics.jsonl)" ] ||
  fail "metrics.jsonl of the resumed run has $(wc -l < runs/killed/metrics.jsonl) lines"

# --- the colour tower on an image manifest, 2 ranks ------------------------
# Its batch norm sees each rank's rows (no SyncBatchNorm), so it trains
# rather than matching one process exactly.
mkdir -p images
for i in $(seq 0 11); do
  if [ $((i % 2)) = 0 ]; then name=red pixel="255 0 0"; else name=blue pixel="0 0 255"; fi
  side=$((3 + i % 4))
  { printf 'P3\n%d %d\n255\n' "$side" "$side"; for _ in $(seq $((side * side))); do echo "$pixel"; done; } > "images/$i.ppm"
  echo "{\"id\":\"$i\",\"image\":\"$i.ppm\",\"texts\":[\"a $name square, number $i\",\"$name $i\"]}" >> images/train.jsonl
done
train resnet-2ranks --set model.tower=resnet --set model.resnet_width=4 --set model.image_size=16 \
  --set data.train="$work/images/train.jsonl" --set run.accum_steps=2 --nproc 2
[ -e runs/resnet-2ranks/model.pt ] || fail "the 2-rank colour run wrote no model"
echo "resnet-2ranks trained"
echo "distributed training: all checks passed"
