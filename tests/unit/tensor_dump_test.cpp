// The per-layer tensor dump (model/tensor_dump.h): every forward call writes the named
// intermediates of model/tensor_observer.h as .npy files with an index.json, the dumped logits
// are the forward call's logits bit for bit, observing changes no output bit, and
// BITEXACT_DUMP=<folder> turns it on for every loaded model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/loader.h"
#include "model/tensor_dump.h"

namespace bx {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A fresh folder under the temp directory, removed at the end of the test.
class TempFolder {
 public:
  explicit TempFolder(const std::string& name)
      : path_(fs::temp_directory_path() /
              ("bitexact_dump_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
  }
  ~TempFolder() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Npy {
  std::string header;  // the dict literal, as written
  std::vector<float> values;
};

// A .npy file of format 1.0 (the one write_npy_f32 writes); fails the test on anything else.
Npy read_npy(const fs::path& path) {
  const std::string bytes = read_file(path);
  Npy npy;
  EXPECT_GE(bytes.size(), 10u) << path;
  if (bytes.size() < 10) return npy;
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8)) << path;
  const size_t header_length =
      static_cast<uint8_t>(bytes[8]) | (size_t{static_cast<uint8_t>(bytes[9])} << 8);
  EXPECT_EQ((10 + header_length) % 64, 0u) << "data must start 64-byte aligned: " << path;
  npy.header = bytes.substr(10, header_length);
  const size_t data = 10 + header_length;
  EXPECT_EQ((bytes.size() - data) % sizeof(float), 0u) << path;
  npy.values.resize((bytes.size() - data) / sizeof(float));
  std::memcpy(npy.values.data(), bytes.data() + data, npy.values.size() * sizeof(float));
  return npy;
}

LoadOptions cpu_options() {
  LoadOptions o;
  o.threads = 2;
  o.max_batch_tokens = 64;
  o.max_logit_rows = 8;
  return o;
}

// One sequence of 5 tokens at positions 0..4 in KV block 0; logits of rows 2 and 4.
struct Batch {
  std::vector<int32_t> tokens{3, 17, 5, 900, 42};
  std::vector<int32_t> positions{0, 1, 2, 3, 4};
  int32_t table[1] = {0};
  std::vector<const int32_t*> tables = std::vector<const int32_t*>(5, table);
  std::vector<int32_t> rows{2, 4};
  ForwardBatch view() const { return ForwardBatch{tokens, positions, tables, rows}; }
};

constexpr const char* kModel = "random:qwen3-tiny:7";  // q/k norm: every step has something to do

struct Logits {
  std::vector<float> logits, logprobs;
};

Logits run(LoadedModel& m, const Batch& batch) {
  const size_t n = batch.rows.size() * static_cast<size_t>(m.config.vocab_size);
  Logits out{std::vector<float>(n), std::vector<float>(n)};
  m.model->forward(batch.view(), out.logits.data(), out.logprobs.data());
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(TensorDump, WritesEveryNamedIntermediateWithItsShape) {
  TempFolder folder("names");
  LoadedModel m = load_model(kModel, cpu_options());
  m.reserve_kv_blocks(2);
  m.model->set_observer(std::make_shared<TensorDump>(folder.path()));
  const Batch batch;
  run(m, batch);

  const json index = json::parse(read_file(folder.path() / "index.json"));
  EXPECT_EQ(index["format"], "bitexact-tensor-dump");
  EXPECT_EQ(index["backend"], m.backend->name());
  ASSERT_EQ(index["calls"].size(), 1u);
  const json& call = index["calls"][0];
  EXPECT_EQ(call["tokens"].get<std::vector<int32_t>>(), batch.tokens);
  EXPECT_EQ(call["positions"].get<std::vector<int32_t>>(), batch.positions);
  EXPECT_EQ(call["logit_rows"].get<std::vector<int32_t>>(), batch.rows);

  const ModelConfig& c = m.config;
  const int64_t T = 5, R = 2, D = c.dim, Q = c.q_dim(), KV = c.kv_dim();
  struct Expected {
    std::string name;
    int layer;
    int64_t rows, cols;
  };
  std::vector<Expected> expected{{"embed", -1, T, D}};
  for (int l = 0; l < c.n_layers; ++l) {
    for (const Expected& e : std::vector<Expected>{{"attn_norm", l, T, D},
                                                   {"q", l, T, Q},
                                                   {"k", l, T, KV},
                                                   {"v", l, T, KV},
                                                   {"q_rope", l, T, Q},
                                                   {"k_rope", l, T, KV},
                                                   {"attn", l, T, Q},
                                                   {"attn_residual", l, T, D},
                                                   {"ffn_norm", l, T, D},
                                                   {"ffn_act", l, T, c.ffn_dim},
                                                   {"ffn_residual", l, T, D}}) {
      expected.push_back(e);
    }
  }
  for (const Expected& e : std::vector<Expected>{{"final_norm", -1, R, D},
                                                 {"logits", -1, R, c.vocab_size},
                                                 {"logprobs", -1, R, c.vocab_size}}) {
    expected.push_back(e);
  }
  const json& tensors = call["tensors"];
  ASSERT_EQ(tensors.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const Expected& e = expected[i];
    const json& t = tensors[i];
    SCOPED_TRACE(e.name + " of layer " + std::to_string(e.layer));
    EXPECT_EQ(t["name"], e.name);
    EXPECT_EQ(t["layer"], e.layer);
    EXPECT_EQ(t["shape"], json::array({e.rows, e.cols}));
    EXPECT_EQ(t["dtype"], "float32");
    const std::string file = t["file"].get<std::string>();
    const std::string stem = e.layer < 0 ? e.name : "blk." + std::to_string(e.layer) + "." + e.name;
    EXPECT_EQ(file, "000000/" + stem + ".npy");
    const Npy npy = read_npy(folder.path() / file);
    EXPECT_NE(npy.header.find("'descr': '<f4'"), std::string::npos) << npy.header;
    EXPECT_NE(npy.header.find("'shape': (" + std::to_string(e.rows) + ", " +
                              std::to_string(e.cols) + ")"),
              std::string::npos)
        << npy.header;
    EXPECT_EQ(npy.values.size(), static_cast<size_t>(e.rows * e.cols));
  }
}

TEST(TensorDump, DumpedLogitsAreTheForwardLogitsBitForBit) {
  TempFolder folder("logits");
  LoadedModel m = load_model(kModel, cpu_options());
  m.reserve_kv_blocks(2);
  m.model->set_observer(std::make_shared<TensorDump>(folder.path()));
  const Batch batch;
  const Logits out = run(m, batch);
  EXPECT_TRUE(same_bits(read_npy(folder.path() / "000000" / "logits.npy").values, out.logits));
  EXPECT_TRUE(same_bits(read_npy(folder.path() / "000000" / "logprobs.npy").values, out.logprobs));
  // The snapshots are taken between the ops: q before the in-place norm and RoPE differs from q
  // after them (a dump that copied at the end of the layer would show the same values twice).
  EXPECT_FALSE(same_bits(read_npy(folder.path() / "000000" / "blk.0.q.npy").values,
                         read_npy(folder.path() / "000000" / "blk.0.q_rope.npy").values));

  // Observing changes no output bit: the same batch on a model without an observer.
  LoadedModel plain = load_model(kModel, cpu_options());
  plain.reserve_kv_blocks(2);
  const Logits reference = run(plain, batch);
  EXPECT_TRUE(same_bits(reference.logits, out.logits));
  EXPECT_TRUE(same_bits(reference.logprobs, out.logprobs));
}

TEST(TensorDump, EachForwardCallGetsItsOwnFolder) {
  TempFolder folder("calls");
  LoadedModel m = load_model(kModel, cpu_options());
  m.reserve_kv_blocks(2);
  auto dump = std::make_shared<TensorDump>(folder.path());
  m.model->set_observer(dump);
  Batch first;
  const Logits a = run(m, first);
  Batch second;  // the next token of the same sequence, at position 5
  second.tokens = {7};
  second.positions = {5};
  second.tables = {second.table};
  second.rows = {0};
  const Logits b = run(m, second);
  EXPECT_EQ(dump->calls(), 2);
  const json index = json::parse(read_file(folder.path() / "index.json"));
  ASSERT_EQ(index["calls"].size(), 2u);
  EXPECT_EQ(index["calls"][1]["folder"], "000001");
  EXPECT_EQ(index["calls"][1]["positions"], json::array({5}));
  EXPECT_TRUE(same_bits(read_npy(folder.path() / "000001" / "logits.npy").values, b.logits));
  EXPECT_TRUE(same_bits(read_npy(folder.path() / "000000" / "logits.npy").values, a.logits));
  EXPECT_EQ(read_npy(folder.path() / "000001" / "blk.1.attn.npy").values.size(),
            static_cast<size_t>(m.config.q_dim()));
}

TEST(TensorDump, TheEnvironmentVariableTurnsItOnForLoadedModels) {
  TempFolder folder("env");
  ASSERT_EQ(::unsetenv(kTensorDumpEnv), 0);
  EXPECT_EQ(load_model(kModel, cpu_options()).model->observer(), nullptr);
  EXPECT_FALSE(fs::exists(folder.path()));

  ASSERT_EQ(::setenv(kTensorDumpEnv, folder.path().c_str(), 1), 0);
  LoadedModel m = load_model(kModel, cpu_options());
  ::unsetenv(kTensorDumpEnv);
  ASSERT_NE(m.model->observer(), nullptr);
  m.reserve_kv_blocks(2);
  const Logits out = run(m, Batch{});
  EXPECT_TRUE(same_bits(read_npy(folder.path() / "000000" / "logits.npy").values, out.logits));
}

TEST(TensorDump, AFolderThatCannotBeMadeIsOneClearError) {
  TempFolder folder("bad");
  fs::create_directories(folder.path());
  std::ofstream(folder.path() / "file") << "x";
  const fs::path under_a_file = folder.path() / "file" / "dump";
  try {
    TensorDump dump(under_a_file);
    ADD_FAILURE() << "made a dump folder under a regular file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(under_a_file.string()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace bx
