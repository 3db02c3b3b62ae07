// Tokenizer interface: text <-> token ids. Implementations: SentencePiece-style BPE from a GGUF
// vocabulary (spm_tokenizer.h) and the tokenizer.json BPE pipeline (bpe_tokenizer.h: byte-level
// GPT-2 / Llama-3 / Qwen style and Metaspace / byte-fallback Llama-2 / Mistral style), which
// GGUF `gpt2` vocabularies use too. load_tokenizer.h picks one for a directory or a GGUF file.
//
// Invalid UTF-8: encode() rejects text that is not well-formed UTF-8 (Unicode table 3-7, see
// utf8.h) with a bx::Error naming the byte offset of the first ill-formed byte; no encoder
// replaces or passes such bytes on. (Decoding never fails for that reason: ill-formed output
// bytes become U+FFFD.)
//
// Special tokens: encode() recognises the strings of added / control tokens in the text
// ("<|im_end|>", "<s>") and gives their ids, before any other step; the BOS/EOS the
// tokenizer's configuration asks for are added only with add_special.
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

  // Text -> ids. With add_special, the tokens the tokenizer's configuration adds around a text
  // (BOS, and EOS if configured) are added; for the SentencePiece tokenizer that is the BOS id,
  // and a bx::Error if there is none. Throws bx::Error for ill-formed UTF-8 (see above).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special) const = 0;
  // The bytes one token stands for in the middle of a sequence, with the tokenizer's whitespace
  // marker turned back into a space and byte tokens (<0xNN>, byte-level characters) turned into
  // their bytes. Special / control tokens (BOS, EOS, ...) give "". May be part of a UTF-8
  // character. Throws bx::Error for an id outside [0, vocab_size).
  virtual std::string token_bytes(int32_t id) const = 0;
  // The same for the first non-empty piece of a sequence: without the leading space that
  // encoding added (SentencePiece's dummy prefix, Metaspace's prepended marker).
  virtual std::string leading_token_bytes(int32_t id) const = 0;
  // Ids -> text, as the reference decoders give it: the leading space that encoding added
  // removed, ill-formed bytes as U+FFFD. With skip_special, special / control tokens give
  // nothing; without, their text.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = true) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 if none
  virtual int32_t eos_id() const = 0;  // -1 if none
};

// A model's embedding may have more rows than its tokenizer has tokens (Qwen3: 151936 rows for
// 151669 tokens; a random: model given another model's tokenizer): the model can take and emit
// those ids. Their text is empty, as Hugging Face tokenizers decode ids they do not know.
// Ids below 0 still throw (token_bytes' error).
inline std::string model_token_bytes(const Tokenizer& t, int32_t id) {
  return id >= t.vocab_size() ? std::string() : t.token_bytes(id);
}
inline std::string decode_model_ids(const Tokenizer& t, std::span<const int32_t> ids,
                                    bool skip_special = true) {
  std::vector<int32_t> known;
  known.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < t.vocab_size()) known.push_back(id);
  }
  return t.decode(known, skip_special);
}

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
