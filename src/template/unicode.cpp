#include "template/unicode.h"

#include <algorithm>

namespace bx::tmpl {

uint32_t decode_utf8(std::string_view s, size_t& pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) {
    ++pos;
    return lead;
  }
  size_t length = 0;
  uint32_t cp = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    cp = lead & 0x1fu;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    cp = lead & 0x0fu;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    cp = lead & 0x07u;
  }
  if (length == 0 || pos + length > s.size()) {
    ++pos;
    return 0xfffd;
  }
  for (size_t i = 1; i < length; ++i) {
    const unsigned char c = byte(pos + i);
    if ((c & 0xc0) != 0x80) {
      ++pos;
      return 0xfffd;
    }
    cp = (cp << 6) | (c & 0x3fu);
  }
  const bool overlong = (length == 3 && cp < 0x800) || (length == 4 && cp < 0x10000);
  if (overlong || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    ++pos;
    return 0xfffd;
  }
  pos += length;
  return cp;
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

bool is_python_space(uint32_t cp) {
  if (cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x1f)) return true;
  if (cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a)) return true;
  return cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

std::vector<std::string> code_points(std::string_view s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    const uint32_t cp = decode_utf8(s, pos);
    if (cp == 0xfffd && pos - start == 1 && static_cast<unsigned char>(s[start]) >= 0x80) {
      std::string replacement;
      append_utf8(0xfffd, replacement);
      out.push_back(replacement);
    } else {
      out.emplace_back(s.substr(start, pos - start));
    }
  }
  return out;
}

size_t code_point_count(std::string_view s) {
  size_t n = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    decode_utf8(s, pos);
    ++n;
  }
  return n;
}

std::string python_strip(std::string_view s, std::string_view chars, bool left, bool right) {
  std::vector<uint32_t> strip_set;
  for (size_t pos = 0; pos < chars.size();) strip_set.push_back(decode_utf8(chars, pos));
  const auto strippable = [&](uint32_t cp) {
    if (chars.empty()) return is_python_space(cp);
    return std::find(strip_set.begin(), strip_set.end(), cp) != strip_set.end();
  };
  // Byte offsets of each code point.
  std::vector<size_t> starts;
  std::vector<uint32_t> cps;
  for (size_t pos = 0; pos < s.size();) {
    starts.push_back(pos);
    cps.push_back(decode_utf8(s, pos));
  }
  size_t begin = 0;
  size_t end = cps.size();
  if (left) {
    while (begin < end && strippable(cps[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strippable(cps[end - 1])) --end;
  }
  const size_t byte_begin = begin < starts.size() ? starts[begin] : s.size();
  const size_t byte_end = end < starts.size() ? starts[end] : s.size();
  return std::string(s.substr(byte_begin, byte_end - byte_begin));
}

}  // namespace bx::tmpl
