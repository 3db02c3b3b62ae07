// A GoogleTest fixture for end-to-end tests of the bitexact binary: runs it through the shell
// in a per-test temporary directory and captures exit code, stdout and stderr. Test code only.
//
// The binary is $BITEXACT_BIN (CMake sets it for tests/e2e), else build/bitexact; without it the
// test skips.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace bx::test {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// 'text' for the shell (single quotes inside become '\'').
inline std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("BITEXACT_BIN");
    binary_ = bin != nullptr ? bin : std::string(BITEXACT_SOURCE_DIR) + "/build/bitexact";
    if (!std::filesystem::exists(binary_)) GTEST_SKIP() << "no binary at " << binary_;
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("bitexact_e2e_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" +
            info->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Runs the binary with `args` as written (already quoted for the shell where needed).
  RunResult run(const std::string& args) {
    const std::filesystem::path out = dir_ / "stdout", err = dir_ / "stderr";
    const std::string command =
        "'" + binary_ + "' " + args + " >'" + out.string() + "' 2>'" + err.string() + "'";
    const int status = std::system(command.c_str());
    RunResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_file(out);
    r.err = read_file(err);
    return r;
  }

  // Writes `bytes` to dir/name (creating folders) and returns the path.
  std::filesystem::path write(const std::string& name, const std::string& bytes) {
    const std::filesystem::path path = dir_ / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  // Bad input: nonzero exit, nothing on stdout, exactly one line on stderr containing `needle`
  // (compared case-insensitively when ignore_case).
  void expect_one_line_error(const std::string& args, const std::string& needle,
                             bool ignore_case = false) {
    SCOPED_TRACE(args);
    const RunResult r = run(args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    std::string haystack = r.err;
    if (ignore_case) {
      std::transform(haystack.begin(), haystack.end(), haystack.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    }
    EXPECT_NE(haystack.find(needle), std::string::npos) << "stderr: " << r.err;
  }

  std::string binary_;
  std::filesystem::path dir_;
};

}  // namespace bx::test
