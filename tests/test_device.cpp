// run.device / --device parsing and resolution, and bf16 autocast scopes.
#include <cwcl/device.h>
#include <cwcl/error.h>
#include <cwcl/model/config.h>

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "cuda.h"

namespace {

using cwcl::DeviceKind;
using cwcl::DeviceSpec;
using cwcl::Precision;

TEST(Device, SpecsParseAndPrint) {
  for (const char* text : {"auto", "cpu", "cuda", "cuda:0", "cuda:3"}) EXPECT_EQ(DeviceSpec::parse(text).str(), text);
  EXPECT_EQ(DeviceSpec::parse("cuda").index, -1);
  EXPECT_EQ(DeviceSpec::parse("cuda:3").index, 3);
  EXPECT_EQ(DeviceSpec::parse("cpu").kind, DeviceKind::Cpu);
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", "cuda:1:2", ""}) {
    try {
      DeviceSpec::parse(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const cwcl::UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("accepted: auto, cpu, cuda"), std::string::npos) << e.what();
    }
  }
}

TEST(Device, ResolvesWithoutFallingBack) {
  EXPECT_EQ(cwcl::resolve_device(DeviceSpec::parse("cpu"), "run.device"), torch::Device(torch::kCPU));
  const bool cuda = cwcl::cuda_device_count() > 0;
  EXPECT_EQ(cwcl::resolve_device({}, "run.device").is_cuda(), cuda);
  if (!cuda) {
    try {
      cwcl::resolve_device(DeviceSpec::parse("cuda"), "--device");
      ADD_FAILURE() << "cuda resolved on a machine without CUDA";
    } catch (const cwcl::ConfigError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("--device = cuda"), std::string::npos) << m;
      if (!cwcl::cuda_built()) {
        EXPECT_NE(m.find("without CUDA"), std::string::npos) << m;
      }
    }
  }
  const auto past_the_last = DeviceSpec{DeviceKind::Cuda, cwcl::cuda_device_count()};
  EXPECT_THROW(cwcl::resolve_device(past_the_last, "run.device"), cwcl::ConfigError);
}

TEST(Device, ConfigKeysParseOnceAndNameTheKey) {
  auto c = cwcl::TrainConfig::from_string("[run]\ndevice = \"cuda:1\"\nprecision = \"bf16\"\n", "t.toml");
  EXPECT_EQ(c.run.device, (DeviceSpec{DeviceKind::Cuda, 1}));
  EXPECT_EQ(c.run.precision, Precision::Bf16);
  EXPECT_EQ(cwcl::TrainConfig::from_string(c.to_toml(), "again").values(), c.values());
  const cwcl::TrainConfig defaults;
  EXPECT_EQ(defaults.run.device.kind, DeviceKind::Auto);
  for (const char* bad : {"[run]\ndevice = \"tpu\"\n", "[run]\nprecision = \"fp16\"\n"}) {
    try {
      cwcl::TrainConfig::from_string(bad, "t.toml");
      ADD_FAILURE() << bad;
    } catch (const cwcl::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("t.toml: key 'run."), std::string::npos) << e.what();
    }
  }
}

TEST(Autocast, Bf16ScopeCastsProductsAndRestoresTheState) {
  torch::manual_seed(0);
  torch::nn::Linear linear(8, 4);
  auto x = torch::randn({3, 8});
  const torch::Device cpu(torch::kCPU);
  {
    cwcl::AutocastScope fp32(Precision::Fp32, cpu);
    EXPECT_EQ(linear(x).scalar_type(), torch::kFloat);
  }
  {
    cwcl::AutocastScope outer(Precision::Bf16, cpu);
    EXPECT_EQ(linear(x).scalar_type(), torch::kBFloat16);
    {
      cwcl::AutocastScope inner(Precision::Bf16, cpu);
      EXPECT_EQ(linear(x).scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(linear(x).scalar_type(), torch::kBFloat16) << "the inner scope ended the outer one";
  }
  EXPECT_EQ(linear(x).scalar_type(), torch::kFloat);
}

// The CPU's flags as the kernel lists them, an independent reading of CPUID.
bool cpuinfo_lists_avx512_bf16() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) return (line + " ").find(" avx512_bf16 ") != std::string::npos;
  return false;
}

TEST(Precision, AutoIsBf16WhereTheDeviceComputesItFast) {
  if (!std::ifstream("/proc/cpuinfo")) GTEST_SKIP() << "no /proc/cpuinfo to compare with";
  const bool bf16 = cpuinfo_lists_avx512_bf16();
  EXPECT_EQ(cwcl::cpu_has_bf16_instructions(), bf16);
  const torch::Device cpu(torch::kCPU), cuda(torch::kCUDA, 0);
  EXPECT_EQ(cwcl::resolve_precision(Precision::Auto, cpu), bf16 ? Precision::Bf16 : Precision::Fp32);
  EXPECT_EQ(cwcl::resolve_precision(Precision::Auto, cuda), Precision::Bf16);
  for (const auto p : {Precision::Fp32, Precision::Bf16}) {
    EXPECT_EQ(cwcl::resolve_precision(p, cpu), p);
    EXPECT_EQ(cwcl::resolve_precision(p, cuda), p);
  }
  torch::nn::Linear linear(8, 4);
  cwcl::AutocastScope scope(Precision::Auto, cpu);
  EXPECT_EQ(linear(torch::randn({3, 8})).scalar_type(), bf16 ? torch::kBFloat16 : torch::kFloat);
  EXPECT_EQ(cwcl::TrainConfig::from_string("[run]\nprecision = \"auto\"\n", "t.toml").run.precision,
            Precision::Auto);
}

TEST(Autocast, CudaScopeCastsOnTheGpu) {
  CWCL_SKIP_WITHOUT_CUDA();
  torch::nn::Linear linear(8, 4);
  linear->to(torch::kCUDA);
  auto x = torch::randn({3, 8}, torch::kCUDA);
  {
    cwcl::AutocastScope bf16(Precision::Bf16, torch::kCUDA);
    EXPECT_EQ(linear(x).scalar_type(), torch::kBFloat16);
  }
  EXPECT_EQ(linear(x).scalar_type(), torch::kFloat);
}

}  // namespace
