// GGUF reader: metadata and tensor round trips through tests/support/gguf_writer.h, dequantization
// (T1 exact on representable values, T2 within each format's error bound), every malformed
// input named in gguf.h, the shared stories260K model, and content_hash.
#include "model/gguf.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "core/half.h"
#include "support/gguf_writer.h"

namespace bx::gguf {
namespace {

using bx::test::GgufWriter;
using Bytes = std::vector<std::byte>;

constexpr const char* kStories = "../shared/models/stories260K.gguf";

File parse(const Bytes& b) {
  return File::parse(b, "test.gguf");
}

// Runs fn, expects a bx::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "expected a bx::Error containing '" << *parts.begin() << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
    }
  }
}
void expect_parse_error(const Bytes& b, std::initializer_list<std::string> parts) {
  expect_error([&] { (void)parse(b); }, parts);
}

// Offset of the first byte after the first occurrence of `needle` in b.
size_t after(const Bytes& b, std::string_view needle) {
  const auto* p = reinterpret_cast<const char*>(b.data());
  const std::string_view hay(p, b.size());
  const size_t at = hay.find(needle);
  EXPECT_NE(at, std::string_view::npos) << "needle '" << needle << "' not in file";
  return at == std::string_view::npos ? 0 : at + needle.size();
}
template <class T>
void poke(Bytes& b, size_t at, T v) {
  ASSERT_LE(at + sizeof(T), b.size());
  std::memcpy(b.data() + at, &v, sizeof(T));
}

std::vector<float> dequant(const File& f, const std::string& name) {
  const TensorInfo* t = f.find_tensor(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return {};
  std::vector<float> out(static_cast<size_t>(t->n_elements));
  dequantize_to_f32(*t, f.tensor_data(*t), out.data());
  return out;
}

Value make(ValueType t, decltype(Value::data) d) {
  return Value{t, std::move(d)};
}
Value make_array(ValueType et, std::vector<Value> elements) {
  return Value{ValueType::array, Array{et, std::move(elements)}};
}

// A small valid file with one tensor, used as the base of many bad-input tests.
GgufWriter one_tensor_writer(GgmlType type = GgmlType::F32, std::vector<int64_t> dims = {32, 2}) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_bool("k.bool", true);
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<float> data(static_cast<size_t>(n));
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i % 13) - 6.0f;
  w.add_tensor("w.bad", dims, data, type);
  return w;
}

// ---------------------------------------------------------------------------------------------
// Metadata

TEST(GgufMetadata, EveryScalarTypeRoundTrips) {
  GgufWriter w;
  w.add_u8("u8", 250);
  w.add_i8("i8", -120);
  w.add_u16("u16", 65000);
  w.add_i16("i16", -32000);
  w.add_u32("u32", 4000000000u);
  w.add_i32("i32", -2000000000);
  w.add_u64("u64", 18000000000000000000ull);
  w.add_i64("i64", -9000000000000000000ll);
  w.add_f32("f32", 0.1f);
  w.add_f64("f64", 0.1);
  w.add_bool("yes", true);
  w.add_bool("no", false);
  w.add_string("s", "hello \xe2\x96\x81world");
  w.add_string("empty", "");
  const Bytes b = w.bytes();
  const File f = parse(b);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 14u);
  EXPECT_EQ(f.metadata()[0].key, "u8");  // file order is kept

  EXPECT_EQ(*f.find("u8"), make(ValueType::uint8, uint64_t{250}));
  EXPECT_EQ(*f.find("i8"), make(ValueType::int8, int64_t{-120}));
  EXPECT_EQ(*f.find("u16"), make(ValueType::uint16, uint64_t{65000}));
  EXPECT_EQ(*f.find("i16"), make(ValueType::int16, int64_t{-32000}));
  EXPECT_EQ(*f.find("u32"), make(ValueType::uint32, uint64_t{4000000000u}));
  EXPECT_EQ(*f.find("i32"), make(ValueType::int32, int64_t{-2000000000}));
  EXPECT_EQ(*f.find("u64"), make(ValueType::uint64, uint64_t{18000000000000000000ull}));
  EXPECT_EQ(*f.find("i64"), make(ValueType::int64, int64_t{-9000000000000000000ll}));
  EXPECT_EQ(*f.find("f32"), make(ValueType::float32, double{0.1f}));
  EXPECT_EQ(*f.find("f64"), make(ValueType::float64, 0.1));
  EXPECT_EQ(*f.find("yes"), make(ValueType::boolean, true));

  EXPECT_EQ(f.get_uint("u8"), 250u);
  EXPECT_EQ(f.get_int("i8"), -120);
  EXPECT_EQ(f.get_uint("u16"), 65000u);
  EXPECT_EQ(f.get_int("i16"), -32000);
  EXPECT_EQ(f.get_uint("u32"), 4000000000u);
  EXPECT_EQ(f.get_int("u32"), 4000000000);  // an unsigned value that fits is an int too
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_uint("u64"), 18000000000000000000ull);
  EXPECT_EQ(f.get_int("i64"), -9000000000000000000ll);
}

TEST(GgufMetadata, TypedGettersConvertAndReject) {
  GgufWriter w;
  w.add_f32("f32", 0.1f);
  w.add_f64("f64", -2.5);
  w.add_bool("yes", true);
  w.add_bool("no", false);
  w.add_string("s", "hello");
  w.add_i32("neg", -3);
  w.add_i32("pos", 7);
  w.add_u64("huge", 18000000000000000000ull);
  w.add_array_i32("ints", {1, -2, 3});
  const Bytes b = w.bytes();
  const File f = parse(b);

  EXPECT_EQ(f.get_float("f32"), double{0.1f});
  EXPECT_EQ(f.get_float("f64"), -2.5);
  EXPECT_TRUE(f.get_bool("yes"));
  EXPECT_FALSE(f.get_bool("no"));
  EXPECT_EQ(f.get_string("s"), "hello");
  EXPECT_EQ(f.get_uint("pos"), 7u);
  EXPECT_TRUE(f.has("s"));
  EXPECT_FALSE(f.has("nope"));
  EXPECT_EQ(f.find("nope"), nullptr);

  expect_error([&] { (void)f.get_string("nope"); }, {"test.gguf", "'nope'", "missing", "string"});
  expect_error([&] { (void)f.get_uint("s"); }, {"'s'", "has type string", "unsigned integer"});
  expect_error([&] { (void)f.get_uint("neg"); }, {"'neg'", "-3", "unsigned"});
  expect_error([&] { (void)f.get_int("huge"); }, {"'huge'", "18000000000000000000", "int64"});
  expect_error([&] { (void)f.get_int("f32"); }, {"'f32'", "float32", "integer"});
  expect_error([&] { (void)f.get_float("pos"); }, {"'pos'", "int32", "float32 or float64"});
  expect_error([&] { (void)f.get_bool("pos"); }, {"'pos'", "bool"});
  expect_error([&] { (void)f.get_string("pos"); }, {"'pos'", "string"});
  expect_error([&] { (void)f.get_string_array("ints"); },
               {"'ints'", "array of int32", "array of string"});
  expect_error([&] { (void)f.get_float_array("s"); }, {"'s'", "has type string", "array of float"});
  expect_error([&] { (void)f.get_int_array("f64"); }, {"'f64'", "array of integers"});
}

TEST(GgufMetadata, EveryArrayTypeRoundTrips) {
  GgufWriter w;
  w.add_array_string("strings", {"<unk>", "", "\xe2\x96\x81the"});
  w.add_array_f32("f32s", {0.5f, -1.25f, 3.0e-8f});
  w.add_array_i32("i32s", {1, -2, 2147483647});
  w.add_array_u32("u32s", {0u, 4294967295u});
  // Every element type through add_value, including bool, 64-bit and float64 elements.
  w.add_value("u8s", make_array(ValueType::uint8, {make(ValueType::uint8, uint64_t{0}),
                                                   make(ValueType::uint8, uint64_t{255})}));
  w.add_value("i8s", make_array(ValueType::int8, {make(ValueType::int8, int64_t{-128})}));
  w.add_value("u16s", make_array(ValueType::uint16, {make(ValueType::uint16, uint64_t{65535})}));
  w.add_value("i16s", make_array(ValueType::int16, {make(ValueType::int16, int64_t{-32768})}));
  w.add_value("u64s", make_array(ValueType::uint64, {make(ValueType::uint64, ~uint64_t{0})}));
  w.add_value("i64s", make_array(ValueType::int64, {make(ValueType::int64, int64_t{-5})}));
  w.add_value("f64s", make_array(ValueType::float64, {make(ValueType::float64, 1e300)}));
  w.add_value("bools", make_array(ValueType::boolean, {make(ValueType::boolean, true),
                                                       make(ValueType::boolean, false)}));
  w.add_value("empty", make_array(ValueType::string, {}));
  const Value nested =
      make_array(ValueType::array,
                 {make_array(ValueType::uint8, {make(ValueType::uint8, uint64_t{1})}),
                  make_array(ValueType::string, {make(ValueType::string, std::string("x")),
                                                 make(ValueType::string, std::string("yz"))}),
                  make_array(ValueType::array,
                             {make_array(ValueType::float32, {make(ValueType::float32, 2.0)})})});
  w.add_value("nested", nested);
  const Bytes b = w.bytes();
  const File f = parse(b);

  EXPECT_EQ(f.get_string_array("strings"),
            (std::vector<std::string>{"<unk>", "", "\xe2\x96\x81the"}));
  EXPECT_EQ(f.get_float_array("f32s"), (std::vector<double>{0.5, -1.25, double{3.0e-8f}}));
  EXPECT_EQ(f.get_float_array("f64s"), (std::vector<double>{1e300}));
  EXPECT_EQ(f.get_int_array("i32s"), (std::vector<int64_t>{1, -2, 2147483647}));
  EXPECT_EQ(f.get_int_array("u32s"), (std::vector<int64_t>{0, 4294967295}));
  EXPECT_EQ(f.get_int_array("u8s"), (std::vector<int64_t>{0, 255}));
  EXPECT_EQ(f.get_int_array("i8s"), (std::vector<int64_t>{-128}));
  EXPECT_EQ(f.get_int_array("u16s"), (std::vector<int64_t>{65535}));
  EXPECT_EQ(f.get_int_array("i16s"), (std::vector<int64_t>{-32768}));
  EXPECT_EQ(f.get_int_array("i64s"), (std::vector<int64_t>{-5}));
  expect_error([&] { (void)f.get_int_array("u64s"); }, {"'u64s'", "element 0", "int64"});
  EXPECT_EQ(*f.find("bools"), make_array(ValueType::boolean, {make(ValueType::boolean, true),
                                                              make(ValueType::boolean, false)}));
  EXPECT_EQ(*f.find("u64s"),
            make_array(ValueType::uint64, {make(ValueType::uint64, ~uint64_t{0})}));
  EXPECT_TRUE(f.get_string_array("empty").empty());
  EXPECT_EQ(*f.find("nested"), nested);
}

TEST(GgufMetadata, VersionTwoIsAcceptedOthersRejected) {
  for (uint32_t v : {2u, 3u}) {
    GgufWriter w = one_tensor_writer();
    w.set_version(v);
    const Bytes b = w.bytes();
    EXPECT_EQ(parse(b).version(), v);
  }
  for (uint32_t v : {0u, 1u, 4u, 0x03000000u}) {
    GgufWriter w = one_tensor_writer();
    w.set_version(v);
    expect_parse_error(w.bytes(), {"test.gguf", "unsupported GGUF version " + std::to_string(v),
                                   "supported are 3 and 2"});
  }
  GgufWriter w;
  w.set_version(0x03000000u);
  expect_parse_error(w.bytes(), {"big-endian"});
}

// ---------------------------------------------------------------------------------------------
// Alignment

TEST(GgufAlignment, DefaultAndCustomAlignmentPlaceData) {
  for (uint32_t a : {0u, 1u, 8u, 64u, 4096u}) {  // 0: default (no key)
    GgufWriter w;
    if (a != 0) w.set_alignment(a);
    w.add_string("general.architecture", "x");
    w.add_tensor("a", {3}, {1.0f, 2.0f, 3.0f});
    w.add_tensor("b", {5}, {4.0f, 5.0f, 6.0f, 7.0f, 8.0f});
    const Bytes bytes = w.bytes();
    const File f = parse(bytes);
    const uint32_t expected = a == 0 ? 32 : a;
    EXPECT_EQ(f.alignment(), expected);
    EXPECT_EQ(f.data_offset() % expected, 0u);
    EXPECT_EQ(f.find_tensor("b")->offset % expected, 0u);
    EXPECT_EQ(dequant(f, "a"), (std::vector<float>{1, 2, 3}));
    EXPECT_EQ(dequant(f, "b"), (std::vector<float>{4, 5, 6, 7, 8}));
  }
}

TEST(GgufAlignment, BadAlignmentIsRejected) {
  for (uint32_t a : {0u, 3u, 24u, 0x80000001u}) {
    GgufWriter w;
    w.add_u32("general.alignment", a);
    expect_parse_error(w.bytes(), {"general.alignment", std::to_string(a), "power of two"});
  }
  GgufWriter neg;
  neg.add_i32("general.alignment", -32);
  expect_parse_error(neg.bytes(), {"general.alignment", "-32", "power of two"});
  GgufWriter str;
  str.add_string("general.alignment", "32");
  expect_parse_error(str.bytes(), {"general.alignment", "has type string", "uint32"});
}

TEST(GgufAlignment, MisalignedTensorOffsetIsRejected) {
  GgufWriter w;
  w.add_tensor("tensor_a", {8}, std::vector<float>(8, 1.0f));
  w.add_tensor("tensor_b", {8}, std::vector<float>(8, 2.0f));
  Bytes b = w.bytes();
  const size_t offset_at = after(b, "tensor_b") + 4 + 8 + 4;  // n_dims, dims[0], type
  poke<uint64_t>(b, offset_at, 40);
  expect_parse_error(b, {"tensor 'tensor_b'", "data offset 40", "misaligned", "alignment 32"});
  poke<uint64_t>(b, offset_at, 0);  // aligned and inside (sharing tensor_a's bytes): fine
  EXPECT_EQ(dequant(parse(b), "tensor_b"), std::vector<float>(8, 1.0f));
}

// ---------------------------------------------------------------------------------------------
// Tensors and dequantization

TEST(GgufTensors, InfosRoundTrip) {
  GgufWriter w;
  w.add_tensor("vec", {32}, std::vector<float>(32, 0.5f), GgmlType::F16);
  w.add_tensor("mat", {64, 3}, std::vector<float>(192, 1.0f), GgmlType::Q8_0);
  w.add_tensor("cube", {32, 2, 3, 4}, std::vector<float>(768, -1.0f), GgmlType::Q4_1);
  const Bytes b = w.bytes();
  const File f = parse(b);
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[1].name, "mat");  // file order
  const TensorInfo* mat = f.find_tensor("mat");
  ASSERT_NE(mat, nullptr);
  EXPECT_EQ(mat->dims, (std::vector<int64_t>{64, 3}));
  EXPECT_EQ(mat->type, GgmlType::Q8_0);
  EXPECT_EQ(mat->n_elements, 192);
  EXPECT_EQ(mat->n_bytes, 6u * 34u);
  EXPECT_EQ(f.tensor_data(*mat).size(), 6u * 34u);
  EXPECT_EQ(f.find_tensor("vec")->n_bytes, 64u);
  EXPECT_EQ(f.find_tensor("cube")->n_bytes, 24u * 20u);
  EXPECT_EQ(f.find_tensor("cube")->dims.size(), 4u);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  EXPECT_EQ(f.tensor_data(*f.find_tensor("vec")).data(), b.data() + f.data_offset());
}

TEST(GgufTensors, TypeTableAndNames) {
  EXPECT_EQ(ggml_type_name(GgmlType::Q4_K), "Q4_K");
  EXPECT_EQ(ggml_type_name(GgmlType::BF16), "BF16");
  EXPECT_EQ(ggml_type_name(static_cast<GgmlType>(99)), "type 99");
  EXPECT_EQ(ggml_type_name(static_cast<GgmlType>(4)), "type 4");
  EXPECT_EQ(to_dtype(GgmlType::Q4_1), DType::q4_1);
  EXPECT_EQ(to_dtype(GgmlType::BF16), DType::bf16);
  EXPECT_EQ(to_dtype(GgmlType::Q4_K), DType::q4_k);
  EXPECT_EQ(to_dtype(GgmlType::Q6_K), DType::q6_k);
  EXPECT_FALSE(to_dtype(GgmlType::Q8_K).has_value());
  EXPECT_EQ(to_dtype(GgmlType::IQ4_XS), DType::iq4_xs);
  EXPECT_FALSE(to_dtype(GgmlType::IQ2_XXS).has_value());
  struct Row {
    GgmlType t;
    uint32_t block, bytes;
  };
  const Row rows[] = {
      {GgmlType::F32, 1, 4},        {GgmlType::F16, 1, 2},        {GgmlType::BF16, 1, 2},
      {GgmlType::Q4_0, 32, 18},     {GgmlType::Q4_1, 32, 20},     {GgmlType::Q5_0, 32, 22},
      {GgmlType::Q5_1, 32, 24},     {GgmlType::Q8_0, 32, 34},     {GgmlType::Q8_1, 32, 36},
      {GgmlType::Q2_K, 256, 84},    {GgmlType::Q3_K, 256, 110},   {GgmlType::Q4_K, 256, 144},
      {GgmlType::Q5_K, 256, 176},   {GgmlType::Q6_K, 256, 210},   {GgmlType::Q8_K, 256, 292},
      {GgmlType::IQ2_XXS, 256, 66}, {GgmlType::IQ2_XS, 256, 74},  {GgmlType::IQ3_XXS, 256, 98},
      {GgmlType::IQ1_S, 256, 50},   {GgmlType::IQ4_NL, 32, 18},   {GgmlType::IQ3_S, 256, 110},
      {GgmlType::IQ2_S, 256, 82},   {GgmlType::IQ4_XS, 256, 136}, {GgmlType::I8, 1, 1},
      {GgmlType::I16, 1, 2},        {GgmlType::I32, 1, 4},        {GgmlType::I64, 1, 8},
      {GgmlType::F64, 1, 8},        {GgmlType::IQ1_M, 256, 56},   {GgmlType::TQ1_0, 256, 54},
      {GgmlType::TQ2_0, 256, 66},   {GgmlType::MXFP4, 32, 17},
  };
  for (const Row& r : rows) {
    const GgmlTypeTraits* traits = ggml_type_traits(r.t);
    ASSERT_NE(traits, nullptr) << static_cast<uint32_t>(r.t);
    EXPECT_EQ(traits->block_size, r.block) << traits->name;
    EXPECT_EQ(traits->type_size, r.bytes) << traits->name;
  }
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 40u, 1000u}) {
    EXPECT_EQ(ggml_type_traits(static_cast<GgmlType>(id)), nullptr) << id;
  }
}

TEST(GgufTensors, KnownUnsupportedTypesParseWithCorrectSizesButDoNotDequantize) {
  GgufWriter w;
  w.add_raw_tensor("q8k", {512, 2}, GgmlType::Q8_K, Bytes(4 * 292));
  w.add_raw_tensor("iq2", {256}, GgmlType::IQ2_XXS, Bytes(66));
  w.add_raw_tensor("tq1", {256}, GgmlType::TQ1_0, Bytes(54));
  w.add_raw_tensor("mx", {64}, GgmlType::MXFP4, Bytes(34));
  const Bytes b = w.bytes();
  const File f = parse(b);
  EXPECT_EQ(f.find_tensor("q8k")->n_bytes, 1168u);
  EXPECT_EQ(f.find_tensor("iq2")->n_bytes, 66u);
  EXPECT_EQ(f.find_tensor("tq1")->n_bytes, 54u);
  EXPECT_EQ(f.find_tensor("mx")->n_bytes, 34u);
  std::vector<float> out(1024);
  expect_error(
      [&] {
        dequantize_to_f32(*f.find_tensor("q8k"), f.tensor_data(*f.find_tensor("q8k")), out.data());
      },
      {"tensor 'q8k'", "Q8_K",
       "supported are F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, "
       "IQ4_NL, IQ4_XS"});
  expect_error(
      [&] {
        dequantize_to_f32(*f.find_tensor("iq2"), f.tensor_data(*f.find_tensor("iq2")), out.data());
      },
      {"tensor 'iq2'", "IQ2_XXS", "supported are F32"});
}

TEST(GgufDequant, WrongDataSizeIsRejected) {
  const Bytes b = one_tensor_writer(GgmlType::Q8_0).bytes();
  const File f = parse(b);
  const TensorInfo& t = *f.find_tensor("w.bad");
  std::vector<float> out(64);
  const auto data = f.tensor_data(t);
  expect_error([&] { dequantize_to_f32(t, data.first(data.size() - 1), out.data()); },
               {"tensor 'w.bad'", "67 bytes", "expected 2 blocks of 34 bytes"});
}

// Hand-made blocks with known bytes: checks the block layout and the math independently of the
// writer's quantizers.
TEST(GgufDequant, KnownBlocksDecodeExactly) {
  auto f16 = [](uint16_t h) { return Bytes{std::byte(h & 0xff), std::byte(h >> 8)}; };
  Bytes q8 = f16(0x3800);  // d = 0.5
  for (int j = 0; j < 32; ++j) q8.push_back(static_cast<std::byte>(static_cast<uint8_t>(j - 16)));
  Bytes q40 = f16(0x4000);  // d = 2
  for (int j = 0; j < 16; ++j) q40.push_back(static_cast<std::byte>(j | ((15 - j) << 4)));
  Bytes q41 = f16(0x3800);      // d = 0.5
  const Bytes m = f16(0xbc00);  // m = -1
  q41.insert(q41.end(), m.begin(), m.end());
  for (int j = 0; j < 16; ++j) q41.push_back(static_cast<std::byte>(j | ((15 - j) << 4)));
  Bytes h;
  for (uint16_t v : {uint16_t{0x3c00}, uint16_t{0xc000}, uint16_t{0x0001},
                     uint16_t{0x7c00}}) {  // 1, -2, 2^-24, inf
    const Bytes x = f16(v);
    h.insert(h.end(), x.begin(), x.end());
  }
  Bytes bf;
  for (uint16_t v : {uint16_t{0x3f80}, uint16_t{0xc040}}) {  // 1, -3
    const Bytes x = f16(v);
    bf.insert(bf.end(), x.begin(), x.end());
  }
  GgufWriter w;
  w.add_raw_tensor("q8", {32}, GgmlType::Q8_0, q8);
  w.add_raw_tensor("q40", {32}, GgmlType::Q4_0, q40);
  w.add_raw_tensor("q41", {32}, GgmlType::Q4_1, q41);
  w.add_raw_tensor("h", {4}, GgmlType::F16, h);
  w.add_raw_tensor("bf", {2}, GgmlType::BF16, bf);
  const Bytes b = w.bytes();
  const File f = parse(b);
  const std::vector<float> x8 = dequant(f, "q8"), x40 = dequant(f, "q40"), x41 = dequant(f, "q41");
  for (int j = 0; j < 32; ++j) EXPECT_EQ(x8[j], 0.5f * static_cast<float>(j - 16)) << j;
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(x40[j], 2.0f * static_cast<float>(j - 8)) << j;       // low nibble: element j
    EXPECT_EQ(x40[j + 16], 2.0f * static_cast<float>(7 - j)) << j;  // high nibble: j + 16
    EXPECT_EQ(x41[j], 0.5f * static_cast<float>(j) - 1.0f) << j;
    EXPECT_EQ(x41[j + 16], 0.5f * static_cast<float>(15 - j) - 1.0f) << j;
  }
  EXPECT_EQ(dequant(f, "h"), (std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24),
                                                 std::numeric_limits<float>::infinity()}));
  EXPECT_EQ(dequant(f, "bf"), (std::vector<float>{1.0f, -3.0f}));
}

// T1: values the format represents come back bit for bit through writer and reader.
TEST(GgufDequant, RepresentableValuesRoundTripExactly) {
  std::mt19937 rng(1234);
  auto ints = [&](int lo, int hi, size_t n) {
    std::uniform_int_distribution<int> d(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(d(rng));
    return v;
  };
  const size_t n = 32 * 12;
  std::vector<float> f32(n);
  for (float& x : f32)
    x = std::bit_cast<float>(static_cast<uint32_t>(rng()) & 0xbfffffffu);  // no nan/inf
  std::vector<float> f16 = ints(-1000, 1000, n);
  for (float& x : f16) x *= 0.25f;
  std::vector<float> bf16 = ints(-255, 255, n);
  std::vector<float> q8 = ints(-127, 127, n), q40 = ints(-8, 7, n), q41 = ints(-5, 10, n);
  for (size_t b = 0; b < n; b += 32) {  // each block holds its extremes, so d = 1 exactly
    q8[b] = 127.0f;
    q8[b + 5] = -127.0f;
    q40[b + 3] = -8.0f;
    q41[b + 1] = -5.0f;
    q41[b + 30] = 10.0f;
  }
  std::vector<float> q40s(q40);  // d = 0.25
  for (float& x : q40s) x *= 0.25f;
  GgufWriter w;
  w.add_tensor("f32", {32, 12}, f32, GgmlType::F32);
  w.add_tensor("f16", {32, 12}, f16, GgmlType::F16);
  w.add_tensor("bf16", {32, 12}, bf16, GgmlType::BF16);
  w.add_tensor("q8", {32, 12}, q8, GgmlType::Q8_0);
  w.add_tensor("q40", {64, 6}, q40, GgmlType::Q4_0);
  w.add_tensor("q40s", {64, 6}, q40s, GgmlType::Q4_0);
  w.add_tensor("q41", {96, 4}, q41, GgmlType::Q4_1);
  const Bytes b = w.bytes();
  const File f = parse(b);
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& e) {
    return a.size() == e.size() && std::memcmp(a.data(), e.data(), a.size() * sizeof(float)) == 0;
  };
  EXPECT_TRUE(same_bits(dequant(f, "f32"), f32));
  EXPECT_TRUE(same_bits(dequant(f, "f16"), f16));
  EXPECT_TRUE(same_bits(dequant(f, "bf16"), bf16));
  EXPECT_TRUE(same_bits(dequant(f, "q8"), q8));
  EXPECT_TRUE(same_bits(dequant(f, "q40"), q40));
  EXPECT_TRUE(same_bits(dequant(f, "q40s"), q40s));
  EXPECT_TRUE(same_bits(dequant(f, "q41"), q41));
}

// T2: random values come back within each format's rounding bound (per block for quantized).
TEST(GgufDequant, RandomValuesWithinFormatErrorBound) {
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  const size_t n = 32 * 64;
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  for (size_t i = 0; i < 32; ++i) x[i] *= 1e-3f;  // one block of small values
  const GgmlType types[] = {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                            GgmlType::Q4_1};
  GgufWriter w;
  for (GgmlType t : types) w.add_tensor(ggml_type_name(t), {32, 64}, x, t);
  const Bytes b = w.bytes();
  const File f = parse(b);
  for (GgmlType t : types) {
    const std::vector<float> y = dequant(f, ggml_type_name(t));
    ASSERT_EQ(y.size(), n);
    for (size_t blk = 0; blk < n; blk += 32) {
      double amax = 0, lo = x[blk], hi = x[blk];
      for (size_t j = blk; j < blk + 32; ++j) {
        amax = std::max(amax, std::fabs(double{x[j]}));
        lo = std::min(lo, double{x[j]});
        hi = std::max(hi, double{x[j]});
      }
      for (size_t j = blk; j < blk + 32; ++j) {
        const double err = std::fabs(double{y[j]} - double{x[j]});
        double bound = 0;
        switch (t) {
          case GgmlType::F16:
            bound = std::max(std::fabs(double{x[j]}) * 0x1p-11, 0x1p-25);
            break;
          case GgmlType::BF16:
            bound = std::fabs(double{x[j]}) * 0x1p-8;
            break;
          case GgmlType::Q8_0:
            bound = 0.51 * amax / 127;
            break;  // half a step
          case GgmlType::Q4_0:
            bound = 1.01 * amax / 8;
            break;  // a step at the clamped end
          case GgmlType::Q4_1:
            bound = 0.51 * (hi - lo) / 15 + std::fabs(lo) * 0x1p-10;
            break;
          default:
            break;
        }
        ASSERT_LE(err, bound) << ggml_type_name(t) << " element " << j << " x=" << x[j];
      }
    }
  }
}

TEST(GgufWriter, F16ConversionRoundsToNearestEvenAndRoundTripsEveryHalf) {
  using bx::test::f32_to_f16;
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // tie rounds to even: infinity
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even: zero
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units: tie to even 2
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);        // tie to even
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    if ((bits & 0x7c00) == 0x7c00 && (bits & 0x3ff) != 0) continue;  // nan
    ASSERT_EQ(f32_to_f16(f16_to_f32(bits)), bits) << std::hex << h;
  }
}

// ---------------------------------------------------------------------------------------------
// Malformed files: each is a bx::Error whose message names the problem.

TEST(GgufBad, Magic) {
  Bytes b = one_tensor_writer().bytes();
  b[0] = std::byte{'X'};
  expect_parse_error(b, {"test.gguf", "bad magic", "GGUF"});
  expect_parse_error(Bytes{}, {"bad magic"});
  expect_parse_error(Bytes{std::byte{'G'}, std::byte{'G'}}, {"bad magic"});
}

TEST(GgufBad, TruncatedAnywhere) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_array_string("tok", {"a", "bc"});
  w.add_array_f32("sc", {1.0f, 2.0f});
  w.add_value("nest",
              make_array(ValueType::array,
                         {make_array(ValueType::int16, {make(ValueType::int16, int64_t{3})})}));
  w.add_f64("eps", 1e-5);
  w.add_tensor("t0", {32}, std::vector<float>(32, 1.0f), GgmlType::Q8_0);
  w.add_tensor("t1", {3}, {1.0f, 2.0f, 3.0f});
  const Bytes full = w.bytes();
  const File f = parse(full);
  const TensorInfo& last = f.tensors().back();
  const size_t end = f.data_offset() + last.offset + last.n_bytes;  // after this: padding only
  for (size_t len = 0; len < end; ++len) {
    const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
    try {
      (void)parse(cut);
      ADD_FAILURE() << "prefix of " << len << " bytes parsed";
    } catch (const Error& e) {
      const std::string msg = e.what();
      const bool named =
          msg.find("truncated") != std::string::npos ||  // also "truncated or corrupt"
          msg.find("past the end of the file") != std::string::npos ||
          (len < 4 && msg.find("bad magic") != std::string::npos);
      EXPECT_TRUE(named) << len << ": " << msg;
    }
  }
  expect_parse_error(Bytes(full.begin(), full.begin() + 20),
                     {"truncated", "metadata count", "offset 16"});
}

TEST(GgufBad, AbsurdCountsAreRejectedBeforeAllocating) {
  Bytes b = one_tensor_writer().bytes();
  Bytes kv = b;
  poke<uint64_t>(kv, 16, uint64_t{1} << 62);
  expect_parse_error(kv, {"metadata count 4611686018427387904", "impossible"});
  Bytes tc = b;
  poke<uint64_t>(tc, 8, ~uint64_t{0});
  expect_parse_error(tc, {"tensor count 18446744073709551615", "impossible"});
  Bytes sl = b;  // key length of the first entry
  poke<uint64_t>(sl, 24, ~uint64_t{0} - 3);
  expect_parse_error(sl, {"truncated", "key of metadata entry 0 (string bytes)",
                          "needs 18446744073709551612 bytes"});
  Bytes vl = b;  // value length of general.architecture
  poke<uint64_t>(vl, after(vl, "general.architecture") + 4, uint64_t{1} << 40);
  expect_parse_error(vl, {"truncated", "metadata 'general.architecture' (string bytes)"});
  Bytes nl = b;  // tensor name length
  const size_t name_at = after(nl, "w.bad") - 5 - 8;
  poke<uint64_t>(nl, name_at, uint64_t{1} << 50);
  expect_parse_error(nl, {"truncated", "name of tensor info 0"});

  GgufWriter arr;
  arr.add_array_i32("ints", {1, 2, 3});
  Bytes al = arr.bytes();
  const size_t count_at = after(al, "ints") + 8;  // after the value type and the element type
  poke<uint64_t>(al, count_at, (uint64_t{1} << 62) + 1);
  expect_parse_error(
      al, {"metadata 'ints'", "claims 4611686018427387905 elements of type int32", "2^64"});
  poke<uint64_t>(al, count_at, 100);
  expect_parse_error(
      al, {"metadata 'ints'", "claims 100 elements", "400 bytes", "truncated or corrupt"});
}

TEST(GgufBad, TooManyMetadataValuesInAll) {
  // An array of 2^24 + 1 uint8 elements, with the bytes for them: over the limit, refused before
  // anything is allocated for it.
  GgufWriter w;
  w.add_value("big", make_array(ValueType::uint8, {}));
  Bytes b = w.bytes();
  const uint64_t n = kMaxMetadataValues + 1;
  poke<uint64_t>(b, after(b, "big") + 8, n);
  b.resize(b.size() + n);
  expect_parse_error(b, {"metadata 'big'", "16777217 elements", "over the limit of 16777216"});
}

TEST(GgufBad, UnknownValueTypes) {
  Bytes b = one_tensor_writer().bytes();
  poke<uint32_t>(b, after(b, "k.bool"), 13);
  expect_parse_error(b, {"metadata 'k.bool'", "unknown value type 13", "expected 0..12"});

  GgufWriter w;
  w.add_array_i32("ints", {1});
  Bytes a = w.bytes();
  poke<uint32_t>(a, after(a, "ints") + 4, 77);
  expect_parse_error(a, {"metadata 'ints'", "unknown element type 77"});
}

TEST(GgufBad, BoolOtherThanZeroOrOne) {
  Bytes b = one_tensor_writer().bytes();
  poke<uint8_t>(b, after(b, "k.bool") + 4, 2);
  expect_parse_error(b, {"metadata 'k.bool'", "bool stored as 2", "expected 0 or 1"});
}

TEST(GgufBad, ArraysNestedTooDeep) {
  Value v = make_array(ValueType::uint8, {});
  for (int i = 0; i < kMaxArrayDepth; ++i) v = make_array(ValueType::array, {v});
  GgufWriter ok;  // v is kMaxArrayDepth + 1 arrays deep; one level less parses
  ok.add_value("deep", v);
  GgufWriter fine;
  fine.add_value("deep", std::get<Array>(v.data).elements[0]);
  EXPECT_NO_THROW((void)parse(fine.bytes()));
  expect_parse_error(ok.bytes(), {"metadata 'deep'", "nests arrays more than 8 levels"});
}

TEST(GgufBad, DuplicateNames) {
  GgufWriter t;
  t.add_tensor("same", {2}, {1.0f, 2.0f});
  t.add_tensor("same", {2}, {3.0f, 4.0f});
  expect_parse_error(t.bytes(), {"duplicate tensor name 'same'", "tensor infos 0 and 1"});
  GgufWriter k;
  k.add_u32("key", 1);
  k.add_u32("key", 2);
  expect_parse_error(k.bytes(), {"duplicate metadata key 'key'", "entries 0 and 1"});
}

TEST(GgufBad, UnknownGgmlType) {
  for (uint32_t id : {4u, 31u, 99u}) {
    GgufWriter w;
    w.add_raw_tensor("t", {4}, static_cast<GgmlType>(id), Bytes(16));
    expect_parse_error(w.bytes(), {"tensor 't'", "unknown ggml type id " + std::to_string(id)});
  }
}

TEST(GgufBad, BadDims) {
  const size_t n_dims_at = after(one_tensor_writer().bytes(), "w.bad");
  for (uint32_t n : {0u, 5u, 0xffffffffu}) {
    Bytes b = one_tensor_writer().bytes();
    poke<uint32_t>(b, n_dims_at, n);
    expect_parse_error(
        b, {"tensor 'w.bad'", "has " + std::to_string(n) + " dimensions", "expected 1 to 4"});
  }
  Bytes zero = one_tensor_writer().bytes();
  poke<uint64_t>(zero, n_dims_at + 4 + 8, 0);
  expect_parse_error(zero, {"tensor 'w.bad'", "dimension 1 = 0", "positive"});
  Bytes neg = one_tensor_writer().bytes();
  poke<uint64_t>(neg, n_dims_at + 4, ~uint64_t{0});
  expect_parse_error(neg, {"tensor 'w.bad'", "dimension 0 = -1", "positive"});

  GgufWriter big;
  big.add_raw_tensor("big", {int64_t{1} << 32, int64_t{1} << 32}, GgmlType::F32, {});
  expect_parse_error(big.bytes(), {"tensor 'big'", "overflows int64"});
  GgufWriter bytes;
  bytes.add_raw_tensor("big", {int64_t{1} << 31, int64_t{1} << 31}, GgmlType::F32, {});
  expect_parse_error(bytes.bytes(), {"tensor 'big'", "byte size that overflows uint64"});
  GgufWriter huge;  // fits in uint64 but not in the file
  huge.add_raw_tensor("huge", {int64_t{1} << 40}, GgmlType::F16, {});
  expect_parse_error(huge.bytes(), {"tensor 'huge'", "past the end of the file"});
}

TEST(GgufBad, RowNotAMultipleOfTheBlockSize) {
  GgufWriter w;
  w.add_raw_tensor("q", {33, 32}, GgmlType::Q8_0, Bytes(33 * 34));
  expect_parse_error(w.bytes(), {"tensor 'q'", "Q8_0", "rows of 33", "block size 32"});
  GgufWriter k;
  k.add_raw_tensor("k", {128, 2}, GgmlType::Q4_K, Bytes(144));
  expect_parse_error(k.bytes(), {"tensor 'k'", "Q4_K", "block size 256"});
}

TEST(GgufBad, TensorDataPastEndOfFile) {
  Bytes b = one_tensor_writer().bytes();
  const size_t offset_at = after(b, "w.bad") + 4 + 16 + 4;
  poke<uint64_t>(b, offset_at, 4096);
  expect_parse_error(b, {"tensor 'w.bad'", "past the end of the file"});
  poke<uint64_t>(b, offset_at, ~uint64_t{0} - 31);  // aligned, would wrap around
  expect_parse_error(b, {"tensor 'w.bad'", "past the end of the file"});
  Bytes cut = one_tensor_writer().bytes();
  cut.resize(cut.size() - 40);  // last 40 bytes of the data
  expect_parse_error(cut, {"tensor 'w.bad'", "past the end of the file"});
}

// The K-quant and Q5 types: a file cut inside a tensor's blocks, a misaligned data offset and a
// short data span each name the tensor (the checks are the same for every type; these show the
// 256-element types take them too).
TEST(GgufBad, KQuantTensorsTruncatedMisalignedOrShortAreNamed) {
  const auto writer = [] {
    GgufWriter w;
    w.add_raw_tensor("q5k", {256, 2}, GgmlType::Q5_K, Bytes(2 * 176, std::byte{0x11}));
    w.add_raw_tensor("q6k", {512, 2}, GgmlType::Q6_K, Bytes(4 * 210, std::byte{0x22}));
    return w;
  };
  Bytes cut = writer().bytes();
  cut.resize(cut.size() - 100);  // inside q6k's last block
  expect_parse_error(cut, {"tensor 'q6k'", "past the end of the file"});

  Bytes b = writer().bytes();
  const size_t offset_at = after(b, "q6k") + 4 + 16 + 4;  // n_dims, dims, type
  poke<uint64_t>(b, offset_at, 360);
  expect_parse_error(b, {"tensor 'q6k'", "data offset 360", "misaligned"});

  const Bytes good = writer().bytes();
  const File f = parse(good);
  const TensorInfo& t = *f.find_tensor("q5k");
  std::vector<float> out(512);
  const auto data = f.tensor_data(t);
  expect_error([&] { dequantize_to_f32(t, data.first(data.size() - 1), out.data()); },
               {"tensor 'q5k'", "351 bytes", "expected 2 blocks of 176 bytes"});
}

TEST(GgufBad, HostileNamesAreQuotedInMessages) {
  GgufWriter w;
  w.add_tensor(std::string("a\nb\x01", 4), {2}, {1.0f, 2.0f});
  w.add_tensor(std::string("a\nb\x01", 4), {2}, {1.0f, 2.0f});
  expect_parse_error(w.bytes(), {"duplicate tensor name 'a\\x0ab\\x01'"});
  EXPECT_EQ(quote_name(std::string(100, 'x')), "'" + std::string(80, 'x') + "...'");
}

TEST(GgufBad, TensorDataForAnInfoOutsideTheFile) {
  const Bytes b = one_tensor_writer().bytes();
  const File f = parse(b);
  TensorInfo other = *f.find_tensor("w.bad");
  other.offset = 1 << 20;
  expect_error([&] { (void)f.tensor_data(other); }, {"tensor 'w.bad'", "outside the file"});
}

// ---------------------------------------------------------------------------------------------
// Files on disk

class GgufFileTest : public ::testing::Test {
 protected:
  std::string tmp(const std::string& name) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("bitexact_gguf_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    dirs_.push_back(dir);
    return (dir / name).string();
  }
  void TearDown() override {
    for (const auto& d : dirs_) std::filesystem::remove_all(d);
  }
  std::vector<std::filesystem::path> dirs_;
};

TEST_F(GgufFileTest, OpenMapsAWrittenFile) {
  const std::string path = tmp("small.gguf");
  GgufWriter w = one_tensor_writer(GgmlType::Q4_0);
  w.write(path);
  File f = File::open(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  const Bytes b = w.bytes();
  const File g = parse(b);
  EXPECT_EQ(dequant(f, "w.bad"), dequant(g, "w.bad"));
  EXPECT_EQ(f.content_hash(), g.content_hash());
  File moved = std::move(f);  // the mapping moves with the File
  EXPECT_EQ(dequant(moved, "w.bad"), dequant(g, "w.bad"));
}

TEST_F(GgufFileTest, OpenErrorsNameTheFile) {
  expect_error([] { (void)File::open("/nonexistent/dir/model.gguf"); },
               {"/nonexistent/dir/model.gguf", "cannot open"});
  const std::string dir = tmp("");
  expect_error([&] { (void)File::open(dir); }, {"not a regular file"});
  const std::string empty = tmp("empty.gguf");
  { std::ofstream(empty, std::ios::binary); }
  expect_error([&] { (void)File::open(empty); }, {empty, "empty file"});
  const std::string junk = tmp("junk.gguf");
  { std::ofstream(junk, std::ios::binary) << "not a model at all"; }
  expect_error([&] { (void)File::open(junk); }, {junk, "bad magic"});
}

// ---------------------------------------------------------------------------------------------
// content_hash

TEST(GgufHash, CoversTensorNamesTypesDimsAndDataOnly) {
  const Bytes base = one_tensor_writer(GgmlType::F32, {32, 2}).bytes();
  const std::string h = parse(base).content_hash();
  ASSERT_EQ(h.size(), 32u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos) << h;
  EXPECT_EQ(parse(base).content_hash(), h);

  const File f = parse(base);
  const size_t data_at = f.data_offset() + 5;
  Bytes data = base;
  data[data_at] ^= std::byte{1};
  EXPECT_NE(parse(data).content_hash(), h);

  Bytes meta = base;  // metadata is not part of the weights' identity
  poke<uint8_t>(meta, after(meta, "general.architecture") + 4 + 8, 'X');
  EXPECT_EQ(parse(meta).get_string("general.architecture"), "Xlama");
  EXPECT_EQ(parse(meta).content_hash(), h);

  Bytes name = base;
  poke<uint8_t>(name, after(name, "w.bad") - 1, 'c');
  EXPECT_NE(parse(name).content_hash(), h);

  const Bytes dims = one_tensor_writer(GgmlType::F32, {64, 1}).bytes();  // same data bytes
  EXPECT_NE(parse(dims).content_hash(), h);

  GgufWriter padded = one_tensor_writer(GgmlType::F32, {32, 2});
  padded.set_alignment(128);  // different padding, same tensors
  EXPECT_EQ(parse(padded.bytes()).content_hash(), h);
}

// ---------------------------------------------------------------------------------------------
// The shared real model

TEST(GgufStories, ReadsTheRealModel) {
  if (!std::filesystem::exists(kStories)) GTEST_SKIP() << kStories << " not found";
  const File f = File::open(kStories);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("llama.block_count"), 5u);
  EXPECT_EQ(f.get_uint("llama.embedding_length"), 64u);
  EXPECT_EQ(f.get_uint("llama.attention.head_count"), 8u);
  EXPECT_EQ(f.get_uint("llama.attention.head_count_kv"), 4u);
  EXPECT_EQ(f.get_uint("llama.feed_forward_length"), 172u);
  EXPECT_EQ(f.get_uint("llama.context_length"), 2048u);
  EXPECT_EQ(f.get_float("llama.attention.layer_norm_rms_epsilon"), double{1e-5f});
  EXPECT_EQ(f.get_uint("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(f.get_uint("tokenizer.ggml.eos_token_id"), 2u);
  const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(f.get_float_array("tokenizer.ggml.scores").size(), 512u);
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").size(), 512u);

  ASSERT_EQ(f.tensors().size(), 3u + 5u * 9u);
  for (const TensorInfo& t : f.tensors()) EXPECT_EQ(t.type, GgmlType::F32) << t.name;
  const TensorInfo* emb = f.find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dims, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(f.find_tensor("blk.4.ffn_down.weight")->dims, (std::vector<int64_t>{172, 64}));
  EXPECT_EQ(f.find_tensor("blk.0.attn_k.weight")->dims, (std::vector<int64_t>{64, 32}));
  const std::vector<float> norm = dequant(f, "output_norm.weight");
  ASSERT_EQ(norm.size(), 64u);
  for (float v : norm) EXPECT_TRUE(std::isfinite(v));
}

TEST(GgufStories, ContentHashIsStableAndSeesOneByte) {
  if (!std::filesystem::exists(kStories)) GTEST_SKIP() << kStories << " not found";
  const std::string h1 = File::open(kStories).content_hash();
  const std::string h2 = File::open(kStories).content_hash();
  EXPECT_EQ(h1, h2);
  ASSERT_EQ(h1.size(), 32u);

  std::ifstream in(kStories, std::ios::binary);
  const std::vector<char> chars((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  Bytes b(chars.size());
  std::memcpy(b.data(), chars.data(), chars.size());
  const File f = parse(b);
  EXPECT_EQ(f.content_hash(), h1);  // parse and open agree
  const TensorInfo* t = f.find_tensor("blk.2.attn_v.weight");
  ASSERT_NE(t, nullptr);
  Bytes changed = b;
  changed[f.data_offset() + t->offset + 100] ^= std::byte{0x01};
  EXPECT_NE(parse(changed).content_hash(), h1);
}

}  // namespace
}  // namespace bx::gguf
