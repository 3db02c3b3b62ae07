#include "tokenizer/utf8.h"

#include <cassert>
#include <cstdio>

#include "core/error.h"

namespace bx::utf8 {

size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;  // 80..BF continuation, C0/C1 overlong
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF5) return 4;
  return 0;
}

namespace {

// Allowed range of the byte after `lead` (the second byte of the character).
void second_byte_range(unsigned char lead, unsigned char& lo, unsigned char& hi) {
  lo = 0x80;
  hi = 0xBF;
  if (lead == 0xE0) lo = 0xA0;
  if (lead == 0xED) hi = 0x9F;
  if (lead == 0xF0) lo = 0x90;
  if (lead == 0xF4) hi = 0x8F;
}

}  // namespace

Step next(std::string_view text) {
  assert(!text.empty());
  const auto lead = static_cast<unsigned char>(text[0]);
  const size_t n = sequence_length(lead);
  if (n == 0) return {Status::invalid, 1};
  for (size_t i = 1; i < n; ++i) {
    if (i >= text.size()) return {Status::truncated, i};
    const auto b = static_cast<unsigned char>(text[i]);
    unsigned char lo = 0x80, hi = 0xBF;
    if (i == 1) second_byte_range(lead, lo, hi);
    if (b < lo || b > hi) return {Status::invalid, i};  // lead + good continuations so far
  }
  return {Status::valid, n};
}

bool is_valid(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const Step s = next(text.substr(pos));
    if (s.status != Status::valid) return false;
    pos += s.length;
  }
  return true;
}

void require_valid(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const Step step = next(text.substr(pos));
    if (step.status != Status::valid) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(text[pos]));
      throw Error(std::string("the text is not valid UTF-8: byte ") + byte + " at byte offset " +
                  std::to_string(pos) +
                  (step.status == Status::truncated ? " starts a truncated character"
                                                    : " starts an ill-formed sequence") +
                  "; expected well-formed UTF-8");
    }
    pos += step.length;
  }
}

std::string sanitize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const Step s = next(text.substr(pos));
    if (s.status == Status::valid) {
      out.append(text.substr(pos, s.length));
    } else {
      out.append(kReplacement);
    }
    pos += s.length;
  }
  return out;
}

}  // namespace bx::utf8
