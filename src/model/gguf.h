// GGUF v3 reader: memory-maps a file, parses and validates its header, metadata and tensor infos.
//
// Layout (little-endian): magic "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count,
// then metadata (key string, u32 value type, value), then tensor infos (name, u32 n_dims,
// u64 dims[n_dims] with dims[0] the fastest-varying, u32 ggml type, u64 offset), then padding to
// `general.alignment` (default 32) and the tensor data, each tensor at data_start + offset.
// Every read is bounds-checked: a malformed file is a bx::Error naming what is wrong, never a
// crash (fuzzed by fuzz/gguf_fuzz.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/dtype.h"

namespace bx::gguf {

// clang-format off
enum class ValueType : uint32_t {
  uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, boolean = 7,
  string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12,
};
// clang-format on
std::string_view value_type_name(ValueType t);

// ggml tensor type ids as stored in the file. Only some can be loaded (see to_dtype).
// clang-format off
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9, Q2_K = 10,
  Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18,
  IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26,
  I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};
// clang-format on
std::string ggml_type_name(GgmlType t);  // "Q4_K", or "type 99" for an unknown id

// Storage layout of a ggml type: `block_size` elements take `type_size` bytes (F32: 1 / 4,
// Q8_0: 32 / 34, Q4_K: 256 / 144, ...). A row (dims[0]) is a whole number of blocks.
struct GgmlTypeTraits {
  std::string_view name;
  uint32_t block_size = 0;
  uint32_t type_size = 0;
};
// nullptr for an id that is not a known ggml type (4, 5, 31..33, 36..38, > 39).
const GgmlTypeTraits* ggml_type_traits(GgmlType t);
// The loadable types: F32, F16, BF16 and the block formats of kernels/quant.h (Q8_0, Q4_0, Q4_1,
// Q5_0, Q5_1, Q2_K .. Q6_K, IQ4_NL, IQ4_XS). Others -> nullopt.
std::optional<DType> to_dtype(GgmlType t);
// "F32, F16, BF16, Q8_0, ...": the loadable types' names, for error messages.
std::string supported_type_names();

struct Value;
struct Array {
  ValueType element_type = ValueType::uint8;
  std::vector<Value> elements;
  friend bool operator==(const Array&, const Array&) = default;
};
// Integers widen to int64_t / uint64_t, floats to double; the original type is kept in `type`.
// Arrays may nest (an array of arrays), at most kMaxArrayDepth levels deep.
struct Value {
  ValueType type = ValueType::uint8;
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> data;
  friend bool operator==(const Value&, const Value&) = default;
};

// Limits that keep a hostile file from exhausting the stack or memory. Real models are far
// below them (the largest vocabularies have a few hundred thousand entries).
inline constexpr int kMaxArrayDepth = 8;                           // array of array of ...
inline constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 24;  // all array elements, total
inline constexpr uint32_t kMaxTensorDims = 4;

struct MetadataEntry {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order: dims[0] varies fastest (for a matrix, dims = {K, N})
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t n_bytes = 0;
  int64_t n_elements = 0;
};

class File {
 public:
  // Opens, maps (read-only, private) and validates the file: magic, version 3 (2 is accepted
  // too), counts and lengths against the bytes left (checked before allocating), every metadata
  // value (known type, bools 0 or 1, unique keys, general.alignment a power of two), tensor
  // infos (known ggml type, 1 to 4 dims each > 0 with no overflow, rows a whole number of
  // blocks, offset aligned, data inside the file, unique names). Throws bx::Error.
  static File open(const std::string& path);
  // Parses a file image already in memory (used by the fuzzer and tests). `bytes` must outlive
  // the File.
  static File parse(std::span<const std::byte> bytes, std::string name_for_errors);

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  uint32_t version() const;
  uint32_t alignment() const;
  uint64_t data_offset() const;  // where the (aligned) data section starts in the file
  const std::vector<MetadataEntry>& metadata() const;
  const std::vector<TensorInfo>& tensors() const;
  const std::string& path() const;

  const Value* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }
  // Typed getters: a missing key or a value of another type is a bx::Error naming the key and
  // the expected type. Integer getters accept any integer type whose value fits.
  std::string get_string(std::string_view key) const;
  uint64_t get_uint(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;  // float32 or float64
  bool get_bool(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<double> get_float_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;

  const TensorInfo* find_tensor(std::string_view name) const;
  // The tensor's bytes inside the mapping (info.n_bytes of them, at data_offset() + offset).
  std::span<const std::byte> tensor_data(const TensorInfo& info) const;

  // XXH3-128 over every tensor's name, type, dims and data bytes, in file order, as 32 hex
  // digits: the weights' identity in the system fingerprint.
  std::string content_hash() const;

 private:
  struct Impl;
  explicit File(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Quotes a key or tensor name read from a file for a one-line error message: 'name', with
// non-printable bytes as \xNN and at most 80 bytes shown.
std::string quote_name(std::string_view name);

// Dequantizes or widens one tensor's data to f32 (the types to_dtype accepts); `out` holds
// info.n_elements floats, `data` must be exactly the tensor's bytes. F16 / BF16 are widened
// exactly; block formats follow the element math of kernels/quant.h. Throws bx::Error naming the
// tensor and the supported types for any other type, or when data has the wrong size.
void dequantize_to_f32(const TensorInfo& info, std::span<const std::byte> data, float* out);

}  // namespace bx::gguf
