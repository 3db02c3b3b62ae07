// safetensors reader: memory-maps a file, parses and validates its JSON header; and the
// checkpoint of a Hugging Face model folder, one model.safetensors or the shards that
// model.safetensors.index.json names.
//
// File layout: u64 N (little-endian), then N bytes of UTF-8 JSON (an object, possibly padded with
// trailing spaces), then the data section, which runs to the end of the file. The object maps each
// tensor name to {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]} (a byte
// range of the data section, shape row-major: shape[0] varies slowest); the optional key
// "__metadata__" maps to an object of string values.
//
// Validation (every failure is one bx::Error naming the file, the tensor or key, and what was
// expected; fuzzed by fuzz/safetensors_fuzz.cpp): the file holds the 8 length bytes and the whole
// header; N <= kMaxHeaderBytes; the header is valid JSON, an object, with no duplicate keys and at
// most 3 levels deep; __metadata__ is an object of strings; each tensor entry has exactly the keys
// dtype (a known safetensors dtype), shape (at most kMaxDims non-negative integers, element and
// byte counts without overflow) and data_offsets (two integers, begin <= end <= the data size,
// end - begin = elements * dtype size); and the tensors' ranges tile the data section exactly: no
// overlap, no hole, no trailing bytes (as the format's specification requires).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/dtype.h"

namespace bx::safetensors {

// The dtypes of the safetensors format. Only F32, F16 and BF16 can be loaded (see to_dtype); the
// others are parsed so a file that holds them is read and named correctly.
// clang-format off
enum class Dtype : uint8_t {
  BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64,
};
// clang-format on
std::string_view dtype_name(Dtype t);
uint32_t dtype_size(Dtype t);  // bytes per element
std::optional<Dtype> dtype_from_name(std::string_view name);
std::optional<DType> to_dtype(Dtype t);  // F32, F16, BF16; others nullopt

// Bounds that keep a hostile file from exhausting memory (the format's reference implementation
// uses the same header limit).
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;
inline constexpr size_t kMaxDims = 8;

struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<int64_t> shape;  // row-major: a matrix W[out][in] has shape {out, in}
  uint64_t begin = 0;          // data_offsets, bytes from the start of the data section
  uint64_t end = 0;
  int64_t n_elements = 0;  // product of shape (1 for shape [])
  uint64_t n_bytes() const { return end - begin; }
};

class File {
 public:
  // Opens, maps (read-only, private) and validates the file. Throws bx::Error.
  static File open(const std::string& path);
  // Parses a file image already in memory (fuzzer, tests). `bytes` must outlive the File.
  static File parse(std::span<const std::byte> bytes, std::string name_for_errors);

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  const std::string& path() const;
  uint64_t header_length() const;  // N
  uint64_t data_offset() const;    // 8 + N: where the data section starts in the file
  const std::vector<TensorInfo>& tensors() const;              // sorted by name
  const std::map<std::string, std::string>& metadata() const;  // "__metadata__"
  const TensorInfo* find_tensor(std::string_view name) const;
  // The tensor's bytes inside the mapping (info.n_bytes() of them).
  std::span<const std::byte> tensor_data(const TensorInfo& info) const;

 private:
  struct Impl;
  explicit File(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Widens one F32, F16 or BF16 tensor to f32 (exactly); `out` holds info.n_elements floats and
// `data` must be the tensor's bytes. Throws bx::Error naming the tensor and the supported dtypes
// for any other dtype, or when data has the wrong size.
void convert_to_f32(const TensorInfo& info, std::span<const std::byte> data, float* out);

// The tensor -> shard map of a model.safetensors.index.json ({"weight_map": {tensor: shard}},
// other keys ignored). Shard names must be plain file names (no '/', not "." or ".."), so an index
// cannot reach outside its folder. Throws bx::Error naming `name_for_errors`.
std::map<std::string, std::string> parse_index(std::string_view json,
                                               const std::string& name_for_errors);

// The weights of a Hugging Face model folder, looked up by tensor name across its files.
class Checkpoint {
 public:
  // `dir`/model.safetensors if it exists (as transformers prefers it), else the shards named by
  // `dir`/model.safetensors.index.json. Each shard must exist (a missing one is an error naming
  // it), hold every tensor the index maps to it and no tensor the index maps elsewhere or omits.
  static Checkpoint open(const std::string& dir);

  Checkpoint(Checkpoint&&) noexcept = default;
  Checkpoint& operator=(Checkpoint&&) noexcept = default;
  Checkpoint(const Checkpoint&) = delete;  // entries point into files_
  Checkpoint& operator=(const Checkpoint&) = delete;

  struct Entry {
    const File* file = nullptr;
    const TensorInfo* info = nullptr;
  };

  const std::string& dir() const { return dir_; }
  const std::vector<File>& files() const { return files_; }
  // Every tensor, sorted by name.
  const std::map<std::string, Entry, std::less<>>& tensors() const { return tensors_; }
  std::optional<Entry> find(std::string_view name) const;
  int64_t parameter_count() const;
  uint64_t total_bytes() const;

  // XXH3-128, as 32 hex digits, over `prefix` (its length, then its bytes) and then every
  // tensor in name order: name, dtype name, shape and data bytes (each string and list preceded
  // by its length). The same weights give the same hash however they are sharded.
  std::string content_hash(std::string_view prefix) const;

 private:
  Checkpoint() = default;
  std::string dir_;
  std::vector<File> files_;
  std::map<std::string, Entry, std::less<>> tensors_;
};

}  // namespace bx::safetensors
