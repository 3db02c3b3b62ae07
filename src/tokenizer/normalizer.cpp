#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/json_fields.h"

namespace bx {

namespace {

std::string unicode_form(std::string_view text, int options) {
  if (text.empty()) return {};
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &out,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | options));
  if (n < 0) {
    throw Error(std::string("Unicode normalization failed: ") +
                utf8proc_errmsg(static_cast<utf8proc_ssize_t>(n)));
  }
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

// Decodes the code point at `pos` of valid UTF-8 and its length.
char32_t code_point_at(std::string_view text, size_t pos, size_t& length) {
  utf8proc_int32_t cp = 0;
  const utf8proc_ssize_t n =
      utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + pos),
                       static_cast<utf8proc_ssize_t>(text.size() - pos), &cp);
  length = n > 0 ? static_cast<size_t>(n) : 1;
  return static_cast<char32_t>(cp < 0 ? 0xFFFD : cp);
}

}  // namespace

bool is_white_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

Normalizer Normalizer::from_json(const nlohmann::json& spec) {
  Normalizer n;
  if (!spec.is_null()) n.add(spec);
  return n;
}

void Normalizer::add(const nlohmann::json& spec) {
  const std::string type = json_fields::type_of(spec, "normalizer");
  Step step;
  if (type == "Sequence") {
    for (const nlohmann::json& inner : json_fields::array(spec, "normalizers", "normalizer")) {
      add(inner);
    }
    return;
  } else if (type == "NFC") {
    step.kind = Kind::nfc;
  } else if (type == "NFD") {
    step.kind = Kind::nfd;
  } else if (type == "NFKC") {
    step.kind = Kind::nfkc;
  } else if (type == "NFKD") {
    step.kind = Kind::nfkd;
  } else if (type == "Prepend") {
    step.kind = Kind::prepend;
    step.text = json_fields::string(spec, "prepend", "Prepend normalizer");
  } else if (type == "Replace") {
    step.kind = Kind::replace;
    step.pattern = json_fields::pattern(spec, "Replace normalizer");
    step.text = json_fields::string(spec, "content", "Replace normalizer");
  } else if (type == "Strip") {
    step.kind = Kind::strip;
    step.left = json_fields::boolean(spec, "strip_left", "Strip normalizer", true);
    step.right = json_fields::boolean(spec, "strip_right", "Strip normalizer", true);
  } else {
    throw Error("tokenizer.json: unsupported normalizer type '" + type +
                "'; supported: NFC, NFD, NFKC, NFKD, Prepend, Replace, Strip, Sequence");
  }
  steps_.push_back(std::move(step));
}

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::nfc:
        s = unicode_form(s, UTF8PROC_COMPOSE);
        break;
      case Kind::nfd:
        s = unicode_form(s, UTF8PROC_DECOMPOSE);
        break;
      case Kind::nfkc:
        s = unicode_form(s, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
        break;
      case Kind::nfkd:
        s = unicode_form(s, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
        break;
      case Kind::prepend:
        if (!s.empty()) s = step.text + s;
        break;
      case Kind::replace: {
        std::string out;
        size_t last = 0;
        for (const auto& [start, end] : step.pattern.find_all(s)) {
          out.append(s, last, start - last);
          out += step.text;
          last = end;
        }
        out.append(s, last);
        s = std::move(out);
        break;
      }
      case Kind::strip: {
        size_t begin = 0, end = s.size();
        if (step.left) {
          while (begin < end) {
            size_t len = 0;
            if (!is_white_space(code_point_at(s, begin, len))) break;
            begin += len;
          }
        }
        if (step.right) {
          while (end > begin) {
            size_t start = end - 1;  // back to the lead byte of the last character
            while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
            size_t len = 0;
            if (!is_white_space(code_point_at(s, start, len))) break;
            end = start;
          }
        }
        s = s.substr(begin, end - begin);
        break;
      }
    }
  }
  return s;
}

}  // namespace bx
