// Tokenizer interface: text <-> token ids. Implementations: SentencePiece-style BPE from a GGUF
// vocabulary (spm_tokenizer.h); byte-level BPE from tokenizer.json comes later.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bx {

// Implementations are immutable after construction: every method is const and may be called
// from several threads at once.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text -> ids. With add_bos, the BOS id comes first (a bx::Error if there is none).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos) const = 0;
  // The bytes one token stands for, with the tokenizer's whitespace marker turned back into a
  // space and byte tokens (<0xNN>) turned into their byte. Control tokens (BOS, EOS, ...) give "".
  // May be part of a UTF-8 character.
  virtual std::string token_bytes(int32_t id) const = 0;
  // Ids -> text: the concatenated token bytes, with the leading space that encoding added
  // (SentencePiece's dummy prefix) removed from the first piece.
  virtual std::string decode(std::span<const int32_t> ids) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 if none
  virtual int32_t eos_id() const = 0;  // -1 if none
};

// Turns a stream of ids into text pieces that never end inside a UTF-8 character, so each piece
// can be printed as it comes. For well-formed text, the concatenated pieces (and flush()) equal
// tokenizer.decode(prompt + generated) minus decode(prompt). Ill-formed bytes never pass
// through: each maximal ill-formed subpart (Unicode's "substitution of maximal subparts") is
// replaced by U+FFFD as soon as it is known to be ill-formed, i.e. when the next byte cannot
// continue it, or at flush() for a character still incomplete. Every piece is valid UTF-8.
// A prompt that ends inside a character is not carried over: the rest of that character, if
// generated, becomes U+FFFD.
class StreamingDecoder {
 public:
  // `prompt` primes the decoder: its text is not emitted, but it decides whether the first
  // generated piece is the first piece of the sequence (whose dummy-prefix space is removed).
  // The tokenizer must outlive the decoder.
  StreamingDecoder(const Tokenizer& tokenizer, std::span<const int32_t> prompt);
  // Text completed by this token (possibly empty). Throws bx::Error for an out-of-range id.
  std::string push(int32_t id);
  // Whatever is still pending (an incomplete character becomes U+FFFD); the decoder can go on
  // taking tokens afterwards.
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  bool at_sequence_start_ = true;
  std::string pending_;
};

}  // namespace bx
