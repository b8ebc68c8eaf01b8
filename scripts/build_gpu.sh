#!/usr/bin/env bash
# On a GPU machine (PyTorch 2.x with CUDA, CMake, ninja, no package
# registry): builds cwcl against that PyTorch's libtorch with the libraries
# scripts/gpu_bundle.sh gathered, and runs the unit tests (docs/gpu.md).
# Synthesis, OpenCV and the benchmarks are left out.
#
#   scripts/build_gpu.sh [ctest arguments...]     default: -L unit
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=${GPU_BUNDLE:-$root/build/gpu-bundle}
build=${GPU_BUILD:-$root/build/gpu}
[[ -d "$bundle/root/usr" ]] || { echo "build_gpu: no $bundle/root (run scripts/gpu_bundle.sh and carry it)" >&2; exit 2; }
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
lib=$bundle/root/usr/lib/x86_64-linux-gnu
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_prefix;$bundle/root/usr" \
  -DCWCL_WITH_SYNTH=OFF -DCWCL_WITH_OPENCV=OFF -DCWCL_BUILD_BENCHMARKS=OFF -DCWCL_USE_CCACHE=OFF \
  -DCMAKE_BUILD_RPATH="$lib"
cmake --build "$build"
cd "$build"
if (($# == 0)); then set -- -L unit; fi
ctest --output-on-failure "$@"
