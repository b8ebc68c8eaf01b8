// Tests that need a CUDA device skip where there is none (CI, this
// project's CPU machines); on a GPU machine they run (docs/gpu.md).
#pragma once

#include <gtest/gtest.h>
#include <torch/cuda.h>

#define CWCL_SKIP_WITHOUT_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"
