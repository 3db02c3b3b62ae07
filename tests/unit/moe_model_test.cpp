// Mixture-of-Experts models end to end (Qwen3-MoE, Mixtral; kernels/moe.h in every layer):
//
//   loading     Hugging Face folders of both families and their GGUF twins (qwen3moe, and
//               Mixtral as "llama" with expert_count) give the same logits: bitwise for qwen3moe
//               (same weights, same RoPE layout), within f32 rounding for Mixtral (its GGUF q/k
//               rows are permuted for adjacent-pair RoPE); Q8_0 experts give the bits of their
//               dequantized copy; configs the layer cannot run are refused by name.
//   T3/T4       the engine invariance matrix on random:qwen3-moe-tiny: every request in every
//               scheduler configuration (batch caps, token budgets, prefill chunks, prefix cache,
//               preemption, staggered arrivals, 2 threads) equals the request run alone, and
//               teacher-forced scores equal the generation logprobs. Negative control: the fast
//               mode (expert GEMMs split by their token counts, arrival-order combine) differs.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/architecture.h"
#include "model/loader.h"
#include "support/engine_driver.h"
#include "support/engine_runner.h"
#include "support/gguf_writer.h"
#include "support/random_hf_model.h"
#include "support/random_model.h"
#include "support/reference_compare.h"

namespace bx {
namespace {

using test::EngineRows;
using test::HfTensor;
using test::RandomHfSpec;

RandomHfSpec moe_spec(const std::string& arch, uint32_t seed) {
  RandomHfSpec s;
  s.architecture = arch;
  s.n_experts = 8;
  s.n_experts_used = arch == "MixtralForCausalLM" ? 2 : 3;
  s.expert_ffn_dim = 24;
  s.ffn_dim = arch == "MixtralForCausalLM" ? 40 : 96;  // Mixtral: the expert width
  s.seed = seed;
  return s;
}

EngineRows rows_of(const std::string& path, const std::vector<int32_t>& prompt,
                   bool dequantize = false) {
  LoadOptions o;
  o.threads = 2;
  o.max_batch_tokens = static_cast<int>(prompt.size());
  o.max_logit_rows = static_cast<int>(prompt.size());
  o.dequantize_weights = dequantize;
  LoadedModel m = load_model(path, o);
  test::SingleSequence seq(m, static_cast<int64_t>(prompt.size()));
  return seq.forward_all(prompt);
}

bool same_bits(const EngineRows& a, const EngineRows& b) {
  if (a.logits.size() != b.logits.size()) return false;
  for (size_t r = 0; r < a.logits.size(); ++r) {
    if (a.logits[r].size() != b.logits[r].size() ||
        std::memcmp(a.logits[r].data(), b.logits[r].data(), a.logits[r].size() * 4) != 0) {
      return false;
    }
  }
  return true;
}

// The largest normwise relative difference of a row of logits.
double worst_row_difference(const EngineRows& a, const EngineRows& b) {
  double worst = 0;
  for (size_t r = 0; r < a.logits.size(); ++r) {
    double err = 0, norm = 0;
    for (size_t i = 0; i < a.logits[r].size(); ++i) {
      err += std::pow(double(a.logits[r][i]) - b.logits[r][i], 2);
      norm += std::pow(double(b.logits[r][i]), 2);
    }
    worst = std::max(worst, std::sqrt(err / norm));
  }
  return worst;
}

// HF q/k rows -> GGUF rows for adjacent-pair RoPE (llama.cpp's converter; hf_model_test.cpp).
std::vector<float> permute_rows(const std::vector<float>& w, int64_t n_heads, int64_t head_dim,
                                int64_t cols) {
  std::vector<float> out(w.size());
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t to = h * head_dim + 2 * i + j, from = h * head_dim + j * half + i;
        std::copy(w.begin() + from * cols, w.begin() + (from + 1) * cols, out.begin() + to * cols);
      }
    }
  }
  return out;
}

struct TwinOptions {
  gguf::GgmlType expert_type = gguf::GgmlType::F32;
  int n_experts_used = 0;  // 0: the spec's
  int gating_func = 0;     // 0: no key
  int shared_experts = 0;  // 0: no key
};

// The GGUF file llama.cpp's converter makes of a MoE folder: qwen3moe (q/k as they are), or
// Mixtral as "llama" with expert_count (q/k rows permuted); each layer's experts stacked into
// ffn_{gate,up,down}_exps {cols, rows, E}, the router as ffn_gate_inp.
void write_moe_gguf(const RandomHfSpec& s, const std::string& path, const TwinOptions& o = {}) {
  const bool mixtral = s.architecture == "MixtralForCausalLM";
  const std::string arch = mixtral ? "llama" : "qwen3moe";
  const int64_t Dh = test::random_hf_head_dim(s), D = s.dim;
  const int64_t Fe = mixtral ? s.ffn_dim : s.expert_ffn_dim;
  test::GgufWriter w;
  w.add_string("general.architecture", arch);
  const auto u32 = [&](const std::string& key, int64_t v) {
    w.add_u32(arch + "." + key, static_cast<uint32_t>(v));
  };
  u32("context_length", s.context_length);
  u32("embedding_length", D);
  u32("block_count", s.n_layers);
  u32("feed_forward_length", s.ffn_dim);
  u32("attention.head_count", s.n_heads);
  u32("attention.head_count_kv", s.n_kv_heads);
  u32("attention.key_length", Dh);
  u32("expert_count", s.n_experts);
  u32("expert_used_count", o.n_experts_used > 0 ? o.n_experts_used : s.n_experts_used);
  if (!mixtral) u32("expert_feed_forward_length", Fe);
  if (o.gating_func != 0) u32("expert_gating_func", o.gating_func);
  if (o.shared_experts != 0) u32("expert_shared_count", o.shared_experts);
  w.add_f32(arch + ".attention.layer_norm_rms_epsilon", static_cast<float>(s.rms_eps));
  w.add_f32(arch + ".rope.freq_base", static_cast<float>(s.rope_theta));
  const test::RandomVocab vocab = test::make_random_vocab(s.vocab_size);
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_array_string("tokenizer.ggml.tokens", vocab.tokens);
  w.add_array_f32("tokenizer.ggml.scores", vocab.scores);
  w.add_array_i32("tokenizer.ggml.token_type", vocab.types);
  const std::vector<HfTensor> tensors = test::random_hf_tensors(s);
  const auto find = [&](const std::string& name) -> const HfTensor& {
    for (const HfTensor& t : tensors) {
      if (t.name == name) return t;
    }
    throw Error("no tensor " + name);
  };
  const auto add = [&](const std::string& name, const HfTensor& t, std::vector<float> values) {
    w.add_tensor(name, std::vector<int64_t>(t.shape.rbegin(), t.shape.rend()), values);
  };
  add("token_embd.weight", find("model.embed_tokens.weight"),
      find("model.embed_tokens.weight").values);
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string hf = "model.layers." + std::to_string(l) + ".";
    const std::string g = "blk." + std::to_string(l) + ".";
    const auto copy = [&](const std::string& from, const std::string& to) {
      add(g + to, find(hf + from), find(hf + from).values);
    };
    copy("input_layernorm.weight", "attn_norm.weight");
    for (const auto& [proj, heads] : {std::pair{"q", s.n_heads}, std::pair{"k", s.n_kv_heads}}) {
      const HfTensor& t = find(hf + "self_attn." + proj + "_proj.weight");
      add(g + "attn_" + proj + ".weight", t,
          mixtral ? permute_rows(t.values, heads, Dh, D) : t.values);
    }
    copy("self_attn.v_proj.weight", "attn_v.weight");
    copy("self_attn.o_proj.weight", "attn_output.weight");
    if (!mixtral) {
      copy("self_attn.q_norm.weight", "attn_q_norm.weight");
      copy("self_attn.k_norm.weight", "attn_k_norm.weight");
    }
    copy("post_attention_layernorm.weight", "ffn_norm.weight");
    const std::string moe = mixtral ? "block_sparse_moe." : "mlp.";
    copy(moe + "gate.weight", "ffn_gate_inp.weight");
    const auto stack = [&](const std::string& hf_name, const std::string& gguf_name, int64_t rows,
                           int64_t cols) {
      std::vector<float> all;
      for (int e = 0; e < s.n_experts; ++e) {
        const std::vector<float>& v =
            find(hf + moe + "experts." + std::to_string(e) + "." + hf_name).values;
        all.insert(all.end(), v.begin(), v.end());
      }
      w.add_tensor(g + gguf_name, {cols, rows, s.n_experts}, all, o.expert_type);
    };
    stack(mixtral ? "w1.weight" : "gate_proj.weight", "ffn_gate_exps.weight", Fe, D);
    stack(mixtral ? "w3.weight" : "up_proj.weight", "ffn_up_exps.weight", Fe, D);
    stack(mixtral ? "w2.weight" : "down_proj.weight", "ffn_down_exps.weight", D, Fe);
  }
  add("output_norm.weight", find("model.norm.weight"), find("model.norm.weight").values);
  add("output.weight", find("lm_head.weight"), find("lm_head.weight").values);
  w.write(path);
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("bitexact-moe-" + name + "-" + std::to_string(::getpid()) + ".gguf"))
      .string();
}

TEST(MoeModel, Qwen3MoeFolderAndItsGgufTwinGiveTheSameBits) {
  const RandomHfSpec s = moe_spec("Qwen3MoeForCausalLM", 3);
  const test::RandomHfFolder folder("qwen3moe", s);
  const std::string twin = temp_path("qwen3moe"), other_k = temp_path("qwen3moe-k1");
  write_moe_gguf(s, twin);
  write_moe_gguf(s, other_k, {.n_experts_used = 1});
  const std::vector<int32_t> prompt = test::random_prompt(37, s.vocab_size, 4);
  const EngineRows from_folder = rows_of(folder.path(), prompt);
  EXPECT_TRUE(same_bits(rows_of(twin, prompt), from_folder));
  // Negative control: one expert per token instead of three is far from the folder's logits.
  EXPECT_GT(worst_row_difference(rows_of(other_k, prompt), from_folder), 1e-2);
  const LoadedModel m = load_model(twin, {});
  EXPECT_EQ(m.config.n_experts, 8);
  EXPECT_EQ(m.config.n_experts_used, 3);
  EXPECT_EQ(m.config.expert_ffn_dim, 24);
  EXPECT_TRUE(m.config.norm_topk_prob);
  EXPECT_EQ(parameter_count(m.config), m.parameter_count);
  std::filesystem::remove(twin);
  std::filesystem::remove(other_k);
}

TEST(MoeModel, MixtralFolderAndItsLlamaGgufTwinAgree) {
  const RandomHfSpec s = moe_spec("MixtralForCausalLM", 5);
  const test::RandomHfFolder folder("mixtral", s);
  const std::string twin = temp_path("mixtral");
  write_moe_gguf(s, twin);
  const std::vector<int32_t> prompt = test::random_prompt(29, s.vocab_size, 6);
  const EngineRows from_folder = rows_of(folder.path(), prompt);
  // Adjacent-pair vs rotate-half RoPE: the same math with q.k summed in another order.
  const double diff = worst_row_difference(rows_of(twin, prompt), from_folder);
  std::printf("mixtral folder vs GGUF twin: worst row difference %.3g\n", diff);
  EXPECT_LT(diff, test::kLogitNormBound);
  const LoadedModel m = load_model(twin, {});
  EXPECT_EQ(m.config.architecture, "llama");
  EXPECT_EQ(m.config.n_experts, 8);
  EXPECT_EQ(m.config.expert_ffn_dim, 40);  // feed_forward_length: Mixtral's files have no other
  EXPECT_EQ(parameter_count(m.config), m.parameter_count);
  std::filesystem::remove(twin);
}

TEST(MoeModel, Q8ExpertsGiveTheBitsOfTheirDequantizedCopy) {
  RandomHfSpec s = moe_spec("Qwen3MoeForCausalLM", 7);
  s.dim = 64;
  s.expert_ffn_dim = 32;  // rows of 32: whole Q8_0 blocks for the down projection too
  const std::string path = temp_path("qwen3moe-q8");
  write_moe_gguf(s, path, {.expert_type = gguf::GgmlType::Q8_0});
  const std::vector<int32_t> prompt = test::random_prompt(21, s.vocab_size, 8);
  const LoadedModel held = load_model(path, {});
  EXPECT_NE(held.weight_storage.find("Q8_0"), std::string::npos) << held.weight_storage;
  EXPECT_TRUE(same_bits(rows_of(path, prompt), rows_of(path, prompt, /*dequantize=*/true)));
  std::filesystem::remove(path);
}

TEST(MoeModel, ConfigsTheLayerCannotRunAreRefusedByName) {
  struct Case {
    std::string key;
    nlohmann::json value;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"decoder_sparse_step", 2, "layers without experts are not supported"},
      {"mlp_only_layers", {0}, "layers without experts are not supported"},
      {"num_experts_per_tok", 9, "expert_used_count 9, expected 1 to expert_count 8"},
      {"num_experts_per_tok", nullptr, "\"num_experts_per_tok\" is missing"},
      {"num_experts", nullptr, "\"num_experts\" (or \"num_local_experts\") is missing"},
      {"shared_expert_intermediate_size", 64, "shared experts are not supported"},
  };
  for (const Case& c : cases) {
    const test::RandomHfFolder folder("qwen3moe-bad", moe_spec("Qwen3MoeForCausalLM", 9));
    const std::string config = folder.path() + "/config.json";
    nlohmann::json j = nlohmann::json::parse(std::ifstream(config));
    if (c.value.is_null()) {
      j.erase(c.key);
    } else {
      j[c.key] = c.value;
    }
    test::write_text(config, j.dump());
    try {
      load_model(folder.path(), {});
      ADD_FAILURE() << c.key << " = " << c.value.dump() << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
  }
}

TEST(MoeModel, GgufRoutingTheLayerCannotRunIsRefusedByName) {
  const RandomHfSpec s = moe_spec("Qwen3MoeForCausalLM", 12);
  const std::string softmax = temp_path("gating-softmax"), sigmoid = temp_path("gating-sigmoid"),
                    shared = temp_path("shared");
  write_moe_gguf(s, softmax, {.gating_func = 1});
  write_moe_gguf(s, sigmoid, {.gating_func = 2});
  write_moe_gguf(s, shared, {.shared_experts = 1});
  EXPECT_EQ(load_model(softmax, {}).config.n_experts, 8);
  for (const auto& [path, message] : {std::pair{sigmoid, "only softmax routing is supported"},
                                      std::pair{shared, "shared experts are not supported"}}) {
    try {
      load_model(path, {});
      ADD_FAILURE() << path << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
  for (const std::string& p : {softmax, sigmoid, shared}) std::filesystem::remove(p);
}

TEST(MoeModel, TransformersSaveNamesTheExpertCountNumLocalExperts) {
  // transformers 5 writes a Qwen3-MoE config with "num_local_experts" and no "num_experts".
  const test::RandomHfFolder folder("qwen3moe-alias", moe_spec("Qwen3MoeForCausalLM", 10));
  const std::string config = folder.path() + "/config.json";
  nlohmann::json j = nlohmann::json::parse(std::ifstream(config));
  j["num_local_experts"] = j["num_experts"];
  j.erase("num_experts");
  test::write_text(config, j.dump());
  EXPECT_EQ(load_model(folder.path(), {}).config.n_experts, 8);
}

// --- the engine invariance matrix on random:qwen3-moe-tiny ---

std::vector<EngineRequest> moe_requests() {
  const int lengths[] = {1, 2, 5, 16, 17, 33, 64, 65, 100, 150, 199};
  return test::matrix_requests(20, lengths, /*shared=*/12);
}

LoadedModel load_tiny(int threads, ReductionOrder order = ReductionOrder::canonical) {
  LoadOptions o;
  o.threads = threads;
  o.max_batch_tokens = 4096;
  o.max_logit_rows = 64;
  o.reduction_order = order;
  return load_model("random:qwen3-moe-tiny:3", o);
}

class MoeEngineMatrix : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new LoadedModel(load_tiny(1));
    requests_ = new std::vector<EngineRequest>(moe_requests());
    alone_ = new std::vector<test::RequestResult>();
    for (const EngineRequest& r : *requests_) alone_->push_back(test::run_alone(*model_, r));
  }
  static void TearDownTestSuite() {
    delete alone_;
    delete requests_;
    delete model_;
  }
  static inline LoadedModel* model_ = nullptr;
  static inline std::vector<EngineRequest>* requests_ = nullptr;
  static inline std::vector<test::RequestResult>* alone_ = nullptr;
};

TEST_F(MoeEngineMatrix, EveryScheduleEqualsEachRequestAlone) {
  EXPECT_TRUE((*alone_)[19].samples.at(0).same_bits((*alone_)[4].samples.at(0)));
  LoadedModel two_threads = load_tiny(2);
  for (LoadedModel* model : {model_, &two_threads}) {
    for (const test::Schedule& s : test::matrix_schedules()) {
      EngineStats stats;
      const int differ =
          test::count_differences(test::run_schedule(*model, *requests_, s, &stats), *alone_);
      std::printf("moe matrix (%d threads): %-40s steps %4llu preemptions %3llu differ %d\n",
                  model == model_ ? 1 : 2, s.name.c_str(),
                  static_cast<unsigned long long>(stats.steps),
                  static_cast<unsigned long long>(stats.preemptions), differ);
      EXPECT_EQ(differ, 0) << s.name;
      if (s.options.kv_cache_tokens > 0) {
        EXPECT_GT(stats.preemptions, 0u) << s.name;
      }
    }
  }
}

TEST_F(MoeEngineMatrix, ScoresEqualTheGenerationLogprobs) {
  Engine engine(*model_, EngineOptions{});
  int compared = 0;
  for (size_t i = 0; i < requests_->size(); ++i) {
    for (const test::SampleResult& s : (*alone_)[i].samples) {
      const EngineEvent scored = engine.score((*requests_)[i].prompt, s.tokens);
      ASSERT_EQ(scored.score_logprobs.size(), s.logprobs.size());
      for (size_t t = 0; t < s.logprobs.size(); ++t) {
        EXPECT_EQ(std::bit_cast<uint32_t>(scored.score_logprobs[t]),
                  std::bit_cast<uint32_t>(s.logprobs[t]))
            << "request " << i << " token " << t;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 200);
}

TEST_F(MoeEngineMatrix, NegativeControlFastModeDiffers) {
  LoadedModel fast = load_tiny(1, ReductionOrder::split_k_by_m);
  std::vector<test::RequestResult> alone;
  for (const EngineRequest& r : *requests_) alone.push_back(test::run_alone(fast, r));
  const int differ = test::count_differences(
      test::run_schedule(fast, *requests_, test::matrix_schedules()[0], nullptr), alone);
  std::printf("moe negative control: %d samples differ from their run alone\n", differ);
  EXPECT_GT(differ, 0);
}

}  // namespace
}  // namespace bx
