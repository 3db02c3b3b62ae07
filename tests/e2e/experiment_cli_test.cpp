// The three determinism experiments end to end, small: bench/experiment.sh runs
// `bitexact experiment NAME` on stories260K (CPU) in invariant and fast mode and renders the PNG.
//
//   uniqueness  invariant: exactly 1 distinct completion, even counting logprob bits, each equal
//               to the prompt run alone. Fast mode (the negative control) must differ: some
//               completion's bits differ from the prompt alone.
//   on-policy   invariant: every sampler logprob equals the teacher-forced one (KL 0, max |delta|
//               0). Fast mode must show a nonzero max |delta|.
//   throughput  both modes generate the same number of tokens, within 90%..110% of max-tokens.
// Each writes NAME.json, NAME.md and a PNG. Bad flags give one clear error line.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "support/cli_runner.h"
#include "support/shared_model.h"

namespace bx {
namespace {

namespace fs = std::filesystem;

class Experiment : public test::CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    if (IsSkipped()) return;
    if (!test::have_stories260k()) GTEST_SKIP() << "no " << test::stories260k_path();
    const char* python = std::getenv("BITEXACT_PYTHON");
    if (python == nullptr || !fs::exists(python)) {
      GTEST_SKIP() << "BITEXACT_PYTHON is unset or missing: the plots need matplotlib "
                      "(tests/requirements.txt)";
    }
    python_ = python;
  }

  // Runs bench/experiment.sh NAME on stories260K with `args`; returns NAME.json, after checking
  // that the Markdown table and a PNG were written.
  nlohmann::json run_experiment(const std::string& name, const std::string& args) {
    const fs::path out = dir_ / "results";
    const std::string command = "BITEXACT_BIN=" + test::shell_quote(binary_) +
                                " BITEXACT_PYTHON=" + test::shell_quote(python_) + " '" +
                                BITEXACT_SOURCE_DIR + "/bench/experiment.sh' " + name +
                                " --model '" + test::stories260k_path() + "' --quiet --out '" +
                                out.string() + "' " + args + " >'" + (dir_ / "log").string() +
                                "' 2>&1";
    const int status = std::system(command.c_str());
    EXPECT_EQ(status, 0) << test::read_file(dir_ / "log");
    const nlohmann::json report = nlohmann::json::parse(test::read_file(out / (name + ".json")));
    const std::string md = test::read_file(out / (name + ".md"));
    for (const nlohmann::json& m : report.at("modes")) {
      EXPECT_NE(md.find("| " + m.at("mode").get<std::string>() + " |"), std::string::npos) << md;
    }
    const std::string png = test::read_file(out / (name + ".png"));
    EXPECT_EQ(png.substr(0, 4), "\x89PNG") << name << ".png missing";
    return report;
  }

  // The entry of `report["modes"]` for `mode`.
  static const nlohmann::json& mode(const nlohmann::json& report, const std::string& name) {
    for (const nlohmann::json& m : report.at("modes")) {
      if (m.at("mode") == name) return m;
    }
    ADD_FAILURE() << "no mode " << name << " in " << report.dump();
    static const nlohmann::json none;
    return none;
  }

  std::string python_;
};

TEST_F(Experiment, UniquenessInvariantGivesOneCompletionFastModeDiffers) {
  const int n = 12;
  const nlohmann::json r = run_experiment(
      "uniqueness", "--requests " + std::to_string(n) +
                        " --load-requests 12 --max-tokens 24 --clients 4 --max-delay-us 500 "
                        "--max-prompt-tokens 40");
  const nlohmann::json& inv = mode(r, "invariant");
  EXPECT_EQ(inv.at("completions"), n);
  EXPECT_EQ(inv.at("distinct_completions"), 1);
  EXPECT_EQ(inv.at("distinct_with_logprob_bits"), 1);
  EXPECT_TRUE(inv.at("first_divergence_token").is_null());
  EXPECT_EQ(inv.at("equal_to_alone_bits"), n);
  EXPECT_GT(inv.at("engine_steps").at("distinct_step_sizes").get<int>(), 1)
      << "the load never varied the batch";

  // Negative control: the batch-dependent split-K order of fast mode changes logprob bits.
  const nlohmann::json& fast = mode(r, "fast");
  EXPECT_EQ(fast.at("completions"), n);
  EXPECT_LT(fast.at("equal_to_alone_bits").get<int>(), n);
  EXPECT_NE(inv.at("fingerprint"), fast.at("fingerprint"));
}

TEST_F(Experiment, OnPolicyInvariantHasZeroKlFastModeDoesNot) {
  const nlohmann::json r =
      run_experiment("on-policy",
                     "--requests 12 --max-tokens 24 --clients 4 --max-delay-us 500 "
                     "--max-prompt-tokens 40");
  const nlohmann::json& inv = mode(r, "invariant");
  EXPECT_GT(inv.at("tokens").get<int>(), 0);
  EXPECT_EQ(inv.at("tokens_with_different_bits"), 0);
  EXPECT_EQ(inv.at("kl_k1_per_token").get<double>(), 0.0);
  EXPECT_EQ(inv.at("kl_k3_per_token").get<double>(), 0.0);
  EXPECT_EQ(inv.at("max_abs_delta_logprob").get<double>(), 0.0);

  const nlohmann::json& fast = mode(r, "fast");
  EXPECT_GT(fast.at("tokens_with_different_bits").get<int>(), 0);
  EXPECT_GT(fast.at("max_abs_delta_logprob").get<double>(), 0.0);
}

TEST_F(Experiment, ThroughputRunsBothModesOnTheSameWork) {
  const nlohmann::json r =
      run_experiment("throughput", "--requests 16 --max-tokens 20 --max-prompt-tokens 40");
  const nlohmann::json& inv = mode(r, "invariant");
  const nlohmann::json& fast = mode(r, "fast");
  EXPECT_EQ(inv.at("output_tokens"), fast.at("output_tokens"));
  EXPECT_GE(inv.at("output_tokens").get<int>(), 16 * 18);
  EXPECT_LE(inv.at("output_tokens").get<int>(), 16 * 22);
  EXPECT_GT(inv.at("wall_seconds").get<double>(), 0.0);
  EXPECT_GT(r.at("invariant_over_fast").get<double>(), 0.0);
}

TEST_F(Experiment, OneModeOnlyWhenModeIsGiven) {
  const nlohmann::json r =
      run_experiment("on-policy", "--mode fast --requests 2 --max-tokens 4 --max-prompt-tokens 8");
  ASSERT_EQ(r.at("modes").size(), 1u);
  EXPECT_EQ(r.at("modes")[0].at("mode"), "fast");
}

TEST_F(Experiment, BadFlagsAreOneLineErrors) {
  const std::string model = " --model '" + test::stories260k_path() + "' --quiet";
  expect_one_line_error("experiment uniqueness" + model + " --requests 0", "--requests");
  expect_one_line_error("experiment throughput" + model + " --mode slow", "--mode");
  expect_one_line_error("experiment on-policy" + model + " --clients -1", "--clients");
  expect_one_line_error("experiment uniqueness" + model + " --load-requests -2", "--load-requests");
}

}  // namespace
}  // namespace bx
