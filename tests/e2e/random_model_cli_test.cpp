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

// --tokenizer gives a random: model a tokenizer: the text prompt is encoded by it (the ids equal
// those of the same prompt given as ids after `bitexact tokenize`), the output is decoded text,
// and a tokenizer with more tokens than the model's embedding has rows is refused by name.
TEST_F(RandomModelCli, TokenizerFlagGivesARandomModelText) {
  const std::string shared = std::string(BITEXACT_SOURCE_DIR) + "/../shared";
  const std::string stories = shared + "/models/stories260K.gguf";  // 512 tokens, fits 1024 rows
  const RunResult ids =
      run("tokenize --model " + stories + " --add-special --text 'Once upon a time'");
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  std::string id_list;
  for (const auto& id : nlohmann::json::parse(ids.out)) {
    if (!id_list.empty()) id_list += ',';
    id_list += std::to_string(id.get<int>());
  }
  const RunResult text =
      run(kArgs + " --tokenizer " + stories + " --prompt 'Once upon a time' --format json");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  const RunResult by_ids = run(kArgs + " --prompt-ids " + id_list + " --format json");
  ASSERT_EQ(by_ids.exit_code, 0) << by_ids.err;
  const nlohmann::json a = nlohmann::json::parse(text.out), b = nlohmann::json::parse(by_ids.out);
  EXPECT_EQ(a["token_ids"], b["token_ids"]);
  EXPECT_TRUE(a["text"].is_string());  // ids >= 512 (the tokenizer's size) decode as nothing
  // Negative control: another prompt gives other ids, so the equality above is not vacuous.
  const RunResult other =
      run(kArgs + " --tokenizer " + stories + " --prompt 'The dog' --format json");
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_NE(nlohmann::json::parse(other.out)["token_ids"], a["token_ids"]);

  expect_one_line_error(kArgs + " --tokenizer " + shared + "/tokenizers/qwen3 --prompt hi",
                        "tokens but the embedding of random:qwen3-tiny:5 only 1024 rows");
  expect_one_line_error(kArgs + " --tokenizer /no/such/tokenizer --prompt hi",
                        "--tokenizer /no/such/tokenizer does not exist");
  expect_one_line_error("serve --model random:qwen3-tiny:5 --quiet --port 0 --tokenizer /no/such",
                        "--tokenizer /no/such does not exist");
}

}  // namespace
}  // namespace bx::test
