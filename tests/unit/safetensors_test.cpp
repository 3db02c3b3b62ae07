// The safetensors reader, the sharded index, config.json parsing and the Hugging Face folder
// loader: valid files read back exactly, and every validation rule rejects its bad input with one
// bx::Error that names the problem (each test asserts the message).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "model/hf_config.h"
#include "model/loader.h"
#include "model/safetensors.h"
#include "support/random_hf_model.h"
#include "support/safetensors_writer.h"

namespace bx {
namespace {

using safetensors::File;
using test::SafetensorsWriter;
using Bytes = std::vector<std::byte>;

void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "expected a bx::Error containing '" << *parts.begin() << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    for (const std::string& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
    }
  }
}

File parse(const Bytes& b) {
  return File::parse(b, "test.safetensors");
}
void expect_parse_error(const Bytes& b, std::initializer_list<std::string> parts) {
  expect_error([&] { (void)parse(b); }, parts);
}
// A file around `header` (padded) and `data_bytes` zero bytes of data.
Bytes with_header(const std::string& header, size_t data_bytes) {
  return SafetensorsWriter::assemble(header, Bytes(data_bytes));
}

std::vector<float> to_f32(const File& f, const std::string& name) {
  const safetensors::TensorInfo* t = f.find_tensor(name);
  EXPECT_NE(t, nullptr) << name;
  std::vector<float> out(static_cast<size_t>(t->n_elements));
  safetensors::convert_to_f32(*t, f.tensor_data(*t), out.data());
  return out;
}

// --- one file ---

TEST(Safetensors, ReadsTensorsMetadataAndValuesExactly) {
  SafetensorsWriter w;
  w.add_metadata("format", "pt");
  const std::vector<float> a = {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 65504.0f};
  w.add_tensor("b.f32", {2, 3}, a, "F32");
  w.add_tensor("a.f16", {6}, a, "F16");       // every value exact in f16
  w.add_tensor("c.bf16", {3, 2}, a, "BF16");  // 65504 rounds to 65536 in bf16
  w.add_raw_tensor("d.i64", "I64", {2}, Bytes(16));
  w.add_raw_tensor("e.empty", "F32", {0, 4}, {});
  const Bytes b = w.bytes();
  const File f = parse(b);
  EXPECT_EQ(f.header_length() % 8, 0u);
  EXPECT_EQ(f.data_offset(), 8 + f.header_length());
  ASSERT_EQ(f.tensors().size(), 5u);
  EXPECT_EQ(f.tensors()[0].name, "a.f16");  // sorted by name
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const safetensors::TensorInfo* t = f.find_tensor("b.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t->n_elements, 6);
  EXPECT_EQ(t->n_bytes(), 24u);
  EXPECT_EQ(to_f32(f, "b.f32"), a);
  EXPECT_EQ(to_f32(f, "a.f16"), a);
  std::vector<float> a_bf16 = a;
  a_bf16[5] = 65536.0f;
  EXPECT_EQ(to_f32(f, "c.bf16"), a_bf16);
  EXPECT_EQ(f.find_tensor("e.empty")->n_elements, 0);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  // Parsed but not loadable: I64 is named with the supported dtypes.
  std::vector<float> out(2);
  expect_error(
      [&] {
        safetensors::convert_to_f32(*f.find_tensor("d.i64"), f.tensor_data(*f.find_tensor("d.i64")),
                                    out.data());
      },
      {"'d.i64'", "dtype I64", "supported are F32, F16 and BF16"});
}

TEST(Safetensors, EmptyHeaderAndUnpaddedHeaderParse) {
  EXPECT_TRUE(parse(SafetensorsWriter::assemble("{}", {}, false)).tensors().empty());
  EXPECT_TRUE(parse(SafetensorsWriter::assemble("{}", {})).tensors().empty());  // trailing spaces
}

TEST(Safetensors, TruncatedFiles) {
  expect_parse_error(Bytes(5), {"test.safetensors", "truncated file", "8 bytes", "has 5"});
  Bytes b = SafetensorsWriter::assemble("{}", {});
  const uint64_t too_long = 1000;
  std::memcpy(b.data(), &too_long, 8);
  expect_parse_error(b, {"truncated file", "header needs 1000 bytes", "only 8 are left"});
  // A tensor's data cut off: its offsets lie past the end of the data section.
  SafetensorsWriter w;
  w.add_tensor("x", {4}, std::vector<float>{1, 2, 3, 4});
  Bytes cut = w.bytes();
  cut.resize(cut.size() - 3);
  expect_parse_error(
      cut, {"tensor 'x'", "data_offsets [0, 16]", "past the end of the data section (13 bytes)"});
}

TEST(Safetensors, HeaderLengthIsBounded) {
  Bytes b(16);
  const uint64_t huge = safetensors::kMaxHeaderBytes + 1;
  std::memcpy(b.data(), &huge, 8);
  expect_parse_error(b, {"header length 100000001", "exceeds the limit of 100000000"});
  const uint64_t max = ~uint64_t{0};
  std::memcpy(b.data(), &max, 8);
  expect_parse_error(b, {"exceeds the limit"});
}

TEST(Safetensors, BadHeaderJson) {
  expect_parse_error(with_header("[1, 2]", 0), {"does not start with '{'"});
  expect_parse_error(with_header("", 0), {"does not start with '{'"});
  expect_parse_error(with_header("{\"a\": ", 0), {"header: invalid JSON"});
  expect_parse_error(with_header("{\"a\": 1} x", 0), {"invalid JSON"});
  expect_parse_error(with_header("{\"a\xff\": 1}", 0), {"invalid JSON"});  // not UTF-8
  expect_parse_error(
      with_header(
          R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
          8),
      {"duplicate key \"x\""});
  expect_parse_error(
      with_header(R"({"x":{"dtype":"F32","dtype":"F16","shape":[],"data_offsets":[0,4]}})", 4),
      {"duplicate key \"dtype\""});
  expect_parse_error(with_header(R"({"x":{"shape":[[[1]]]}})", 0), {"nests deeper than 3 levels"});
}

TEST(Safetensors, BadMetadata) {
  expect_parse_error(with_header(R"({"__metadata__": [1]})", 0),
                     {"\"__metadata__\" is array", "expected an object of strings"});
  expect_parse_error(with_header(R"({"__metadata__": {"format": 1}})", 0),
                     {"\"__metadata__\" key 'format' is integer", "expected a string"});
}

TEST(Safetensors, BadTensorEntries) {
  auto entry = [](const std::string& body, size_t data) {
    return with_header("{\"w\": " + body + "}", data);
  };
  expect_parse_error(entry("[1]", 0), {"tensor 'w' is array", "dtype, shape and data_offsets"});
  expect_parse_error(entry(R"({"shape":[1],"data_offsets":[0,4]})", 4),
                     {"tensor 'w' has no \"dtype\""});
  expect_parse_error(entry(R"({"dtype":"F32","data_offsets":[0,4]})", 4), {"has no \"shape\""});
  expect_parse_error(entry(R"({"dtype":"F32","shape":[1]})", 4), {"has no \"data_offsets\""});
  expect_parse_error(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1})", 4),
                     {"unknown key 'extra'", "expected only dtype, shape and data_offsets"});
  expect_parse_error(entry(R"({"dtype":"Q4_0","shape":[1],"data_offsets":[0,4]})", 4),
                     {"unknown dtype 'Q4_0'", "expected one of BOOL", "BF16", "F32"});
  expect_parse_error(entry(R"({"dtype":7,"shape":[1],"data_offsets":[0,4]})", 4),
                     {"dtype is integer", "expected a string"});
  expect_parse_error(entry(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})", 4),
                     {"shape element 0 is -1", "expected an integer >= 0"});
  expect_parse_error(entry(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})", 4),
                     {"shape element 0 is 1.5"});
  expect_parse_error(entry(R"({"dtype":"F32","shape":{},"data_offsets":[0,4]})", 4),
                     {"shape is object", "expected an array"});
  expect_parse_error(
      entry(R"({"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]})", 4),
      {"has 9 dimensions", "at most 8"});
  expect_parse_error(
      entry(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]})", 4),
      {"overflows int64"});
  expect_parse_error(
      entry(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]})", 4),
      {"byte size that overflows uint64"});
  expect_parse_error(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})", 4),
                     {"data_offsets is [0]", "two integers [begin, end]"});
  expect_parse_error(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[0,-4]})", 4),
                     {"data_offsets [0,-4]", "two integers >= 0"});
  expect_parse_error(entry(R"({"dtype":"F32","shape":[0],"data_offsets":[4,0]})", 4),
                     {"end before they begin"});
  expect_parse_error(entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 4),
                     {"past the end of the data section (4 bytes)"});
  expect_parse_error(entry(R"({"dtype":"F32","shape":[2,2],"data_offsets":[0,12]})", 12),
                     {"hold 12 bytes", "dtype F32 and shape [2, 2] need 16"});
}

TEST(Safetensors, DataSectionMustBeTiledExactly) {
  expect_parse_error(
      with_header(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          12),
      {"tensors 'a' (bytes [0, 8)) and 'b' (bytes [4, 12)) overlap"});
  expect_parse_error(
      with_header(
          R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
          12),
      {"bytes [4, 8) before tensor 'b' belong to no tensor", "without holes"});
  expect_parse_error(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 6),
                     {"data section has 6 bytes but the tensors end at byte 4"});
  expect_parse_error(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
                     {"bytes [0, 4) before tensor 'a'"});
  // The same bytes twice is an overlap too.
  expect_parse_error(
      with_header(
          R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
          4),
      {"overlap"});
}

TEST(Safetensors, OpenErrorsNameThePath) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  expect_error([] { (void)File::open("/nonexistent/model.safetensors"); },
               {"/nonexistent/model.safetensors", "cannot open"});
  expect_error([&] { (void)File::open(dir); }, {"not a regular file", "safetensors"});
  const std::string empty = dir + "/bitexact-empty-" + std::to_string(::getpid()) + ".safetensors";
  SafetensorsWriter::write_bytes(empty, {});
  expect_error([&] { (void)File::open(empty); }, {empty, "empty file"});
  std::filesystem::remove(empty);
}

// --- against the format's reference implementation (the safetensors Python package) ---

// Runs `script` with BITEXACT_PYTHON and `args`; returns its stdout, or nullopt (the test skips)
// when no interpreter is configured.
std::optional<std::string> run_python(const std::string& script, const std::string& args,
                                      const std::string& dir) {
  const char* python = std::getenv("BITEXACT_PYTHON");
  if (python == nullptr || !std::filesystem::exists(python)) return std::nullopt;
  test::write_text(dir + "/script.py", script);
  const std::string out = dir + "/stdout.txt";
  const std::string command =
      std::string("'") + python + "' '" + dir + "/script.py' " + args + " > '" + out + "' 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(status, 0) << text.str();
  return text.str();
}

constexpr const char* kReferenceScript = R"(import sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load, save_file

mode, path = sys.argv[1], sys.argv[2]
if mode == "write":  # values the C++ side knows: (i - 5.5) / 4 and (i - 3) / 2
    a = ((np.arange(12, dtype=np.float32) - 5.5) / 4).reshape(3, 4)
    h = ((np.arange(6, dtype=np.float32) - 3) / 2).astype(np.float16).reshape(2, 3)
    save_file({"a": a, "h": h, "i": np.arange(4, dtype=np.int64)}, path, metadata={"format": "np"})
elif mode == "read":  # the C++ writer's file: F32 and F16 values, metadata, every name
    with safe_open(path, framework="numpy") as f:
        assert f.metadata() == {"format": "pt"}, f.metadata()
        assert sorted(f.keys()) == ["bf", "f16", "f32"], f.keys()
        x = (np.arange(6, dtype=np.float32) - 2.5).reshape(2, 3)
        assert np.array_equal(f.get_tensor("f32"), x)
        assert f.get_tensor("f16").dtype == np.float16
        assert np.array_equal(f.get_tensor("f16").astype(np.float32), x)
    print("read ok")
else:  # each file: accepted or rejected
    for p in sys.argv[2:]:
        try:
            load(open(p, "rb").read())
            print("accepted", p.split("/")[-1])
        except Exception:
            print("rejected", p.split("/")[-1])
)";

TEST(SafetensorsReference, FilesRoundTripWithThePythonPackage) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("bitexact-st-ref-" + std::to_string(::getpid())))
          .string();
  std::filesystem::create_directories(dir);
  // Python writes, we read.
  auto out = run_python(kReferenceScript, "write '" + dir + "/py.safetensors'", dir);
  if (!out) GTEST_SKIP() << "BITEXACT_PYTHON is not set: the reference package is not available";
  const File py = File::open(dir + "/py.safetensors");
  EXPECT_EQ(py.metadata().at("format"), "np");
  EXPECT_EQ(py.find_tensor("a")->shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(py.find_tensor("i")->dtype, safetensors::Dtype::I64);
  const std::vector<float> a = to_f32(py, "a"), h = to_f32(py, "h");
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], (static_cast<float>(i) - 5.5f) / 4) << i;
  for (size_t i = 0; i < h.size(); ++i) EXPECT_EQ(h[i], (static_cast<float>(i) - 3) / 2) << i;

  // We write, Python reads.
  SafetensorsWriter w;
  w.add_metadata("format", "pt");
  const std::vector<float> x = {-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f};
  w.add_tensor("f32", {2, 3}, x, "F32");
  w.add_tensor("f16", {2, 3}, x, "F16");
  w.add_tensor("bf", {6}, x, "BF16");
  w.write(dir + "/ours.safetensors");
  out = run_python(kReferenceScript, "read '" + dir + "/ours.safetensors'", dir);
  EXPECT_NE(out->find("read ok"), std::string::npos) << *out;

  // Files both readers must refuse (the reference ignores unknown keys in a tensor entry, which
  // this reader refuses: not listed).
  const std::vector<std::pair<std::string, Bytes>> bad = {
      {"overlap",
       with_header(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
           12)},
      {"hole",
       with_header(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
           12)},
      {"trailing", with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 6)},
      {"size", with_header(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 12)},
      {"past_end", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)},
      {"reversed", with_header(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4)},
      {"dtype", with_header(R"({"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}})", 4)},
      {"json", with_header(R"({"a": )", 0)},
      {"duplicate",
       with_header(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
           8)},
  };
  std::string paths;
  for (const auto& [name, bytes] : bad) {
    SafetensorsWriter::write_bytes(dir + "/" + name, bytes);
    paths += " '" + dir + "/" + name + "'";
    EXPECT_THROW((void)parse(bytes), Error) << name;
  }
  out = run_python(kReferenceScript, "check" + paths, dir);
  for (const auto& [name, bytes] : bad) {
    EXPECT_NE(out->find("rejected " + name + "\n"), std::string::npos) << name << ": " << *out;
  }
  std::filesystem::remove_all(dir);
}

// --- the index and the checkpoint ---

TEST(SafetensorsIndex, ParsesAndRejectsBadMaps) {
  const auto map = safetensors::parse_index(
      R"({"metadata":{"total_size":8},"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})",
      "index.json");
  EXPECT_EQ(map.at("b"), "s2.safetensors");
  expect_error([] { (void)safetensors::parse_index("{}", "index.json"); },
               {"index.json", "no \"weight_map\""});
  expect_error([] { (void)safetensors::parse_index(R"({"weight_map": []})", "index.json"); },
               {"\"weight_map\" is array"});
  expect_error([] { (void)safetensors::parse_index(R"({"weight_map": {"a": 3}})", "index.json"); },
               {"entry 'a' is integer", "shard file name"});
  for (const char* bad : {"../x.safetensors", "sub/x.safetensors", "..", ""}) {
    expect_error(
        [&] {
          (void)safetensors::parse_index(std::string(R"({"weight_map": {"a": ")") + bad + "\"}}",
                                         "index.json");
        },
        {"entry 'a' names shard", "no '/'"});
  }
  expect_error([] { (void)safetensors::parse_index("{\"weight_map\": ", "index.json"); },
               {"index.json: invalid JSON"});
}

class FolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.architecture = "LlamaForCausalLM";
    spec_.shards = 3;
    spec_.seed = 81;
    folder_ = std::make_unique<test::RandomHfFolder>("bad_input", spec_);
  }
  const std::string& dir() const { return folder_->path(); }
  std::string file(const std::string& name) const { return dir() + "/" + name; }
  nlohmann::json read_json(const std::string& name) const {
    std::ifstream in(file(name));
    return nlohmann::json::parse(in);
  }
  void write_json(const std::string& name, const nlohmann::json& j) const {
    test::write_text(file(name), j.dump());
  }
  void expect_load_error(std::initializer_list<std::string> parts) const {
    expect_error([&] { (void)load_model(dir(), LoadOptions{}); }, parts);
  }
  // Rewrites the folder as one model.safetensors holding `tensors` (after `edit`).
  void rewrite_single(const std::function<void(std::vector<test::HfTensor>&)>& edit,
                      const std::string& dtype = "F32") {
    for (int k = 0; k < spec_.shards; ++k)
      std::filesystem::remove(file(test::shard_name(k, spec_.shards)));
    std::filesystem::remove(file("model.safetensors.index.json"));
    std::vector<test::HfTensor> tensors = test::random_hf_tensors(spec_);
    edit(tensors);
    test::write_hf_folder(dir(), test::random_hf_config(spec_), tensors, 1, dtype);
  }

  test::RandomHfSpec spec_;
  std::unique_ptr<test::RandomHfFolder> folder_;
};

TEST_F(FolderTest, ValidFolderLoads) {
  EXPECT_NO_THROW((void)load_model(dir(), LoadOptions{}));
}

TEST_F(FolderTest, MissingShard) {
  std::filesystem::remove(file(test::shard_name(1, 3)));
  expect_load_error(
      {"model.safetensors.index.json", "shard 'model-00002-of-00003.safetensors'", "is missing"});
}

TEST_F(FolderTest, IndexAndShardsDisagree) {
  nlohmann::json index = read_json("model.safetensors.index.json");
  index["weight_map"]["model.norm.weight"] = test::shard_name(0, 3);
  write_json("model.safetensors.index.json", index);
  expect_load_error(
      {"tensor 'model.norm.weight' is mapped to shard 'model-00001-of-00003.safetensors'",
       "but is in 'model-00003-of-00003.safetensors'"});
  index["weight_map"].erase("model.norm.weight");
  write_json("model.safetensors.index.json", index);
  expect_load_error({"holds tensor 'model.norm.weight'", "does not list"});
  index["weight_map"]["model.norm.weight"] = test::shard_name(2, 3);
  index["weight_map"]["ghost.weight"] = test::shard_name(0, 3);
  write_json("model.safetensors.index.json", index);
  expect_load_error({"tensor 'ghost.weight' is mapped to shard", "which does not hold it"});
}

TEST_F(FolderTest, NoWeightsOrNoConfig) {
  std::filesystem::remove(file("model.safetensors.index.json"));
  expect_load_error({"no model.safetensors and no model.safetensors.index.json"});
  std::filesystem::remove(file("config.json"));
  expect_load_error({"config.json is missing", "Hugging Face model folder"});
}

TEST_F(FolderTest, TruncatedShard) {
  const std::string shard = file(test::shard_name(2, 3));
  std::filesystem::resize_file(shard, std::filesystem::file_size(shard) - 1);
  expect_load_error({shard, "past the end of the data section"});
}

TEST_F(FolderTest, UnknownArchitecture) {
  nlohmann::json c = read_json("config.json");
  c["architectures"] = {"GPT2LMHeadModel"};
  write_json("config.json", c);
  expect_load_error({"config.json", "unsupported architecture \"GPT2LMHeadModel\"",
                     "supported are LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                     "Qwen3ForCausalLM, Qwen3MoeForCausalLM, MixtralForCausalLM"});
}

TEST_F(FolderTest, MissingConfigKeys) {
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "vocab_size", "max_position_embeddings"}) {
    nlohmann::json c = test::random_hf_config(spec_);
    c.erase(key);
    write_json("config.json", c);
    expect_load_error(
        {"config.json", std::string("\"") + key + "\" is missing", "expected a positive integer"});
  }
  nlohmann::json c = test::random_hf_config(spec_);
  c.erase("architectures");
  write_json("config.json", c);
  expect_load_error({"\"architectures\" is missing", "LlamaForCausalLM"});
}

TEST_F(FolderTest, WrongTensorShapeDtypeOrName) {
  rewrite_single([](std::vector<test::HfTensor>& ts) {
    for (auto& t : ts) {
      if (t.name == "model.layers.1.mlp.up_proj.weight") t.shape = {t.shape[1], t.shape[0]};
    }
  });
  expect_load_error(
      {"tensor 'model.layers.1.mlp.up_proj.weight' has shape [64, 96], expected [96, 64]"});
  rewrite_single([](std::vector<test::HfTensor>& ts) {
    std::erase_if(ts, [](const test::HfTensor& t) { return t.name == "model.norm.weight"; });
  });
  expect_load_error({"missing tensor 'model.norm.weight'"});
  // A bias the config does not ask for would be silently ignored: refused instead.
  rewrite_single([](std::vector<test::HfTensor>& ts) {
    ts.push_back({"model.layers.0.self_attn.q_proj.bias", {32}, std::vector<float>(32, 0.5f)});
  });
  expect_load_error(
      {"tensor 'model.layers.0.self_attn.q_proj.bias' is not used by LlamaForCausalLM"});
  // Old checkpoints' rotary buffers are ignored.
  rewrite_single([](std::vector<test::HfTensor>& ts) {
    ts.push_back(
        {"model.layers.0.self_attn.rotary_emb.inv_freq", {8}, std::vector<float>(8, 1.0f)});
  });
  EXPECT_NO_THROW((void)load_model(dir(), LoadOptions{}));
  // A weight stored as an integer dtype.
  SafetensorsWriter w;
  for (const test::HfTensor& t : test::random_hf_tensors(spec_)) {
    if (t.name == "model.norm.weight") {
      w.add_raw_tensor(t.name, "I32", t.shape, Bytes(t.values.size() * 4));
    } else {
      w.add_tensor(t.name, t.shape, t.values, "F32");
    }
  }
  w.write(file("model.safetensors"));
  expect_load_error({"tensor 'model.norm.weight' has dtype I32: supported are F32, F16, BF16"});
}

TEST_F(FolderTest, TiedOutputWithItsOwnLmHead) {
  spec_.tied_output = true;
  // lm_head.weight equal to the embedding: accepted.
  rewrite_single([](std::vector<test::HfTensor>& ts) {
    test::HfTensor copy = ts.front();
    copy.name = "lm_head.weight";
    ts.push_back(copy);
  });
  EXPECT_NO_THROW((void)load_model(dir(), LoadOptions{}));
  // A different one: which would HF use? Refused.
  rewrite_single([](std::vector<test::HfTensor>& ts) {
    test::HfTensor copy = ts.front();
    copy.name = "lm_head.weight";
    copy.values[7] += 1.0f;
    ts.push_back(copy);
  });
  expect_load_error({"tensor 'lm_head.weight' differs from 'model.embed_tokens.weight'",
                     "tie_word_embeddings is true"});
}

// --- config.json ---

ModelConfig config_of(const nlohmann::json& j) {
  return parse_hf_config(j.dump(), "config.json");
}

nlohmann::json base_config(const std::string& arch) {
  test::RandomHfSpec s;
  s.architecture = arch;
  return test::random_hf_config(s);
}

void expect_config_error(const nlohmann::json& j, std::initializer_list<std::string> parts) {
  expect_error([&] { (void)config_of(j); }, parts);
}

TEST(HfConfig, ReadsEveryArchitecture) {
  const ModelConfig llama = config_of(base_config("LlamaForCausalLM"));
  EXPECT_EQ(llama.dim, 64);
  EXPECT_EQ(llama.head_dim, 16);
  EXPECT_EQ(llama.n_kv_heads, 2);
  EXPECT_EQ(llama.rope_layout, RopeLayout::half_split);
  EXPECT_FALSE(llama.qkv_bias || llama.output_bias || llama.qk_norm);
  EXPECT_TRUE(config_of(base_config("Qwen2ForCausalLM")).qkv_bias);
  EXPECT_FALSE(config_of(base_config("Qwen2ForCausalLM")).output_bias);
  nlohmann::json q3 = base_config("Qwen3ForCausalLM");
  q3["head_dim"] = 32;
  const ModelConfig qwen3 = config_of(q3);
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_EQ(qwen3.head_dim, 32);
  EXPECT_EQ(qwen3.q_dim(), 128);
  nlohmann::json biased = base_config("LlamaForCausalLM");
  biased["attention_bias"] = true;
  EXPECT_TRUE(config_of(biased).qkv_bias && config_of(biased).output_bias);
}

TEST(HfConfig, DefaultsAndIds) {
  nlohmann::json j = base_config("MistralForCausalLM");
  for (const char* key : {"num_key_value_heads", "rms_norm_eps", "rope_theta",
                          "tie_word_embeddings", "hidden_act", "bos_token_id", "eos_token_id"}) {
    j.erase(key);
  }
  const ModelConfig c = config_of(j);
  EXPECT_EQ(c.n_kv_heads, c.n_heads);
  EXPECT_EQ(c.rms_eps, 1e-6f);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tied_output);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_TRUE(c.eos_token_ids.empty());
  j["eos_token_id"] = {2, 5, 7};
  EXPECT_EQ(config_of(j).eos_token_ids, (std::vector<int32_t>{2, 5, 7}));
  j["eos_token_id"] = 400;
  expect_config_error(j, {"\"eos_token_id\" 400 is outside the vocabulary of 320"});
  j["eos_token_id"] = "x";
  expect_config_error(j, {"\"eos_token_id\" is \"x\"", "expected a token id"});
}

TEST(HfConfig, RopeScaling) {
  nlohmann::json j = base_config("LlamaForCausalLM");
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 32.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  const ModelConfig c = config_of(j);
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::llama3);
  EXPECT_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.rope_scaling.original_max_positions, 8192);
  j["rope_scaling"] = {{"type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  EXPECT_EQ(config_of(j).rope_scaling.factor, 8.0);  // the older key name
  j["rope_scaling"].erase("factor");
  expect_config_error(j, {"\"rope_scaling\" of type llama3 has no \"factor\""});
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 4.0},
                       {"high_freq_factor", 1.0},
                       {"original_max_position_embeddings", 8192}};
  expect_config_error(j, {"expected low_freq_factor < high_freq_factor"});
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_config_error(j, {"rope scaling type \"yarn\" is not supported", "llama3"});
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(config_of(j).rope_scaling.kind, RopeScaling::Kind::none);
  j["rope_scaling"] = nullptr;
  j["partial_rotary_factor"] = 0.5;
  expect_config_error(j, {"\"partial_rotary_factor\" is 0.5", "not supported"});
  // transformers 5 style.
  nlohmann::json k = base_config("Qwen3ForCausalLM");
  k.erase("rope_theta");
  k.erase("rope_scaling");
  k["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1000000.0}};
  EXPECT_EQ(config_of(k).rope_theta, 1000000.0);
}

TEST(HfConfig, SlidingWindowCapsTheContextOrChangesNothing) {
  nlohmann::json m = base_config("MistralForCausalLM");  // max_position_embeddings 256
  m["sliding_window"] = nullptr;
  EXPECT_EQ(config_of(m).context_length, 256);
  m["sliding_window"] = 4096;
  EXPECT_EQ(config_of(m).context_length, 256);
  m["sliding_window"] = 64;
  EXPECT_EQ(config_of(m).context_length, 64);
  m["max_position_embeddings"] = 32768;  // no key: transformers' default window 4096
  m.erase("sliding_window");
  EXPECT_EQ(config_of(m).context_length, 4096);
  nlohmann::json q = base_config("Qwen2ForCausalLM");
  q["sliding_window"] = 64;
  q["use_sliding_window"] = false;
  EXPECT_EQ(config_of(q).context_length, 256);
  q["use_sliding_window"] = true;
  EXPECT_EQ(config_of(q).context_length, 64);
  q["sliding_window"] = 0;
  expect_config_error(q, {"\"sliding_window\" is 0", "positive integer"});
}

TEST(HfConfig, BadValues) {
  nlohmann::json j = base_config("LlamaForCausalLM");
  j["hidden_size"] = "64";
  expect_config_error(j, {"config.json", "\"hidden_size\" is string", "positive integer"});
  j["hidden_size"] = -64;
  expect_config_error(j, {"\"hidden_size\" is -64"});
  j["hidden_size"] = 64.5;
  expect_config_error(j, {"\"hidden_size\" is number"});
  j = base_config("LlamaForCausalLM");
  j["num_key_value_heads"] = 3;
  expect_config_error(j, {"head_count 4 is not a multiple of head_count_kv 3"});
  j = base_config("LlamaForCausalLM");
  j["hidden_act"] = "gelu";
  expect_config_error(j, {"\"hidden_act\" is \"gelu\"", "expected \"silu\""});
  j = base_config("LlamaForCausalLM");
  j["mlp_bias"] = true;
  expect_config_error(j, {"\"mlp_bias\" is true", "not supported"});
  j = base_config("LlamaForCausalLM");
  j["quantization_config"] = {{"quant_method", "gptq"}};
  expect_config_error(j, {"quantization_config", "not supported"});
  j = base_config("LlamaForCausalLM");
  j["rms_norm_eps"] = 0;
  expect_config_error(j, {"\"rms_norm_eps\" is 0", "number > 0"});
  j = base_config("LlamaForCausalLM");
  j["architectures"] = {"LlamaForCausalLM", "MistralForCausalLM"};
  expect_config_error(j, {"\"architectures\" is", "a list of one name"});
  j = base_config("LlamaForCausalLM");
  j["hidden_size"] = 66;  // not a multiple of 4 heads, and no head_dim
  expect_config_error(j, {"\"hidden_size\" 66 is not a multiple of \"num_attention_heads\" 4"});
  expect_error([] { (void)parse_hf_config("{\"a\": 1, \"a\": 2}", "config.json"); },
               {"config.json", "duplicate key \"a\""});
  expect_error([] { (void)parse_hf_config("[]", "config.json"); }, {"expected a JSON object"});
  expect_error([] { (void)parse_hf_config("{", "config.json"); }, {"config.json: invalid JSON"});
}

}  // namespace
}  // namespace bx
