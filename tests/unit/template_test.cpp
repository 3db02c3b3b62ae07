// The template interpreter on its own: syntax and runtime errors name line and column, unknown
// filters and tests are reported, hostile templates hit limits instead of crashing, and the
// ChatTemplate loaders (tokenizer_config.json, chat_template.jinja, GGUF) find the template and
// the special tokens. Rendering semantics are checked against jinja2 in
// chat_template_conformance_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "model/gguf.h"
#include "support/gguf_writer.h"
#include "template/chat_template.h"
#include "template/template.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

std::string render(const std::string& source, const bx::tmpl::RenderOptions& options = {}) {
  return bx::tmpl::Template(source).render(bx::tmpl::Dict{}, options);
}

// The message of the bx::Error that parsing and rendering `source` throws ("" if none).
std::string error_of(const std::string& source, const bx::tmpl::RenderOptions& options = {}) {
  try {
    render(source, options);
  } catch (const bx::Error& e) {
    return e.what();
  }
  return "";
}

TEST(TemplateErrors, SyntaxErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("{% if x %}abc"),
            "template:1:14: unexpected end of template, expected 'elif' or 'else' or 'endif'");
  EXPECT_EQ(error_of("line1\n{{ foo( }}"), "template:2:9: unexpected '}', expected ')'");
  EXPECT_EQ(error_of("{% for x in %}"),
            "template:1:13: expected an expression, got end of statement block '%}'");
  EXPECT_EQ(error_of("{% endif %}"),
            "template:1:4: unexpected 'endif': no open block it could close");
  EXPECT_EQ(error_of("{{ 'abc }}"), "template:1:4: unterminated string literal");
  EXPECT_EQ(error_of("{% frobnicate %}"), "template:1:4: unknown statement 'frobnicate'");
  EXPECT_EQ(error_of("ok\n\n  {# never closed"), "template:3:3: missing end of comment tag '#}'");
  EXPECT_EQ(error_of("ab\n  {{ x | }}"),
            "template:2:10: expected a filter name, got end of print statement '}}'");
  EXPECT_EQ(error_of("{{ x is }}"),
            "template:1:9: expected a test name, got end of print statement '}}'");
  // Columns count characters, not bytes: 'é' is one column.
  EXPECT_EQ(error_of("é{{ ) }}"), "template:1:5: unexpected ')'");
  EXPECT_EQ(error_of("{% for x in [1] %}{% endfor %}{% break %}"),
            "template:1:34: 'break' outside of a for loop");
  EXPECT_EQ(error_of("{% include 'x' %}"),
            "template:1:4: the 'include' statement is not supported in chat templates");
  EXPECT_EQ(error_of("{{ 1 @ 2 }}"), "template:1:6: unexpected character '@' in expression");
  EXPECT_EQ(error_of("{% for x in y recursive %}{% endfor %}"),
            "template:1:15: recursive for loops are not supported");
}

TEST(TemplateErrors, RuntimeErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("{{ raise_exception('boom') }}"), "template:1:4: raise_exception: boom");
  EXPECT_EQ(error_of("a\n{{ 'x' + 1 }}"),
            "template:2:8: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(error_of("{{ missing.attr }}"), "template:1:11: 'missing' is undefined");
  EXPECT_EQ(error_of("{% set x = 1 %}{{ x.y.z }}"),
            "template:1:22: 'int object' has no attribute 'y'");
  EXPECT_EQ(error_of("{{ [1]|frob }}"), "template:1:8: no filter named 'frob'");
  EXPECT_EQ(error_of("{{ 1 is frob }}"), "template:1:6: no test named 'frob'");
  EXPECT_EQ(error_of("{{ [].append(1) }}"),
            "template:1:6: access to attribute 'append' of 'list' object is unsafe (templates "
            "cannot modify values)");
  EXPECT_EQ(error_of("\n\n   {% for x in 5 %}{% endfor %}"),
            "template:3:7: 'int' object is not iterable");
}

TEST(TemplateLimits, HostileTemplatesStopWithAnError) {
  // Parser nesting.
  const std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_NE(error_of(deep).find("nested more than"), std::string::npos);
  const std::string deep_blocks = [] {
    std::string s;
    for (int i = 0; i < 1000; ++i) s += "{% if true %}";
    return s;
  }();
  EXPECT_NE(error_of(deep_blocks).find("nested more than"), std::string::npos);
  // Long chains grow the tree without parser recursion; they are bounded too.
  std::string chain = "{{ 1";
  for (int i = 0; i < 100000; ++i) chain += " + 1";
  EXPECT_NE(error_of(chain + " }}").find("expression nested more than 300 levels deep"),
            std::string::npos);
  std::string filters = "{{ 'x'";
  for (int i = 0; i < 100000; ++i) filters += "|trim";
  EXPECT_NE(error_of(filters + " }}").find("expression nested more than"), std::string::npos);
  // Values built at run time: nesting is bounded, namespaces hold only plain values (so no
  // chain or cycle of namespaces can form).
  EXPECT_NE(error_of("{% set ns = namespace(v=[]) %}{% for i in range(100000) %}"
                     "{% set ns.v = [ns.v] %}{% endfor %}")
                .find("values nested more than 512 levels deep"),
            std::string::npos);
  EXPECT_NE(error_of("{% set a = namespace() %}{% set b = namespace() %}{% set a.next = b %}")
                .find("cannot store a namespace or a function"),
            std::string::npos);
  EXPECT_NE(error_of("{% set a = namespace() %}{% set b = namespace(x=[a]) %}")
                .find("would hold a namespace or a function"),
            std::string::npos);
  EXPECT_NE(error_of("{% macro m() %}{% endmacro %}{% set a = namespace(f=m) %}")
                .find("would hold a namespace or a function"),
            std::string::npos);
  // Unbounded macro recursion.
  EXPECT_NE(
      error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("recursion deeper"),
      std::string::npos);
  // Output size.
  bx::tmpl::RenderOptions small;
  small.max_output_bytes = 1000;
  EXPECT_NE(error_of("{% for i in range(2000) %}x{% endfor %}", small).find("result too large"),
            std::string::npos);
  EXPECT_EQ(render("{% for i in range(999) %}x{% endfor %}", small).size(), 999u);
  EXPECT_NE(error_of("{{ 'x' * 10**12 }}").find("result too large"), std::string::npos);
  // Loop iterations.
  bx::tmpl::RenderOptions few_steps;
  few_steps.max_steps = 10000;
  EXPECT_NE(error_of("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
                     few_steps)
                .find("loop iterations"),
            std::string::npos);
  bx::tmpl::RenderOptions little_work;
  little_work.max_work = 1'000'000;
  EXPECT_NE(error_of("{% set ns = namespace(s='') %}{% for i in range(100000) %}"
                     "{% set ns.s = ns.s ~ 'x' %}{% endfor %}",
                     little_work)
                .find("bytes of strings and lists in all"),
            std::string::npos);
  EXPECT_NE(error_of("{{ range(100001)|length }}").find("range too big"), std::string::npos);
  EXPECT_NE(error_of("{{ 2 ** 64 }}").find("integer overflow"), std::string::npos);
}

TEST(TemplateFeatures, GenerationTagRendersItsBody) {
  // transformers registers {% generation %} (assistant-token masks); rendering keeps the body.
  EXPECT_EQ(render("a{% generation %}b{{ 1 }}{% endgeneration %}c"), "ab1c");
}

TEST(TemplateFeatures, StrftimeNowUsesTheGivenTime) {
  bx::tmpl::RenderOptions options;
  options.now = 0;
  std::tm local{};
  const std::time_t zero = 0;
  localtime_r(&zero, &local);
  char expected[32];
  std::strftime(expected, sizeof expected, "%Y-%m-%d", &local);
  EXPECT_EQ(render("{{ strftime_now('%Y-%m-%d') }}", options), expected);
}

// ----- ChatTemplate

TEST(ChatTemplate, LoadsQwen3FromItsTokenizerDirectory) {
  const std::string dir = "../shared/tokenizers/qwen3";
  if (!fs::exists(dir + "/tokenizer_config.json")) GTEST_SKIP() << "no " << dir;
  const bx::ChatTemplate t = bx::ChatTemplate::from_tokenizer_dir(dir);
  EXPECT_EQ(t.special_tokens().eos_token, "<|im_end|>");
  EXPECT_EQ(t.special_tokens().bos_token, "");  // null in the config
  EXPECT_EQ(t.special_tokens().pad_token, "<|endoftext|>");
  const json messages = json::parse(R"([{"role": "user", "content": "Hi"}])");
  EXPECT_EQ(t.render(messages, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(t.render(messages, true, json{{"enable_thinking", false}}),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplate, ConfigFormsAndSpecialTokens) {
  json config = {
      {"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}}},
      {"eos_token", "</s>"},
      {"chat_template",
       json::array({{{"name", "tool_use"}, {"template", "T"}},
                    {{"name", "default"}, {"template", "{{ bos_token }}D{{ eos_token }}"}}})}};
  const bx::ChatTemplate t = bx::ChatTemplate::from_tokenizer_config(config, "cfg");
  EXPECT_EQ(t.render(json::array(), false), "<s>D</s>");

  config["chat_template"] = json::array({{{"name", "rag"}, {"template", "R"}}});
  try {
    bx::ChatTemplate::from_tokenizer_config(config, "cfg");
    ADD_FAILURE() << "no default template accepted";
  } catch (const bx::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no template named 'default' (has: rag)"),
              std::string::npos)
        << e.what();
  }
  config.erase("chat_template");
  EXPECT_THROW(bx::ChatTemplate::from_tokenizer_config(config, "cfg"), bx::Error);
}

TEST(ChatTemplate, ReadsChatTemplateJinjaBesideTheConfig) {
  const fs::path dir =
      fs::temp_directory_path() / ("bitexact_chat_dir_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer_config.json") << R"({"eos_token": "<e>"})";
  std::ofstream(dir / "chat_template.jinja")
      << "{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}\n";
  const bx::ChatTemplate t = bx::ChatTemplate::from_tokenizer_dir(dir.string());
  EXPECT_EQ(t.render(json::parse(
                         R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])"),
                     false),
            "ab<e>");
  fs::remove_all(dir);
}

TEST(ChatTemplate, LoadsFromGgufMetadata) {
  bx::test::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_array_string("tokenizer.ggml.tokens", {"<unk>", "<|im_start|>", "<|im_end|>"});
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  w.add_string("tokenizer.chat_template",
               "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}"
               "{% endfor %}");
  const fs::path path =
      fs::temp_directory_path() / ("bitexact_chat_" + std::to_string(::getpid()) + ".gguf");
  w.write(path.string());
  const bx::ChatTemplate t = bx::ChatTemplate::from_gguf(bx::gguf::File::open(path.string()));
  fs::remove(path);
  EXPECT_EQ(t.special_tokens().bos_token, "<|im_start|>");
  EXPECT_EQ(t.special_tokens().eos_token, "<|im_end|>");
  EXPECT_EQ(t.render(json::parse(R"([{"role": "user", "content": "x"}])"), false),
            "<|im_start|>user:x<|im_end|>");
}

TEST(ChatTemplate, RejectsMalformedMessages) {
  const bx::ChatTemplate t("{{ messages|length }}", {});
  EXPECT_EQ(t.render(json::array(), false), "0");
  EXPECT_THROW(t.render(json::object(), false), bx::Error);
  EXPECT_THROW(t.render(json::parse(R"([{"role": "user"}, "text"])"), false), bx::Error);
  EXPECT_THROW(t.render(json::array(), false, json::array()), bx::Error);
}

TEST(ChatTemplate, KeepsTheKeyOrderOfToolArguments) {
  const bx::ChatTemplate t("{{ messages[0].args|tojson }}", {});
  EXPECT_EQ(t.render(json::parse(R"([{"args": {"z": 1, "a": [true, null, 2.50]}}])"), false),
            R"({"z": 1, "a": [true, null, 2.5]})");
}

}  // namespace
