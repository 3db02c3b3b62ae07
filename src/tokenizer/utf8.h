// UTF-8 helpers for the tokenizers: character length from a lead byte, and a strict decoder
// step that tells a complete character from a truncated one and from invalid bytes.
//
// Well-formed UTF-8 (Unicode 15, table 3-7): first byte, then continuation bytes 80..BF, with
// a narrower range for the second byte after E0 (A0..BF), ED (80..9F, no surrogates),
// F0 (90..BF, no overlongs) and F4 (80..8F, nothing above U+10FFFF).
//   00..7F                    U+0000..U+007F
//   C2..DF 80..BF             U+0080..U+07FF
//   E0..EF 80..BF 80..BF      U+0800..U+FFFF   (minus the ranges above)
//   F0..F4 80..BF 80..BF 80..BF  U+10000..U+10FFFF
// C0, C1 and F5..FF never occur; a continuation byte never starts a character.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bx::utf8 {

// U+FFFD REPLACEMENT CHARACTER, which stands for invalid bytes in decoded text.
inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Length in bytes of the character that `lead` starts: 1..4, or 0 when `lead` cannot start a
// character (a continuation byte, C0, C1, F5..FF).
size_t sequence_length(unsigned char lead);

enum class Status {
  valid,      // `length` bytes form one well-formed character
  truncated,  // the text ends inside a character that is well-formed so far (`length` bytes)
  invalid,    // `length` bytes (at least 1): the maximal ill-formed subpart, one U+FFFD
};
struct Step {
  Status status = Status::invalid;
  size_t length = 0;
};

// Examines the character at the start of `text` (which must not be empty).
Step next(std::string_view text);

bool is_valid(std::string_view text);

// The encoders' input check: throws bx::Error naming the first ill-formed byte and its byte
// offset ("... byte 0xFF at byte offset 3 ...") unless `text` is well-formed.
void require_valid(std::string_view text);

// `text` with each maximal ill-formed subpart (and a truncated last character) replaced by
// U+FFFD; well-formed text comes back unchanged.
std::string sanitize(std::string_view text);

}  // namespace bx::utf8
