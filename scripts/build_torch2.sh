#!/usr/bin/env bash
# Builds cwcl against libtorch 2.x from the PyPI `torch` wheel and runs the
# unit tests there (docs/gpu.md). On a machine without the CUDA toolkit it
# uses the wheel's CPU libraries (libtorch_cpu, libc10) plus the two small
# CUDA runtime libraries libtorch_cpu is linked against (cudart, cupti), so
# no GPU and no CUDA toolkit are needed.
#
#   scripts/build_torch2.sh [ctest arguments...]     default: -L unit
#
# Environment: TORCH_VERSION (2.11.0, the GPU machines' version),
# TORCH2_DIR (build/torch2-wheel: wheels and the unpacked torch/),
# TORCH2_BUILD (build/torch2), CMAKE_ARGS (more -D options, e.g.
# "-DCWCL_WITH_SYNTH=OFF -DCWCL_WITH_OPENCV=OFF" as a GPU machine builds).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=${TORCH_VERSION:-2.11.0}
wheel_dir=${TORCH2_DIR:-$root/build/torch2-wheel}
build_dir=${TORCH2_BUILD:-$root/build/torch2}
python=${PYTHON:-python3}
torch_root=$wheel_dir/torch-$version/torch

fetch_torch() {
  mkdir -p "$wheel_dir/wheels"
  echo "torch2: downloading torch==$version (no dependencies)"
  "$python" -m pip download -q "torch==$version" --no-deps --only-binary=:all: -d "$wheel_dir/wheels"
  local wheel
  wheel=$(ls "$wheel_dir"/wheels/torch-"$version"-*.whl | head -1)
  local unpack=$wheel_dir/torch-$version
  rm -rf "$unpack.tmp" && mkdir -p "$unpack.tmp"
  (cd "$unpack.tmp" && unzip -q "$wheel" 'torch/lib/*' 'torch/include/*' 'torch/share/*' \
    'torch-*.dist-info/METADATA')
  # libtorch_cpu names libcudart and libcupti: take the versions the wheel asks for.
  local toolkit
  toolkit=$(sed -n 's/^Requires-Dist: cuda-toolkit\[.*\]==\([0-9.]*\).*/\1/p' "$unpack.tmp"/torch-*.dist-info/METADATA)
  if [[ -n "$toolkit" ]]; then
    echo "torch2: downloading the CUDA runtime and CUPTI libraries of cuda-toolkit $toolkit"
    "$python" -m pip download -q "cuda-toolkit[cudart,cupti]==$toolkit" --only-binary=:all: -d "$wheel_dir/wheels"
    for w in "$wheel_dir"/wheels/nvidia_cuda_runtime-*.whl "$wheel_dir"/wheels/nvidia_cuda_cupti-*.whl; do
      unzip -q -o -j "$w" '*/libcudart.so.*' '*/libcupti.so.*' -d "$unpack.tmp/torch/lib" 2>/dev/null || true
    done
    for lib in libcudart libcupti; do
      ls "$unpack.tmp"/torch/lib/$lib.so.* > /dev/null 2>&1 || { echo "torch2: no $lib in the CUDA wheels" >&2; exit 1; }
    done
  fi
  rm -rf "$unpack" && mv "$unpack.tmp" "$unpack"
}

[[ -f "$torch_root/lib/libtorch_cpu.so" ]] || fetch_torch

cmake_args=(-S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
  -DCWCL_BUILD_BENCHMARKS=OFF)
if command -v nvcc >/dev/null; then
  # The whole wheel with CUDA: its own TorchConfig.cmake.
  cmake_args+=(-DCMAKE_PREFIX_PATH="$torch_root/share/cmake")
else
  cmake_args+=(-DCWCL_TORCH_WHEEL_CPU="$torch_root")
fi
read -r -a extra <<< "${CMAKE_ARGS:-}"
cmake "${cmake_args[@]}" "${extra[@]}"
cmake --build "$build_dir"
cd "$build_dir"
if (($# == 0)); then set -- -L unit; fi
ctest --output-on-failure -j 2 "$@"
