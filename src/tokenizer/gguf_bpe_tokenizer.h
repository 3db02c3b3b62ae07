// A GGUF vocabulary with tokenizer.ggml.model = "gpt2" (byte-level BPE, merges in the file) as
// the parts of a BpeTokenizer.
//   tokens (byte-level strings) and merges ("a b") make the BPE model; token_type (optional,
//   default normal) decides the added tokens: control (3) and unknown (2) tokens are special
//   added tokens, user-defined (4) ones non-special added tokens; all are matched in the raw
//   text. bos_token_id / eos_token_id (0xFFFFFFFF or -1: none); add_bos_token (default true for
//   the llama3 family, false otherwise) and add_eos_token (default false) decide what
//   encode(text, add_special = true) adds.
//   tokenizer.ggml.pre names the pre-tokenizer of the original tokenizer.json:
//     default, gpt2         ByteLevel with GPT-2's regex
//     llama3, llama-v3, llama-bpe  Split(Llama-3 regex) + ByteLevel; ignore_merges
//     qwen2                 NFC + Split(Qwen2 regex, digits one by one) + ByteLevel
//     smollm                Digits(individual) + ByteLevel with GPT-2's regex
//   A missing `pre` is "default"; any other value is a bx::Error naming it.
#pragma once

#include "model/gguf.h"
#include "tokenizer/bpe_tokenizer.h"

namespace bx {

BpeTokenizerParts gguf_bpe_parts(const gguf::File& file);

}  // namespace bx
