#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz with clang and runs each for the
# given number of seconds (default 180) from its seed corpus.
#   scripts/fuzz.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-180}
command -v clang++ >/dev/null || { echo "fuzz: needs clang and libclang-rt-14-dev (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
cmake -S tests/fuzz -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz
corpus=build/fuzz/corpus_safetensors
mkdir -p "$corpus"
cp tests/fuzz/corpus_safetensors/* "$corpus"/ 2>/dev/null || true
build/fuzz/fuzz_safetensors "$corpus" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
