#include "tokenizer/token_decoder.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/utf8.h"

namespace bx {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "<0xNN>" -> NN, else -1.
int byte_token_value(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  const int hi = hex_value(token[3]), lo = hex_value(token[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string replace_all(const std::string& text, const TextPattern& pattern,
                        const std::string& content) {
  std::string out;
  size_t last = 0;
  for (const auto& [start, end] : pattern.find_all(text)) {
    out.append(text, last, start - last);
    out += content;
    last = end;
  }
  out.append(text, last);
  return out;
}

std::string join(const std::vector<std::string>& tokens) {
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace

TokenDecoder TokenDecoder::from_json(const nlohmann::json& spec) {
  TokenDecoder d;
  if (!spec.is_null()) d.add(spec);
  return d;
}

void TokenDecoder::add_byte_level() {
  Step step;
  step.kind = Kind::byte_level;
  steps_.push_back(std::move(step));
}

void TokenDecoder::add(const nlohmann::json& spec) {
  const std::string type = json_fields::type_of(spec, "decoder");
  Step step;
  if (type == "Sequence") {
    for (const nlohmann::json& inner : json_fields::array(spec, "decoders", "decoder")) add(inner);
    return;
  } else if (type == "ByteLevel") {
    step.kind = Kind::byte_level;
  } else if (type == "Metaspace") {
    step.kind = Kind::metaspace;
    step.text = json_fields::string(spec, "replacement", "Metaspace decoder");
    if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()) {
      step.prepend = spec["prepend_scheme"].get<std::string>() != "never";
    } else {
      step.prepend = json_fields::boolean(spec, "add_prefix_space", "Metaspace decoder", true);
    }
  } else if (type == "ByteFallback") {
    step.kind = Kind::byte_fallback;
  } else if (type == "Fuse") {
    step.kind = Kind::fuse;
  } else if (type == "Strip") {
    step.kind = Kind::strip;
    step.text = json_fields::string(spec, "content", "Strip decoder");
    BX_CHECK(utf8::is_valid(step.text) && !step.text.empty() &&
                 utf8::next(step.text).length == step.text.size(),
             "tokenizer.json: Strip decoder content '" + step.text + "' is not one character");
    step.start = json_fields::integer(spec, "start", "Strip decoder", 0);
    step.stop = json_fields::integer(spec, "stop", "Strip decoder", 0);
  } else if (type == "Replace") {
    step.kind = Kind::replace;
    step.pattern = json_fields::pattern(spec, "Replace decoder");
    step.text = json_fields::string(spec, "content", "Replace decoder");
  } else {
    throw Error("tokenizer.json: unsupported decoder type '" + type +
                "'; supported: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, "
                "Sequence");
  }
  steps_.push_back(std::move(step));
}

std::string TokenDecoder::decode(std::vector<std::string> tokens) const {
  return utf8::sanitize(run(std::move(tokens), /*at_sequence_start=*/true, /*raw=*/false));
}

std::string TokenDecoder::token_bytes(const std::string& token, bool at_sequence_start) const {
  return run({token}, at_sequence_start, /*raw=*/true);
}

std::string TokenDecoder::run(std::vector<std::string> tokens, bool at_sequence_start,
                              bool raw) const {
  bool fused = false;
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::byte_level: {
        std::string bytes;
        for (const std::string& t : tokens) {
          if (!byte_level::decode(t, bytes)) bytes += t;
        }
        tokens.assign(1, std::move(bytes));
        fused = true;
        break;
      }
      case Kind::metaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          const bool drop = i == 0 && at_sequence_start && step.prepend;
          tokens[i] = replace_all(tokens[i], TextPattern::literal(step.text), drop ? "" : " ");
        }
        break;
      case Kind::byte_fallback: {
        std::vector<std::string> out;
        std::string run_bytes;
        size_t run_length = 0;
        auto flush = [&] {
          if (run_length == 0) return;
          if (raw || utf8::is_valid(run_bytes)) {
            out.push_back(run_bytes);
          } else {
            for (size_t i = 0; i < run_length; ++i) out.emplace_back(utf8::kReplacement);
          }
          run_bytes.clear();
          run_length = 0;
        };
        for (std::string& t : tokens) {
          const int value = byte_token_value(t);
          if (value >= 0) {
            run_bytes.push_back(static_cast<char>(value));
            ++run_length;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens = std::move(out);
        break;
      }
      case Kind::fuse:
        tokens.assign(1, join(tokens));
        fused = true;
        break;
      case Kind::strip: {
        if (fused && !at_sequence_start) break;  // the ends of the whole text are elsewhere
        for (std::string& t : tokens) {
          size_t begin = 0, end = t.size();
          for (int64_t i = 0; i < step.start && t.compare(begin, step.text.size(), step.text) == 0;
               ++i) {
            begin += step.text.size();
          }
          for (int64_t i = 0; i < step.stop && end >= begin + step.text.size() &&
                              t.compare(end - step.text.size(), step.text.size(), step.text) == 0;
               ++i) {
            end -= step.text.size();
          }
          t = t.substr(begin, end - begin);
        }
        break;
      }
      case Kind::replace:
        for (std::string& t : tokens) t = replace_all(t, step.pattern, step.text);
        break;
    }
  }
  return join(tokens);
}

}  // namespace bx
