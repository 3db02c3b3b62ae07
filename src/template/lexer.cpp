#include "template/lexer.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "template/unicode.h"

namespace bx::tmpl {

std::string located(int line, int column, const std::string& message) {
  return "template:" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

SourceMap::SourceMap(std::string_view source) : source_(source) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\n') line_starts_.push_back(i + 1);
  }
}

void SourceMap::position(size_t offset, int& line, int& column) const {
  offset = std::min(offset, source_.size());
  const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  const size_t index = static_cast<size_t>(it - line_starts_.begin()) - 1;
  // Tokens come in order, so count code points on from the last position asked on this line
  // (a one-line template of n bytes stays O(n), not O(n^2)).
  if (index != cache_line_ || offset < cache_offset_) {
    cache_line_ = index;
    cache_offset_ = line_starts_[index];
    cache_column_ = 1;
  }
  cache_column_ += code_point_count(source_.substr(cache_offset_, offset - cache_offset_));
  cache_offset_ = offset;
  line = static_cast<int>(index + 1);
  column = static_cast<int>(cache_column_);
}

std::string normalize_source(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

namespace {

// Length of the whitespace (Python \s) starting at pos.
size_t whitespace_length(std::string_view s, size_t pos) {
  size_t p = pos;
  while (p < s.size()) {
    size_t next = p;
    if (!is_python_space(decode_utf8(s, next))) break;
    p = next;
  }
  return p - pos;
}

// Whether s[from:] is non-empty and all whitespace.
bool all_whitespace(std::string_view s, size_t from) {
  return from < s.size() && whitespace_length(s, from) == s.size() - from;
}

std::string rstrip_whitespace(std::string_view s) {
  return python_strip(s, "", false, true);
}

bool is_name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src), map_(src) {}

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      const size_t start = find_tag(pos);
      if (start == std::string_view::npos) {
        emit_data(src_.substr(pos), pos);
        break;
      }
      const char kind = src_[start + 1];
      size_t after = start + 2;
      char sign = 0;
      if (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];
      size_t raw_end = 0;
      const bool raw = kind == '%' && match_raw_begin(after, raw_end);
      std::string text(src_.substr(pos, start - pos));
      text = apply_left_strip(text, sign, kind != '{', line_starting);
      emit_data(text, pos);
      if (raw) {
        pos = lex_raw(start, raw_end, line_starting);
        continue;
      }
      if (kind == '#') {
        pos = lex_comment(start, after, line_starting);
        continue;
      }
      pos = lex_tag(kind, start, after, line_starting);
    }
    Token eof;
    eof.type = TokenType::eof;
    map_.position(src_.size(), eof.line, eof.column);
    tokens_.push_back(eof);
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(size_t offset, const std::string& message) const {
    int line = 0;
    int column = 0;
    map_.position(offset, line, column);
    throw Error(located(line, column, message));
  }

  void push(TokenType type, std::string text, size_t offset) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    map_.position(offset, t.line, t.column);
    tokens_.push_back(std::move(t));
  }

  void emit_data(std::string_view text, size_t offset) {
    if (!text.empty()) push(TokenType::data, std::string(text), offset);
  }

  size_t find_tag(size_t pos) const {
    for (size_t i = pos; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return std::string_view::npos;
  }

  // `-` strips all whitespace before the tag; otherwise lstrip_blocks removes the whitespace
  // between the start of the line and a block or comment tag.
  static std::string apply_left_strip(const std::string& text, char sign, bool lstrippable,
                                      bool line_starting) {
    if (sign == '-') return rstrip_whitespace(text);
    if (sign == '+' || !lstrippable) return text;
    const size_t newline = text.rfind('\n');
    const size_t line_pos = newline == std::string::npos ? 0 : newline + 1;
    if ((line_pos > 0 || line_starting) && all_whitespace(text, line_pos)) {
      return text.substr(0, line_pos);
    }
    return text;
  }

  // `{%[-+]?\s*raw\s*(-%}\s*|%})` with `after` just past the optional sign.
  bool match_raw_begin(size_t after, size_t& end) const {
    size_t p = after + whitespace_length(src_, after);
    if (src_.substr(p, 3) != "raw") return false;
    p += 3;
    p += whitespace_length(src_, p);
    if (src_.substr(p, 3) == "-%}") {
      end = p + 3 + whitespace_length(src_, p + 3);
      return true;
    }
    if (src_.substr(p, 2) == "%}") {
      end = p + 2;
      return true;
    }
    return false;
  }

  size_t lex_raw(size_t start, size_t content_begin, bool& line_starting) {
    line_starting = content_begin > 0 && src_[content_begin - 1] == '\n';
    for (size_t i = content_begin; i + 1 < src_.size(); ++i) {
      if (src_[i] != '{' || src_[i + 1] != '%') continue;
      size_t p = i + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      p += whitespace_length(src_, p);
      if (src_.substr(p, 6) != "endraw") continue;
      p += 6;
      p += whitespace_length(src_, p);
      size_t end = 0;
      if (src_.substr(p, 3) == "+%}") {
        end = p + 3;
      } else if (src_.substr(p, 3) == "-%}") {
        end = p + 3 + whitespace_length(src_, p + 3);
      } else if (src_.substr(p, 2) == "%}") {
        end = p + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      } else {
        continue;
      }
      const std::string content(src_.substr(content_begin, i - content_begin));
      emit_data(apply_left_strip(content, sign, true, line_starting), content_begin);
      line_starting = src_[end - 1] == '\n';
      return end;
    }
    fail(start, "missing end of raw directive: expected {% endraw %}");
  }

  size_t lex_comment(size_t start, size_t after, bool& line_starting) {
    const size_t close = src_.find("#}", after);
    if (close == std::string_view::npos) fail(start, "missing end of comment tag '#}'");
    const char sign = close > after ? src_[close - 1] : 0;
    size_t end = close + 2;
    if (sign == '-') {
      end += whitespace_length(src_, end);
    } else if (sign != '+' && end < src_.size() && src_[end] == '\n') {
      ++end;
    }
    line_starting = src_[end - 1] == '\n';
    return end;
  }

  // Tokens of one `{{ }}` or `{% %}` tag; returns the offset after its end.
  size_t lex_tag(char kind, size_t start, size_t after, bool& line_starting) {
    const bool block = kind == '%';
    push(block ? TokenType::block_begin : TokenType::variable_begin, block ? "{%" : "{{", start);
    std::string brackets;  // expected closers
    size_t pos = after;
    while (true) {
      if (pos >= src_.size()) {
        fail(start, std::string("unexpected end of template: tag opened here was never closed "
                                "(expected '") +
                        (block ? "%}" : "}}") + "')");
      }
      if (brackets.empty()) {
        const char closer = block ? '%' : '}';
        size_t end = 0;
        if (block && src_.substr(pos, 3) == "+%}") {
          end = pos + 3;
        } else if (src_[pos] == '-' && pos + 2 < src_.size() && src_[pos + 1] == closer &&
                   src_[pos + 2] == '}') {
          end = pos + 3 + whitespace_length(src_, pos + 3);
        } else if (src_[pos] == closer && pos + 1 < src_.size() && src_[pos + 1] == '}') {
          end = pos + 2;
          if (block && end < src_.size() && src_[end] == '\n') ++end;
        }
        if (end) {
          push(block ? TokenType::block_end : TokenType::variable_end, block ? "%}" : "}}", pos);
          line_starting = src_[end - 1] == '\n';
          return end;
        }
      }
      const size_t ws = whitespace_length(src_, pos);
      if (ws) {
        pos += ws;
        continue;
      }
      const char c = src_[pos];
      if (is_digit(c)) {
        pos = lex_number(pos);
      } else if (is_name_start(c)) {
        size_t end = pos + 1;
        while (end < src_.size() && is_name_char(src_[end])) ++end;
        push(TokenType::name, std::string(src_.substr(pos, end - pos)), pos);
        pos = end;
      } else if (c == '\'' || c == '"') {
        pos = lex_string(pos);
      } else {
        pos = lex_operator(pos, brackets);
      }
    }
  }

  size_t lex_number(size_t pos) {
    // Float: digits ( '.' digits )? with an exponent, or digits '.' digits (no leading '.').
    const auto digits = [&](size_t p) {  // (\d+_)*\d+ ; returns end or p when none
      size_t q = p;
      while (true) {
        size_t r = q;
        while (r < src_.size() && is_digit(src_[r])) ++r;
        if (r == q) return q == p ? p : q - 1;  // trailing '_' is not part of the number
        q = r;
        if (q < src_.size() && src_[q] == '_' && q + 1 < src_.size() && is_digit(src_[q + 1])) {
          ++q;
          continue;
        }
        return q;
      }
    };
    const bool after_dot = pos > 0 && src_[pos - 1] == '.';
    const size_t int_end = digits(pos);
    size_t end = int_end;
    bool is_float = false;
    if (!after_dot) {
      size_t p = int_end;
      if (p < src_.size() && src_[p] == '.' && p + 1 < src_.size() && is_digit(src_[p + 1])) {
        p = digits(p + 1);
        is_float = true;
      }
      if (p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
        size_t q = p + 1;
        if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
        if (q < src_.size() && is_digit(src_[q])) {
          p = digits(q);
          is_float = true;
        }
      }
      if (is_float) end = p;
    }
    if (!is_float && src_[pos] == '0' && pos + 1 < src_.size()) {
      const char base = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[pos + 1])));
      if (base == 'x' || base == 'o' || base == 'b') {
        size_t p = pos + 2;
        while (p < src_.size() &&
               (std::isxdigit(static_cast<unsigned char>(src_[p])) || src_[p] == '_')) {
          ++p;
        }
        end = p;
      } else {
        // `0(_?0)*`: a leading zero stands alone (jinja2 lexes "012" as 0 then 12).
        end = pos + 1;
        while (end + 1 < src_.size() && src_[end] == '_' && src_[end + 1] == '0') end += 2;
        while (end < src_.size() && src_[end] == '0') ++end;
      }
    }
    std::string spelling(src_.substr(pos, end - pos));
    spelling.erase(std::remove(spelling.begin(), spelling.end(), '_'), spelling.end());
    push(is_float ? TokenType::floating : TokenType::integer, spelling, pos);
    return end;
  }

  size_t lex_string(size_t pos) {
    const char quote = src_[pos];
    size_t p = pos + 1;
    std::string value;
    while (true) {
      if (p >= src_.size()) fail(pos, "unterminated string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) fail(pos, "unterminated string literal");
      p = decode_escape(p, value);
    }
    push(TokenType::string, std::move(value), pos);
    return p + 1;
  }

  // Python's unicode-escape decoding of one backslash sequence at p; returns the offset after.
  size_t decode_escape(size_t p, std::string& out) {
    const char e = src_[p + 1];
    const auto hex = [&](size_t from, int count) {
      uint32_t cp = 0;
      for (int i = 0; i < count; ++i) {
        const size_t at = from + static_cast<size_t>(i);
        if (at >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[at]))) {
          fail(p, "truncated \\" + std::string(1, e) + " escape in string literal");
        }
        const char h = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[at])));
        cp = cp * 16 + static_cast<uint32_t>(h <= '9' ? h - '0' : h - 'a' + 10);
      }
      return cp;
    };
    switch (e) {
      case '\n':
        return p + 2;
      case '\\':
        out += '\\';
        return p + 2;
      case '\'':
        out += '\'';
        return p + 2;
      case '"':
        out += '"';
        return p + 2;
      case 'a':
        out += '\a';
        return p + 2;
      case 'b':
        out += '\b';
        return p + 2;
      case 'f':
        out += '\f';
        return p + 2;
      case 'n':
        out += '\n';
        return p + 2;
      case 'r':
        out += '\r';
        return p + 2;
      case 't':
        out += '\t';
        return p + 2;
      case 'v':
        out += '\v';
        return p + 2;
      case 'x':
        append_utf8(hex(p + 2, 2), out);
        return p + 4;
      case 'u':
        append_checked(hex(p + 2, 4), p, out);
        return p + 6;
      case 'U':
        append_checked(hex(p + 2, 8), p, out);
        return p + 10;
      default:
        break;
    }
    if (e >= '0' && e <= '7') {
      uint32_t cp = 0;
      size_t q = p + 1;
      for (int i = 0; i < 3 && q < src_.size() && src_[q] >= '0' && src_[q] <= '7'; ++i, ++q) {
        cp = cp * 8 + static_cast<uint32_t>(src_[q] - '0');
      }
      append_utf8(cp, out);
      return q;
    }
    if (e == 'N') fail(p, "\\N{...} escapes are not supported in string literals");
    out += '\\';  // unknown escapes stay as written
    return p + 1;
  }

  void append_checked(uint32_t cp, size_t p, std::string& out) const {
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      fail(p, "escape in string literal is not a Unicode scalar value");
    }
    append_utf8(cp, out);
  }

  size_t lex_operator(size_t pos, std::string& brackets) {
    static const char* const kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (src_.substr(pos, 2) == op) {
        push(TokenType::op, op, pos);
        return pos + 2;
      }
    }
    const char c = src_[pos];
    static const std::string kOne = "+-/*%~[](){}><=.:|,;";
    if (kOne.find(c) == std::string::npos) {
      size_t end = pos;
      decode_utf8(src_, end);
      fail(pos,
           "unexpected character '" + std::string(src_.substr(pos, end - pos)) + "' in expression");
    }
    if (c == '(' || c == '[' || c == '{') {
      check(brackets.size() < 1000, "template: brackets nested more than 1000 levels deep");
      brackets += c == '(' ? ')' : (c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) fail(pos, std::string("unexpected '") + c + "'");
      if (brackets.back() != c) {
        fail(pos, std::string("unexpected '") + c + "', expected '" + brackets.back() + "'");
      }
      brackets.pop_back();
    }
    push(TokenType::op, std::string(1, c), pos);
    return pos + 1;
  }

  std::string_view src_;
  SourceMap map_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view normalized_source) {
  return Lexer(normalized_source).run();
}

}  // namespace bx::tmpl
