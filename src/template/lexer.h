// Jinja lexer, configured as transformers' apply_chat_template configures jinja2
// (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False).
//
// Before lexing, "\r\n" and "\r" become "\n" and one trailing "\n" is dropped. Text between tags
// is data; `{{ }}`, `{% %}` and `{# #}` (comments, dropped) may start with `-` (strip all
// whitespace before the tag) or `+` (no lstrip), and end with `-` (strip all whitespace after).
//   trim_blocks:   the first "\n" after `%}` or `#}` is removed (not after `}}` or `+%}`).
//   lstrip_blocks: spaces and tabs from the start of a line up to `{%` or `{#` are removed
//                  (not before `{{`); "start of a line" includes the point right after a tag
//                  whose end consumed a newline.
// `{% raw %}...{% endraw %}` becomes one data token with its content verbatim.
// Inside tags: names, strings ('...' or "..." with Python escapes), integers (also 0x, 0o, 0b and
// `_` separators), floats, and operators; a `}}` or `%}` inside brackets is an operator, so dict
// literals nest. Errors are bx::Error "template:LINE:COL: message".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bx::tmpl {

enum class TokenType : uint8_t {
  data,
  variable_begin,
  variable_end,
  block_begin,
  block_end,
  name,
  string,
  integer,
  floating,
  op,
  eof
};

struct Token {
  TokenType type = TokenType::eof;
  std::string text;  // data text, name, decoded string value, operator, or number spelling
  int line = 1;
  int column = 1;  // 1-based, in code points
};

// Maps byte offsets of the (newline-normalized) source to line and column.
class SourceMap {
 public:
  explicit SourceMap(std::string_view source);
  void position(size_t offset, int& line, int& column) const;

 private:
  std::string_view source_;
  std::vector<size_t> line_starts_;
  mutable size_t cache_line_ = SIZE_MAX;  // the last position asked: its line, offset, column
  mutable size_t cache_offset_ = 0;
  mutable size_t cache_column_ = 1;
};

// The source with newlines normalized and one trailing newline dropped, as jinja2 lexes it.
std::string normalize_source(std::string_view source);

// Tokenizes a normalized source (see normalize_source). The last token is eof.
std::vector<Token> tokenize(std::string_view normalized_source);

// "template:LINE:COL: message"
std::string located(int line, int column, const std::string& message);

}  // namespace bx::tmpl
