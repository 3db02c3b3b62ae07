// GPT-2's byte-level alphabet: every byte is shown as one printable Unicode character, so any
// byte string becomes a string of "characters" that BPE can merge. Bytes 0x21..0x7E,
// 0xA1..0xAC and 0xAE..0xFF stand for themselves (as code points); the other 68 bytes
// (0x00..0x20, 0x7F..0xA0, 0xAD), in increasing order, become U+0100, U+0101, ... U+0143.
// So ' ' is "Ġ" (U+0120) and '\n' is "Ċ" (U+010A).
#pragma once

#include <string>
#include <string_view>

namespace bx::byte_level {

// Each byte of `bytes` -> its character, in UTF-8.
std::string encode(std::string_view bytes);

// The inverse for a string made only of byte-level characters: appends the bytes to `out` and
// returns true; returns false (leaving `out` unchanged) if some character is not one of the 256.
// `text` must be valid UTF-8.
bool decode(std::string_view text, std::string& out);

}  // namespace bx::byte_level
