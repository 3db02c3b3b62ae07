// End-to-end tests of `bitexact serve` with real clients: the official openai Python package
// against every endpoint and error class (tests/server/openai_client_test.py), and the
// determinism experiment of 1,000 concurrent requests (tests/server/determinism_test.py).
// Each test starts its own servers on free ports and always stops them (ServerProcess).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "support/default_model.h"
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

// Hostile clients (issue 20): deep JSON, oversized and chunked bodies, conflicting framing,
// slowloris, idle connections over the cap, abandoned requests; and echo logprobs' top-k.
TEST_F(ServerE2E, HostileClientsCannotStopOrStallTheServer) {
  std::vector<std::string> main_args = model_args();
  main_args.insert(main_args.end(), {"--threads", "1"});
  std::vector<std::string> short_args = model_args();
  short_args.insert(short_args.end(),
                    {"--max-body-bytes", "65536", "--header-timeout-seconds", "1",
                     "--body-timeout-seconds", "1", "--max-connections", "40", "--threads", "1"});
  test::ServerProcess main_server(binary_, main_args);
  test::ServerProcess short_server(binary_, short_args);
  ASSERT_TRUE(main_server.wait_ready()) << main_server.why();
  ASSERT_TRUE(short_server.wait_ready()) << short_server.why();
  EXPECT_EQ(run_python("abuse_test.py", {main_server.url(), short_server.url()}), 0);
}

// lm-eval-harness with local-completions, at concurrency 1 and 8: identical per-sample outputs.
TEST_F(ServerE2E, LmEvalHarnessGivesIdenticalSamplesAtAnyConcurrency) {
  const std::string probe = "'" + python_ + "' -c 'import lm_eval' 2>/dev/null";
  if (std::system(probe.c_str()) != 0) {
    GTEST_SKIP() << "lm_eval is not installed in " << python_ << " (tests/requirements-eval.txt)";
  }
  test::ServerProcess server(binary_, model_args());
  ASSERT_TRUE(server.wait_ready()) << server.why();
  EXPECT_EQ(run_python("lm_eval_test.py", {server.url(), "stories260K"}), 0);
}

// Three replicas behind nginx (deploy/nginx.conf), one killed and restarted under 300 concurrent
// requests: every answer equals one server's alone; a replica of other weights is kept out.
TEST_F(ServerE2E, FleetBehindNginxAnswersLikeOneServerWhileAReplicaDies) {
  if (!fs::exists("/usr/sbin/nginx") && std::system("command -v nginx >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "nginx is not installed (scripts/setup.sh installs it)";
  }
  if (!test::have_smollm2()) GTEST_SKIP() << test::kNoSmollm2;  // the mismatched replica's model
  EXPECT_EQ(run_python("fleet_test.py", {binary_, test::stories260k_path(), test::smollm2_path()}),
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

// Hashes recorded on one server verify on another with a different batch size, prefill chunk,
// KV block size and thread count (the same system_fingerprint), and a changed hash is reported.
TEST_F(ServerE2E, VerifyReplaysRecordedHashesOnAnotherConfiguration) {
  const fs::path dir = fs::temp_directory_path() / ("bitexact_verify_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path requests = dir / "requests.jsonl", recorded = dir / "recorded.jsonl",
                 tampered = dir / "tampered.jsonl", log = dir / "log";
  {
    std::ofstream out(requests);
    out << R"({"path": "/v1/completions", "request": {"prompt": "Once upon a time", "max_tokens": 24, "temperature": 0}})" "\n"
        << R"({"path": "/v1/completions", "request": {"prompt": ["The dog", "A girl named"], "n": 2, "max_tokens": 20, "temperature": 0.9, "seed": 77}})" "\n"
        << R"({"path": "/v1/completions", "request": {"prompt": "Lily saw a bird", "max_tokens": 30, "stream": true, "stop": ["."]}})" "\n"
        << R"({"path": "/v1/chat/completions", "request": {"messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 16, "temperature": 0.7, "seed": 3}})" "\n";
  }
  std::vector<std::string> a_args = model_args(), b_args = model_args();
  a_args.insert(a_args.end(), {"--chat-template", "chatml"});
  b_args.insert(b_args.end(), {"--chat-template", "chatml", "--max-seqs", "3", "--max-batch-tokens",
                               "64", "--prefill-chunk", "7", "--kv-block-size", "8", "--threads",
                               "1", "--no-prefix-cache"});
  test::ServerProcess a(binary_, a_args), b(binary_, b_args);
  ASSERT_TRUE(a.wait_ready()) << a.why();
  ASSERT_TRUE(b.wait_ready()) << b.why();
  const auto verify = [&](const std::string& url, const std::string& args) {
    const std::string command = "'" + binary_ + "' verify --url " + url + " " + args + " >'" +
                                log.string() + "' 2>&1";
    const int status = std::system(command.c_str());
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str());
  };
  auto [code, text] = verify(a.url(), "--requests '" + requests.string() + "' --record '" +
                                          recorded.string() + "'");
  ASSERT_EQ(code, 0) << text;
  std::tie(code, text) = verify(b.url(), "--requests '" + recorded.string() + "'");
  EXPECT_EQ(code, 0) << text;
  EXPECT_NE(text.find("4 requests, 7 choices, 0 differ"), std::string::npos) << text;

  // Negative control: one recorded hash changed is found and named.
  std::ifstream in(recorded);
  std::stringstream all;
  all << in.rdbuf();
  std::string content = all.str();
  const size_t at = content.find("bx1-");
  ASSERT_NE(at, std::string::npos);
  content[at + 4] = content[at + 4] == '0' ? '1' : '0';
  std::ofstream(tampered) << content;
  std::tie(code, text) = verify(b.url(), "--requests '" + tampered.string() + "'");
  EXPECT_EQ(code, 1) << text;
  EXPECT_NE(text.find("tampered.jsonl:1: choice 0 DIFFERS"), std::string::npos) << text;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bx
