#include <gtest/gtest.h>

#include <cwcl/loss.h>
#include <cwcl/towers/speech_encoder.h>

namespace {

TEST(SpeechEncoder, PaddingNeverChangesAnEmbedding) {
  for (auto pooling : {cwcl::Pooling::Mean, cwcl::Pooling::Attention}) {
    torch::manual_seed(0);
    auto o = cwcl::SpeechEncoderOptions::preset(cwcl::ScratchSize::Tiny);
    o.pooling = pooling;
    cwcl::SpeechEncoder enc(o);
    enc->eval();
    torch::NoGradGuard no_grad;
    auto a = torch::randn({1, 57, 80}), b = torch::randn({1, 120, 80});
    auto alone_a = enc->forward(a), alone_b = enc->forward(b);
    auto batch = torch::full({2, 120, 80}, 5.0f);  // garbage where a has no frames
    batch[0].narrow(0, 0, 57).copy_(a[0]);
    batch[1].copy_(b[0]);
    auto both = enc->forward(batch, torch::tensor({57, 120}, torch::kLong));
    EXPECT_LT((both[0] - alone_a[0]).abs().max().item<double>(), 1e-5);
    EXPECT_LT((both[1] - alone_b[0]).abs().max().item<double>(), 1e-5);
  }
}

TEST(SpeechEncoder, SizesAndShapes) {
  cwcl::SpeechEncoder small(cwcl::SpeechEncoderOptions::preset(cwcl::ScratchSize::Small));
  int64_t params = 0;
  for (const auto& p : small->parameters()) params += p.numel();
  EXPECT_GT(params, 1'000'000);
  EXPECT_LT(params, 5'000'000);
  EXPECT_THROW(cwcl::parse_name<cwcl::ScratchSize>("huge"), cwcl::UsageError);
  auto lengths = cwcl::SpeechEncoderImpl::output_lengths(torch::tensor({7, 8, 200}, torch::kLong));
  EXPECT_TRUE(torch::equal(lengths, torch::tensor({1, 1, 49}, torch::kLong))) << lengths;
  cwcl::SpeechEncoder tiny(cwcl::SpeechEncoderOptions::preset(cwcl::ScratchSize::Tiny));
  EXPECT_EQ(tiny->forward(torch::randn({3, 40, 80})).sizes(), (std::vector<int64_t>{3, 384}));
  EXPECT_THROW(tiny->forward(torch::randn({1, 6, 80})), c10::Error);
}

// A few steps of CL training on a toy task: the loss goes down.
TEST(SpeechEncoder, LearnsAToyPairing) {
  torch::manual_seed(1);
  cwcl::SpeechEncoder enc(cwcl::SpeechEncoderOptions::preset(cwcl::ScratchSize::Tiny));
  auto mel = torch::randn({16, 40, 80});
  auto targets = torch::randn({16, 384});
  torch::optim::AdamW opt(enc->parameters(), torch::optim::AdamWOptions(3e-3));
  cwcl::LossOptions lo;
  lo.kind = cwcl::LossKind::CL;
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    opt.zero_grad();
    auto loss = cwcl::contrastive_loss(targets, enc->forward(mel), lo);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.5 * first);
}

}  // namespace
