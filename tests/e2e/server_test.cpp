// End-to-end tests of `bitexact serve` with real clients: the official openai Python package
// against every endpoint and error class (tests/server/openai_client_test.py), and the
// determinism experiment of 1,000 concurrent requests (tests/server/determinism_test.py).
// Each test starts its own servers on free ports and always stops them (ServerProcess).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/wait.h>

#include "support/server_process.h"
#include "support/shared_model.h"

namespace bx {
namespace {

namespace fs = std::filesystem;

class ServerE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("BITEXACT_BIN");
    binary_ = bin != nullptr ? bin : std::string(BITEXACT_SOURCE_DIR) + "/build/bitexact";
    if (!fs::exists(binary_)) GTEST_SKIP() << "no binary at " << binary_;
    const char* python = std::getenv("BITEXACT_PYTHON");
    if (python == nullptr || !fs::exists(python)) {
      GTEST_SKIP() << "BITEXACT_PYTHON is unset or missing; run scripts/setup.sh";
    }
    python_ = python;
    if (!test::have_stories260k()) GTEST_SKIP() << test::stories260k_path() << " not found";
  }

  // Runs a script of tests/server with arguments; its output goes to the test log.
  int run_python(const std::string& script, const std::vector<std::string>& args) {
    std::string command = "'" + python_ + "' '" + std::string(BITEXACT_SOURCE_DIR) +
                          "/tests/server/" + script + "'";
    for (const std::string& a : args) command += " '" + a + "'";
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::vector<std::string> model_args() const { return {"--model", test::stories260k_path()}; }

  std::string binary_;
  std::string python_;
};

TEST_F(ServerE2E, OpenAIClientCoversEveryEndpointAndErrorClass) {
  std::vector<std::string> main_args = model_args();
  main_args.insert(main_args.end(), {"--api-key", "test-key", "--chat-template", "chatml",
                                     "--max-body-bytes", "65536", "--threads", "1"});
  std::vector<std::string> plain_args = model_args();
  plain_args.insert(plain_args.end(),
                    {"--api-key", "test-key", "--max-queue", "1", "--threads", "1"});
  test::ServerProcess main_server(binary_, main_args);
  test::ServerProcess plain_server(binary_, plain_args);
  ASSERT_TRUE(main_server.wait_ready()) << main_server.why();
  ASSERT_TRUE(plain_server.wait_ready()) << plain_server.why();
  EXPECT_EQ(run_python("openai_client_test.py", {main_server.url(), plain_server.url(), "test-key"}),
            0);
}

TEST_F(ServerE2E, ThousandConcurrentRequestsGiveOneDistinctCompletion) {
  std::vector<std::string> args = model_args();
  args.insert(args.end(), {"--max-connections", "1100", "--max-queue", "2000",
                          "--keep-alive-seconds", "120"});
  test::ServerProcess server(binary_, args);
  ASSERT_TRUE(server.wait_ready()) << server.why();
  EXPECT_EQ(run_python("determinism_test.py", {server.url()}), 0);
}

}  // namespace
}  // namespace bx
