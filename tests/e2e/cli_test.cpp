// End-to-end tests of the bitexact binary: the golden story, JSON output, batch == alone through
// the CLI, and one clear stderr line with a nonzero exit for every kind of bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>

#include "support/cli_runner.h"
#include "support/random_hf_model.h"
#include "support/shared_model.h"

namespace bx {
namespace {

namespace fs = std::filesystem;

class Cli : public test::CliTest {
 protected:
  std::string model() const { return "--model '" + test::stories260k_path() + "' --quiet"; }

  // Bad input: one stderr line mentioning `needle` (any case), nothing on stdout, exit != 0.
  void expect_one_line_error(const std::string& args, const std::string& needle) {
    CliTest::expect_one_line_error(args, needle, /*ignore_case=*/true);
  }
};

TEST_F(Cli, GreedyFromBosTellsTheLilyStory) {
  if (!test::have_stories260k()) GTEST_SKIP();
  const test::RunResult r =
      run("generate " + model() + " --prompt '' --max-tokens 64 --temperature 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("Lily"), std::string::npos) << r.out;
}

TEST_F(Cli, PromptsFileBatchEqualsEachPromptAlone) {
  if (!test::have_stories260k()) GTEST_SKIP();
  const std::vector<std::string> prompts = {"", "Once upon a time", "The dog ran to the",
                                            "Lily wanted to play with her friend Ben, but"};
  std::string file;
  for (const std::string& p : prompts) file += p + "\n";
  const fs::path path = write("prompts.txt", file);
  const std::string sampling = " --max-tokens 20 --temperature 0.7 --top-k 50 --seed 11";
  const test::RunResult batch = run("generate " + model() + " --prompts-file '" + path.string() +
                                    "' --format json" + sampling);
  ASSERT_EQ(batch.exit_code, 0) << batch.err;
  std::vector<std::string> lines;
  std::stringstream ss(batch.out);
  for (std::string line; std::getline(ss, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), prompts.size());

  for (size_t i = 0; i < prompts.size(); ++i) {
    const nlohmann::json j = nlohmann::json::parse(lines[i]);
    EXPECT_EQ(j.at("prompt"), prompts[i]);
    ASSERT_EQ(j.at("token_ids").size(), j.at("logprobs").size());
    EXPECT_EQ(j.at("token_ids").size(), 20u);
    for (const auto& lp : j.at("logprobs")) EXPECT_LE(lp.get<double>(), 0.0);
    // The same prompt alone, with other thread counts and token budgets: the same line.
    for (const std::string& knobs :
         {std::string(" --threads 1"), std::string(" --threads 2 --max-batch-tokens 3")}) {
      const test::RunResult alone = run("generate " + model() + " --prompt '" + prompts[i] +
                                        "' --format json" + sampling + knobs);
      ASSERT_EQ(alone.exit_code, 0) << alone.err;
      EXPECT_EQ(alone.out, lines[i] + "\n") << "prompt " << i << knobs;
    }
  }
}

TEST_F(Cli, LogprobsRoundTripExactly) {
  if (!test::have_stories260k()) GTEST_SKIP();
  const test::RunResult r =
      run("generate " + model() + " --prompt 'Once' --format json --max-tokens 8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  // Each printed logprob is the shortest decimal of a float: reading it back as float and
  // printing it again with 9 significant digits gives a value that reads back identically.
  for (const auto& lp : j.at("logprobs")) {
    const float f = static_cast<float>(lp.get<double>());
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.9g", static_cast<double>(f));
    EXPECT_EQ(std::strtof(buffer, nullptr), f);
  }
}

// generate and score agree bit for bit, and the engine flags change nothing; stop strings cut
// the text before them.
TEST_F(Cli, ScorePrintsTheLogprobsGenerateReported) {
  if (!test::have_stories260k()) GTEST_SKIP();
  const test::RunResult g =
      run("generate " + model() +
          " --prompt 'Tom had a' --format json --max-tokens 12 --temperature 0.9"
          " --seed 3 --prefill-chunk 2 --kv-block-size 4 --no-prefix-cache");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const nlohmann::json gen = nlohmann::json::parse(g.out);
  std::string ids;
  for (const auto& id : gen.at("token_ids")) {
    if (!ids.empty()) ids += ",";
    ids += id.dump();
  }
  const test::RunResult s = run("score " + model() + " --prompt 'Tom had a' --continuation-ids " +
                                ids + " --max-batch-tokens 5");
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const nlohmann::json scored = nlohmann::json::parse(s.out);
  EXPECT_EQ(scored.at("token_ids"), gen.at("token_ids"));
  // Each printed value is the shortest decimal of its float, so reading it back gives the float.
  ASSERT_EQ(scored.at("logprobs").size(), gen.at("logprobs").size());
  for (size_t i = 0; i < gen.at("logprobs").size(); ++i) {
    EXPECT_EQ(static_cast<float>(scored.at("logprobs")[i].get<double>()),
              static_cast<float>(gen.at("logprobs")[i].get<double>()))
        << i;
  }

  const test::RunResult stopped = run("generate " + model() +
                                      " --prompt '' --format json --max-tokens 64 --temperature 0"
                                      " --stop Lily");
  ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
  const nlohmann::json j = nlohmann::json::parse(stopped.out);
  EXPECT_EQ(j.at("finish_reason"), "stop");
  EXPECT_EQ(j.at("text"), "Once upon a time, there was a little girl named ");
}

// chat: the default model answers through its own template; the reply streams to stdout and
// ends at the model's EOS (<|im_end|>), which is not printed.
TEST_F(Cli, ChatAnswersThroughTheModelsTemplate) {
  const std::string smollm2 =
      std::string(BITEXACT_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(smollm2)) GTEST_SKIP() << smollm2 << " not found (scripts/setup.sh fetches it)";
  const fs::path input = write("input.txt", "What is the capital of France?\n");
  const test::RunResult r =
      run("chat --model '" + smollm2 + "' --quiet --max-tokens 40 < '" + input.string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Paris"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("<|im_end|>"), std::string::npos) << r.out;
  if (!test::have_stories260k()) return;
  expect_one_line_error("chat " + model() + " < '" + input.string() + "'", "chat_template");
}

// --cpu-kernel k2 (int8 activations for the default model's Q4_1 / Q8_0 blocks): its own
// fingerprint, other logprob bits than k1, and still a batch row equal to the prompt alone
// under other thread counts and step sizes.
TEST_F(Cli, CpuKernelK2IsInvariantAndFingerprinted) {
  const std::string smollm2 =
      std::string(BITEXACT_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(smollm2)) GTEST_SKIP() << smollm2 << " not found (scripts/setup.sh fetches it)";
  const std::string m = "--model '" + smollm2 + "' --quiet";
  const auto fingerprint = [&](const std::string& kernel) {
    const test::RunResult r = run("info " + m + " --cpu-kernel " + kernel);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const size_t at = r.out.find("fingerprint    bx-");
    return at == std::string::npos ? std::string() : r.out.substr(at, 34);
  };
  const std::string k1 = fingerprint("k1"), k2 = fingerprint("k2");
  EXPECT_FALSE(k2.empty());
  EXPECT_NE(k1, k2);

  const std::vector<std::string> prompts = {"The capital of France is", "Once upon a time"};
  const fs::path path = write("k2_prompts.txt", prompts[0] + "\n" + prompts[1] + "\n");
  const std::string sampling = " --max-tokens 8 --temperature 0 --format json";
  const test::RunResult batch =
      run("generate " + m + " --cpu-kernel k2 --threads 2 --prompts-file '" + path.string() + "'" +
          sampling);
  ASSERT_EQ(batch.exit_code, 0) << batch.err;
  std::vector<std::string> lines;
  std::stringstream ss(batch.out);
  for (std::string line; std::getline(ss, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const test::RunResult alone =
        run("generate " + m + " --cpu-kernel k2 --threads 1 --max-batch-tokens 5 --prompt '" +
            prompts[i] + "'" + sampling);
    ASSERT_EQ(alone.exit_code, 0) << alone.err;
    EXPECT_EQ(alone.out, lines[i] + "\n") << "prompt " << i;
    // Negative control: k1's logprobs have other bits.
    const test::RunResult k1_run =
        run("generate " + m + " --prompt '" + prompts[i] + "'" + sampling);
    ASSERT_EQ(k1_run.exit_code, 0) << k1_run.err;
    EXPECT_NE(nlohmann::json::parse(k1_run.out).at("logprobs"),
              nlohmann::json::parse(lines[i]).at("logprobs"))
        << "prompt " << i;
  }
  expect_one_line_error("info " + m + " --cpu-kernel k3", "cpu-kernel");
  expect_one_line_error("info " + m + " --backend cuda --cpu-kernel k2", "backend");
}

TEST_F(Cli, InfoDescribesTheModel) {
  if (!test::have_stories260k()) GTEST_SKIP();
  const test::RunResult r = run("info " + model());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* needle :
       {"architecture   llama", "layers         5", "dim            64", "8 query, 4 key/value",
        "weights hash", "fingerprint    bx-", "F32 x"}) {
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << "\n" << r.out;
  }
}

TEST_F(Cli, BadModelFilesGiveOneLineErrors) {
  expect_one_line_error("generate --model /nonexistent/model.gguf --prompt hi", "nonexistent");
  expect_one_line_error(
      "info --model '" + write("bad_magic.gguf", "NOPE and more bytes").string() + "'", "magic");
  if (!test::have_stories260k()) GTEST_SKIP();
  const std::string real = test::read_file(test::stories260k_path());
  expect_one_line_error(
      "info --model '" + write("truncated.gguf", real.substr(0, 3000)).string() + "'", "truncated");
  std::string v9 = real;
  v9[4] = 9;  // version field
  expect_one_line_error("info --model '" + write("v9.gguf", v9).string() + "'", "version");
}

TEST_F(Cli, BadFlagValuesGiveOneLineErrors) {
  if (!test::have_stories260k()) GTEST_SKIP();
  const std::string g = "generate " + model() + " --prompt hi";
  expect_one_line_error(g + " --max-tokens -1", "max-tokens");
  expect_one_line_error(g + " --temperature -0.5", "temperature");
  expect_one_line_error(g + " --top-p 0", "top_p");
  expect_one_line_error(g + " --top-p 1.5", "top_p");
  expect_one_line_error(g + " --min-p 2", "min_p");
  expect_one_line_error(g + " --format xml", "format");
  expect_one_line_error(g + " --threads -2", "threads");
  expect_one_line_error(g + " --seed -1", "seed");
  expect_one_line_error(g + " --seed 12x", "seed");
  expect_one_line_error(g + " --top-k -3", "top_k");
  expect_one_line_error(g + " --temperature nan", "temperature");
  expect_one_line_error("generate " + model(), "--prompt");
  expect_one_line_error("generate --prompt hi", "model");
  expect_one_line_error(g + " --prefill-chunk -1", "prefill-chunk");
  expect_one_line_error(g + " --kv-block-size 0", "kv-block-size");
  expect_one_line_error(g + " --max-tokens 300 --kv-cache-tokens 64", "kv cache");
  expect_one_line_error(g + " --min-tokens 9 --max-tokens 3", "min_tokens");
  expect_one_line_error(g + " --stop ''", "stop string");
  expect_one_line_error("score " + model() + " --prompt hi --continuation-ids 1,x", "continuation");
  expect_one_line_error("score " + model() + " --prompt hi --continuation-ids 999", "vocabulary");
  // stories260K declares a 2048-token context; this prompt is about 3000 tokens.
  std::string long_prompt;
  for (int i = 0; i < 1500; ++i) long_prompt += "the dog ";
  const fs::path file = write("long.txt", long_prompt + "\n");
  expect_one_line_error("generate " + model() + " --prompts-file '" + file.string() + "'",
                        "context");
}

// A Hugging Face folder: info describes it; text generation needs the tokenizer it is loaded
// without, and says so; a bad folder is one line naming the problem.
TEST_F(Cli, HuggingFaceFolder) {
  test::RandomHfSpec spec;
  spec.architecture = "Qwen3ForCausalLM";
  spec.shards = 2;
  const test::RandomHfFolder folder("cli", spec);
  const std::string m = "--model '" + folder.path() + "' --quiet";
  const test::RunResult info = run("info " + m);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("Hugging Face folder, 2 safetensors file(s)"), std::string::npos)
      << info.out;
  EXPECT_NE(info.out.find("Qwen3ForCausalLM"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("per-head q/k RMSNorm"), std::string::npos) << info.out;
  expect_one_line_error("generate " + m + " --prompt hi", "no tokenizer");

  fs::remove(folder.path() + "/" + test::shard_name(1, 2));
  expect_one_line_error("info " + m, "model-00002-of-00002.safetensors' (holding");
  nlohmann::json config = test::random_hf_config(spec);
  config["architectures"] = {"FalconForCausalLM"};
  test::write_text(folder.path() + "/config.json", config.dump());
  expect_one_line_error("info " + m, "unsupported architecture \"falconforcausallm\"");
}

}  // namespace
}  // namespace bx
