// The process group facade over c10d's ProcessGroupGloo and TCPStore.
#include <cwcl/dist.h>
#include <cwcl/error.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <signal.h>
#include <unistd.h>

namespace cwcl::dist {
namespace {

using Milliseconds = std::chrono::milliseconds;

// An environment variable as an integer; `fallback` when unset.
int integer_variable(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  try {
    size_t used = 0;
    const int out = std::stoi(v, &used);
    if (used == std::string(v).size()) return out;
  } catch (const std::exception&) {
  }
  throw UsageError(std::string("environment variable ") + name + " = '" + v + "' is not an integer");
}

std::string string_variable(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v == nullptr || *v == '\0' ? fallback : v;
}

std::string host_name() {
  char buf[256] = {0};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0; }

// Gloo's transport: GLOO_SOCKET_IFNAME when set (as torch.distributed reads
// it), loopback for a single-machine job, else this machine's hostname.
std::shared_ptr<::gloo::transport::Device> transport_device(const Environment& env) {
  const auto interface = string_variable("GLOO_SOCKET_IFNAME", "");
  if (!interface.empty()) return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  if (is_loopback(env.master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }
std::string string_of(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

}  // namespace

Environment Environment::from_process() {
  Environment e;
  e.world_size = integer_variable("WORLD_SIZE", 1);
  if (e.world_size < 1) throw UsageError("environment variable WORLD_SIZE must be >= 1");
  if (e.world_size == 1) return e;
  if (std::getenv("RANK") == nullptr) throw UsageError("WORLD_SIZE is set but RANK is not (start ranks with torchrun or cwcl train --nproc)");
  e.rank = integer_variable("RANK", 0);
  if (e.rank < 0 || e.rank >= e.world_size)
    throw UsageError("environment variable RANK = " + std::to_string(e.rank) + " is outside [0, WORLD_SIZE = " +
                     std::to_string(e.world_size) + ")");
  e.local_rank = integer_variable("LOCAL_RANK", e.rank);
  e.master_addr = string_variable("MASTER_ADDR", e.master_addr);
  e.master_port = integer_variable("MASTER_PORT", e.master_port);
  if (e.master_port < 1 || e.master_port > 65535)
    throw UsageError("environment variable MASTER_PORT = " + std::to_string(e.master_port) + " is not a TCP port");
  e.agent_store = string_variable("TORCHELASTIC_USE_AGENT_STORE", "") == "True";
  e.restart_count = integer_variable("TORCHELASTIC_RESTART_COUNT", 0);
  return e;
}

struct Group::Impl {
  Environment env;
  GroupOptions options;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  int64_t sequence = 0;  // collectives entered so far: every rank counts alike
  Group::Traffic traffic;

  std::string key(const std::string& what, int rank) const { return "cwcl/" + what + "/" + std::to_string(rank); }

  // Runs one collective. Before it, this rank records which collective it is
  // entering, so that a rank whose wait fails can name who never arrived.
  template <class F>
  void collective(const std::string& what, F&& body) {
    ++sequence;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      store->set(key("at", env.rank), bytes_of(std::to_string(sequence) + " " + what));
      body();
    } catch (const std::exception& e) {
      throw PeerError(describe_failure(what, message_of(e)));
    }
    traffic.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++traffic.collectives;
  }

  // One clause per peer, from the store: gone, stopped, behind (its last
  // collective) or in this collective too; or that the store itself (rank
  // 0's) is gone.
  std::string describe_failure(const std::string& what, const std::string& error) const {
    std::ostringstream out;
    out << "rank " << env.rank << ": " << what << " (collective " << sequence << ") failed";
    try {
      store->setTimeout(Milliseconds(2000));
      for (int r = 0; r < env.world_size; ++r) {
        if (r == env.rank) continue;
        const std::string at = store->check({key("at", r)}) ? string_of(store->get(key("at", r))) : "0 joining";
        const int64_t their = std::stoll(at.substr(0, at.find(' ')));
        std::istringstream process(string_of(store->get(key("process", r))));
        std::string host;
        long pid = 0;
        process >> host >> pid;
        const char state = host == host_name() ? process_state(pid) : '?';
        out << "; rank " << r << " (pid " << pid << " on " << host << ") ";
        if (state == 'X')
          out << "is no longer running";
        else if (state == 'T')
          out << "is stopped";
        else if (their < sequence)
          out << "has not arrived: its last collective is " << at;
        else
          out << "entered it too";
      }
    } catch (const std::exception&) {
      out << "; the store at " << env.master_addr << ":" << env.master_port
          << (env.agent_store ? " (torchrun's agent)" : " (hosted by rank 0)")
          << " is unreachable: that process has died";
    }
    out << ". Timeout " << options.timeout.count() / 1000.0 << " s. " << error;
    return out.str();
  }

  // A local process's state: 'X' gone (or a zombie), 'T' stopped, 'R' else.
  static char process_state(long pid) {
    if (pid <= 0) return '?';
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return 'X';
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size()) return 'R';
    const char state = line[close + 2];
    return state == 'Z' || state == 'X' ? 'X' : (state == 'T' || state == 't') ? 'T' : 'R';
  }

  void wait(const c10::intrusive_ptr<c10d::Work>& work) {
    if (!work->wait(options.timeout)) throw std::runtime_error("timed out");
  }
};

Group::Group(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Group::~Group() = default;

std::shared_ptr<Group> Group::single() {
  auto impl = std::make_unique<Impl>();
  return std::shared_ptr<Group>(new Group(std::move(impl)));
}

std::shared_ptr<Group> Group::join(const Environment& env, const GroupOptions& options) {
  TORCH_CHECK(env.world_size >= 1 && env.rank >= 0 && env.rank < env.world_size, "Group::join: rank ", env.rank,
              " outside world size ", env.world_size);
  TORCH_CHECK(options.timeout.count() > 0, "Group::join: the timeout must be positive");
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  impl->options = options;
  if (env.world_size == 1) return std::shared_ptr<Group>(new Group(std::move(impl)));
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    so.isServer = !env.agent_store && env.rank == 0;
    so.numWorkers = static_cast<size_t>(env.world_size);
    so.waitWorkers = false;
    so.timeout = options.timeout;
    so.multiTenant = true;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    // Under torchrun the workers' keys live under the agent's prefix (as
    // torch.distributed's env:// rendezvous does).
    if (env.agent_store)
      store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count), store);
    impl->store = store;
    impl->store->set(impl->key("process", env.rank), bytes_of(host_name() + " " + std::to_string(::getpid())));
    auto o = c10d::ProcessGroupGloo::Options::create(options.timeout);
    o->devices.push_back(transport_device(env));
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world_size, o);
  } catch (const std::exception& e) {
    throw PeerError("rank " + std::to_string(env.rank) + ": could not join the job of " +
                    std::to_string(env.world_size) + " ranks at " + where + " within " +
                    std::to_string(options.timeout.count() / 1000.0) + " s: " + message_of(e));
  }
  return std::shared_ptr<Group>(new Group(std::move(impl)));
}

int Group::rank() const { return impl_->env.rank; }
int Group::world_size() const { return impl_->env.world_size; }
int Group::local_rank() const { return impl_->env.local_rank; }
Group::Traffic Group::traffic() const { return impl_->traffic; }

void Group::barrier(const std::string& what) {
  if (!distributed()) return;
  impl_->collective(what, [&] { impl_->wait(impl_->group->barrier()); });
}

namespace {

// One flat buffer for several tensors (one collective however many), in the
// first tensor's dtype, and back.
torch::Tensor flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.detach().reshape(-1).to(tensors[0].scalar_type()));
  return torch::cat(flat);
}

void unflatten_into(const torch::Tensor& buffer, std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  int64_t at = 0;
  for (auto& t : tensors) {
    t.copy_(buffer.narrow(0, at, t.numel()).view(t.sizes()));
    at += t.numel();
  }
}

int64_t payload_bytes(const torch::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

}  // namespace

void Group::all_reduce_sum(std::vector<torch::Tensor>& tensors, const std::string& what) {
  if (!distributed() || tensors.empty()) return;
  std::vector<torch::Tensor> buffer{flatten(tensors)};
  impl_->collective(what, [&] { impl_->wait(impl_->group->allreduce(buffer)); });
  const int64_t n = world_size();
  impl_->traffic.bytes_sent += payload_bytes(buffer[0]) * 2 * (n - 1) / n;
  unflatten_into(buffer[0], tensors);
}

double Group::all_reduce_sum(double value, const std::string& what) {
  std::vector<torch::Tensor> t{torch::tensor({value}, torch::kFloat64)};
  all_reduce_sum(t, what);
  return t[0].item<double>();
}

void Group::broadcast(std::vector<torch::Tensor>& tensors, int root, const std::string& what) {
  if (!distributed() || tensors.empty()) return;
  std::vector<torch::Tensor> buffer{flatten(tensors)};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  impl_->collective(what, [&] { impl_->wait(impl_->group->broadcast(buffer, o)); });
  if (rank() == root) impl_->traffic.bytes_sent += payload_bytes(buffer[0]);
  unflatten_into(buffer[0], tensors);
}

namespace {

// The gathered rows of every rank; backward sums the gathered gradient over
// ranks and keeps this rank's slice (docs/method.md, "Distributed").
struct AllGatherFunction : public torch::autograd::Function<AllGatherFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& local, Group* group) {
    ctx->saved_data["group"] = reinterpret_cast<int64_t>(group);
    ctx->saved_data["rows"] = local.size(0);
    torch::NoGradGuard no_grad;
    return group->all_gather(local.detach());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* group = reinterpret_cast<Group*>(ctx->saved_data["group"].toInt());
    const int64_t rows = ctx->saved_data["rows"].toInt();
    std::vector<torch::Tensor> sum{grads[0].contiguous().clone()};
    group->all_reduce_sum(sum, "all-gather backward");
    return {sum[0].narrow(0, group->rank() * rows, rows), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor Group::all_gather(const torch::Tensor& local) {
  if (!distributed()) return local;
  if (local.requires_grad() && torch::GradMode::is_enabled()) return AllGatherFunction::apply(local, this);
  auto input = local.detach().contiguous();
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < world_size(); ++r) outputs[0].push_back(torch::empty_like(input));
  std::vector<torch::Tensor> inputs{input};
  impl_->collective("all-gather", [&] { impl_->wait(impl_->group->allgather(outputs, inputs)); });
  impl_->traffic.bytes_sent += payload_bytes(input) * (world_size() - 1);
  return torch::cat(outputs[0], 0);
}

GatherFn Group::gather_fn() {
  return [this](const torch::Tensor& local) { return all_gather(local); };
}

void Group::set(const std::string& key, const std::string& value) {
  if (!distributed()) return;
  try {
    impl_->store->set("cwcl/user/" + key, bytes_of(value));
  } catch (const std::exception& e) {
    throw PeerError("rank " + std::to_string(rank()) + ": the store is unreachable: " + message_of(e));
  }
}

std::string Group::wait_for(const std::string& key, std::chrono::milliseconds timeout) {
  if (!distributed()) throw InternalError("Group::wait_for: a single process has no one to wait for");
  const std::string k = "cwcl/user/" + key;
  try {
    impl_->store->wait({k}, timeout);
    return string_of(impl_->store->get(k));
  } catch (const std::exception& e) {
    throw PeerError("rank " + std::to_string(rank()) + ": waited " + std::to_string(timeout.count() / 1000) +
                    " s for '" + key + "' from another rank: " + message_of(e));
  }
}

}  // namespace cwcl::dist
