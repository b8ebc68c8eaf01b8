// Reading CTranslate2's model.bin (binary version 6, as written by
// ctranslate2/specs/model_spec.py): the spec name and revision, then named
// variables (rank, shape, dtype, raw little-endian bytes), then aliases.
#pragma once

#include <cwcl/io/safetensors.h>  // FormatError
#include <torch/torch.h>

#include <map>
#include <string>

namespace cwcl {

struct Ct2Model {
  std::string spec;        ///< e.g. "WhisperSpec"
  uint32_t revision = 0;
  std::map<std::string, torch::Tensor> variables;  ///< float16/bfloat16 kept as stored
  std::map<std::string, std::string> aliases;      ///< alias -> variable name

  /// A variable by name or alias; throws FormatError naming `source` when absent.
  const torch::Tensor& get(const std::string& name, const std::string& source) const;
};

/// Parses a model.bin buffer. Rejects other binary versions, truncation,
/// unknown dtypes, byte counts that disagree with the shape and anything
/// after the aliases, with a FormatError naming `source`; never reads outside
/// the buffer.
Ct2Model parse_ct2_model(const uint8_t* data, size_t size, const std::string& source);

/// Reads a model.bin file.
Ct2Model read_ct2_model(const std::string& path);

/// Writes a model in the same binary version (6): what read_ct2_model reads
/// back. Variables of another dtype than CTranslate2 knows are refused.
void write_ct2_model(const std::string& path, const Ct2Model& model);

/// The variables under `prefix` (e.g. "encoder/") and the aliases into them:
/// what cwcl reads of a Whisper model, without the decoder.
Ct2Model ct2_subset(const Ct2Model& model, const std::string& prefix);

}  // namespace cwcl
