// Local ranks as child processes, with the environment torchrun would give
// them (torch.distributed.run's variables), watched until they all end.
#include <cwcl/dist.h>
#include <cwcl/error.h>

#include <filesystem>
#include <csignal>
#include <map>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace cwcl::dist {
namespace {

using Clock = std::chrono::steady_clock;

// This process's environment with `overrides` replacing or adding variables.
std::vector<std::string> child_environment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (overrides.count(entry.substr(0, entry.find('='))) == 0) out.push_back(entry);
  }
  for (const auto& [k, v] : overrides) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::string describe_status(int rank, int status) {
  if (WIFSIGNALED(status)) return "rank " + std::to_string(rank) + " killed by signal " + std::to_string(WTERMSIG(status));
  return "rank " + std::to_string(rank) + " exited with status " + std::to_string(WEXITSTATUS(status));
}

// Starts one rank: output to `log_fd` unless it is -1 (rank 0: this terminal).
pid_t start_rank(std::vector<std::string> argv, std::vector<std::string> env, int log_fd) {
  auto args = pointers(argv);
  auto envp = pointers(env);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw InternalError("launch: fork failed");
  if (pid == 0) {
    // Only async-signal-safe calls until exec: die with the launcher.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw InternalError("free_port: no socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  if (!ok) throw InternalError("free_port: cannot bind a port on 127.0.0.1");
  return ntohs(addr.sin_port);
}

LaunchResult launch_local(const LaunchOptions& o) {
  TORCH_CHECK(o.ranks >= 1 && !o.argv.empty(), "launch_local: needs ranks >= 1 and a command");
  std::filesystem::create_directories(o.log_dir);
  const int port = free_port();
  const auto cores = std::max(1u, std::thread::hardware_concurrency());
  std::map<pid_t, int> running;  // pid -> rank
  for (int r = 0; r < o.ranks; ++r) {
    std::map<std::string, std::string> env{{"RANK", std::to_string(r)},
                                           {"LOCAL_RANK", std::to_string(r)},
                                           {"WORLD_SIZE", std::to_string(o.ranks)},
                                           {"LOCAL_WORLD_SIZE", std::to_string(o.ranks)},
                                           {"GROUP_RANK", "0"},
                                           {"MASTER_ADDR", "127.0.0.1"},
                                           {"MASTER_PORT", std::to_string(port)}};
    // Ranks share the cores: OpenBLAS's own threads split between them.
    if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr)
      env["OPENBLAS_NUM_THREADS"] = std::to_string(std::max(1u, cores / static_cast<unsigned>(o.ranks)));
    int log_fd = -1;
    if (r > 0) {
      const auto log = (std::filesystem::path(o.log_dir) / ("rank" + std::to_string(r) + ".log")).string();
      log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (log_fd < 0) throw DataError(log + ": cannot write the rank's log");
    }
    running[start_rank(o.argv, child_environment(env), log_fd)] = r;
    if (log_fd >= 0) ::close(log_fd);
  }
  LaunchResult result;
  bool stopping = false;  // a rank failed: the others have until `deadline`
  Clock::time_point deadline;
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0 && running.count(pid)) {
      const int rank = running[pid];
      running.erase(pid);
      const bool failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
      if (failed && result.failed_rank < 0) {
        result.failed_rank = rank;
        // A rank that died of a signal is a peer failure for the job (exit 4).
        result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : exit_code(ErrorKind::Peer);
        result.message = describe_status(rank, status);
        stopping = true;
        deadline = Clock::now() + o.grace;
      }
      continue;
    }
    if (stopping && Clock::now() > deadline) {
      for (const auto& [p, rank] : running) ::kill(p, SIGKILL);
      stopping = false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return result;
}

}  // namespace cwcl::dist
