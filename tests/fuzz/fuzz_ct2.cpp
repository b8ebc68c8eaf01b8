// libFuzzer target for the CTranslate2 model.bin reader (see fuzz_safetensors.cpp).
#include <cwcl/io/ctranslate2.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto m = cwcl::parse_ct2_model(data, size, "fuzz-input");
    for (const auto& [name, t] : m.variables) (void)t.numel();
  } catch (const cwcl::FormatError&) {
  }
  return 0;
}
