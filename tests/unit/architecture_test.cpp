// The architecture table (model/architecture.h) and the quant-format registry (kernels/quant.h)
// against what they describe, from code that does not read them:
//   - every Hugging Face family of the table loads a folder written by tests/support's own
//     writer, and parameter_count(config) equals the checkpoint's own count (so the table's
//     weight list, shapes and groups are exactly the tensors such a model has);
//   - the table's names are unique in each format and its lookups find each family;
//   - the block formats' sizes agree with GGUF's ggml type table, and a row dequantized through
//     the registry equals gguf::dequantize_to_f32 of the same tensor.
// Negative control: a config with a group the checkpoint lacks counts other parameters.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/quant.h"
#include "model/architecture.h"
#include "model/gguf.h"
#include "model/llama.h"
#include "model/loader.h"
#include "support/gguf_writer.h"
#include "support/random_hf_model.h"

namespace bx {
namespace {

TEST(Architecture, EveryFamilyIsFoundByItsNames) {
  for (const Architecture& a : architectures()) {
    EXPECT_EQ(find_hf_architecture(a.hf_class), &a) << a.family;
    if (!a.gguf_name.empty()) {
      EXPECT_EQ(find_gguf_architecture(a.gguf_name), &a) << a.family;
    }
  }
  EXPECT_EQ(find_hf_architecture("GPT2LMHeadModel"), nullptr);
  EXPECT_EQ(find_gguf_architecture("gpt2"), nullptr);
  EXPECT_EQ(find_gguf_architecture(""), nullptr);
  EXPECT_EQ(gguf_architecture_list(),
            "llama, qwen2, qwen3, qwen3moe, gemma3");  // Mistral GGUFs are "llama"
  EXPECT_EQ(find_gguf_architecture("mistral"), nullptr);
  EXPECT_EQ(hf_architecture_list(),
            "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, "
            "Qwen3MoeForCausalLM, MixtralForCausalLM, Gemma3ForCausalLM");
}

TEST(Architecture, WeightNamesAreUniqueInEachFormat) {
  std::set<std::string> gguf, hf;
  for (const LayerWeight& w : layer_weights()) {
    EXPECT_TRUE(gguf.insert(gguf_layer_name(7, w)).second) << w.gguf;
    if (w.group != WeightGroup::experts) {
      EXPECT_TRUE(hf.insert(hf_layer_name(7, w)).second) << w.hf;
    }
  }
  // A MoE family's expert names: unique, distinct from the dense names, expert index filled in.
  for (const Architecture& a : architectures()) {
    if (a.moe == nullptr) continue;
    std::set<std::string> names = hf;
    for (const LayerWeight& w : layer_weights()) {
      if (w.group != WeightGroup::experts) continue;
      for (int e = 0; e < 3; ++e) {
        const std::string name = hf_expert_name(a, 7, w, e);
        EXPECT_EQ(name.find('{'), std::string::npos) << name;
        if (w.per_expert || e == 0) {
          EXPECT_TRUE(names.insert(name).second) << name;
        }
      }
    }
  }
  EXPECT_EQ(gguf_layer_name(3, layer_weights()[1]), "blk.3.attn_q.weight");
  EXPECT_EQ(hf_layer_name(3, layer_weights()[1]), "model.layers.3.self_attn.q_proj.weight");
  const Architecture& qwen3moe = *find_hf_architecture("Qwen3MoeForCausalLM");
  const Architecture& mixtral = *find_hf_architecture("MixtralForCausalLM");
  for (const LayerWeight& w : layer_weights()) {
    if (w.field == &LlamaLayerWeights::expert_up) {
      EXPECT_EQ(hf_expert_name(qwen3moe, 3, w, 5), "model.layers.3.mlp.experts.5.up_proj.weight");
      EXPECT_EQ(hf_expert_name(mixtral, 3, w, 5),
                "model.layers.3.block_sparse_moe.experts.5.w3.weight");
      EXPECT_EQ(gguf_layer_name(3, w), "blk.3.ffn_up_exps.weight");
    }
  }
}

TEST(Architecture, ParameterCountIsTheCheckpointsForEveryFamily) {
  for (const Architecture& a : architectures()) {
    for (const bool bias : {false, true}) {
      for (const bool tied : {false, true}) {
        test::RandomHfSpec spec;
        spec.architecture = std::string(a.hf_class);
        spec.attention_bias = bias;
        spec.tied_output = tied;
        if ((a.family == "mistral" || a.family == "mixtral") && bias) continue;  // no such key
        test::RandomHfFolder folder("arch-count", spec);
        const LoadedModel m = load_model(folder.path(), LoadOptions{});
        EXPECT_EQ(parameter_count(m.config), m.parameter_count)
            << a.hf_class << (bias ? " with biases" : "") << (tied ? " tied" : "");
        EXPECT_EQ(m.config.qk_norm, a.qk_norm) << a.hf_class;
        // Negative control: a group the checkpoint does not have changes the count.
        ModelConfig other = m.config;
        other.qk_norm = !other.qk_norm;
        EXPECT_NE(parameter_count(other), m.parameter_count) << a.hf_class;
      }
    }
  }
}

TEST(QuantRegistry, BlockFormatsAgreeWithTheGgufTypeTable) {
  const std::pair<DType, gguf::GgmlType> pairs[] = {
      {DType::q8_0, gguf::GgmlType::Q8_0},     {DType::q4_0, gguf::GgmlType::Q4_0},
      {DType::q4_1, gguf::GgmlType::Q4_1},     {DType::q5_0, gguf::GgmlType::Q5_0},
      {DType::q5_1, gguf::GgmlType::Q5_1},     {DType::q2_k, gguf::GgmlType::Q2_K},
      {DType::q3_k, gguf::GgmlType::Q3_K},     {DType::q4_k, gguf::GgmlType::Q4_K},
      {DType::q5_k, gguf::GgmlType::Q5_K},     {DType::q6_k, gguf::GgmlType::Q6_K},
      {DType::iq4_nl, gguf::GgmlType::IQ4_NL}, {DType::iq4_xs, gguf::GgmlType::IQ4_XS}};
  EXPECT_EQ(std::size(quant::kBlockFormats), std::size(pairs));
  for (const auto& [dtype, ggml] : pairs) {
    const quant::BlockFormat& f = quant::block_format(dtype);
    const gguf::GgmlTypeTraits* traits = gguf::ggml_type_traits(ggml);
    ASSERT_NE(traits, nullptr);
    EXPECT_EQ(f.name, traits->name);
    EXPECT_EQ(f.block_elements, traits->block_size);
    EXPECT_EQ(f.block_bytes, traits->type_size);
    EXPECT_EQ(gguf::to_dtype(ggml), dtype);
    // A quantized row through the registry equals the loader's dequantization: quantized by the
    // test writer where it can, otherwise bytes of a fixed pattern.
    constexpr int64_t kN = 256;
    std::vector<std::byte> blocks;
    if (test::writer_block_size(ggml) > 1) {
      std::vector<float> x(kN);
      for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 23) * 0.37f - 4.0f;
      blocks = test::quantize(x, ggml);
    } else {
      blocks.resize(static_cast<size_t>(quant::bytes_for(dtype, kN)));
      for (size_t i = 0; i < blocks.size(); ++i)
        blocks[i] = static_cast<std::byte>((i * 37 + 11) & 0x3b);
    }
    ASSERT_EQ(static_cast<int64_t>(blocks.size()), quant::bytes_for(dtype, kN));
    gguf::TensorInfo info;
    info.name = "t";
    info.type = ggml;
    info.dims = {kN};
    info.n_elements = kN;
    std::vector<float> loaded(kN), registry(kN);
    gguf::dequantize_to_f32(info, blocks, loaded.data());
    quant::dequantize_row(dtype, blocks.data(), kN, registry.data());
    EXPECT_EQ(std::memcmp(loaded.data(), registry.data(), kN * sizeof(float)), 0) << f.name;
  }
  EXPECT_FALSE(quant::is_block_format(DType::bf16));
  EXPECT_THROW(quant::block_format(DType::f32), Error);
}

// A head_dim beyond the backend's attention is refused from config.json alone (the folder has
// no weights, so an error about them would mean the check came too late), naming the value and
// the head dims the backend takes.
TEST(Architecture, AHeadDimTheBackendCannotRunIsRefusedBeforeTheWeights) {
  test::RandomHfSpec spec;
  spec.architecture = "Gemma3ForCausalLM";
  spec.head_dim = kAttentionMaxHeadDim + 8;
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("bitexact-head-dim-" + std::to_string(::getpid())))
          .string();
  std::filesystem::create_directories(dir);
  test::write_text(dir + "/config.json", test::random_hf_config(spec).dump(2));
  std::string error = "(loaded without an error)";
  try {
    load_model(dir, LoadOptions{});
  } catch (const Error& e) {
    error = e.what();
  }
  std::filesystem::remove_all(dir);
  EXPECT_NE(error.find("head_dim " + std::to_string(spec.head_dim)), std::string::npos) << error;
  EXPECT_NE(error.find("head dims up to " + std::to_string(kAttentionMaxHeadDim)),
            std::string::npos)
      << error;
}

}  // namespace
}  // namespace bx
