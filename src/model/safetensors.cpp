// safetensors reader: header parsing and validation, the tiling check of the data section,
// widening to f32, the sharded index and the checkpoint's content hash.
#include "model/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "core/error.h"
#include "core/half.h"
#include "core/json.h"
#include "core/mapped_file.h"
#include "model/gguf.h"  // quote_name

static_assert(std::endian::native == std::endian::little,
              "safetensors reader assumes a little-endian host");

namespace bx::safetensors {
namespace {

using gguf::quote_name;
using nlohmann::json;

std::string str(uint64_t v) {
  return std::to_string(v);
}

// The header nests at most {tensor: {"shape": [...]}}: three levels.
constexpr int kMaxHeaderDepth = 3;
// An index is {"metadata": {...}, "weight_map": {...}}; metadata values may be objects too.
constexpr int kMaxIndexDepth = 4;
constexpr uint64_t kMaxIndexBytes = 64ull << 20;

struct DtypeInfo {
  Dtype dtype;
  std::string_view name;
  uint32_t size;
};
// clang-format off
constexpr DtypeInfo kDtypes[] = {
  {Dtype::BOOL, "BOOL", 1}, {Dtype::U8, "U8", 1}, {Dtype::I8, "I8", 1},
  {Dtype::F8_E5M2, "F8_E5M2", 1}, {Dtype::F8_E4M3, "F8_E4M3", 1}, {Dtype::I16, "I16", 2},
  {Dtype::U16, "U16", 2}, {Dtype::F16, "F16", 2}, {Dtype::BF16, "BF16", 2},
  {Dtype::I32, "I32", 4}, {Dtype::U32, "U32", 4}, {Dtype::F32, "F32", 4},
  {Dtype::F64, "F64", 8}, {Dtype::I64, "I64", 8}, {Dtype::U64, "U64", 8},
};
// clang-format on

std::string known_dtype_list() {
  std::string s;
  for (const DtypeInfo& d : kDtypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A JSON integer >= 0 that fits in uint64, or nullopt.
std::optional<uint64_t> as_u64(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0)
    return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

}  // namespace

std::string_view dtype_name(Dtype t) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.dtype == t) return d.name;
  }
  return "unknown dtype";
}

uint32_t dtype_size(Dtype t) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.dtype == t) return d.size;
  }
  return 0;
}

std::optional<Dtype> dtype_from_name(std::string_view name) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.name == name) return d.dtype;
  }
  return std::nullopt;
}

std::optional<DType> to_dtype(Dtype t) {
  switch (t) {
    case Dtype::F32:
      return DType::f32;
    case Dtype::F16:
      return DType::f16;
    case Dtype::BF16:
      return DType::bf16;
    default:
      return std::nullopt;
  }
}

struct File::Impl {
  std::string path;
  MappedFile mapping;  // empty when parsed from memory
  std::span<const std::byte> bytes;
  uint64_t header_length = 0;
  uint64_t data_offset = 0;
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;

  void parse();

 private:
  [[noreturn]] void fail(const std::string& message) const { throw Error(path + ": " + message); }
  void read_metadata(const json& value);
  TensorInfo read_tensor(const std::string& name, const json& value, uint64_t data_size) const;
  void check_tiling(uint64_t data_size) const;
};

void File::Impl::read_metadata(const json& value) {
  if (!value.is_object()) {
    fail("\"__metadata__\" is " + json_type_name(value) + ": expected an object of strings");
  }
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string()) {
      fail("\"__metadata__\" key " + quote_name(key) + " is " + json_type_name(v) +
           ": expected a string");
    }
    metadata.emplace(key, v.get<std::string>());
  }
}

TensorInfo File::Impl::read_tensor(const std::string& name, const json& value,
                                   uint64_t data_size) const {
  const std::string what = "tensor " + quote_name(name);
  if (!value.is_object()) {
    fail(what + " is " + json_type_name(value) +
         ": expected an object with dtype, shape and data_offsets");
  }
  for (const auto& [key, v] : value.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      fail(what + " has unknown key " + quote_name(key) +
           ": expected only dtype, shape and data_offsets");
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(key)) fail(what + " has no \"" + key + "\"");
  }
  TensorInfo t;
  t.name = name;

  const json& dtype = value["dtype"];
  if (!dtype.is_string()) fail(what + " dtype is " + json_type_name(dtype) + ": expected a string");
  const auto parsed_dtype = dtype_from_name(dtype.get_ref<const std::string&>());
  if (!parsed_dtype) {
    fail(what + " has unknown dtype " + quote_name(dtype.get_ref<const std::string&>()) +
         ": expected one of " + known_dtype_list());
  }
  t.dtype = *parsed_dtype;

  const json& shape = value["shape"];
  if (!shape.is_array()) fail(what + " shape is " + json_type_name(shape) + ": expected an array");
  if (shape.size() > kMaxDims) {
    fail(what + " has " + str(shape.size()) + " dimensions: expected at most " + str(kMaxDims));
  }
  int64_t n_elements = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    const auto dim = as_u64(shape[d]);
    if (!dim || *dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(what + " shape element " + str(d) + " is " + shape[d].dump() +
           ": expected an integer >= 0");
    }
    t.shape.push_back(static_cast<int64_t>(*dim));
    if (__builtin_mul_overflow(n_elements, static_cast<int64_t>(*dim), &n_elements)) {
      fail(what + " shape " + shape.dump() + " has an element count that overflows int64: " +
           "expected a tensor that fits in the file");
    }
  }
  t.n_elements = n_elements;
  uint64_t expected_bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(n_elements), uint64_t{dtype_size(t.dtype)},
                             &expected_bytes)) {
    fail(what + " shape " + shape.dump() + " has a byte size that overflows uint64: expected a " +
         "tensor that fits in the file");
  }

  const json& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) {
    fail(what + " data_offsets is " + offsets.dump().substr(0, 80) +
         ": expected an array of two integers [begin, end]");
  }
  const auto begin = as_u64(offsets[0]);
  const auto end = as_u64(offsets[1]);
  if (!begin || !end) {
    fail(what + " data_offsets " + offsets.dump() + ": expected two integers >= 0");
  }
  if (*begin > *end) {
    fail(what + " data_offsets [" + str(*begin) + ", " + str(*end) +
         "] end before they begin: expected begin <= end");
  }
  if (*end > data_size) {
    fail(what + " data_offsets [" + str(*begin) + ", " + str(*end) +
         "] lie past the end of the data section (" + str(data_size) +
         " bytes): truncated or corrupt file");
  }
  t.begin = *begin;
  t.end = *end;
  if (t.n_bytes() != expected_bytes) {
    fail(what + " data_offsets [" + str(t.begin) + ", " + str(t.end) + "] hold " +
         str(t.n_bytes()) + " bytes, but dtype " + std::string(dtype_name(t.dtype)) +
         " and shape " + shape_string(t.shape) + " need " + str(expected_bytes));
  }
  return t;
}

void File::Impl::check_tiling(uint64_t data_size) const {
  // Sorted by (begin, end), each range must start where the previous one ended.
  std::vector<const TensorInfo*> order;
  order.reserve(tensors.size());
  for (const TensorInfo& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* t : order) {
    if (t->begin < covered) {
      fail("tensors " + quote_name(previous->name) + " (bytes [" + str(previous->begin) + ", " +
           str(previous->end) + ")) and " + quote_name(t->name) + " (bytes [" + str(t->begin) +
           ", " + str(t->end) + ")) overlap: expected disjoint data_offsets");
    }
    if (t->begin > covered) {
      fail("data section bytes [" + str(covered) + ", " + str(t->begin) + ") before tensor " +
           quote_name(t->name) + " belong to no tensor: expected the tensors to fill the data " +
           "section without holes");
    }
    covered = t->end;
    previous = t;
  }
  if (covered != data_size) {
    fail("the data section has " + str(data_size) + " bytes but the tensors end at byte " +
         str(covered) + ": expected no bytes after the last tensor");
  }
}

void File::Impl::parse() {
  const uint64_t size = bytes.size();
  if (size < 8) {
    fail("truncated file: the header length needs 8 bytes, but the file has " + str(size) +
         ": expected a safetensors file");
  }
  std::memcpy(&header_length, bytes.data(), 8);
  if (header_length > kMaxHeaderBytes) {
    fail("header length " + str(header_length) + " exceeds the limit of " + str(kMaxHeaderBytes) +
         " bytes: expected a safetensors file (a little-endian u64 header length, then JSON)");
  }
  if (header_length > size - 8) {
    fail("truncated file: the header needs " + str(header_length) +
         " bytes after the 8-byte length, but only " + str(size - 8) + " are left");
  }
  data_offset = 8 + header_length;
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8,
                              static_cast<size_t>(header_length));
  if (text.empty() || text.front() != '{') {
    fail("the header does not start with '{': expected a JSON object");
  }
  const json header = parse_json_strict(text, path + ": header", kMaxHeaderDepth);
  if (!header.is_object()) fail("the header is " + json_type_name(header) + ": expected an object");
  const uint64_t data_size = size - data_offset;
  tensors.reserve(header.size());
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      read_metadata(value);
    } else {
      tensors.push_back(read_tensor(key, value, data_size));
    }
  }
  // nlohmann's objects iterate in key order, so `tensors` is sorted by name already.
  check_tiling(data_size);
}

File::File(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

File File::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->mapping = MappedFile(path, "a safetensors file");
  impl->bytes = impl->mapping.bytes();
  impl->parse();
  return File(std::move(impl));
}

File File::parse(std::span<const std::byte> bytes, std::string name_for_errors) {
  auto impl = std::make_unique<Impl>();
  impl->path = std::move(name_for_errors);
  impl->bytes = bytes;
  impl->parse();
  return File(std::move(impl));
}

const std::string& File::path() const {
  return impl_->path;
}
uint64_t File::header_length() const {
  return impl_->header_length;
}
uint64_t File::data_offset() const {
  return impl_->data_offset;
}
const std::vector<TensorInfo>& File::tensors() const {
  return impl_->tensors;
}
const std::map<std::string, std::string>& File::metadata() const {
  return impl_->metadata;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  const auto& ts = impl_->tensors;
  auto it = std::lower_bound(ts.begin(), ts.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  return it != ts.end() && it->name == name ? &*it : nullptr;
}

std::span<const std::byte> File::tensor_data(const TensorInfo& info) const {
  const uint64_t size = impl_->bytes.size();
  const uint64_t start = impl_->data_offset;
  if (info.begin > info.end || info.end > size - start) {
    throw Error(path() + ": tensor " + quote_name(info.name) + " data_offsets [" + str(info.begin) +
                ", " + str(info.end) + "] lie outside the file (size " + str(size) +
                "): expected a tensor info from this file");
  }
  return impl_->bytes.subspan(static_cast<size_t>(start + info.begin),
                              static_cast<size_t>(info.n_bytes()));
}

void convert_to_f32(const TensorInfo& info, std::span<const std::byte> data, float* out) {
  check(to_dtype(info.dtype).has_value(), "tensor " + quote_name(info.name) + " has dtype " +
                                              std::string(dtype_name(info.dtype)) +
                                              ": supported are F32, F16 and BF16");
  const uint64_t n = static_cast<uint64_t>(info.n_elements);
  check(data.size() == n * dtype_size(info.dtype),
        "tensor " + quote_name(info.name) + ": " + str(data.size()) + " data bytes for " + str(n) +
            " elements of " + std::string(dtype_name(info.dtype)));
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  switch (info.dtype) {
    case Dtype::F32:
      if (n != 0) std::memcpy(out, p, static_cast<size_t>(n) * 4);
      break;
    case Dtype::F16:
    case Dtype::BF16:
      for (uint64_t i = 0; i < n; ++i) {
        const auto h = static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8));
        out[i] = info.dtype == Dtype::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      break;
    default:
      break;
  }
}

std::map<std::string, std::string> parse_index(std::string_view text,
                                               const std::string& name_for_errors) {
  const json index = parse_json_strict(text, name_for_errors, kMaxIndexDepth);
  auto fail = [&](const std::string& message) { throw Error(name_for_errors + ": " + message); };
  if (!index.is_object()) fail("the index is " + json_type_name(index) + ": expected an object");
  if (!index.contains("weight_map"))
    fail("no \"weight_map\": expected {\"weight_map\": {tensor: shard file}}");
  const json& map = index["weight_map"];
  if (!map.is_object()) {
    fail("\"weight_map\" is " + json_type_name(map) + ": expected an object {tensor: shard file}");
  }
  std::map<std::string, std::string> out;
  for (const auto& [tensor, shard] : map.items()) {
    if (!shard.is_string()) {
      fail("\"weight_map\" entry " + quote_name(tensor) + " is " + json_type_name(shard) +
           ": expected a shard file name");
    }
    const std::string& file = shard.get_ref<const std::string&>();
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
        file.find('\0') != std::string::npos) {
      fail("\"weight_map\" entry " + quote_name(tensor) + " names shard " + quote_name(file) +
           ": expected a file name in the model folder (no '/', not '.' or '..')");
    }
    out.emplace(tensor, file);
  }
  return out;
}

std::optional<Checkpoint::Entry> Checkpoint::find(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return std::nullopt;
  return it->second;
}

int64_t Checkpoint::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, e] : tensors_) n += e.info->n_elements;
  return n;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t n = 0;
  for (const auto& [name, e] : tensors_) n += e.info->n_bytes();
  return n;
}

namespace {

std::string read_text_file(const std::string& path, uint64_t max_bytes) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  check(!ec, path + ": cannot read: " + ec.message());
  check(size <= max_bytes, path + ": " + str(size) + " bytes exceeds the limit of " +
                               str(max_bytes) + ": expected a small JSON file");
  std::ifstream in(path, std::ios::binary);
  std::string text(static_cast<size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  check(static_cast<bool>(in), path + ": cannot read " + str(size) + " bytes");
  return text;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir) {
  namespace fs = std::filesystem;
  Checkpoint c;
  c.dir_ = dir;
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  const std::string index_name = index_path.string();
  std::error_code ec;
  std::map<std::string, std::string> weight_map;  // empty for a single file
  if (fs::exists(single, ec)) {
    c.files_.push_back(File::open(single.string()));
  } else if (fs::exists(index_path, ec)) {
    weight_map = parse_index(read_text_file(index_name, kMaxIndexBytes), index_name);
    check(!weight_map.empty(),
          index_name + ": \"weight_map\" is empty: expected the model's tensors");
    // Shards in name order, each with the tensors the index maps to it.
    std::map<std::string, std::vector<std::string>> shards;
    for (const auto& [tensor, shard] : weight_map) shards[shard].push_back(tensor);
    for (const auto& [shard, names] : shards) {
      const fs::path shard_path = fs::path(dir) / shard;
      check(fs::exists(shard_path, ec),
            index_name + ": shard " + quote_name(shard) + " (holding " + str(names.size()) +
                " tensors, e.g. " + quote_name(names.front()) + ") is missing: expected the file " +
                shard_path.string());
      c.files_.push_back(File::open(shard_path.string()));
    }
  } else {
    throw Error(dir + ": no model.safetensors and no model.safetensors.index.json: expected the " +
                "weights of a Hugging Face model folder");
  }
  for (const File& f : c.files_) {
    for (const TensorInfo& t : f.tensors()) {
      const auto [it, added] = c.tensors_.emplace(t.name, Entry{&f, &t});
      check(added, f.path() + ": tensor " + quote_name(t.name) + " is also in " +
                       it->second.file->path() + ": expected each tensor in one shard");
    }
  }
  if (weight_map.empty()) return c;
  // Sharded: the shards hold exactly the tensors the index maps to them.
  for (const auto& [tensor, shard] : weight_map) {
    auto it = c.tensors_.find(tensor);
    check(it != c.tensors_.end(), index_name + ": tensor " + quote_name(tensor) +
                                      " is mapped to shard " + quote_name(shard) +
                                      ", which does not hold it");
    const std::string holder = fs::path(it->second.file->path()).filename().string();
    check(holder == shard, index_name + ": tensor " + quote_name(tensor) + " is mapped to shard " +
                               quote_name(shard) + " but is in " + quote_name(holder));
  }
  for (const auto& [name, e] : c.tensors_) {
    check(weight_map.count(name) == 1,
          e.file->path() + ": holds tensor " + quote_name(name) + ", which " + index_name +
              " does not list: expected every tensor in the weight_map");
  }
  return c;
}

std::string Checkpoint::content_hash(std::string_view prefix) const {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  check(state && XXH3_128bits_reset(state.get()) == XXH_OK,
        dir_ + ": cannot start the XXH3 content hash (out of memory)");
  auto feed = [&](const void* p, size_t n) { XXH3_128bits_update(state.get(), p, n); };
  auto feed_string = [&](std::string_view s) {
    const uint64_t n = s.size();
    feed(&n, sizeof n);
    feed(s.data(), s.size());
  };
  feed_string(prefix);
  for (const auto& [name, e] : tensors_) {
    feed_string(name);
    feed_string(dtype_name(e.info->dtype));
    const uint64_t n_dims = e.info->shape.size();
    feed(&n_dims, sizeof n_dims);
    feed(e.info->shape.data(), e.info->shape.size() * sizeof(int64_t));
    const std::span<const std::byte> data = e.file->tensor_data(*e.info);
    feed(data.data(), data.size());
  }
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state.get()));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char ch : canonical.digest) {
    out.push_back(kHex[ch >> 4]);
    out.push_back(kHex[ch & 15]);
  }
  return out;
}

}  // namespace bx::safetensors
