// bitexact render-chat end to end: prints exactly what ChatTemplate renders (nothing appended),
// from a tokenizer directory or a GGUF file, and answers bad input (a template syntax error, a
// template's raise_exception, bad flags, bad JSON) with one stderr line and a nonzero exit.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "support/cli_runner.h"
#include "support/gguf_writer.h"
#include "template/chat_template.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

class RenderChatCli : public bx::test::CliTest {
 protected:
};

const char* kConversation = R"([
  {"role": "system", "content": "Be brief."},
  {"role": "user", "content": "Grüße {{ not a tag }}"},
  {"role": "assistant", "content": "Hi!"},
  {"role": "user", "content": "Again?"}
])";

TEST_F(RenderChatCli, PrintsExactlyWhatTheTemplateRenders) {
  const std::string qwen3 = "../shared/tokenizers/qwen3";
  if (!fs::exists(qwen3 + "/tokenizer_config.json")) GTEST_SKIP() << "no " << qwen3;
  const fs::path messages = write("messages.json", kConversation);
  const bx::ChatTemplate reference = bx::ChatTemplate::from_tokenizer_dir(qwen3);
  for (bool agp : {false, true}) {
    const bx::test::RunResult r =
        run("render-chat --tokenizer '" + qwen3 + "' --messages '" + messages.string() + "'" +
            (agp ? " --add-generation-prompt" : ""));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out, reference.render(json::parse(kConversation), agp));
  }
  // The object form passes its other keys to the template.
  const fs::path with_vars = write(
      "vars.json",
      std::string(R"({"messages": [{"role": "user", "content": "x"}], "enable_thinking": false})"));
  const bx::test::RunResult r = run("render-chat --model '" + qwen3 + "' --messages '" +
                                    with_vars.string() + "' --add-generation-prompt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST_F(RenderChatCli, ReadsTheTemplateFromAGguf) {
  bx::test::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_array_string("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"});
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  w.add_string("tokenizer.chat_template",
               "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n"
               "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}");
  const fs::path model = dir_ / "model.gguf";
  w.write(model.string());
  const fs::path messages = write("messages.json", R"([{"role": "user", "content": "hello"}])");
  const bx::test::RunResult r = run("render-chat --model '" + model.string() + "' --messages '" +
                                    messages.string() + "' --add-generation-prompt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<s>[user] hello\n[assistant]");
}

TEST_F(RenderChatCli, BadInputGetsOneLineAndANonzeroExit) {
  const fs::path messages = write("messages.json", R"([{"role": "user", "content": "hi"}])");
  const std::string msg = " --messages '" + messages.string() + "'";
  write("broken/tokenizer_config.json",
        R"({"chat_template": "{% for m in messages %}\n{{ m.content }\n{% endfor %}"})");
  expect_one_line_error("render-chat --tokenizer '" + (dir_ / "broken").string() + "'" + msg,
                        "template:2:14: unexpected '}'");
  write(
      "raising/tokenizer_config.json",
      R"({"chat_template": "{{ raise_exception('Only user and assistant roles are supported!') }}"})");
  expect_one_line_error("render-chat --tokenizer '" + (dir_ / "raising").string() + "'" + msg,
                        "Only user and assistant roles are supported!");
  write("none/tokenizer_config.json", R"({"eos_token": "</s>"})");
  expect_one_line_error("render-chat --tokenizer '" + (dir_ / "none").string() + "'" + msg,
                        "has no chat_template");
  expect_one_line_error("render-chat" + msg, "give exactly one of --model PATH or --tokenizer DIR");
  expect_one_line_error(
      "render-chat --tokenizer '" + (dir_ / "none").string() + "' --model x" + msg,
      "give exactly one of --model PATH or --tokenizer DIR");
  const fs::path bad_json = write("bad.json", "[{\"role\": ");
  expect_one_line_error("render-chat --tokenizer '" + (dir_ / "none").string() + "' --messages '" +
                            bad_json.string() + "'",
                        "is not valid JSON");
  expect_one_line_error("render-chat --model '" + (dir_ / "missing.gguf").string() + "'" + msg,
                        "missing.gguf");
}

}  // namespace
