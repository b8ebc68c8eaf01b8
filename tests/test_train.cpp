// The trainer: run directories, resume, checkpoints, precision, devices.
#include <cwcl/data/fashion_mnist.h>
#include <cwcl/model/config.h>
#include <cwcl/model/model.h>
#include <cwcl/io/safetensors.h>
#include <cwcl/model/model_file.h>
#include <cwcl/towers/tower.h>
#include <cwcl/train/trainer.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "cuda.h"
#include "temp_dir.h"
#include "train_helpers.h"

namespace {

namespace fs = std::filesystem;
using cwcl::ConfigError;
using cwcl::TrainConfig;
using namespace cwcl::testing;

// ---- training ---------------------------------------------------------------

class Training : public cwcl::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!have_training_inputs()) GTEST_SKIP() << "needs dataset-fashion-mnist and MiniLM (make test installs both)";
  }
};

std::vector<torch::Tensor> weights_of(const std::string& model) {
  auto m = cwcl::TrainedModel::load(model);
  std::vector<torch::Tensor> out;
  for (auto& p : m.tower().parameters()) out.push_back(p.detach().clone());
  for (auto& b : m.tower().buffers()) out.push_back(b.detach().clone());
  return out;
}

TEST_F(Training, RunDirectoryHoldsConfigMetricsCheckpointsAndModel) {
  auto c = tiny_image_config(path("run"));
  auto summary = cwcl::train(c);
  EXPECT_EQ(summary.steps, 6);
  EXPECT_TRUE(std::isfinite(summary.final_loss));
  for (const char* f : {"config.toml", "metrics.jsonl", "model.pt", "checkpoints/step-00000006.pt", "checkpoints/step-00000003.pt"})
    EXPECT_TRUE(fs::exists(dir / "run" / f)) << f;
  auto resolved = TrainConfig::from_file(path("run/config.toml"));
  // loss.path = auto is resolved by measurement at the start and recorded.
  EXPECT_NE(resolved.loss.path, cwcl::LossPath::Auto);
  c.loss.path = resolved.loss.path;
  EXPECT_EQ(resolved.values(), c.values());
  std::ifstream metrics(path("run/metrics.jsonl"));
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    ++lines;
    for (const char* key : {"\"step\"", "\"loss\"", "\"logit_scale\"", "\"lr\"", "\"samples_per_s\""})
      EXPECT_NE(line.find(key), std::string::npos) << line;
    // Gradient norms per parameter group, before clipping: the tower's and the temperature's.
    auto j = nlohmann::json::parse(line);
    ASSERT_TRUE(j.contains("grad_norm")) << line;
    EXPECT_GT(j["grad_norm"]["encoder"].get<double>(), 0) << line;
    EXPECT_TRUE(j["grad_norm"].contains("criterion")) << line;
  }
  EXPECT_EQ(lines, 3);  // log_every 2 over 6 steps
  auto model = cwcl::TrainedModel::load(path("run"));
  EXPECT_EQ(model.step(), 6);
  auto q = model.embed_images(torch::zeros({3, 28, 28}, torch::kUInt8));
  EXPECT_EQ(q.sizes(), (std::vector<int64_t>{3, 384}));
  EXPECT_NEAR(q.norm(2, 1).mean().item<double>(), 1.0, 1e-5);
  // A second run into the same directory without --resume is refused.
  EXPECT_THROW(cwcl::train(c), cwcl::UsageError);
}

TEST_F(Training, ResumeAfterACrashEndsWithTheSameWeights) {
  // A run that dies after step 4 (its newest checkpoint is step 3), then
  // resumes. loss.path = auto: it times both loss paths and records the
  // faster in its config.toml, and the resumed run keeps that path.
  auto crashed = tiny_image_config(path("crashed"));
  ASSERT_EQ(crashed.loss.path, cwcl::LossPath::Auto);
  cwcl::TrainOptions dying;
  dying.progress = [](const cwcl::TrainProgress& p) {
    if (p.step == 4) throw std::runtime_error("simulated crash");
  };
  EXPECT_THROW(cwcl::train(crashed, dying), std::runtime_error);
  EXPECT_FALSE(fs::exists(dir / "crashed" / "model.pt"));
  cwcl::TrainOptions resume;
  resume.resume = true;
  auto summary = cwcl::train(crashed, resume);
  EXPECT_EQ(summary.start_step, 3);
  // The uninterrupted run on the path the crashed one measured: a timing
  // made on a busy machine (ctest runs two tests at once) may pick either,
  // and the two paths round differently in the last bits.
  auto straight = tiny_image_config(path("straight"));
  straight.loss.path = cwcl::TrainConfig::from_file(path("crashed/config.toml")).loss.path;
  ASSERT_NE(straight.loss.path, cwcl::LossPath::Auto);
  cwcl::train(straight);
  auto a = weights_of(path("straight")), b = weights_of(path("crashed"));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
}

TEST_F(Training, ResumeRefusesAnotherArchitecture) {
  auto c = tiny_image_config(path("run"));
  c.run.steps = 3;
  cwcl::train(c);
  c.model = cwcl::ImageTowerSpec{8};
  c.run.steps = 6;
  cwcl::TrainOptions resume;
  resume.resume = true;
  try {
    cwcl::train(c, resume);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.image_width"), std::string::npos) << e.what();
  }
}

TEST_F(Training, CheckpointOfAnotherArchitectureIsNamed) {
  auto c = tiny_image_config(path("run"));
  c.run.steps = 3;
  cwcl::train(c);
  // A file whose config claims a wider network than its weights.
  auto narrow = cwcl::make_tower(c.model, 384, cwcl::TowerWeights::Untrained);
  cwcl::ContrastiveLoss criterion(c.loss_options());
  auto wider = c;
  wider.model = cwcl::ImageTowerSpec{8};
  cwcl::write_model_file(path("other.pt"), {wider, 384, 3, {}}, *narrow, *criterion, nullptr);
  try {
    cwcl::TrainedModel::load(path("other.pt"));
    FAIL();
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("do not fit the architecture"), std::string::npos) << e.what();
  }
  std::ofstream(path("junk.pt")) << "not a model";
  try {
    cwcl::TrainedModel::load(path("junk.pt"));
    FAIL();
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("junk.pt: not a cwcl model"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cwcl::TrainedModel::load(path("empty-dir-that-does-not-exist")), cwcl::DataError);
}

TEST_F(Training, ModelFilesOfAnOlderFormatAreRefusedByVersion) {
  torch::serialize::OutputArchive out;
  out.write("format", c10::IValue(std::string("cwcl-model-1")));
  out.save_to(path("old.pt"));
  try {
    cwcl::TrainedModel::load(path("old.pt"));
    FAIL();
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("format 'cwcl-model-1'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(cwcl::kModelFormat), std::string::npos) << e.what();
  }
}

TEST_F(Training, LossModuleIsSavedBesideTheTower) {
  auto c = tiny_image_config(path("run"));
  c.run.steps = 3;
  cwcl::train(c);
  // The tower holds no loss parameters; the learned temperature moved and is in the file under its own key.
  auto model = cwcl::TrainedModel::load(path("run"));
  for (const auto& p : model.tower().named_parameters())
    EXPECT_EQ(p.key().find("logit"), std::string::npos) << p.key();
  auto file = cwcl::ModelFile::open(path("run/model.pt"));
  cwcl::ContrastiveLoss criterion(c.loss_options());
  const double initial = criterion->logit_scale.item<double>();
  file.load("criterion", *criterion);
  EXPECT_NE(criterion->logit_scale.item<double>(), initial);
}

TEST_F(Training, CalibrationAndCentringRecordedInTheResolvedConfig) {
  auto c = tiny_image_config(path("run"));
  c.run.steps = 2;
  c.loss.weights = cwcl::WeightMap::Kernel;
  c.loss.calibrate = 3;
  c.loss.center = true;
  cwcl::train(c);
  auto resolved = TrainConfig::from_file(path("run/config.toml"));
  EXPECT_NE(resolved.loss.kernel_tau, c.loss.kernel_tau);
  EXPECT_GT(resolved.loss.kernel_tau, 0);
}

TEST_F(Training, LabelsMapTrainsOnLabelledImages) {
  // Images carry class labels (speech refuses the map: Config.ValidateNamesTheKey).
  // Same data and initial weights: the labels map, whose rows have several
  // positives, gives another first loss than CL's one-hot targets.
  auto c = tiny_image_config(path("labels"));
  c.run.steps = 1;
  c.run.log_every = 1;
  c.loss.weights = cwcl::WeightMap::Labels;
  const auto labels = cwcl::train(c);
  auto cl = tiny_image_config(path("cl"));
  cl.run.steps = 1;
  cl.loss.kind = cwcl::LossKind::CL;
  const auto plain = cwcl::train(cl);
  EXPECT_EQ(labels.steps, 1);
  EXPECT_TRUE(std::isfinite(labels.final_loss));
  EXPECT_GT(std::abs(labels.final_loss - plain.final_loss), 1e-3);
  EXPECT_EQ(TrainConfig::from_file(path("labels/config.toml")).loss.weights, cwcl::WeightMap::Labels);
}

TEST_F(Training, MissingDataIsADataErrorNamingTheFile) {
  TrainConfig s;
  s.model = cwcl::ScratchSpeechTowerSpec{cwcl::ScratchSize::Tiny};
  s.run.out = path("run");
  s.data.train = path("none.jsonl");
  try {
    cwcl::train(s);
    FAIL();
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("none.jsonl"), std::string::npos) << e.what();
  }
}

// run.precision = bf16 on the CPU (CPU autocast, as on CUDA): the image CNN
// trains to within 5 % of float32's loss after the same 6 steps.
TEST_F(Training, Bf16AutocastTrainsCloseToFloat32) {
  auto fp32 = tiny_image_config(path("fp32"));
  fp32.run.device = cwcl::DeviceSpec::parse("cpu");
  auto bf16 = fp32;
  bf16.run.out = path("bf16");
  bf16.run.precision = cwcl::Precision::Bf16;
  const auto a = cwcl::train(fp32), b = cwcl::train(bf16);
  EXPECT_NE(a.final_loss, b.final_loss) << "autocast changed nothing";
  EXPECT_NEAR(b.final_loss, a.final_loss, 0.05 * a.final_loss);
  // The weights stay float32: autocast casts inside the forward pass only.
  for (const auto& w : weights_of(path("bf16"))) {
    if (w.is_floating_point()) {
      EXPECT_EQ(w.scalar_type(), torch::kFloat);
    }
  }
}

// run.precision = auto trains as the precision it resolves to on this CPU
// (the same loss, bit for bit) and records that precision, not "auto", in
// the run's config.toml.
TEST_F(Training, AutoPrecisionRunsAndRecordsWhatItResolvesTo) {
  auto fp32 = tiny_image_config(path("fp32"));
  fp32.run.device = cwcl::DeviceSpec::parse("cpu");
  auto resolved = fp32;
  resolved.run.precision = cwcl::cpu_has_bf16_instructions() ? cwcl::Precision::Bf16 : cwcl::Precision::Fp32;
  resolved.run.out = path("resolved");
  auto automatic = fp32;
  automatic.run.out = path("auto");
  automatic.run.precision = cwcl::Precision::Auto;
  const auto a = cwcl::train(resolved), b = cwcl::train(automatic);
  EXPECT_EQ(a.final_loss, b.final_loss);
  const auto recorded = TrainConfig::from_file(path("auto") + "/config.toml");
  EXPECT_EQ(recorded.run.precision, resolved.run.precision);
  // Resuming with "auto" again is the same run.
  automatic.run.steps += 2;
  cwcl::TrainOptions resume;
  resume.resume = true;
  EXPECT_EQ(cwcl::train(automatic, resume).start_step, 6);
}

TEST_F(Training, CudaIsRefusedWhereThereIsNone) {
  if (cwcl::cuda_device_count() > 0) GTEST_SKIP() << "this machine has CUDA";
  auto c = tiny_image_config(path("run"));
  c.run.device = cwcl::DeviceSpec::parse("cuda");
  try {
    cwcl::train(c);
    FAIL() << "trained on cuda without CUDA";
  } catch (const cwcl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("run.device = cuda"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "run")) << "a refused run wrote its directory";
}

// The same run on a GPU and on the CPU, and a GPU run that dies and resumes
// on the CPU (the optimizer state moves with it): equal up to float32
// rounding in different kernels.
TEST_F(Training, CudaRunMatchesTheCpuAndResumesOnIt) {
  CWCL_SKIP_WITHOUT_CUDA();
  auto cpu = tiny_image_config(path("cpu"));
  cpu.run.device = cwcl::DeviceSpec::parse("cpu");
  auto gpu = cpu;
  gpu.run.out = path("gpu");
  gpu.run.device = cwcl::DeviceSpec::parse("cuda");
  cwcl::train(cpu);
  cwcl::train(gpu);
  auto moved = gpu;
  moved.run.out = path("moved");
  cwcl::TrainOptions dying;
  dying.progress = [](const cwcl::TrainProgress& p) {
    if (p.step == 4) throw std::runtime_error("simulated crash");
  };
  EXPECT_THROW(cwcl::train(moved, dying), std::runtime_error);
  moved.run.device = cwcl::DeviceSpec::parse("cpu");
  cwcl::TrainOptions resume;
  resume.resume = true;
  cwcl::train(moved, resume);
  const auto want = weights_of(path("cpu"));
  for (const char* run : {"gpu", "moved"}) {
    const auto got = weights_of(path(run));
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_LT((got[i].to(torch::kDouble) - want[i].to(torch::kDouble)).abs().max().item<double>(), 1e-3) << run;
  }
}

TEST_F(Training, ThreadCountIsRestoredAfterAFailure) {
  cwcl::set_num_threads(1);
  auto c = tiny_image_config(path("run"));
  c.run.threads = 2;
  cwcl::TrainOptions dying;
  dying.progress = [](const cwcl::TrainProgress&) {
    EXPECT_EQ(torch::get_num_threads(), 2);
    throw std::runtime_error("stop");
  };
  EXPECT_THROW(cwcl::train(c, dying), std::runtime_error);
  EXPECT_EQ(torch::get_num_threads(), 1);
}

TEST_F(Training, AChangedByteInAModelFileIsNamed) {
  if (!have_training_inputs()) GTEST_SKIP() << "needs Fashion-MNIST and MiniLM";
  auto c = tiny_image_config(path("run"));
  c.run.steps = 1;
  cwcl::train(c);
  // One bit in the middle of the file (a tensor record): libtorch would load
  // it as another model; cwcl checks each record's CRC-32 first.
  auto bytes = cwcl::read_file_bytes(path("run/model.pt"));
  bytes[bytes.size() / 2] ^= 1;
  std::ofstream(path("changed.pt"), std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  try {
    cwcl::TrainedModel::load(path("changed.pt"));
    FAIL() << "a changed file loaded";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("changed.pt"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cwcl::TrainedModel::load(path("run/model.pt")).step(), 1);
}

TEST_F(Training, ADivergedRunFailsNamingTheStepAndWritesNoModel) {
  if (!have_training_inputs()) GTEST_SKIP() << "needs Fashion-MNIST and MiniLM";
  auto c = tiny_image_config(path("run"));
  c.run.checkpoint_every = 1;
  c.optim.lr = 1e30;  // finite, and far too large: the weights blow up
  try {
    cwcl::train(c);
    FAIL() << "a diverged run ended as a success";
  } catch (const cwcl::InternalError& e) {
    EXPECT_NE(std::string(e.what()).find("the run diverged at step "), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(path("run/model.pt")));
  // Every checkpoint it kept holds finite weights (a model with others is
  // refused on load, naming the file).
  for (const auto& checkpoint : cwcl::list_checkpoints(path("run"))) EXPECT_NO_THROW(cwcl::TrainedModel::load(checkpoint));
  c.optim.lr = 1e300;  // past float32: a configuration error
  EXPECT_THROW(c.validate(), ConfigError);
}

TEST_F(Training, AModelWithNonFiniteWeightsIsRefused) {
  auto c = tiny_image_config(path("run"));
  auto tower = cwcl::make_tower(c.model, 8, cwcl::TowerWeights::Pretrained);
  cwcl::ContrastiveLoss criterion(c.loss_options());
  tower->parameters()[0].data()[0] = std::numeric_limits<float>::quiet_NaN();
  cwcl::ModelFileHeader header;
  header.config = c;
  header.out_dim = 8;
  header.architecture = tower->architecture();
  cwcl::write_model_file(path("nan.pt"), header, *tower, *criterion, nullptr);
  try {
    cwcl::TrainedModel::load(path("nan.pt"));
    FAIL() << "non-finite weights were loaded";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("nan.pt: weight '"), std::string::npos) << e.what();
  }
}

}  // namespace
