// Test support: small random Llama models written as GGUF files, for accuracy tests against the
// float64 reference (tests/support/reference_llama.h) and for invariance tests that need shapes
// the shared model does not have.
//
//   bx::test::RandomLlamaSpec spec;          // dims, layers, heads, dtype, tying, seed
//   spec.weight_type = bx::gguf::GgmlType::Q8_0;
//   bx::test::RandomLlamaFile file("q8", spec);  // written to a temp path, removed at scope end
//   bx::LoadedModel m = bx::load_model(file.path(), {});
//
// The bytes depend only on the spec: std::mt19937 is specified exactly by the standard, and the
// conversion of its output to floats is done here (std::uniform_real_distribution and
// std::normal_distribution differ between standard libraries). Weights are uniform with
// standard deviation 1/sqrt(fan_in), so activations stay O(1) through the layers.
//
// The vocabulary is SentencePiece-style (tokenizer.ggml.model = "llama"): <unk>, <s>, </s>
// (bos 1, eos 2), the 256 byte tokens <0x00>..<0xFF> (type 6), "▁", the letters a-z, the prefixes
// of some "▁"-words (so the merges can reach the words), then letter pairs until vocab_size.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "support/gguf_writer.h"

namespace bx::test {

// Portable floats from std::mt19937.
class PortableRng {
 public:
  explicit PortableRng(uint32_t seed) : gen_(seed) {}

  // Uniform on [-1, 1) with 24 random bits (every step exact in f32).
  float uniform_pm1() {
    const auto bits = static_cast<int32_t>(gen_() >> 8);  // [0, 2^24)
    return static_cast<float>(bits - (1 << 23)) * 0x1p-23f;
  }
  // Uniform with mean 0 and standard deviation `stddev`: sqrt(3) * stddev * U[-1, 1).
  float symmetric(float stddev) { return uniform_pm1() * (1.7320508f * stddev); }
  // An integer in [0, n), n > 0 (modulo: a negligible bias, but the same everywhere).
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(gen_()) % n; }

 private:
  std::mt19937 gen_;
};

struct RandomLlamaSpec {
  int dim = 64;          // D; a multiple of 32 for the Q* types
  int n_layers = 2;      // L
  int n_heads = 4;       // H; head_dim = D / H
  int n_kv_heads = 2;    // Hkv; H % Hkv == 0
  int ffn_dim = 96;      // F; a multiple of 32 for the Q* types
  int vocab_size = 320;  // V >= 286 (3 control + 256 byte + "▁" + a-z)
  int context_length = 256;
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  // Storage of token_embd and every matmul weight (F32, F16, BF16, Q8_0, Q4_0, Q4_1). The norm
  // weights are always F32, as in llama.cpp's files.
  gguf::GgmlType weight_type = gguf::GgmlType::F32;
  bool tied_output = true;  // no output.weight: the output projection is token_embd
  uint32_t seed = 1;
};

// The SentencePiece-style vocabulary described at the top of this file.
struct RandomVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // GGUF token types: 1 normal, 2 unknown, 3 control, 6 byte
};

inline RandomVocab make_random_vocab(int vocab_size) {
  static constexpr const char* kSpace = "\xe2\x96\x81";  // U+2581 "▁"
  // clang-format off
  static constexpr const char* kWords[] = {
      "the", "a", "was", "once", "upon", "time", "there", "little", "girl", "boy", "named",
      "she", "he", "loved", "to", "play", "in", "park", "and", "with", "her", "his", "friend",
      "day", "sun", "big", "happy", "dog", "cat", "tree", "ball", "said", "mom", "went", "saw",
  };
  // clang-format on
  RandomVocab v;
  std::set<std::string> seen;
  auto add = [&](const std::string& text, float score, int32_t type) {
    if (static_cast<int>(v.tokens.size()) >= vocab_size || !seen.insert(text).second) return;
    v.tokens.push_back(text);
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0.0f, 2);
  add("<s>", 0.0f, 3);
  add("</s>", 0.0f, 3);
  for (int b = 0; b < 256; ++b) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    add(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", 0.0f, 6);
  }
  check(vocab_size >= static_cast<int>(v.tokens.size()) + 27,
        "random model: vocab_size " + std::to_string(vocab_size) +
            " is too small, expected at least 286 (control, byte, '▁' and a-z tokens)");
  // Normal pieces score -1, -2, ...: earlier (shorter, more common) pieces merge first.
  float score = 0.0f;
  auto piece = [&](const std::string& text) { add(text, score -= 1.0f, 1); };
  piece(kSpace);
  for (char c = 'a'; c <= 'z'; ++c) piece(std::string(1, c));
  for (const char* word : kWords) {
    const std::string w(word);
    for (size_t n = 1; n <= w.size(); ++n) piece(kSpace + w.substr(0, n));  // "▁t", "▁th", ...
  }
  for (char c0 = 'a'; c0 <= 'z'; ++c0) {
    for (char c1 = 'a'; c1 <= 'z'; ++c1) piece(std::string{c0, c1});
  }
  check(static_cast<int>(v.tokens.size()) == vocab_size,
        "random model: vocab_size " + std::to_string(vocab_size) + " is too large, at most " +
            std::to_string(v.tokens.size()));
  return v;
}

// Writes the model of `spec` to `path`.
inline void write_random_llama(const RandomLlamaSpec& spec, const std::string& path) {
  check(spec.n_heads > 0 && spec.dim % spec.n_heads == 0 && (spec.dim / spec.n_heads) % 2 == 0,
        "random model: dim must be a multiple of n_heads with an even head_dim");
  check(spec.n_kv_heads > 0 && spec.n_heads % spec.n_kv_heads == 0,
        "random model: n_heads must be a multiple of n_kv_heads");
  const int64_t D = spec.dim, F = spec.ffn_dim, V = spec.vocab_size;
  const int64_t Dh = spec.dim / spec.n_heads;
  const int64_t Q = spec.n_heads * Dh, KV = spec.n_kv_heads * Dh;
  const uint32_t block = writer_block_size(spec.weight_type);
  check(D % block == 0 && F % block == 0 && Q % block == 0,
        "random model: dim, ffn_dim and the q width must be multiples of the block size " +
            std::to_string(block) + " of the weight type");

  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", "bitexact-random");
  w.add_u32("llama.context_length", static_cast<uint32_t>(spec.context_length));
  w.add_u32("llama.embedding_length", static_cast<uint32_t>(D));
  w.add_u32("llama.block_count", static_cast<uint32_t>(spec.n_layers));
  w.add_u32("llama.feed_forward_length", static_cast<uint32_t>(F));
  w.add_u32("llama.attention.head_count", static_cast<uint32_t>(spec.n_heads));
  w.add_u32("llama.attention.head_count_kv", static_cast<uint32_t>(spec.n_kv_heads));
  w.add_f32("llama.attention.layer_norm_rms_epsilon", spec.rms_eps);
  w.add_f32("llama.rope.freq_base", spec.rope_theta);
  w.add_u32("llama.rope.dimension_count", static_cast<uint32_t>(Dh));

  const RandomVocab vocab = make_random_vocab(spec.vocab_size);
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_array_string("tokenizer.ggml.tokens", vocab.tokens);
  w.add_array_f32("tokenizer.ggml.scores", vocab.scores);
  w.add_array_i32("tokenizer.ggml.token_type", vocab.types);
  w.add_u32("tokenizer.ggml.unknown_token_id", 0);
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);

  PortableRng rng(spec.seed);
  // A matrix W[rows][cols] (GGUF dims {cols, rows}) with entries of std 1/sqrt(cols).
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, float stddev) {
    std::vector<float> data(static_cast<size_t>(rows * cols));
    for (float& x : data) x = rng.symmetric(stddev);
    w.add_tensor(name, {cols, rows}, data, spec.weight_type);
  };
  auto fan_in = [](int64_t k) { return 1.0f / std::sqrt(static_cast<float>(k)); };
  // Norm weights 1 + U[-0.1, 0.1): near one, but not one, so a missing multiply is caught.
  auto norm = [&](const std::string& name) {
    std::vector<float> data(static_cast<size_t>(D));
    for (float& x : data) x = 1.0f + 0.1f * rng.uniform_pm1();
    w.add_tensor(name, {D}, data, gguf::GgmlType::F32);
  };

  matrix("token_embd.weight", V, D, 1.0f);  // embedding rows of rms ~1
  for (int l = 0; l < spec.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight");
    matrix(p + "attn_q.weight", Q, D, fan_in(D));
    matrix(p + "attn_k.weight", KV, D, fan_in(D));
    matrix(p + "attn_v.weight", KV, D, fan_in(D));
    matrix(p + "attn_output.weight", D, Q, fan_in(Q));
    norm(p + "ffn_norm.weight");
    matrix(p + "ffn_gate.weight", F, D, fan_in(D));
    matrix(p + "ffn_up.weight", F, D, fan_in(D));
    matrix(p + "ffn_down.weight", D, F, fan_in(F));
  }
  norm("output_norm.weight");
  if (!spec.tied_output) matrix("output.weight", V, D, fan_in(D));
  w.write(path);
}

// A random model in a temporary file, removed when this goes out of scope.
class RandomLlamaFile {
 public:
  RandomLlamaFile(const std::string& name, const RandomLlamaSpec& spec)
      : path_((std::filesystem::temp_directory_path() /
               ("bitexact-" + name + "-" + std::to_string(::getpid()) + ".gguf"))
                  .string()) {
    write_random_llama(spec, path_);
  }
  ~RandomLlamaFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  RandomLlamaFile(const RandomLlamaFile&) = delete;
  RandomLlamaFile& operator=(const RandomLlamaFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace bx::test
