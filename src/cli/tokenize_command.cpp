// bitexact tokenize / detokenize: text <-> token ids with a model's tokenizer (a GGUF file's
// vocabulary, without loading its weights) or a Hugging Face tokenizer directory.
//   tokenize:   prints the ids as one JSON array and a newline, e.g. "[9707, 11, 1879]".
//               Special-token strings in the text ("<|im_end|>") become their ids; BOS / EOS
//               are added only with --add-special. Text that is not valid UTF-8 is an error
//               naming the byte offset.
//   detokenize: prints the decoded text exactly, with no newline added. Special tokens are
//               printed as their text unless --skip-special.
#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "tokenizer/load_tokenizer.h"

namespace bx::cli {
namespace {

struct TokenizerFlags {
  std::optional<std::string> model;      // a GGUF file
  std::optional<std::string> tokenizer;  // a directory with tokenizer.json
};

void add_tokenizer_flags(CLI::App& cmd, TokenizerFlags& flags) {
  cmd.add_option("--model", flags.model, "GGUF model file (only its vocabulary is read)");
  cmd.add_option("--tokenizer", flags.tokenizer,
                 "Directory with tokenizer.json (and optionally tokenizer_config.json)");
}

std::unique_ptr<Tokenizer> open_tokenizer(const TokenizerFlags& flags) {
  check(flags.model.has_value() != flags.tokenizer.has_value(),
        "give exactly one of --model FILE.gguf or --tokenizer DIR");
  if (flags.tokenizer) return load_tokenizer_dir(*flags.tokenizer);
  check(!std::filesystem::is_directory(*flags.model),
        "--model '" + *flags.model + "' is a directory; expected a GGUF file (use --tokenizer " +
            "for a tokenizer directory)");
  return load_tokenizer(*flags.model);
}

// "1,2,3", "1, 2, 3" or "[1, 2, 3]" -> ids.
std::vector<int32_t> parse_ids(const std::string& text) {
  std::string s = text;
  const size_t first = s.find_first_not_of(" \t\r\n");
  const size_t last = s.find_last_not_of(" \t\r\n");
  s = first == std::string::npos ? "" : s.substr(first, last - first + 1);
  if (!s.empty() && s.front() == '[') {
    check(s.back() == ']', "--ids '" + text + "': a JSON array must end with ']'");
    s = s.substr(1, s.size() - 2);
  }
  std::vector<int32_t> ids;
  if (s.find_first_not_of(" \t\r\n") == std::string::npos) return ids;
  size_t pos = 0;
  while (true) {
    const size_t comma = s.find(',', pos);
    std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    const size_t b = item.find_first_not_of(" \t\r\n");
    const size_t e = item.find_last_not_of(" \t\r\n");
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    int32_t id = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    check(!item.empty() && ec == std::errc() && ptr == item.data() + item.size(),
          "--ids: '" + item + "' is not a token id; expected integers like 1,2,3 or [1, 2, 3]");
    ids.push_back(id);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return ids;
}

void write_all(const std::string& s) {
  check(std::fwrite(s.data(), 1, s.size(), stdout) == s.size() && std::fflush(stdout) == 0,
        "cannot write to stdout");
}

}  // namespace

void register_tokenize(CLI::App& app) {
  struct Flags {
    TokenizerFlags source;
    std::string text;
    bool add_special = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text as a JSON array");
  add_tokenizer_flags(*cmd, flags->source);
  cmd->add_option("--text", flags->text, "The text to tokenize")->required();
  cmd->add_flag("--add-special", flags->add_special,
                "Add the BOS/EOS tokens the tokenizer's configuration asks for");
  cmd->callback([flags] {
    const std::unique_ptr<Tokenizer> tokenizer = open_tokenizer(flags->source);
    const std::vector<int32_t> ids = tokenizer->encode(flags->text, flags->add_special);
    std::string out = "[";
    for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
    write_all(out + "]\n");
  });
}

void register_detokenize(CLI::App& app) {
  struct Flags {
    TokenizerFlags source;
    std::string ids;
    bool skip_special = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd =
      app.add_subcommand("detokenize", "Print the text of token ids exactly (no newline added)");
  add_tokenizer_flags(*cmd, flags->source);
  cmd->add_option("--ids", flags->ids, "Token ids: 1,2,3 or [1, 2, 3]")->required();
  cmd->add_flag("--skip-special", flags->skip_special,
                "Leave out special tokens (BOS, EOS, <|im_end|>, ...)");
  cmd->callback([flags] {
    const std::vector<int32_t> ids = parse_ids(flags->ids);
    const std::unique_ptr<Tokenizer> tokenizer = open_tokenizer(flags->source);
    write_all(tokenizer->decode(ids, flags->skip_special));
  });
}

}  // namespace bx::cli
