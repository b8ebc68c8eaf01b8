// The cwcl command. Parses the command line once into typed options, calls
// the library, and is the only place that turns errors into exit codes
// (DESIGN.md contract 7: 2 for usage and configuration errors, 1 otherwise).
#include <CLI/CLI.hpp>

#include <cwcl/runtime.h>

#include <exception>
#include <iostream>

namespace {

struct GlobalOptions {
  int threads = 0;  // 0: all cores
};

int run_info(const GlobalOptions& global) {
  cwcl::set_num_threads(global.threads);
  std::cout << cwcl::runtime_info();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cwcl: cross-modal transfer with the continuously weighted contrastive loss"};
  app.set_version_flag("--version", std::string("cwcl ") + cwcl::version());
  app.require_subcommand(1);
  GlobalOptions global;
  app.add_option("--threads", global.threads, "torch intra-op threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);

  auto* info = app.add_subcommand("info", "versions, thread count and BLAS configuration");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 returns 0 for --help/--version; usage errors become exit code 2.
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  try {
    if (*info) return run_info(global);
  } catch (const std::exception& e) {
    std::cerr << "cwcl: error: " << e.what() << "\n";
    return 1;
  }
  return 2;
}
