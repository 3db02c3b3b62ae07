// Reading a Hugging Face tokenizer (tokenizer.json, optionally with tokenizer_config.json) into
// the parts of a BpeTokenizer.
//   model: type BPE (vocab; merges as "a b" strings or [a, b] pairs; unk_token, fuse_unk,
//     byte_fallback, ignore_merges; dropout must be null or 0, continuing_subword_prefix and
//     end_of_word_suffix null or ""). Another model type is a bx::Error naming it.
//   normalizer, pre_tokenizer, decoder: normalizer.h, pre_tokenizer.h, token_decoder.h.
//   added_tokens: id, content, special, normalized, lstrip, rstrip, single_word.
//   post_processor (what encode(text, add_special = true) adds): TemplateProcessing (its
//     "single" template: special tokens before $A are the prefix, after it the suffix),
//     RobertaProcessing / BertProcessing (cls + $A + sep), ByteLevel (nothing), Sequence, null.
//   tokenizer_config.json: bos_token and eos_token (a string or {"content": ...}) name the BOS
//     and EOS ids; when it has add_bos_token or add_eos_token, those two flags (a missing one
//     is false) decide the prefix [BOS] and suffix [EOS] instead of the post-processor, as
//     `transformers` does for Llama-style tokenizers. Without a config, BOS / EOS are the
//     post-processor's single prefix / suffix token, if it has exactly one.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "tokenizer/bpe_tokenizer.h"

namespace bx {

// `config` may be null (no tokenizer_config.json). `source` names the files in errors.
BpeTokenizerParts parse_tokenizer_json(const nlohmann::json& tokenizer,
                                       const nlohmann::json* config, const std::string& source);

}  // namespace bx
