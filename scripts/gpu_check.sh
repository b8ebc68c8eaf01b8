#!/usr/bin/env bash
# The GPU check in one command (docs/gpu.md): run from the repository root on
# the device machine, with the pack of scripts/gpu_pack.sh carried:
#
#   scripts/gpu_check.sh                 # on the GPU: within 9 minutes
#   DEVICE=cpu SIZE=small scripts/gpu_check.sh    # the rehearsal here
#
# Builds cwcl against the machine's PyTorch with the carried libraries, runs
# the unit tests (the CUDA ones run there), then measures, each against the
# same work in PyTorch on the same device: the tiled CL and CWCL losses at
# N = 16k, 64k and 256k (eager and torch.compile, the GEMM floor, peak
# memory), the Whisper tower's training step in fp32 and bf16, and short real
# trainings (the image tower; Whisper top 2 on the carried features) whose
# checkpoint then resumes on the CPU. Every stage is time-boxed, so a slow one
# cannot eat the rest. $OUT receives four files (the device tool brings back
# eight at most): report.md, results.jsonl (one line per measurement),
# stages.jsonl and logs.txt (each stage's log, its last 200 lines).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-full}
OUT=${OUT:-$root/build/gpu-check-out}
PACK=${PACK:-$root/build/gpu-pack}
BUILD=${BUILD:-$root/build/gpu-check}
JOBS=${JOBS:-$(nproc)}
WORK=$BUILD/check  # logs, runs, exports: not brought back
rm -rf "$WORK" && mkdir -p "$OUT" "$WORK"
: > "$OUT/stages.jsonl"
: > "$OUT/results.jsonl"
export CWCL_MODELS=$PACK/models
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
if [[ $SIZE == small ]]; then
  loss_sizes="1024 2048" python_sizes="1024" tower_batch=4 image_steps=20 speech_steps=6 speech_batch=8
  limits="build=2400 unit=300 loss=240 tower=120 train=300"  # a cold build on 2 cores
else
  loss_sizes="16384 65536 262144" python_sizes="16384 65536" tower_batch=32 image_steps=300 speech_steps=150
  speech_batch=64 limits="build=210 unit=75 loss=130 tower=45 train=80"
fi
# The stages run in their own shells under `timeout`: what they read is exported.
export root DEVICE OUT PACK BUILD JOBS WORK python loss_sizes python_sizes tower_batch image_steps speech_steps speech_batch
limit() { local kv; for kv in $limits; do [[ ${kv%%=*} == "$1" ]] && echo "${kv#*=}"; done; }

# Runs a stage under its time box; its output goes to $WORK/<name>.log.
stage() {
  local name=$1 box
  box=$(limit "$name")
  shift
  local start=$SECONDS
  timeout --kill-after=5 "$box" bash -c "set -o pipefail; $*" > "$WORK/$name.log" 2>&1
  local rc=$?
  local timed_out=false
  ((rc == 124 || rc == 137)) && timed_out=true
  echo "{\"stage\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - start)), \"limit\": $box, \"timed_out\": $timed_out}" \
    >> "$OUT/stages.jsonl"
  echo "gpu_check: $name rc $rc in $((SECONDS - start)) s (limit $box)"
  return $rc
}

build() {
  [[ -d $PACK/bundle/root/usr ]] || { echo "no pack at $PACK: run scripts/gpu_pack.sh here and carry it"; return 2; }
  local prefix=${TORCH_PREFIX:-$($python -c 'import torch; print(torch.utils.cmake_prefix_path)')}
  local lib=$PACK/bundle/root/usr/lib/x86_64-linux-gnu
  cmake -S "$root" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix;$PACK/bundle/root/usr" \
    -DCWCL_WITH_SYNTH=OFF -DCWCL_WITH_OPENCV=OFF -DCWCL_BUILD_BENCHMARKS=OFF -DCWCL_USE_CCACHE=${CCACHE:-OFF} \
    -DCMAKE_BUILD_RPATH="$lib" && cmake --build "$BUILD" -j "$JOBS" --target cwcl_app cwcl_tests
}

# The unit tests that need no MiniLM (it does not travel); the CUDA ones run
# where there is a GPU.
unit() {
  "$BUILD/tests/cwcl_tests" --gtest_filter='-MiniLM.*:GloveFolder.*:DemoFiles.*:WhisperBase.*' --gtest_brief=1
}

loss() {
  local n spec kind weights extra
  for n in $loss_sizes; do
    for spec in "cl affine" "cwcl power" "cwcl kernel"; do
      read -r kind weights <<< "$spec"
      timeout 60 "$BUILD/cwcl" bench loss --device "$DEVICE" --kind "$kind" --weights "$weights" -n "$n" --dim 384 \
        --path tiled --repeats 1 | tee -a "$OUT/results.jsonl" || echo "cwcl bench loss $spec n=$n: failed or over 60 s"
    done
    for p in $python_sizes; do
      [[ $p == "$n" ]] || continue
      for spec in "cl affine" "cwcl power" "cwcl kernel"; do
        read -r kind weights <<< "$spec"
        for extra in "" "--compile"; do
          [[ -z $extra || $DEVICE != cpu ]] || continue  # torch.compile: the GPU's PyTorch 2.x
          timeout 90 $python "$root/scripts/bench_loss_python.py" --device "$DEVICE" --kind "$kind" --weights "$weights" \
            -n "$n" --dim 384 --repeats 1 $extra | tee -a "$OUT/results.jsonl" || echo "python $spec n=$n $extra: failed"
        done
      done
    done
  done
}

tower() {
  local precision
  "$BUILD/cwcl" bench tower --device "$DEVICE" --steps 1 -b "$tower_batch" --export "$WORK/tower0" > /dev/null || return 1
  for precision in fp32 bf16; do
    "$BUILD/cwcl" bench tower --device "$DEVICE" --precision "$precision" -b "$tower_batch" --steps 10 \
      | tee -a "$OUT/results.jsonl"
    $python "$root/scripts/bench_tower_python.py" "$WORK/tower0" --device "$DEVICE" --precision "$precision" \
      -b "$tower_batch" --steps 10 | tee -a "$OUT/results.jsonl" || echo "python tower $precision: failed"
  done
}

# A run's summary line, tagged, into the results.
train_run() {
  local tag=$1
  shift
  "$BUILD/cwcl" train "$@" | sed "s/^{/{\"run\": \"$tag\", /" | tee -a "$OUT/results.jsonl"
  return "${PIPESTATUS[0]}"
}

train() {
  local runs=$WORK/runs
  rm -rf "$runs"
  train_run image "$root/configs/image.toml" --set run.out="$runs/image" --set run.device="$DEVICE" \
    --set data.train="$PACK/image" --set text.tower=store --set text.model="$PACK/image/texts.safetensors" \
    --set data.text_store="$runs/image-captions.safetensors" --set run.steps="$image_steps" --set run.threads=4 || return 1
  local speech=(--set run.out="$runs/speech" --set data.train="$PACK/speech/train.jsonl" --set text.tower=store
    --set text.model="$PACK/speech/texts.safetensors" --set data.text_store="$runs/speech-texts.safetensors"
    --set run.eval_every=0 --set run.batch_size="$speech_batch" --set run.checkpoint_every="$speech_steps"
    --set run.precision=bf16)  # not auto: the CPU resume must run what the GPU ran
  train_run speech-top2-bf16 "$root/configs/speech_top2.toml" "${speech[@]}" --set run.device="$DEVICE" \
    --set run.steps="$speech_steps" || return 1
  # The same run, two steps further, resumed on the CPU from the GPU's checkpoint.
  train_run speech-resumed-on-cpu "$root/configs/speech_top2.toml" "${speech[@]}" --set run.device=cpu \
    --set run.steps=$((speech_steps + 2)) --resume
}

export -f build unit loss tower train train_run
{
  echo "gpu_check: device $DEVICE, size $SIZE, pack $PACK, out $OUT"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
  $python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
} > "$WORK/machine.txt" 2>&1
cat "$WORK/machine.txt"
if stage build build; then
  stage unit unit
  stage loss loss
  stage tower tower
  stage train train
fi
for log in "$WORK"/*.log; do echo "==== $(basename "$log")"; tail -n 200 "$log"; done > "$OUT/logs.txt"
$python "$root/scripts/gpu_report.py" "$OUT" "$WORK/machine.txt" > "$OUT/report.md" && echo "gpu_check: $OUT/report.md"
