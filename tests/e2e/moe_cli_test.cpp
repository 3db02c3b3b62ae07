// The CLI on the Mixture-of-Experts random models: random:qwen3-moe-tiny generates from token
// ids (deterministic, seed-dependent) and `info` shows its experts; random:qwen3-30b-a3b has
// Qwen3-30B-A3B's shape and is refused on the CPU with one line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "support/cli_runner.h"

namespace bx::test {
namespace {

using MoeCli = CliTest;

const std::string kArgs =
    "generate --model random:qwen3-moe-tiny:5 --threads 2 --quiet --temperature 0 --max-tokens 8";

TEST_F(MoeCli, GeneratesFromTokenIdsDeterministically) {
  const RunResult first = run(kArgs + " --prompt-ids 5,17,300 --format json");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const nlohmann::json line = nlohmann::json::parse(first.out);
  ASSERT_EQ(line["token_ids"].size(), 8u);
  EXPECT_EQ(run(kArgs + " --prompt-ids 5,17,300 --format json").out, first.out);
  EXPECT_NE(run(kArgs + " --prompt-ids 5,17,301 --format json").out, first.out);
  const std::string other_seed =
      "generate --model random:qwen3-moe-tiny:6 --threads 2 --quiet --temperature 0 "
      "--max-tokens 8 --prompt-ids 5,17,300 --format json";
  EXPECT_NE(run(other_seed).out, first.out);
}

TEST_F(MoeCli, InfoShowsTheExperts) {
  const RunResult r = run("info --model random:qwen3-moe-tiny");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Qwen3MoeForCausalLM"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("experts        16, 4 per token, expert ffn dim 64, top-k weights "
                       "normalized"),
            std::string::npos)
      << r.out;
}

TEST_F(MoeCli, TheThirtyBillionShapeIsRefusedOnTheCpu) {
  // 30.5 B parameters: too many to generate in host memory as f32.
  expect_one_line_error("generate --model random:qwen3-30b-a3b --quiet --prompt-ids 1",
                        "30532122624 parameters are too many for host memory");
}

}  // namespace
}  // namespace bx::test
