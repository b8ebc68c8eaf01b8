// Writing files (<cwcl/io/files.h>): atomic replacement, JSONL logs, and a
// write the system refuses, named with its reason and leaving nothing behind.
#include <cwcl/io/files.h>
#include <cwcl/io/safetensors.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
using Files = cwcl::testing::TempDirTest;

TEST_F(Files, AtomicWriteReplacesAndCleansUpAfterAFailure) {
  cwcl::write_text_atomically(path("a.txt"), "one\n");
  cwcl::write_text_atomically(path("a.txt"), "two\n");
  EXPECT_EQ(cwcl::read_lines(path("a.txt")), (std::vector<std::string>{"two"}));
  // A writer that fails half way: the old file stays, no .tmp is left, and
  // the error names the file and the reason.
  try {
    cwcl::replace_file_atomically(path("a.txt"), [](const std::string& tmp) {
      std::ofstream(tmp) << "half";
      throw std::runtime_error("disk said no");
    });
    FAIL() << "the failure was swallowed";
  } catch (const cwcl::WriteError& e) {
    EXPECT_NE(std::string(e.what()).find("a.txt: cannot write (disk said no)"), std::string::npos) << e.what();
    EXPECT_EQ(e.kind(), cwcl::ErrorKind::Internal);
  }
  EXPECT_EQ(cwcl::read_lines(path("a.txt")), (std::vector<std::string>{"two"}));
  EXPECT_TRUE(leftover_temporaries().empty());
  // Errors the input caused pass through as they are.
  EXPECT_THROW(cwcl::replace_file_atomically(path("b.txt"),
                                             [](const std::string&) { throw cwcl::DataError("bad input"); }),
               cwcl::DataError);
  EXPECT_TRUE(leftover_temporaries().empty());
}

TEST_F(Files, TwoWritersOfOnePathDoNotTakeEachOthersTemporaryFile) {
  // Two runs embedding one caption store write the same file at once: the
  // inner writer starts and finishes while the outer one is half way. Both
  // succeed, the last rename wins, and nothing is left behind.
  cwcl::replace_file_atomically(path("store"), [&](const std::string& outer_tmp) {
    cwcl::write_text_atomically(path("store"), "inner\n");
    std::ofstream(outer_tmp) << "outer\n";
  });
  EXPECT_EQ(cwcl::read_lines(path("store")), (std::vector<std::string>{"outer"}));
  EXPECT_TRUE(leftover_temporaries().empty());
  // The file is readable by others, like one written in place.
  EXPECT_NE(fs::status(path("store")).permissions() & fs::perms::others_read, fs::perms::none);
}

TEST_F(Files, AMissingFolderIsAWriteErrorNamingTheFile) {
  try {
    cwcl::write_safetensors(path("no/such/folder/x.safetensors"), {{"x", torch::zeros({2})}});
    FAIL() << "wrote into a missing folder";
  } catch (const cwcl::WriteError& e) {
    EXPECT_NE(std::string(e.what()).find("x.safetensors: cannot write ("), std::string::npos) << e.what();
  }
}

TEST_F(Files, AppendLogKeepsTheLinesOfTheRunBeingResumed) {
  std::ofstream(path("m.jsonl")) << "{\"step\": 10}\n{\"step\": 20}\n{\"step\": 30}\n{\"ste";
  {
    cwcl::AppendLog log(path("m.jsonl"), 20);
    log.write_line("{\"step\": 25}");
  }
  EXPECT_EQ(cwcl::read_lines(path("m.jsonl")),
            (std::vector<std::string>{"{\"step\": 10}", "{\"step\": 20}", "{\"step\": 25}"}));
  cwcl::AppendLog fresh(path("m.jsonl"), 0);  // a new run starts the log afresh
  EXPECT_TRUE(cwcl::read_lines(path("m.jsonl")).empty());
}

TEST_F(Files, AReadOnlyFolderIsRefusedWithTheReason) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes into read-only folders";
  fs::create_directories(path("ro"));
  fs::permissions(path("ro"), fs::perms::owner_read | fs::perms::owner_exec);
  EXPECT_THROW(cwcl::write_text_atomically(path("ro/x.txt"), "x"), cwcl::WriteError);
  fs::permissions(path("ro"), fs::perms::owner_all);
}

}  // namespace

namespace {

TEST_F(Files, AFolderHasOneOwnerAtATime) {
  {
    cwcl::FolderLock owner(path("run"));
    EXPECT_TRUE(fs::exists(path("run/.lock")));
    // A second owner (another open of the lock file: another process would
    // see the same) is refused naming the folder and this process's pid.
    try {
      cwcl::FolderLock second(path("run"));
      FAIL() << "two owners of one folder";
    } catch (const cwcl::UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("run: another cwcl process (pid " + std::to_string(::getpid()) + ")"),
                std::string::npos)
          << e.what();
    }
    EXPECT_THROW(cwcl::FolderLock::check_free(path("run")), cwcl::UsageError);
  }
  // Released with its owner (the kernel releases it when a process dies).
  cwcl::FolderLock::check_free(path("run"));
  cwcl::FolderLock again(path("run"));
}

}  // namespace
