#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz with clang and runs each (the
# safetensors and the CTranslate2 readers) for the given number of seconds
# (default 180) from its seed corpus.
#   scripts/fuzz.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-180}
command -v clang++ >/dev/null || { echo "fuzz: needs clang and libclang-rt-14-dev (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
cmake -S tests/fuzz -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz
for target in safetensors ct2; do
  corpus=build/fuzz/corpus_$target
  mkdir -p "$corpus"
  cp tests/fuzz/corpus_$target/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: $target for $seconds s"
  build/fuzz/fuzz_$target "$corpus" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
done
