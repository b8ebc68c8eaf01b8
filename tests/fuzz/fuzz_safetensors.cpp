// libFuzzer target for the safetensors parser: every input must either parse
// or raise cwcl::FormatError, without reading out of bounds (ASan, UBSan).
// Build and run: scripts/fuzz.sh [seconds]
#include <cwcl/io/safetensors.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto st = cwcl::parse_safetensors(data, size, "fuzz-input");
    for (const auto& [name, t] : st.tensors) (void)t.numel();
  } catch (const cwcl::FormatError&) {
  }
  return 0;
}
