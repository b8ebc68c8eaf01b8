#include <cwcl/error.h>
#include <cwcl/io/files.h>
#include <cwcl/io/safetensors.h>
#include <cwcl/io/zip.h>
#include <cwcl/model/model_file.h>

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <unordered_map>

namespace cwcl {
namespace {

namespace fs = std::filesystem;

using Shapes = std::unordered_map<std::string, std::vector<int64_t>>;

Shapes shapes_of(torch::nn::Module& m) {
  Shapes out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().sizes().vec();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value().sizes().vec();
  return out;
}

ModelFileHeader read_header(torch::serialize::InputArchive& archive, const std::string& path) {
  c10::IValue v;
  if (!archive.try_read("format", v) || !v.isString())
    throw DataError(path + ": not a cwcl model or checkpoint (no format tag)");
  if (v.toStringRef() != kModelFormat)
    throw DataError(path + ": format '" + v.toStringRef() + "', but this cwcl reads '" + kModelFormat +
                    "' only (train the model again with this version)");
  ModelFileHeader h;
  archive.read("config", v);
  h.config = TrainConfig::from_string(v.toStringRef(), path + " (its config)");
  archive.read("out_dim", v);
  h.out_dim = v.toInt();
  archive.read("step", v);
  h.step = v.toInt();
  archive.read("architecture", v);
  h.architecture = v.toIntVector();
  return h;
}

}  // namespace

void write_model_file(const std::string& path, const ModelFileHeader& header, torch::nn::Module& tower,
                      torch::nn::Module& criterion, torch::optim::Optimizer* optimizer) {
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kModelFormat)));
  archive.write("config", c10::IValue(header.config.to_toml()));
  archive.write("out_dim", c10::IValue(header.out_dim));
  archive.write("step", c10::IValue(header.step));
  archive.write("architecture", c10::IValue(header.architecture));
  torch::serialize::OutputArchive tower_archive, criterion_archive;
  tower.save(tower_archive);
  criterion.save(criterion_archive);
  archive.write("tower", tower_archive);
  archive.write("criterion", criterion_archive);
  if (optimizer) {
    torch::serialize::OutputArchive opt;
    optimizer->save(opt);
    archive.write("optimizer", opt);
  }
  // Serialised in memory first: torch's file writer, failing on a full disk,
  // throws again from its destructor and aborts the process; our writer
  // fails as one WriteError naming the file, the temporary file removed.
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string data = bytes.str();
  replace_file_atomically(path, [&](const std::string& tmp) { write_file(tmp, {{data.data(), data.size()}}); });
}

ModelFile ModelFile::open(const std::string& path) {
  if (!fs::is_regular_file(path)) throw DataError(path + ": no such model file");
  ModelFile f;
  f.path_ = path;
  f.archive_ = std::make_shared<torch::serialize::InputArchive>();
  try {
    // libtorch does not check the CRC-32 its ZIP records carry: a flipped
    // byte would load as another model. cwcl checks them first.
    auto bytes = std::make_shared<const std::vector<uint8_t>>(read_file_bytes(path));
    verify_zip_checksums(bytes->data(), bytes->size(), path);
    // Onto the CPU whatever device wrote it: a GPU run's files load on any
    // machine, and the trainer moves what it loads to run.device.
    f.archive_->load_from(reinterpret_cast<const char*>(bytes->data()), bytes->size(), torch::Device(torch::kCPU));
    f.bytes_ = std::move(bytes);
    f.header_ = read_header(*f.archive_, path);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw DataError(path + ": not a cwcl model or checkpoint (" + shorten(message_of(e), 200) + ")");
  }
  return f;
}

void ModelFile::load(const std::string& key, torch::nn::Module& module) {
  const std::string misfit = path_ + ": its '" + key + "' weights do not fit the architecture its configuration describes (";
  // torch's loader replaces tensors of another shape silently: compare shapes after loading.
  const auto expected = shapes_of(module);
  torch::serialize::InputArchive part;
  try {
    if (!archive_->try_read(key, part)) throw DataError(path_ + ": holds no '" + key + "' weights");
    module.load(part);
  } catch (const c10::Error& e) {
    throw DataError(misfit + e.what_without_backtrace() + ")");
  }
  auto loaded = shapes_of(module);
  for (const auto& [name, shape] : expected)
    if (loaded[name] != shape)
      throw DataError(misfit + name + " is " + c10::str(c10::IntArrayRef(loaded[name])) + ", expected " +
                      c10::str(c10::IntArrayRef(shape)) + ")");
}

void ModelFile::load_optimizer(torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive opt;
  if (!archive_->try_read("optimizer", opt)) throw DataError(path_ + ": has no optimizer state to resume from");
  optimizer.load(opt);
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::string> out;
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.rfind("step-", 0) == 0 && e.path().extension() == ".pt") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());  // zero-padded step numbers sort in order
  return out;
}

std::string checkpoint_path(const std::string& run_dir, int64_t step) {
  std::ostringstream s;
  s << "step-" << std::setw(8) << std::setfill('0') << step << ".pt";
  return (fs::path(run_dir) / "checkpoints" / s.str()).string();
}

}  // namespace cwcl
