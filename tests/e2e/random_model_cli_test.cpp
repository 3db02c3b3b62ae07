// bitexact generate on a generated-weight model (random:qwen3-tiny): prompts as token ids, since
// such a model has no tokenizer.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "support/cli_runner.h"

namespace bx::test {
namespace {

using RandomModelCli = CliTest;

const std::string kArgs =
    "generate --model random:qwen3-tiny:5 --threads 2 --quiet --temperature 0 --max-tokens 6";

TEST_F(RandomModelCli, GeneratesFromTokenIds) {
  const RunResult text = run(kArgs + " --prompt-ids 5,17,300");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  const RunResult json = run(kArgs + " --prompt-ids '5, 17, 300' --format json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json line = nlohmann::json::parse(json.out);
  ASSERT_EQ(line["token_ids"].size(), 6u);  // no EOS: runs to max-tokens
  std::string ids;
  for (const auto& id : line["token_ids"]) {
    if (!ids.empty()) ids += ' ';
    ids += std::to_string(id.get<int>());
    EXPECT_GE(id.get<int>(), 0);
    EXPECT_LT(id.get<int>(), 1024);
  }
  EXPECT_EQ(text.out, ids + "\n");  // the text format prints the ids
  EXPECT_EQ(run(kArgs + " --prompt-ids 5,17,300").out, text.out);
  EXPECT_NE(run(kArgs + " --prompt-ids 5,17,301").out, text.out);
}

TEST_F(RandomModelCli, TextNeedsATokenizerAndBadSpecsAreNamed) {
  expect_one_line_error(kArgs + " --prompt hello", "no tokenizer");
  expect_one_line_error(kArgs + " --prompt-ids 5,x", "--prompt-ids");
  expect_one_line_error(kArgs + " --prompt-ids 5000", "outside the vocabulary");
  expect_one_line_error("generate --model random:qwen3-9b --quiet --prompt-ids 1",
                        "qwen3-8b, qwen3-tiny, qwen3-30b-a3b, qwen3-moe-tiny or gemma3-tiny");
}

}  // namespace
}  // namespace bx::test
