// Code-point helpers for the template language, which (like Python) indexes, slices, strips and
// splits strings by code point while storing them as UTF-8.
//
// Invalid UTF-8 bytes decode one at a time as U+FFFD and re-encode as that character; valid
// text round-trips unchanged. Whitespace is Python's str.isspace() set (the set that
// str.strip(), str.split() and the regex \s of jinja2's lexer use).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bx::tmpl {

// The code point at `pos`, advancing `pos` past it.
uint32_t decode_utf8(std::string_view s, size_t& pos);
void append_utf8(uint32_t cp, std::string& out);

// Python's str.isspace() for one code point.
bool is_python_space(uint32_t cp);

// The string split into code points (each kept as its UTF-8 bytes).
std::vector<std::string> code_points(std::string_view s);
size_t code_point_count(std::string_view s);

// str.strip / lstrip / rstrip: `chars` empty strips whitespace, else any code point in `chars`.
std::string python_strip(std::string_view s, std::string_view chars, bool left, bool right);

}  // namespace bx::tmpl
