// Choosing and loading a tokenizer.
//   load_tokenizer_dir(dir): a Hugging Face tokenizer directory: dir/tokenizer.json and, if
//     present, dir/tokenizer_config.json (tokenizer_json.h). Only BPE models are supported.
//   load_gguf_tokenizer(file): by tokenizer.ggml.model: "llama" -> SpmTokenizer
//     (spm_tokenizer.h), "gpt2" -> BpeTokenizer (gguf_bpe_tokenizer.h); anything else is a
//     bx::Error naming it.
//   load_tokenizer(path): a directory as load_tokenizer_dir, a file as a GGUF file (only its
//     metadata is read, not the weights).
// All throw bx::Error naming the file and the problem.
#pragma once

#include <memory>
#include <string>

#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

namespace bx {

std::unique_ptr<Tokenizer> load_tokenizer_dir(const std::string& dir);
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const gguf::File& file);
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace bx
