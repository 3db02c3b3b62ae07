// Chat templates against the reference: every fixture template (tests/data/templates, real model
// templates) x every conversation (conversations.json) x with/without the generation prompt is
// rendered by jinja2 through tests/ref/render_chat.py (set up as transformers'
// apply_chat_template sets it up) and by bitexact's interpreter, and the two texts must be equal
// byte for byte. Where jinja2 fails (a template's raise_exception, a type error), bitexact must
// fail too, and carry the raise_exception message. The reference runs once, as one process, for
// all cases; it needs BITEXACT_PYTHON (with Jinja2, tests/requirements.txt).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "template/chat_template.h"

namespace {

using json = nlohmann::ordered_json;
namespace fs = std::filesystem;

constexpr std::time_t kFixedNow = 1773501000;  // strftime_now() sees 2026-03-14 (local time)

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Case {
  std::string label;
  std::string template_name;
  std::string source;
  bx::ChatTemplate::SpecialTokens tokens;
  json messages;
  json extra;
  bool add_generation_prompt = false;
};

std::vector<Case> build_cases() {
  const fs::path dir = "tests/data/templates";
  const json manifest = json::parse(read_file(dir / "templates.json"));
  const json conversations = json::parse(read_file(dir / "conversations.json"));
  std::vector<Case> cases;
  for (const auto& t : manifest) {
    const std::string source = read_file(dir / t["file"].get<std::string>());
    const auto token = [&](const char* key) {
      return t.contains(key) ? t[key].get<std::string>() : std::string();
    };
    for (const auto& conv : conversations) {
      for (bool agp : {false, true}) {
        Case c;
        c.template_name = t["name"].get<std::string>();
        c.label = c.template_name + " / " + conv["name"].get<std::string>() +
                  (agp ? " / add_generation_prompt" : "");
        c.source = source;
        c.tokens = {token("bos_token"), token("eos_token"), token("unk_token"), token("pad_token")};
        c.messages = conv["messages"];
        // The template's own variables (a tool-use template needs tools), then the
        // conversation's.
        c.extra = t.contains("extra") ? t["extra"] : json::object();
        if (conv.contains("extra")) {
          for (const auto& [key, value] : conv["extra"].items()) c.extra[key] = value;
        }
        c.add_generation_prompt = agp;
        cases.push_back(std::move(c));
      }
    }
  }
  return cases;
}

json special_tokens_json(const bx::ChatTemplate::SpecialTokens& t) {
  json out = json::object();
  if (!t.bos_token.empty()) out["bos_token"] = t.bos_token;
  if (!t.eos_token.empty()) out["eos_token"] = t.eos_token;
  if (!t.unk_token.empty()) out["unk_token"] = t.unk_token;
  if (!t.pad_token.empty()) out["pad_token"] = t.pad_token;
  return out;
}

// Runs the reference renderer once over all cases (render_chat.py's input format); returns its
// results.
json run_reference(const json& input, const std::string& python) {
  const fs::path tmp =
      fs::temp_directory_path() / ("bitexact_chat_ref_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const fs::path cases_path = tmp / "cases.json";
  const fs::path out_path = tmp / "out.json";
  std::ofstream(cases_path, std::ios::binary) << input.dump();
  const std::string command = "\"" + python + "\" tests/ref/render_chat.py \"" +
                              cases_path.string() + "\" \"" + out_path.string() + "\" --now " +
                              std::to_string(kFixedNow);
  const int rc = std::system(command.c_str());
  EXPECT_EQ(rc, 0) << "reference renderer failed: " << command;
  json results = rc == 0 ? json::parse(read_file(out_path)) : json::array();
  fs::remove_all(tmp);
  return results;
}

json reference_results(const std::vector<Case>& cases, const std::string& python) {
  json input = json::array();
  for (const Case& c : cases) {
    input.push_back({{"template", c.source},
                     {"messages", c.messages},
                     {"add_generation_prompt", c.add_generation_prompt},
                     {"special_tokens", special_tokens_json(c.tokens)},
                     {"extra", c.extra}});
  }
  return run_reference(input, python);
}

// Where two texts first differ, with some context, for a readable failure.
std::string first_difference(const std::string& expected, const std::string& actual) {
  size_t i = 0;
  while (i < expected.size() && i < actual.size() && expected[i] == actual[i]) ++i;
  const size_t from = i > 60 ? i - 60 : 0;
  return "first difference at byte " + std::to_string(i) + "\n  jinja2:   " +
         json(expected.substr(from, 140)).dump(-1, ' ', false, json::error_handler_t::replace) +
         "\n  bitexact: " +
         json(actual.substr(from, 140)).dump(-1, ' ', false, json::error_handler_t::replace);
}

class ChatTemplateConformance : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* python = std::getenv("BITEXACT_PYTHON");
    if (!python || !fs::exists(python)) {
      GTEST_SKIP() << "BITEXACT_PYTHON is unset or missing: cannot run the jinja2 reference";
    }
    python_ = python;
  }
  std::string python_;
};

TEST_F(ChatTemplateConformance, EveryFixtureTemplateMatchesJinja2ByteForByte) {
  const std::vector<Case> cases = build_cases();
  const json results = reference_results(cases, python_);
  ASSERT_EQ(results.size(), cases.size());
  bx::tmpl::RenderOptions options;
  options.now = kFixedNow;
  std::map<std::string, int> rendered_per_template;
  std::map<std::string, std::unique_ptr<bx::ChatTemplate>> templates;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.label);
    auto& compiled = templates[c.template_name];
    if (!compiled) compiled = std::make_unique<bx::ChatTemplate>(c.source, c.tokens);
    const json& ref = results[i];
    std::string actual;
    std::string error;
    try {
      actual = compiled->render(c.messages, c.add_generation_prompt, c.extra, options);
    } catch (const bx::Error& e) {
      error = e.what();
    }
    if (ref["ok"].get<bool>()) {
      const std::string expected = ref["text"].get<std::string>();
      EXPECT_TRUE(error.empty()) << "jinja2 rendered it but bitexact failed: " << error;
      if (error.empty()) {
        EXPECT_TRUE(expected == actual) << first_difference(expected, actual);
        ++rendered_per_template[c.template_name];
      }
    } else {
      EXPECT_FALSE(error.empty()) << "jinja2 failed (" << ref["error_type"].get<std::string>()
                                  << ": " << ref["error"].get<std::string>()
                                  << ") but bitexact rendered it";
      if (ref["error_type"] == "TemplateError") {  // raise_exception: the message must carry over
        EXPECT_NE(error.find(ref["error"].get<std::string>()), std::string::npos)
            << "bitexact's error: " << error;
      }
    }
  }
  // Each template must render most conversations (the test would be hollow if the reference
  // failed on everything).
  for (const auto& [name, count] : rendered_per_template) {
    EXPECT_GE(count, 12) << name << " rendered only " << count << " cases";
  }
  EXPECT_EQ(rendered_per_template.size(), templates.size());
}

// Negative control: the comparison tells a wrong rendering apart (the generation prompt,
// a system prompt and a changed byte all change the text).
TEST_F(ChatTemplateConformance, ComparisonDetectsDifferences) {
  const std::vector<Case> cases = build_cases();
  const json results = reference_results(cases, python_);
  ASSERT_EQ(results.size(), cases.size());
  bx::tmpl::RenderOptions options;
  options.now = kFixedNow;
  int checked = 0;
  for (size_t i = 0; i + 1 < cases.size(); i += 2) {
    // cases[i] and cases[i + 1] are the same conversation without and with the prompt.
    if (!results[i]["ok"].get<bool>() || !results[i + 1]["ok"].get<bool>()) continue;
    const std::string without = results[i]["text"].get<std::string>();
    const std::string with = results[i + 1]["text"].get<std::string>();
    if (without == with) continue;  // a template may ignore the flag for some conversations
    const bx::ChatTemplate t(cases[i].source, cases[i].tokens);
    EXPECT_NE(t.render(cases[i].messages, true, cases[i].extra, options), without)
        << cases[i].label;
    ++checked;
  }
  EXPECT_GT(checked, 50);
}

// One small template per language feature (whitespace control, precedence, printing, filters,
// tests, loops, scoping, macros, errors: tests/data/templates/snippets.json), rendered by both.
// Snippets named err_* must fail in both.
TEST_F(ChatTemplateConformance, FeatureSnippetsMatchJinja2) {
  const json snippets = json::parse(read_file("tests/data/templates/snippets.json"));
  const json results = run_reference(snippets, python_);
  ASSERT_EQ(results.size(), snippets.size());
  bx::tmpl::RenderOptions options;
  options.now = kFixedNow;
  int rendered = 0;
  for (size_t i = 0; i < snippets.size(); ++i) {
    const std::string name = snippets[i]["name"].get<std::string>();
    SCOPED_TRACE(name);
    const bool should_fail = name.rfind("err_", 0) == 0;
    EXPECT_EQ(results[i]["ok"].get<bool>(), !should_fail)
        << "jinja2 disagrees with the snippet's name: " << results[i].dump();
    std::string actual;
    std::string error;
    try {
      bx::tmpl::Dict variables = bx::tmpl::from_json(snippets[i]["variables"]).dict
                                     ? *bx::tmpl::from_json(snippets[i]["variables"]).dict
                                     : bx::tmpl::Dict{};
      actual =
          bx::tmpl::Template(snippets[i]["template"].get<std::string>()).render(variables, options);
    } catch (const bx::Error& e) {
      error = e.what();
    }
    if (results[i]["ok"].get<bool>()) {
      const std::string expected = results[i]["text"].get<std::string>();
      EXPECT_TRUE(error.empty()) << "bitexact failed: " << error;
      EXPECT_TRUE(expected == actual) << first_difference(expected, actual);
      ++rendered;
    } else {
      EXPECT_FALSE(error.empty()) << "jinja2 failed (" << results[i]["error"].get<std::string>()
                                  << ") but bitexact rendered: " << actual;
      EXPECT_EQ(error.rfind("template:", 0), 0u) << "error without a position: " << error;
    }
  }
  EXPECT_GE(rendered, 30);
}

}  // namespace
