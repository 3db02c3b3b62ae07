// Hugging Face folders end to end: the engine's forward pass on random config.json + safetensors
// models of every supported architecture (T2 against the float64 reference, with the bounds the
// GGUF models use), T3 (rows in a ragged batch equal rows alone), and an independent check of the
// rotate-half RoPE path against the GGUF adjacent-pair path.
//
// Measured maxima over the T2 cases (2026-11-22, identical with BITEXACT_ISA=scalar, avx2 and
// avx512): normwise 3.3e-7, elementwise 7.1e-6, logprobs 1.5e-5 (qwen3_f32_tied_hd32), against
// the shared bounds 1e-5, 1e-4 and 2e-4 (support/reference_compare.h).
//
// Rotate-half vs adjacent pairs. A Hugging Face head rotates pairs (i, i + Dh/2); a GGUF llama
// head rotates (2i, 2i+1) by the same angle. llama.cpp's converter (convert_hf_to_gguf.py,
// LlamaModel.permute) therefore reorders the rows of q_proj and k_proj within each head:
//   W.reshape(n_head, 2, Dh/2, D).swapaxes(1, 2).reshape(n_head * Dh, D)
// i.e. GGUF row h*Dh + 2i + j = HF row h*Dh + j*Dh/2 + i  (j in {0, 1}, i < Dh/2; n_head is the
// kv head count for k). q and k then hold the same numbers in another order within each head, each
// pair meets the same cos/sin, and q.k (a sum over the head) is the same sum in another order. So
// the two files must give the same logits up to f32 rounding of that reordered sum (and, in
// double, up to double rounding), while the unpermuted weights must not.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "model/loader.h"
#include "support/engine_driver.h"
#include "support/gguf_writer.h"
#include "support/random_hf_model.h"
#include "support/random_model.h"
#include "support/reference_compare.h"
#include "support/reference_llama.h"
#include "support/shared_model.h"

namespace {

using bx::test::compare;
using bx::test::EngineRows;
using bx::test::Errors;
using bx::test::expect_within_bounds;
using bx::test::kLogitElementBound;
using bx::test::kLogitNormBound;
using bx::test::kLogprobBound;
using bx::test::random_prompt;
using bx::test::RandomHfSpec;

EngineRows engine_rows(const std::string& path, const std::vector<int32_t>& prompt, int threads) {
  bx::LoadOptions options;
  options.threads = threads;
  options.max_batch_tokens = static_cast<int>(prompt.size());
  options.max_logit_rows = static_cast<int>(prompt.size());
  bx::LoadedModel model = bx::load_model(path, options);
  bx::test::SingleSequence seq(model, static_cast<int64_t>(prompt.size()));
  return seq.forward_all(prompt);
}

RandomHfSpec hf_spec(const std::string& arch, const std::string& dtype, bool tied, int shards,
                     uint32_t seed) {
  RandomHfSpec s;
  s.architecture = arch;
  s.dtype = dtype;
  s.tied_output = tied;
  s.shards = shards;
  s.seed = seed;
  return s;
}

struct HfCase {
  std::string name;
  RandomHfSpec spec;
  int prompt_tokens = 40;
  int threads = 1;
};

void PrintTo(const HfCase& c, std::ostream* os) {
  *os << c.name;
}

std::vector<HfCase> hf_cases() {
  std::vector<HfCase> cases;
  // Each architecture tied and untied, single file and sharded, F32 / F16 / BF16.
  cases.push_back({"llama_f32_untied_single", hf_spec("LlamaForCausalLM", "F32", false, 1, 31)});
  cases.push_back({"llama_bf16_tied_3shards", hf_spec("LlamaForCausalLM", "BF16", true, 3, 32)});
  HfCase llama3{"llama_f16_llama3_scaling", hf_spec("LlamaForCausalLM", "F16", false, 1, 33), 100,
                2};
  llama3.spec.llama3_scaling = true;
  llama3.spec.context_length = 128;
  llama3.spec.rope_theta = 500000.0;
  cases.push_back(llama3);
  HfCase llama_bias{"llama_f32_attention_bias_mqa",
                    hf_spec("LlamaForCausalLM", "F32", true, 2, 34)};
  llama_bias.spec.attention_bias = true;
  llama_bias.spec.n_kv_heads = 1;
  cases.push_back(llama_bias);
  cases.push_back(
      {"mistral_f32_untied_2shards", hf_spec("MistralForCausalLM", "F32", false, 2, 35)});
  cases.push_back({"mistral_bf16_tied_single", hf_spec("MistralForCausalLM", "BF16", true, 1, 36)});
  cases.push_back({"qwen2_f32_tied_single", hf_spec("Qwen2ForCausalLM", "F32", true, 1, 37)});
  cases.push_back({"qwen2_bf16_untied_4shards", hf_spec("Qwen2ForCausalLM", "BF16", false, 4, 38)});
  cases.push_back({"qwen2_f16_tied_2shards", hf_spec("Qwen2ForCausalLM", "F16", true, 2, 39)});
  // Qwen3: head_dim 32 with hidden 64 and 4 heads (q width 128 != hidden), as in Qwen3's configs.
  HfCase qwen3{"qwen3_f32_tied_hd32", hf_spec("Qwen3ForCausalLM", "F32", true, 1, 40), 50, 3};
  qwen3.spec.head_dim = 32;
  cases.push_back(qwen3);
  cases.push_back({"qwen3_f16_untied_3shards", hf_spec("Qwen3ForCausalLM", "F16", false, 3, 41)});
  HfCase qwen3_bias{"qwen3_bf16_attention_bias", hf_spec("Qwen3ForCausalLM", "BF16", false, 1, 42)};
  qwen3_bias.spec.attention_bias = true;
  cases.push_back(qwen3_bias);
  return cases;
}

class HfModelReference : public ::testing::TestWithParam<HfCase> {};

TEST_P(HfModelReference, EngineMatchesFloat64Reference) {
  const HfCase& c = GetParam();
  const bx::test::RandomHfFolder folder(c.name, c.spec);
  const bx::test::ReferenceLlama ref(folder.path());
  ASSERT_EQ(ref.config().tied_output, c.spec.tied_output);
  const std::vector<int32_t> prompt =
      random_prompt(c.prompt_tokens, c.spec.vocab_size, c.spec.seed + 1000);
  expect_within_bounds(compare(engine_rows(folder.path(), prompt, c.threads), ref.forward(prompt)),
                       c.name);
}

std::string case_name(const ::testing::TestParamInfo<HfCase>& param) {
  return param.param.name;
}

INSTANTIATE_TEST_SUITE_P(Cases, HfModelReference, ::testing::ValuesIn(hf_cases()), case_name);

// Negative controls: each feature the Hugging Face path adds changes the logits far beyond the
// bounds, so the cases above would fail if the engine skipped it. The reference is switched back
// to the plain GGUF-style computation one feature at a time.
TEST(HfModelReference, EachFeatureMattersToTheComparison) {
  struct Control {
    const char* what;
    RandomHfSpec spec;
    void (*switch_off)(bx::test::ReferenceLlama&);
  };
  RandomHfSpec qwen2 = hf_spec("Qwen2ForCausalLM", "F32", true, 1, 51);
  RandomHfSpec qwen3 = hf_spec("Qwen3ForCausalLM", "F32", true, 1, 52);
  RandomHfSpec llama = hf_spec("LlamaForCausalLM", "F32", false, 1, 53);
  llama.attention_bias = true;
  RandomHfSpec scaled = hf_spec("LlamaForCausalLM", "F32", false, 1, 54);
  scaled.llama3_scaling = true;
  const Control controls[] = {
      {"rotate-half RoPE", llama,
       [](bx::test::ReferenceLlama& r) { r.mutable_config().rotate_half = false; }},
      {"q/k/v bias", qwen2,
       [](bx::test::ReferenceLlama& r) {
         for (auto& l : r.mutable_layers()) l.bq.clear(), l.bk.clear(), l.bv.clear();
       }},
      {"output bias", llama,
       [](bx::test::ReferenceLlama& r) {
         for (auto& l : r.mutable_layers()) l.bo.clear();
       }},
      {"q/k norm", qwen3, [](bx::test::ReferenceLlama& r) { r.mutable_config().qk_norm = false; }},
      {"llama3 scaling", scaled,
       [](bx::test::ReferenceLlama& r) { r.mutable_config().llama3 = false; }},
  };
  for (const Control& c : controls) {
    const bx::test::RandomHfFolder folder("control", c.spec);
    bx::test::ReferenceLlama ref(folder.path());
    const std::vector<int32_t> prompt = random_prompt(40, c.spec.vocab_size, 77);
    const EngineRows rows = engine_rows(folder.path(), prompt, 1);
    const Errors with = compare(rows, ref.forward(prompt));
    EXPECT_LT(with.logit_norm, kLogitNormBound) << c.what;
    c.switch_off(ref);
    const Errors without = compare(rows, ref.forward(prompt));
    std::printf("control %-16s logits normwise %.3g with the feature, %.3g without\n", c.what,
                with.logit_norm, without.logit_norm);
    EXPECT_GT(without.logit_norm, 100 * kLogitNormBound) << c.what;
    EXPECT_GT(without.logprob, 100 * kLogprobBound) << c.what;
  }
}

// --- T3: the added ops keep rows independent ---

// Logits of sequence 0 (30 tokens) computed alone in one call with 1 thread, and computed with 3
// threads in two calls that each mix in another sequence: call 1 holds seq0[0:13) and all 17 tokens
// of seq1, call 2 holds seq0[13:30) and all 45 tokens of seq2. Each sequence has its own KV blocks.
// Returns how many of seq0's 30 logit rows differ in any bit.
int differing_rows_in_batch(const std::string& path, bx::ReductionOrder order) {
  const int V = 320, block = 16, blocks_per_seq = 4;
  bx::LoadOptions options;
  options.max_batch_tokens = 128;
  options.max_logit_rows = 64;
  options.reduction_order = order;
  options.threads = 1;
  bx::LoadedModel alone_model = bx::load_model(path, options);
  options.threads = 3;
  bx::LoadedModel batch_model = bx::load_model(path, options);
  const std::vector<int32_t> seq0 = random_prompt(30, V, 1), seq1 = random_prompt(17, V, 2),
                             seq2 = random_prompt(45, V, 3);
  bx::test::SingleSequence alone(alone_model, 30);
  const EngineRows ref = alone.forward_all(seq0);

  batch_model.reserve_kv_blocks(3 * blocks_per_seq);
  std::vector<int32_t> tables(3 * blocks_per_seq);
  for (size_t i = 0; i < tables.size(); ++i) tables[i] = static_cast<int32_t>(i);
  std::vector<std::vector<float>> batched;  // seq0's logit rows, in position order
  auto call = [&](int first, int last, int other, const std::vector<int32_t>& other_tokens) {
    std::vector<int32_t> tokens, positions, rows;
    std::vector<const int32_t*> block_tables;
    for (int t = first; t < last; ++t) {
      rows.push_back(static_cast<int32_t>(tokens.size()));
      tokens.push_back(seq0[static_cast<size_t>(t)]);
      positions.push_back(t);
      block_tables.push_back(tables.data());
    }
    for (size_t t = 0; t < other_tokens.size(); ++t) {
      tokens.push_back(other_tokens[t]);
      positions.push_back(static_cast<int32_t>(t));
      block_tables.push_back(tables.data() + other * blocks_per_seq);
    }
    bx::ForwardBatch batch{tokens, positions, block_tables, rows};
    std::vector<float> logits(rows.size() * V), logprobs(rows.size() * V);
    batch_model.model->forward(batch, logits.data(), logprobs.data());
    for (size_t r = 0; r < rows.size(); ++r) {
      batched.emplace_back(logits.begin() + static_cast<std::ptrdiff_t>(r * V),
                           logits.begin() + static_cast<std::ptrdiff_t>((r + 1) * V));
    }
  };
  static_assert(block * blocks_per_seq >= 45);
  call(0, 13, 1, seq1);
  call(13, 30, 2, seq2);
  int differing = 0;
  for (size_t t = 0; t < seq0.size(); ++t) {
    differing += std::memcmp(batched[t].data(), ref.logits[t].data(), V * sizeof(float)) != 0;
  }
  return differing;
}

TEST(HfInvariance, BatchedRowsEqualAloneBitwise) {
  for (const char* arch : {"Qwen2ForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM"}) {
    RandomHfSpec s = hf_spec(arch, "BF16", false, 1, 91);
    s.attention_bias = true;  // Qwen3 and Llama: q, k, v and o biases too
    s.llama3_scaling = std::string(arch) == "LlamaForCausalLM";
    s.dim = 128;
    s.n_heads = 8;
    s.ffn_dim = 160;
    const bx::test::RandomHfFolder folder("invariance", s);
    EXPECT_EQ(differing_rows_in_batch(folder.path(), bx::ReductionOrder::canonical), 0) << arch;
  }
}

// Negative control: with an M-dependent K split in every matmul the same comparison finds
// differences, so the test above can fail.
TEST(HfInvariance, SplitKControlDiffers) {
  RandomHfSpec s = hf_spec("Qwen3ForCausalLM", "BF16", false, 1, 92);
  s.dim = 128;
  s.n_heads = 8;
  s.ffn_dim = 160;
  const bx::test::RandomHfFolder folder("invariance_control", s);
  EXPECT_GT(differing_rows_in_batch(folder.path(), bx::ReductionOrder::split_k_by_m), 0);
}

// --- rotate-half vs adjacent pairs ---

// HF q/k rows -> GGUF rows, as llama.cpp's converter permutes them (see the top of this file).
std::vector<float> permute_rows_for_gguf(const std::vector<float>& w, int64_t n_heads,
                                         int64_t head_dim, int64_t cols) {
  std::vector<float> out(w.size());
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t to = h * head_dim + 2 * i + j;
        const int64_t from = h * head_dim + j * half + i;
        std::copy(w.begin() + from * cols, w.begin() + (from + 1) * cols, out.begin() + to * cols);
      }
    }
  }
  return out;
}

// The GGUF file llama.cpp's converter would make from the Hugging Face tensors (F32, untied;
// attention biases as attn_{q,k,v,output}.bias, q and k permuted like their weights' rows), with
// random_model.h's vocabulary so the GGUF loader finds a tokenizer. Without `biases` the bias
// tensors are left out.
void write_gguf_twin(const RandomHfSpec& s, const std::vector<bx::test::HfTensor>& tensors,
                     bool permute, const std::string& path, bool biases = true) {
  const int64_t Dh = bx::test::random_hf_head_dim(s);
  bx::test::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.context_length", static_cast<uint32_t>(s.context_length));
  w.add_u32("llama.embedding_length", static_cast<uint32_t>(s.dim));
  w.add_u32("llama.block_count", static_cast<uint32_t>(s.n_layers));
  w.add_u32("llama.feed_forward_length", static_cast<uint32_t>(s.ffn_dim));
  w.add_u32("llama.attention.head_count", static_cast<uint32_t>(s.n_heads));
  w.add_u32("llama.attention.head_count_kv", static_cast<uint32_t>(s.n_kv_heads));
  w.add_f32("llama.attention.layer_norm_rms_epsilon", static_cast<float>(s.rms_eps));
  w.add_f32("llama.rope.freq_base", static_cast<float>(s.rope_theta));
  const bx::test::RandomVocab vocab = bx::test::make_random_vocab(s.vocab_size);
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_array_string("tokenizer.ggml.tokens", vocab.tokens);
  w.add_array_f32("tokenizer.ggml.scores", vocab.scores);
  w.add_array_i32("tokenizer.ggml.token_type", vocab.types);
  auto gguf_name = [](const std::string& hf) -> std::string {
    if (hf == "model.embed_tokens.weight") return "token_embd.weight";
    if (hf == "model.norm.weight") return "output_norm.weight";
    if (hf == "lm_head.weight") return "output.weight";
    const size_t dot = hf.find('.', 13);  // "model.layers.<l>.<rest>"
    const std::string layer = hf.substr(13, dot - 13), rest = hf.substr(dot + 1);
    static const std::pair<const char*, const char*> kNames[] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.bias", "attn_v.bias"},
        {"self_attn.o_proj.bias", "attn_output.bias"},
    };
    for (const auto& [from, to] : kNames) {
      if (rest == from) return "blk." + layer + "." + to;
    }
    throw bx::Error("no GGUF name for " + hf);
  };
  for (const bx::test::HfTensor& t : tensors) {
    const bool is_bias = t.name.size() > 5 && t.name.compare(t.name.size() - 5, 5, ".bias") == 0;
    if (is_bias && !biases) continue;
    std::vector<float> values = t.values;
    const bool is_q = t.name.find("q_proj.") != std::string::npos;
    const bool is_k = t.name.find("k_proj.") != std::string::npos;
    if (permute && (is_q || is_k)) {  // a bias permutes as rows of one column
      values = permute_rows_for_gguf(values, is_q ? s.n_heads : s.n_kv_heads, Dh,
                                     t.shape.size() > 1 ? t.shape[1] : 1);
    }
    // HF [rows, cols] row-major is GGUF dims {cols, rows}.
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());
    w.add_tensor(gguf_name(t.name), dims, values, bx::gguf::GgmlType::F32);
  }
  w.write(path);
}

TEST(HfRopeLayout, RotateHalfMatchesAdjacentPairsWithPermutedWeights) {
  RandomHfSpec s = hf_spec("LlamaForCausalLM", "F32", false, 1, 61);
  s.n_heads = 4;
  s.n_kv_heads = 2;
  const bx::test::RandomHfFolder folder("rope_layout", s);
  const std::vector<bx::test::HfTensor> tensors = bx::test::random_hf_tensors(s);
  const std::string permuted = folder.path() + "/twin.gguf";
  const std::string unpermuted = folder.path() + "/unpermuted.gguf";
  write_gguf_twin(s, tensors, true, permuted);
  write_gguf_twin(s, tensors, false, unpermuted);
  const std::vector<int32_t> prompt = random_prompt(48, s.vocab_size, 5);

  // In double, the references agree to rounding: the permutation is exact.
  const std::vector<std::vector<double>> ref_hf =
      bx::test::ReferenceLlama(folder.path()).forward(prompt);
  const std::vector<std::vector<double>> ref_gguf =
      bx::test::ReferenceLlama(permuted).forward(prompt);
  double ref_diff = 0.0;
  for (size_t t = 0; t < prompt.size(); ++t) {
    for (size_t v = 0; v < ref_hf[t].size(); ++v) {
      ref_diff = std::max(ref_diff, std::fabs(ref_hf[t][v] - ref_gguf[t][v]));
    }
  }
  EXPECT_LT(ref_diff, 1e-10);

  // The engine's two paths agree as closely as f32 rounding of the reordered q.k sum allows,
  // and each is within the T2 bounds of the double result.
  const EngineRows hf = engine_rows(folder.path(), prompt, 1);
  const EngineRows gguf = engine_rows(permuted, prompt, 1);
  const EngineRows wrong = engine_rows(unpermuted, prompt, 1);
  double engine_diff = 0.0;
  for (size_t t = 0; t < prompt.size(); ++t) {
    for (size_t v = 0; v < hf.logits[t].size(); ++v) {
      const double a = hf.logits[t][v], b = gguf.logits[t][v];
      engine_diff = std::max(engine_diff, std::fabs(a - b) / std::max(1.0, std::fabs(b)));
    }
  }
  const Errors unpermuted_error = compare(wrong, ref_hf);
  std::printf(
      "rope layouts: reference |hf - gguf| %.3g, engine elementwise %.3g, unpermuted "
      "GGUF normwise error %.3g\n",
      ref_diff, engine_diff, unpermuted_error.logit_norm);
  EXPECT_LT(engine_diff, kLogitElementBound);
  expect_within_bounds(compare(hf, ref_hf), "rope layout: HF path");
  expect_within_bounds(compare(gguf, ref_hf), "rope layout: GGUF path");
  // Negative control: without the permutation the GGUF path computes another model.
  EXPECT_GT(unpermuted_error.logit_norm, 1000 * kLogitNormBound);
}

// A llama GGUF file with attention biases (llama.cpp reads attn_{q,k,v,output}.bias when present;
// model/architecture.h: the llama family's biases) computes the Hugging Face folder's model: the
// architecture table takes the biases from the file. Negative control: the same file without
// them computes another model.
TEST(HfRopeLayout, GgufTwinWithAttentionBiasesMatchesTheFolder) {
  RandomHfSpec s = hf_spec("LlamaForCausalLM", "F32", false, 1, 63);
  s.attention_bias = true;
  const bx::test::RandomHfFolder folder("gguf_bias", s);
  const std::vector<bx::test::HfTensor> tensors = bx::test::random_hf_tensors(s);
  const std::string twin = folder.path() + "/twin.gguf";
  const std::string no_bias = folder.path() + "/no_bias.gguf";
  write_gguf_twin(s, tensors, true, twin);
  write_gguf_twin(s, tensors, true, no_bias, false);
  const std::vector<int32_t> prompt = random_prompt(40, s.vocab_size, 7);
  const EngineRows hf = engine_rows(folder.path(), prompt, 1);
  const auto max_diff = [&](const EngineRows& other) {
    double diff = 0.0;
    for (size_t t = 0; t < prompt.size(); ++t) {
      for (size_t v = 0; v < hf.logits[t].size(); ++v) {
        const double a = hf.logits[t][v], b = other.logits[t][v];
        diff = std::max(diff, std::fabs(a - b) / std::max(1.0, std::fabs(b)));
      }
    }
    return diff;
  };
  const double with = max_diff(engine_rows(twin, prompt, 1));
  const double without = max_diff(engine_rows(no_bias, prompt, 1));
  std::printf("GGUF with attention biases: elementwise %.3g; without them %.3g\n", with, without);
  EXPECT_LT(with, kLogitElementBound);
  EXPECT_GT(without, 100 * kLogitElementBound);
}

// The trained stories260K model converted back to a Hugging Face folder (the inverse of
// llama.cpp's q/k permutation: HF row h*Dh + j*Dh/2 + i = GGUF row h*Dh + 2i + j): the HF path
// gives the GGUF path's logits to f32 rounding and the same argmax at every position.
TEST(HfRopeLayout, Stories260kAsAFolderMatchesTheGgufFile) {
  if (!bx::test::have_stories260k()) GTEST_SKIP() << bx::test::stories260k_path() << " not found";
  const bx::gguf::File g = bx::gguf::File::open(bx::test::stories260k_path());
  const int D = 64, H = 8, Hkv = 4, Dh = 8, F = 172, V = 512, L = 5;
  ASSERT_EQ(g.get_uint("llama.embedding_length"), static_cast<uint64_t>(D));
  ASSERT_EQ(g.get_uint("llama.block_count"), static_cast<uint64_t>(L));
  ASSERT_FALSE(g.has("llama.rope.freq_base"));  // the default, 10000, in both formats
  auto read = [&](const std::string& name) {
    const bx::gguf::TensorInfo* t = g.find_tensor(name);
    std::vector<float> v(static_cast<size_t>(t->n_elements));
    bx::gguf::dequantize_to_f32(*t, g.tensor_data(*t), v.data());
    return v;
  };
  auto unpermute = [&](const std::vector<float>& w, int n_heads) {
    std::vector<float> out(w.size());
    for (int h = 0; h < n_heads; ++h) {
      for (int i = 0; i < Dh / 2; ++i) {
        for (int j = 0; j < 2; ++j) {
          const size_t hf = static_cast<size_t>(h * Dh + j * Dh / 2 + i) * D;
          const size_t gg = static_cast<size_t>(h * Dh + 2 * i + j) * D;
          std::copy(w.begin() + static_cast<std::ptrdiff_t>(gg),
                    w.begin() + static_cast<std::ptrdiff_t>(gg + D),
                    out.begin() + static_cast<std::ptrdiff_t>(hf));
        }
      }
    }
    return out;
  };
  std::vector<bx::test::HfTensor> ts;
  ts.push_back({"model.embed_tokens.weight", {V, D}, read("token_embd.weight")});
  for (int l = 0; l < L; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".",
                      p = "model.layers." + std::to_string(l) + ".";
    ts.push_back({p + "input_layernorm.weight", {D}, read(b + "attn_norm.weight")});
    ts.push_back(
        {p + "self_attn.q_proj.weight", {H * Dh, D}, unpermute(read(b + "attn_q.weight"), H)});
    ts.push_back(
        {p + "self_attn.k_proj.weight", {Hkv * Dh, D}, unpermute(read(b + "attn_k.weight"), Hkv)});
    ts.push_back({p + "self_attn.v_proj.weight", {Hkv * Dh, D}, read(b + "attn_v.weight")});
    ts.push_back({p + "self_attn.o_proj.weight", {D, H * Dh}, read(b + "attn_output.weight")});
    ts.push_back({p + "post_attention_layernorm.weight", {D}, read(b + "ffn_norm.weight")});
    ts.push_back({p + "mlp.gate_proj.weight", {F, D}, read(b + "ffn_gate.weight")});
    ts.push_back({p + "mlp.up_proj.weight", {F, D}, read(b + "ffn_up.weight")});
    ts.push_back({p + "mlp.down_proj.weight", {D, F}, read(b + "ffn_down.weight")});
  }
  ts.push_back({"model.norm.weight", {D}, read("output_norm.weight")});
  ts.push_back({"lm_head.weight", {V, D}, read("output.weight")});
  RandomHfSpec spec;  // only for the config's fields
  spec.dim = D;
  spec.n_layers = L;
  spec.n_heads = H;
  spec.n_kv_heads = Hkv;
  spec.ffn_dim = F;
  spec.vocab_size = V;
  spec.context_length = static_cast<int>(g.get_uint("llama.context_length"));
  spec.rms_eps = g.get_float("llama.attention.layer_norm_rms_epsilon");
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("bitexact-hf-stories-" + std::to_string(::getpid())))
                              .string();
  std::filesystem::create_directories(dir);
  bx::test::write_hf_folder(dir, bx::test::random_hf_config(spec), ts, 2, "F32");

  const bx::test::ReferenceLlama ref(bx::test::stories260k_path());
  std::vector<int32_t> prompt = {1};
  for (const auto& step : ref.greedy(prompt, 40)) prompt.push_back(step.id);
  const EngineRows hf = engine_rows(dir, prompt, 2);
  const EngineRows gguf = engine_rows(bx::test::stories260k_path(), prompt, 2);
  double diff = 0.0;
  for (size_t t = 0; t < prompt.size(); ++t) {
    EXPECT_EQ(bx::test::argmax_lowest(hf.logits[t]), bx::test::argmax_lowest(gguf.logits[t])) << t;
    for (size_t v = 0; v < hf.logits[t].size(); ++v) {
      const double a = hf.logits[t][v], b = gguf.logits[t][v];
      diff = std::max(diff, std::fabs(a - b) / std::max(1.0, std::fabs(b)));
    }
  }
  std::printf("stories260K as a folder: max elementwise logit difference to the GGUF path %.3g\n",
              diff);
  EXPECT_LT(diff, kLogitElementBound);
  expect_within_bounds(compare(hf, ref.forward(prompt)), "stories260K as a folder");
  std::filesystem::remove_all(dir);
}

// A folder loads without a tokenizer (tokenizer.json is read elsewhere), with the config's ids.
TEST(HfLoader, FolderHasConfigIdsAndNoTokenizer) {
  const RandomHfSpec s = hf_spec("Qwen3ForCausalLM", "BF16", true, 2, 71);
  const bx::test::RandomHfFolder folder("no_tokenizer", s);
  const bx::LoadedModel m = bx::load_model(folder.path(), bx::LoadOptions{});
  EXPECT_EQ(m.tokenizer, nullptr);
  EXPECT_EQ(m.config.architecture, "Qwen3ForCausalLM");
  EXPECT_EQ(m.config.bos_token_id, 1);
  EXPECT_EQ(m.config.eos_token_ids, std::vector<int32_t>{2});
  EXPECT_EQ(m.config.rope_layout, bx::RopeLayout::half_split);
  EXPECT_TRUE(m.config.qk_norm);
  EXPECT_EQ(m.weight_dtype, "BF16");
  EXPECT_EQ(m.weights_hash.size(), 32u);
}

// The weights hash depends on the weights and config, not on how the files are sharded.
TEST(HfLoader, HashIgnoresShardingButNotWeights) {
  RandomHfSpec s = hf_spec("LlamaForCausalLM", "F16", false, 1, 72);
  const bx::test::RandomHfFolder one("hash_one", s);
  s.shards = 3;
  const bx::test::RandomHfFolder three("hash_three", s);
  s.seed = 73;
  const bx::test::RandomHfFolder other("hash_other", s);
  const std::string h1 = bx::load_model(one.path(), {}).weights_hash;
  EXPECT_EQ(h1, bx::load_model(three.path(), {}).weights_hash);
  EXPECT_NE(h1, bx::load_model(other.path(), {}).weights_hash);
}

}  // namespace
