// Distributed training on torch's c10d: a thin facade over a process group
// (Gloo on CPU), in the spirit of flashlight's DistributedApi. A job is N
// processes ("ranks") that find each other through a key-value store hosted
// by rank 0 (or by torchrun's agent), as torch.distributed's env:// does.
//
// Every collective is entered by every rank in the same order. When one fails
// (a peer died, hung past the timeout, or cannot be reached) the call throws
// PeerError naming the ranks that did not arrive, never hangs silently.
#pragma once

#include <cwcl/loss.h>  // GatherFn
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cwcl::dist {

/// Where this process stands in a job, as torchrun describes it.
struct Environment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// torchrun's agent hosts the store (TORCHELASTIC_USE_AGENT_STORE=True):
  /// every rank, rank 0 included, connects as a client.
  bool agent_store = false;
  int restart_count = 0;  ///< TORCHELASTIC_RESTART_COUNT: keys of earlier attempts stay apart

  /// From RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (and
  /// torchrun's TORCHELASTIC_*). A single process when WORLD_SIZE is unset.
  /// Throws UsageError naming the variable that is malformed or missing.
  static Environment from_process();
};

struct GroupOptions {
  /// How long a collective (or joining) may wait for the slowest rank before
  /// every waiting rank fails with PeerError.
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
};

/// A process group: this rank among world_size peers. With world size 1 no
/// communication happens and every operation is the identity.
class Group {
 public:
  /// Joins the job `env` describes: blocks until every rank has joined.
  static std::shared_ptr<Group> join(const Environment& env, const GroupOptions& options = {});
  /// A job of one process.
  static std::shared_ptr<Group> single();
  ~Group();

  int rank() const;
  int world_size() const;
  /// This rank's index among the ranks on its machine (LOCAL_RANK).
  int local_rank() const;
  bool distributed() const { return world_size() > 1; }

  void barrier(const std::string& what = "barrier");
  /// Sums the tensors over ranks, in place (one collective for all of them).
  void all_reduce_sum(std::vector<torch::Tensor>& tensors, const std::string& what = "all-reduce");
  double all_reduce_sum(double value, const std::string& what = "all-reduce");
  /// Copies the root's tensors into every rank's, in place.
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0, const std::string& what = "broadcast");
  /// Every rank's `local` rows concatenated in rank order (each rank holds the
  /// same shape). Differentiable: the gradient of the result's slice for this
  /// rank, summed over ranks, flows back to `local` (an all-reduce of the
  /// gathered gradient; Gloo has no reduce-scatter).
  torch::Tensor all_gather(const torch::Tensor& local);
  /// all_gather as LossOptions::gather wants it.
  GatherFn gather_fn();

  /// The store every rank shares: set a key, or wait up to `timeout` for one
  /// another rank sets (rank 0 preparing data while the others wait).
  void set(const std::string& key, const std::string& value);
  std::string wait_for(const std::string& key, std::chrono::milliseconds timeout);

  /// What this rank's collectives have cost so far.
  struct Traffic {
    /// Payload bytes sent: a ring all-reduce sends about 2 (N-1)/N of the
    /// tensor, an all-gather N-1 times the local rows.
    int64_t bytes_sent = 0;
    double seconds = 0;  ///< wall time inside collectives (waiting for peers included)
    int64_t collectives = 0;
  };
  Traffic traffic() const;

 private:
  struct Impl;
  explicit Group(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Runs `ranks` local ranks of this same program: each a child process with
/// the torchrun variables set (a free port on 127.0.0.1), rank 0's output
/// shown, every other rank's written to `log_dir`/rank<k>.log. Children die
/// with the launcher. When one rank fails, the others get `grace` to exit on
/// their own (they report which peer failed), then are killed.
struct LaunchOptions {
  int ranks = 1;
  std::vector<std::string> argv;  ///< the command each rank runs (argv[0]: the program)
  std::string log_dir;
  std::chrono::milliseconds grace = std::chrono::seconds(30);
};

struct LaunchResult {
  int exit_code = 0;  ///< 0, or the status of the first rank that failed
  int failed_rank = -1;
  std::string message;  ///< how that rank ended, e.g. "rank 1 killed by signal 9"
};

LaunchResult launch_local(const LaunchOptions& options);

/// A TCP port on 127.0.0.1 that is free now.
int free_port();

}  // namespace cwcl::dist
