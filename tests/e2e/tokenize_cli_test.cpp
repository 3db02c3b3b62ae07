// End-to-end tests of `bitexact tokenize` and `bitexact detokenize`: JSON ids out, exact text
// back, special tokens and --add-special, both tokenizer sources (a GGUF file's vocabulary and a
// tokenizer.json directory), and one clear stderr line with a nonzero exit for bad input.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/cli_runner.h"
#include "support/gguf_writer.h"
#include "support/shared_model.h"
#include "tokenizer/load_tokenizer.h"

namespace bx {
namespace {

namespace fs = std::filesystem;

std::string qwen3_dir() {
  return std::string(BITEXACT_SOURCE_DIR) + "/../shared/tokenizers/qwen3";
}

class TokenizeCli : public test::CliTest {
 protected:
  std::vector<int32_t> tokenize(const std::string& source, const std::string& text,
                                bool add_special = false) {
    const test::RunResult r = run("tokenize " + source + " --text " + test::shell_quote(text) +
                                  (add_special ? " --add-special" : ""));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_FALSE(r.out.empty());
    if (r.out.empty()) return {};
    EXPECT_EQ(r.out.back(), '\n');
    return nlohmann::json::parse(r.out).get<std::vector<int32_t>>();
  }

  // A tokenizer directory with a tiny byte-level tokenizer.json, `edit` applied.
  std::string tiny_tokenizer(const std::string& name, void (*edit)(nlohmann::json&)) {
    nlohmann::json j = {
        {"model",
         {{"type", "BPE"}, {"vocab", {{"h", 0}, {"i", 1}, {"hi", 2}}}, {"merges", {"h i"}}}},
        {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
        {"decoder", {{"type", "ByteLevel"}}}};
    edit(j);
    const fs::path d = dir_ / name;
    fs::create_directories(d);
    std::ofstream(d / "tokenizer.json") << j.dump();
    return d.string();
  }

  fs::path write_gguf(const std::string& name, const test::GgufWriter& w) {
    const fs::path path = dir_ / name;
    const std::vector<std::byte> bytes = w.bytes();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return path;
  }
};

TEST_F(TokenizeCli, Qwen3IdsAndExactText) {
  const std::string source = "--tokenizer " + test::shell_quote(qwen3_dir());
  const std::string text = "Hello, world!<|im_end|>\n  tabs\there 12345 日本語 👍🏽";
  const std::vector<int32_t> ids = tokenize(source, text);
  // The same ids as the library (which the conformance test checks against `tokenizers`).
  EXPECT_EQ(ids, load_tokenizer_dir(qwen3_dir())->encode(text, false));
  EXPECT_NE(std::find(ids.begin(), ids.end(), 151645), ids.end());  // <|im_end|> recognised
  EXPECT_EQ(tokenize(source, text, true), ids);                     // Qwen3 adds no BOS/EOS

  std::string csv;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) csv += ',';
    csv += std::to_string(ids[i]);
  }
  test::RunResult r = run("detokenize " + source + " --ids " + csv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, text);  // exactly, no newline added
  r = run("detokenize " + source + " --ids " + test::shell_quote(nlohmann::json(ids).dump()));
  EXPECT_EQ(r.out, text);
  r = run("detokenize " + source + " --skip-special --ids " + csv);
  EXPECT_EQ(r.out, "Hello, world!\n  tabs\there 12345 日本語 👍🏽");
}

TEST_F(TokenizeCli, GgufVocabularyWithAddSpecial) {
  if (!test::have_stories260k()) GTEST_SKIP();
  const std::string source = "--model " + test::shell_quote(test::stories260k_path());
  const std::vector<int32_t> plain = tokenize(source, "Once upon a time");
  const std::vector<int32_t> special = tokenize(source, "Once upon a time", true);
  ASSERT_FALSE(plain.empty());
  ASSERT_EQ(special.size(), plain.size() + 1);
  EXPECT_EQ(special[0], 1);  // BOS only with --add-special
  EXPECT_NE(plain[0], 1);
  EXPECT_EQ(std::vector<int32_t>(special.begin() + 1, special.end()), plain);
  // "<s>" in the text is the BOS token, not characters.
  const std::vector<int32_t> with_bos_text = tokenize(source, "<s>Once upon a time");
  EXPECT_EQ(with_bos_text, special);
  const test::RunResult r =
      run("detokenize " + source + " --ids " + test::shell_quote(nlohmann::json(plain).dump()));
  EXPECT_EQ(r.out, "Once upon a time");
}

TEST_F(TokenizeCli, EmptyTextAndEmptyIds) {
  const std::string source = "--tokenizer " + test::shell_quote(qwen3_dir());
  EXPECT_EQ(tokenize(source, ""), std::vector<int32_t>{});
  const test::RunResult r = run("detokenize " + source + " --ids '[]'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(TokenizeCli, BadInputIsOneClearLine) {
  const std::string qwen = "--tokenizer " + test::shell_quote(qwen3_dir());
  expect_one_line_error("tokenize --text hi", "exactly one of --model");
  if (test::have_stories260k()) {
    expect_one_line_error("tokenize " + qwen + " --model " +
                              test::shell_quote(test::stories260k_path()) + " --text hi",
                          "exactly one of --model");
    // Invalid UTF-8: rejected, naming the byte offset, by both kinds of tokenizer.
    expect_one_line_error("tokenize --model " + test::shell_quote(test::stories260k_path()) +
                              " --text \"$(printf 'ab\\377')\"",
                          "byte 0xFF at byte offset 2");
  }
  expect_one_line_error("tokenize " + qwen + " --text \"$(printf 'caf\\303')\"",
                        "byte 0xC3 at byte offset 3");
  expect_one_line_error(
      "tokenize --tokenizer " + test::shell_quote((dir_ / "missing").string()) + " --text hi",
      "does not exist");
  expect_one_line_error("tokenize --model " + test::shell_quote(dir_.string()) + " --text hi",
                        "is a directory");
  expect_one_line_error("detokenize " + qwen + " --ids 1,x,3", "'x' is not a token id");
  expect_one_line_error("detokenize " + qwen + " --ids 999999", "out of range");

  const std::string tiny = tiny_tokenizer("tiny", [](nlohmann::json&) {});
  EXPECT_EQ(tokenize("--tokenizer " + test::shell_quote(tiny), "hi"), std::vector<int32_t>{2});
  const std::string unigram =
      tiny_tokenizer("unigram", [](nlohmann::json& j) { j["model"]["type"] = "Unigram"; });
  expect_one_line_error("tokenize --tokenizer " + test::shell_quote(unigram) + " --text hi",
                        "unsupported tokenizer model type 'Unigram'");
  const std::string bert = tiny_tokenizer("bert", [](nlohmann::json& j) {
    j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  });
  expect_one_line_error("tokenize --tokenizer " + test::shell_quote(bert) + " --text hi",
                        "unsupported pre-tokenizer type 'BertPreTokenizer'");
  const std::string lower = tiny_tokenizer("lowercase", [](nlohmann::json& j) {
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "Lowercase"}}}}};
  });
  expect_one_line_error("tokenize --tokenizer " + test::shell_quote(lower) + " --text hi",
                        "unsupported normalizer type 'Lowercase'");
  const std::string ctc = tiny_tokenizer("ctc", [](nlohmann::json& j) {
    j["decoder"] = {{"type", "CTC"}};
  });
  expect_one_line_error("detokenize --tokenizer " + test::shell_quote(ctc) + " --ids 1",
                        "unsupported decoder type 'CTC'");

  test::GgufWriter unknown_model;
  unknown_model.add_string("tokenizer.ggml.model", "t5");
  unknown_model.add_array_string("tokenizer.ggml.tokens", {"a", "b"});
  expect_one_line_error("tokenize --model " +
                            test::shell_quote(write_gguf("t5.gguf", unknown_model).string()) +
                            " --text hi",
                        "unsupported tokenizer model type tokenizer.ggml.model = 't5'");
  test::GgufWriter unknown_pre;
  unknown_pre.add_string("tokenizer.ggml.model", "gpt2");
  unknown_pre.add_string("tokenizer.ggml.pre", "falcon");
  unknown_pre.add_array_string("tokenizer.ggml.tokens", {"a", "b", "ab"});
  unknown_pre.add_array_string("tokenizer.ggml.merges", {"a b"});
  expect_one_line_error("tokenize --model " +
                            test::shell_quote(write_gguf("falcon.gguf", unknown_pre).string()) +
                            " --text hi",
                        "unsupported pre-tokenizer type tokenizer.ggml.pre = 'falcon'");
}

}  // namespace
}  // namespace bx
