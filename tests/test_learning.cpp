// Training learns: the image tower, trained for a few hundred steps on seven
// Fashion-MNIST classes against MiniLM captions, classifies the test images
// of those classes zero-shot far above chance. Label "slow".
#include <cwcl/data/fashion_mnist.h>
#include <cwcl/eval/eval.h>
#include <cwcl/runtime.h>
#include <cwcl/model/model.h>
#include <cwcl/train/trainer.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";

class Learning : public cwcl::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!fs::exists(fs::path(kFashionMnist) / "train-images-idx3-ubyte.gz") ||
        !fs::exists(fs::path(cwcl::model_folder("all-MiniLM-L6-v2")) / "model.safetensors"))
      GTEST_SKIP() << "needs dataset-fashion-mnist and MiniLM (make test installs both)";
  }
};

double seen_class_top1(const std::string& run, const cwcl::TrainConfig& c) {
  auto model = cwcl::TrainedModel::load(run);
  const auto names = cwcl::ClassNames::read(c.class_names_file()).names;
  auto test = cwcl::read_fashion_mnist(kFashionMnist, cwcl::FashionMnistSplit::Test).only(c.data.classes);
  std::vector<std::string> label_texts;
  std::vector<int64_t> position(names.size(), -1);
  for (size_t i = 0; i < c.data.classes.size(); ++i) {
    label_texts.push_back(names[static_cast<size_t>(c.data.classes[i])]);
    position[static_cast<size_t>(c.data.classes[i])] = static_cast<int64_t>(i);
  }
  auto targets = test.labels.clone();
  auto t = targets.accessor<int64_t, 1>();
  for (int64_t i = 0; i < targets.size(0); ++i) t[i] = position[static_cast<size_t>(t[i])];
  auto classes = cwcl::class_embeddings(model.text_tower().encode, label_texts,
                                        cwcl::read_templates(c.templates_file()));
  return cwcl::zero_shot_classify(model.embed_images(test.images), classes, targets).top1;
}

cwcl::TrainConfig image_run(const std::string& out, cwcl::LossKind kind) {
  cwcl::TrainConfig c;
  c.run.out = out;
  c.run.steps = 300;
  c.run.batch_size = 128;
  c.run.threads = 2;
  c.run.checkpoint_every = 300;
  c.model = cwcl::ImageTowerSpec{8};
  c.data.train = kFashionMnist;
  c.loss.kind = kind;
  c.loss.weights = cwcl::WeightMap::Kernel;
  c.loss.kernel_tau = 0.05;
  c.optim.lr = 2e-3;
  c.optim.warmup = 30;
  return c;
}

TEST_F(Learning, ImageTowerLearnsSeenClassesWithCLAndCWCL) {
  // Chance is 1/7; a tower that learned nothing stays near it.
  for (auto kind : {cwcl::LossKind::CL, cwcl::LossKind::CWCL}) {
    const auto out = path(cwcl::name_of(kind));
    auto c = image_run(out, kind);
    cwcl::train(c);
    const double top1 = seen_class_top1(out, c);
    std::cout << cwcl::name_of(kind) << " seen-class zero-shot top-1 after 300 steps: " << top1 << "\n";
    EXPECT_GT(top1, 0.5) << cwcl::name_of(kind);
  }
}

}  // namespace
