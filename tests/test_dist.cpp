// The c10d facade with real Gloo groups: ranks are threads of this process
// joined through a TCP store on 127.0.0.1, exactly as processes would be.
#include <cwcl/dist.h>
#include <cwcl/error.h>
#include <cwcl/loss.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <thread>

namespace {

// libtorch 2.x's c10d flight recorder (on by default) inserts into a map
// before it takes its lock (FlightRecorderDetail.hpp, recordWithResetEnabled),
// so several groups in one process, as these tests make with threads as
// ranks, crash there now and then. A real job has one group per process.
// Set before main(), ahead of the recorder's first use; no effect on 1.13.
const bool kFlightRecorderOff = (setenv("TORCH_FR_BUFFER_SIZE", "0", 0), true);

using cwcl::dist::Environment;
using cwcl::dist::Group;
using Clock = std::chrono::steady_clock;

// Runs `body(group)` on `world` ranks (threads); rethrows the first failure.
void run_ranks(int world, const std::function<void(Group&)>& body,
               std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  const int port = cwcl::dist::free_port();
  std::vector<std::exception_ptr> errors(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        torch::AutoGradMode grad(true);
        Environment env;
        env.rank = r;
        env.world_size = world;
        env.master_port = port;
        cwcl::dist::GroupOptions o;
        o.timeout = timeout;
        auto group = Group::join(env, o);
        body(*group);
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

TEST(DistGroup, SingleProcessIsTheIdentity) {
  auto g = Group::single();
  EXPECT_EQ(g->rank(), 0);
  EXPECT_EQ(g->world_size(), 1);
  auto x = torch::randn({3, 2});
  EXPECT_TRUE(g->all_gather(x).equal(x));
  EXPECT_EQ(g->all_reduce_sum(2.5), 2.5);
  EXPECT_EQ(g->traffic().bytes_sent, 0);
}

TEST(DistGroup, AllReduceBroadcastAndGather) {
  const int world = 3;
  run_ranks(world, [&](Group& g) {
    const double r = g.rank();
    EXPECT_DOUBLE_EQ(g.all_reduce_sum(r + 1), 6.0);
    std::vector<torch::Tensor> t{torch::full({2, 2}, r), torch::full({3}, 10 * r)};
    g.all_reduce_sum(t);
    EXPECT_TRUE(t[0].equal(torch::full({2, 2}, 3.0)));
    EXPECT_TRUE(t[1].equal(torch::full({3}, 30.0)));
    std::vector<torch::Tensor> b{torch::full({4}, r + 7)};
    g.broadcast(b, 1);
    EXPECT_TRUE(b[0].equal(torch::full({4}, 8.0)));
    auto labels = g.all_gather(torch::full({2}, g.rank(), torch::kLong));
    EXPECT_TRUE(labels.equal(torch::tensor({0, 0, 1, 1, 2, 2}, torch::kLong)));
        const auto traffic = g.traffic();
    EXPECT_EQ(traffic.collectives, 4);
    // All-reduces of 1 double and 7 floats (a ring sends 2 (N-1)/N of each:
    // 10 + 37 bytes), an all-gather of 2 longs (2 x 16) and, from the root
    // only, a broadcast of 4 floats.
    EXPECT_EQ(traffic.bytes_sent, 10 + 37 + 32 + (g.rank() == 1 ? 16 : 0));
  });
}

// d/dx_r of sum_k f_k(gather(x)) is the sum over ranks of each rank's
// gradient at row block r: here f_k = (k + 1) * sum(gathered * c).
TEST(DistGroup, AllGatherCarriesTheGradientOfEveryRank) {
  const int world = 3;
  const auto c = torch::arange(12, torch::kDouble).view({6, 2});
  run_ranks(world, [&](Group& g) {
    auto x = torch::full({2, 2}, static_cast<double>(g.rank()), torch::kDouble).requires_grad_(true);
    auto gathered = g.all_gather(x);
    ASSERT_EQ(gathered.size(0), 6);
    EXPECT_TRUE(gathered.narrow(0, 2, 2).equal(torch::ones({2, 2}, torch::kDouble)));
    ((g.rank() + 1.0) * (gathered * c).sum()).backward();
    // sum_k (k + 1) = 6 times this rank's block of c.
    EXPECT_TRUE(x.grad().allclose(6.0 * c.narrow(0, 2 * g.rank(), 2)));
  });
}

// The loss of N ranks, each holding a shard, summed, equals the loss of the
// whole batch in one process, and so do the gradients (every kind and map,
// labels included).
TEST(DistGroup, RanksOverGlooGiveTheWholeBatchLoss) {
  const int world = 2;
  const int64_t local = 4, dim = 5;
  auto p = torch::nn::functional::normalize(torch::randn({world * local, dim}, torch::kDouble),
                                            torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto q0 = torch::randn({world * local, dim}, torch::kDouble);
  const auto labels = torch::tensor({0, 1, 2, 0, 1, 1, 2, 0}, torch::kLong);  // gathered through Gloo too
  std::vector<cwcl::LossOptions> kinds;
  for (auto kind : {cwcl::LossKind::CL, cwcl::LossKind::SigLIP}) {
    cwcl::LossOptions o;
    o.kind = kind;
    kinds.push_back(o);
  }
  {
    cwcl::LossOptions o;
    o.kind = cwcl::LossKind::SupCon;
    kinds.push_back(o);
  }
  for (auto map : {cwcl::WeightMap::Affine, cwcl::WeightMap::Relu, cwcl::WeightMap::Power, cwcl::WeightMap::Kernel,
                   cwcl::WeightMap::RowMinMax, cwcl::WeightMap::Identity, cwcl::WeightMap::Labels})
    for (auto kind : {cwcl::LossKind::CWCL, cwcl::LossKind::CWSigLIP}) {
      cwcl::LossOptions o;
      o.kind = kind;
      o.weights.map = map;
      kinds.push_back(o);
    }
  for (auto path : {cwcl::LossPath::Plain, cwcl::LossPath::Tiled})
    for (auto o : kinds) {
      SCOPED_TRACE(std::string(cwcl::name_of(o.kind)) + " " + std::string(cwcl::name_of(o.weights.map)) + " " + cwcl::name_of(path));
      o.tiling.path = path;
      o.tiling.tile = 3;
      o.labels = labels;
      auto q = q0.clone().requires_grad_(true);
      auto whole = cwcl::contrastive_loss(p, q, o);
      whole.backward();
      std::vector<double> shares(world);
      std::vector<torch::Tensor> grads(world);
      run_ranks(world, [&](Group& g) {
        auto ro = o;
        ro.gather = g.gather_fn();
        ro.rank = g.rank();
        ro.labels = labels.narrow(0, g.rank() * local, local);
        auto mine = q0.narrow(0, g.rank() * local, local).clone().requires_grad_(true);
        auto share = cwcl::contrastive_loss(p.narrow(0, g.rank() * local, local), mine, ro);
        share.backward();
        shares[static_cast<size_t>(g.rank())] = share.item<double>();
        grads[static_cast<size_t>(g.rank())] = mine.grad();
      });
      EXPECT_NEAR(shares[0] + shares[1], whole.item<double>(), 1e-10);
      EXPECT_TRUE(torch::cat(grads).allclose(q.grad(), 1e-9, 1e-11));
    }
}

TEST(DistGroup, AMissingRankIsNamedWithinTheTimeout) {
  const auto t0 = Clock::now();
  try {
    run_ranks(
        2,
        [](Group& g) {
          if (g.rank() == 1) {  // alive, but late past the timeout
            std::this_thread::sleep_for(std::chrono::seconds(4));
            return;
          }
          g.barrier("the test barrier");
        },
        std::chrono::seconds(2));
    FAIL() << "the barrier returned without rank 1";
  } catch (const cwcl::PeerError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("rank 0: the test barrier"), std::string::npos) << what;
    EXPECT_NE(what.find("rank 1"), std::string::npos) << what;
  }
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 30.0);
}

TEST(DistEnvironment, ReadsTorchrunVariablesAndNamesBadOnes) {
  for (const char* v : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                        "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT"})
    ::unsetenv(v);
  EXPECT_EQ(Environment::from_process().world_size, 1);
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "2", 1);
  ::setenv("MASTER_ADDR", "10.0.0.5", 1);
  ::setenv("MASTER_PORT", "29511", 1);
  ::setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);
  auto e = Environment::from_process();
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.rank, 2);
  EXPECT_EQ(e.local_rank, 2);
  EXPECT_EQ(e.master_addr, "10.0.0.5");
  EXPECT_EQ(e.master_port, 29511);
  EXPECT_TRUE(e.agent_store);
  ::setenv("RANK", "4", 1);
  EXPECT_THROW(Environment::from_process(), cwcl::UsageError);
  ::setenv("RANK", "two", 1);
  try {
    Environment::from_process();
    FAIL() << "RANK=two accepted";
  } catch (const cwcl::UsageError& err) {
    EXPECT_NE(std::string(err.what()).find("RANK"), std::string::npos);
  }
  for (const char* v : {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_USE_AGENT_STORE"})
    ::unsetenv(v);
}

}  // namespace
