#include <cwcl/synth/synth.h>

#include <nlohmann/json.hpp>

namespace cwcl {

std::vector<SynthItem> synth_items(const TextInputs& inputs) {
  std::vector<SynthItem> items;
  for (size_t i = 0; i < inputs.texts.size(); ++i) {
    SynthItem item{inputs.ids[i], inputs.texts[i], {}, ""};
    for (const auto& [key, value] : inputs.other_fields[i]) {
      const auto parsed = nlohmann::json::parse(value);
      if (key == "voice" && parsed.is_string()) item.voice = parsed.get<std::string>();
      else item.extra_json[key] = value;
    }
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace cwcl
