# Which libtorch to build against (docs/gpu.md):
# - default: find_package(Torch): Debian's libtorch 1.13 (CPU), or any libtorch
#   named by CMAKE_PREFIX_PATH, e.g. a PyPI torch 2.x wheel's
#   $(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)') on a
#   machine with the CUDA toolkit;
# - CWCL_TORCH_WHEEL_CPU=<wheel>/torch: the CPU half of a CUDA wheel on a
#   machine without the CUDA toolkit, whose TorchConfig.cmake refuses to load
#   there. Links libtorch_cpu and libc10 only; scripts/build_torch2.sh sets it.
set(CWCL_TORCH_WHEEL_CPU "" CACHE PATH "torch/ folder of a PyPI torch wheel, used without CUDA")

if(CWCL_TORCH_WHEEL_CPU)
  set(_root "${CWCL_TORCH_WHEEL_CPU}")
  foreach(lib torch_cpu c10)
    if(NOT EXISTS "${_root}/lib/lib${lib}.so")
      message(FATAL_ERROR "CWCL_TORCH_WHEEL_CPU=${_root}: lib/lib${lib}.so not found")
    endif()
  endforeach()
  add_library(torch INTERFACE IMPORTED GLOBAL)
  target_include_directories(torch INTERFACE "${_root}/include" "${_root}/include/torch/csrc/api/include")
  # Wheels since torch 2.7 are built with the C++11 ABI, as Debian is.
  target_compile_definitions(torch INTERFACE _GLIBCXX_USE_CXX11_ABI=1)
  # --no-as-needed: libtorch_cpu registers its operators from static
  # initialisers; nothing may drop it for lack of a direct reference.
  target_link_libraries(torch INTERFACE -Wl,--no-as-needed "${_root}/lib/libtorch_cpu.so"
    "${_root}/lib/libc10.so" -Wl,--as-needed "-Wl,-rpath,${_root}/lib")
  set(CWCL_TORCH_FROM "wheel (CPU): ${_root}")
  set(CWCL_CUDA_BUILD 0)
else()
  find_package(Torch REQUIRED)
  set(CWCL_TORCH_FROM "${Torch_DIR}")
  if(CAFFE2_USE_CUDA)
    set(CWCL_CUDA_BUILD 1)
  else()
    set(CWCL_CUDA_BUILD 0)
  endif()
endif()
message(STATUS "cwcl: libtorch from ${CWCL_TORCH_FROM} (CUDA: ${CWCL_CUDA_BUILD})")
