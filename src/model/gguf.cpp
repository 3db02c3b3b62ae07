// GGUF reader: mapping, header / metadata / tensor-info parsing and validation, typed getters,
// content hash. Every read goes through Cursor, which checks the bytes are there first; every
// count is checked against the bytes left before anything is allocated for it.
#include "model/gguf.h"

#include <bit>
#include <cstring>
#include <functional>
#include <limits>
#include <unordered_map>
#include <utility>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "core/error.h"
#include "core/mapped_file.h"

static_assert(std::endian::native == std::endian::little,
              "GGUF reader assumes a little-endian host");

namespace bx::gguf {
namespace {

constexpr uint32_t kDefaultAlignment = 32;
// Smallest encodings, used to bound counts before allocating: a metadata entry is at least a
// key length (8), a value type (4) and a one-byte value; a tensor info is at least a name
// length (8), n_dims (4), one dim (8), a type (4) and an offset (8).
constexpr uint64_t kMinMetadataEntryBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

std::string str(uint64_t v) {
  return std::to_string(v);
}

// Size of one encoded element of `t` inside an array: exact for fixed-size types, the minimum
// for strings (length only) and arrays (element type + count).
uint64_t min_encoded_size(ValueType t) {
  switch (t) {
    case ValueType::uint8:
    case ValueType::int8:
    case ValueType::boolean:
      return 1;
    case ValueType::uint16:
    case ValueType::int16:
      return 2;
    case ValueType::uint32:
    case ValueType::int32:
    case ValueType::float32:
      return 4;
    case ValueType::uint64:
    case ValueType::int64:
    case ValueType::float64:
      return 8;
    case ValueType::string:
      return 8;
    case ValueType::array:
      return 4 + 8;
  }
  return 1;
}

bool valid_value_type(uint32_t t) {
  return t <= static_cast<uint32_t>(ValueType::float64);
}

// What is being read, for error messages, built only when a message is needed:
// "<base> element <index><part>", e.g. "metadata 'tokenizer.ggml.tokens' element 7 (string
// length)".
struct Ctx {
  static constexpr uint64_t kNoIndex = ~uint64_t{0};
  std::string_view base;
  uint64_t index = kNoIndex;
  const char* part = "";
  Ctx with(const char* p) const { return {base, index, p}; }
  std::string str() const {
    std::string s(base);
    if (index != kNoIndex) s += " element " + std::to_string(index);
    return s + part;
  }
};

// A forward-only reader over the file image. Every read checks the bytes are there and names
// what it was reading when they are not.
class Cursor {
 public:
  Cursor(std::span<const std::byte> bytes, const std::string& file) : bytes_(bytes), file_(file) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  void need(uint64_t n, const Ctx& what) const {
    if (n > remaining()) {
      throw Error(file_ + ": truncated file: " + what.str() + " needs " + str(n) +
                  " bytes at offset " + str(pos_) + ", but only " + str(remaining()) +
                  " are left (file size " + str(bytes_.size()) + ")");
    }
  }

  template <class T>
  T read(const Ctx& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const Ctx& what) {
    const auto n = read<uint64_t>(what.with(" (string length)"));
    need(n, what.with(" (string bytes)"));
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<size_t>(n));
    pos_ += n;
    return s;
  }

 private:
  std::span<const std::byte> bytes_;
  const std::string& file_;
  uint64_t pos_ = 0;
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Index = std::unordered_map<std::string, size_t, StringHash, std::equal_to<>>;

std::string describe(ValueType t) {
  return std::string(value_type_name(t));
}

}  // namespace

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::uint8:
      return "uint8";
    case ValueType::int8:
      return "int8";
    case ValueType::uint16:
      return "uint16";
    case ValueType::int16:
      return "int16";
    case ValueType::uint32:
      return "uint32";
    case ValueType::int32:
      return "int32";
    case ValueType::float32:
      return "float32";
    case ValueType::boolean:
      return "bool";
    case ValueType::string:
      return "string";
    case ValueType::array:
      return "array";
    case ValueType::uint64:
      return "uint64";
    case ValueType::int64:
      return "int64";
    case ValueType::float64:
      return "float64";
  }
  return "unknown value type";
}

std::string quote_name(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (s.size() > 80) out += "...";
  return out + "'";
}

struct File::Impl {
  std::string path;
  MappedFile mapping;  // empty when parsed from memory
  std::span<const std::byte> bytes;
  uint32_t version = 0;
  uint32_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;
  std::vector<MetadataEntry> metadata;
  std::vector<TensorInfo> tensors;
  Index metadata_index;
  Index tensor_index;

  void parse();

 private:
  Value read_value(Cursor& in, ValueType type, const Ctx& what, int depth);
  void read_alignment();
  void read_tensor_info(Cursor& in, uint64_t i);
  [[noreturn]] void fail(const std::string& message) const { throw Error(path + ": " + message); }
  uint64_t values_left_ = kMaxMetadataValues;
};

Value File::Impl::read_value(Cursor& in, ValueType type, const Ctx& what, int depth) {
  Value v;
  v.type = type;
  switch (type) {
    case ValueType::uint8:
      v.data = uint64_t{in.read<uint8_t>(what)};
      break;
    case ValueType::uint16:
      v.data = uint64_t{in.read<uint16_t>(what)};
      break;
    case ValueType::uint32:
      v.data = uint64_t{in.read<uint32_t>(what)};
      break;
    case ValueType::uint64:
      v.data = in.read<uint64_t>(what);
      break;
    case ValueType::int8:
      v.data = int64_t{in.read<int8_t>(what)};
      break;
    case ValueType::int16:
      v.data = int64_t{in.read<int16_t>(what)};
      break;
    case ValueType::int32:
      v.data = int64_t{in.read<int32_t>(what)};
      break;
    case ValueType::int64:
      v.data = in.read<int64_t>(what);
      break;
    case ValueType::float32:
      v.data = double{in.read<float>(what)};
      break;
    case ValueType::float64:
      v.data = in.read<double>(what);
      break;
    case ValueType::boolean: {
      const auto b = in.read<uint8_t>(what);
      if (b > 1) fail(what.str() + " is a bool stored as " + str(b) + ": expected 0 or 1");
      v.data = b == 1;
      break;
    }
    case ValueType::string:
      v.data = in.read_string(what);
      break;
    case ValueType::array: {
      if (depth >= kMaxArrayDepth) {
        fail(what.str() + " nests arrays more than " + str(kMaxArrayDepth) +
             " levels deep: expected at most " + str(kMaxArrayDepth));
      }
      const auto elem = in.read<uint32_t>(what.with(" (array element type)"));
      if (!valid_value_type(elem)) {
        fail(what.str() + " is an array with unknown element type " + str(elem) +
             ": expected 0..12 (uint8 .. float64)");
      }
      const auto count = in.read<uint64_t>(what.with(" (array length)"));
      Array arr;
      arr.element_type = static_cast<ValueType>(elem);
      const uint64_t min_bytes = min_encoded_size(arr.element_type);
      if (count > in.remaining() / min_bytes) {
        fail(what.str() + " claims " + str(count) + " elements of type " +
             describe(arr.element_type) + ", which need at least " +
             (count > std::numeric_limits<uint64_t>::max() / min_bytes ? std::string("2^64")
                                                                       : str(count * min_bytes)) +
             " bytes, but only " + str(in.remaining()) +
             " are left in the file (truncated or corrupt)");
      }
      if (count > values_left_) {
        fail(what.str() + " has " + str(count) + " elements, over the limit of " +
             str(kMaxMetadataValues) + " metadata array elements in all");
      }
      values_left_ -= count;
      arr.elements.reserve(static_cast<size_t>(count));
      if (arr.element_type != ValueType::array) {
        for (uint64_t i = 0; i < count; ++i) {
          arr.elements.push_back(read_value(in, arr.element_type, Ctx{what.base, i}, depth + 1));
        }
      } else {
        // Nested arrays (rare): the element's own context must outlive its read.
        for (uint64_t i = 0; i < count; ++i) {
          const std::string base = Ctx{what.base, what.index}.str() + " element " + str(i);
          arr.elements.push_back(read_value(in, arr.element_type, Ctx{base}, depth + 1));
        }
      }
      v.data = std::move(arr);
      break;
    }
  }
  return v;
}

void File::Impl::read_alignment() {
  auto it = metadata_index.find(std::string_view("general.alignment"));
  if (it == metadata_index.end()) return;
  const Value& v = metadata[it->second].value;
  std::string shown;
  uint64_t a = 0;
  if (const auto* u = std::get_if<uint64_t>(&v.data)) {
    a = *u;
    shown = str(a);
  } else if (const auto* i = std::get_if<int64_t>(&v.data)) {
    a = *i > 0 ? static_cast<uint64_t>(*i) : 0;
    shown = std::to_string(*i);
  } else {
    fail("metadata 'general.alignment' has type " + describe(v.type) + ": expected uint32");
  }
  if (a == 0 || !std::has_single_bit(a) || a > (uint64_t{1} << 31)) {
    fail("metadata 'general.alignment' is " + shown + ": expected a power of two (1 .. 2^31)");
  }
  alignment = static_cast<uint32_t>(a);
}

void File::Impl::read_tensor_info(Cursor& in, uint64_t i) {
  const std::string info = "name of tensor info " + str(i);
  TensorInfo t;
  t.name = in.read_string(Ctx{info});
  const std::string tname = "tensor " + quote_name(t.name);
  if (auto it = tensor_index.find(t.name); it != tensor_index.end()) {
    fail("duplicate tensor name " + quote_name(t.name) + " (tensor infos " + str(it->second) +
         " and " + str(i) + "): expected unique names");
  }
  const auto n_dims = in.read<uint32_t>(Ctx{tname, Ctx::kNoIndex, " (number of dimensions)"});
  if (n_dims < 1 || n_dims > kMaxTensorDims) {
    fail(tname + " has " + str(n_dims) + " dimensions: expected 1 to " + str(kMaxTensorDims));
  }
  t.dims.reserve(n_dims);
  int64_t n_elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    const auto dim = in.read<uint64_t>(Ctx{tname, Ctx::kNoIndex, " (dimensions)"});
    if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(tname + " has dimension " + str(d) + " = " +
           (dim == 0 ? std::string("0") : std::to_string(static_cast<int64_t>(dim))) +
           ": expected a positive size");
    }
    t.dims.push_back(static_cast<int64_t>(dim));
    if (__builtin_mul_overflow(n_elements, static_cast<int64_t>(dim), &n_elements)) {
      fail(tname + " has an element count that overflows int64 (at dimension " + str(d) + " = " +
           str(dim) + "): expected a tensor that fits in the file");
    }
  }
  t.n_elements = n_elements;
  const auto type_id = in.read<uint32_t>(Ctx{tname, Ctx::kNoIndex, " (type)"});
  t.type = static_cast<GgmlType>(type_id);
  const GgmlTypeTraits* traits = ggml_type_traits(t.type);
  if (traits == nullptr) {
    fail(tname + " has unknown ggml type id " + str(type_id) +
         ": expected a known ggml type id (0..3, 6..30, 34, 35, 39)");
  }
  const std::string type_name(traits->name);
  if (t.dims[0] % traits->block_size != 0) {
    fail(tname + " of type " + type_name + " has rows of " + std::to_string(t.dims[0]) +
         " elements (dimension 0): expected a multiple of the block size " +
         str(traits->block_size));
  }
  const uint64_t n_blocks = static_cast<uint64_t>(n_elements) / traits->block_size;
  if (__builtin_mul_overflow(n_blocks, uint64_t{traits->type_size}, &t.n_bytes)) {
    fail(tname + " has a byte size that overflows uint64 (" +
         str(static_cast<uint64_t>(n_elements)) + " elements of " + type_name +
         "): expected a tensor that fits in the file");
  }
  t.offset = in.read<uint64_t>(Ctx{tname, Ctx::kNoIndex, " (data offset)"});
  if (t.offset % alignment != 0) {
    fail(tname + " has data offset " + str(t.offset) +
         ", which is misaligned: expected a multiple of the alignment " + str(alignment));
  }
  tensor_index.emplace(t.name, tensors.size());
  tensors.push_back(std::move(t));
}

void File::Impl::parse() {
  Cursor in(bytes, path);
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "GGUF", 4) != 0) {
    fail("bad magic: expected a GGUF file, starting with the bytes \"GGUF\"");
  }
  in.read<uint32_t>(Ctx{"magic"});
  version = in.read<uint32_t>(Ctx{"version"});
  if (version != 3 && version != 2) {
    std::string hint;
    if (version == 0x03000000u || version == 0x02000000u) hint = " (a big-endian GGUF file)";
    if (version == 1) hint = " (GGUF v1, obsolete)";
    fail("unsupported GGUF version " + str(version) + hint + ": supported are 3 and 2");
  }
  const auto n_tensors = in.read<uint64_t>(Ctx{"tensor count"});
  const auto n_kv = in.read<uint64_t>(Ctx{"metadata count"});
  if (n_kv > in.remaining() / kMinMetadataEntryBytes) {
    fail("metadata count " + str(n_kv) + " is impossible (truncated or corrupt file): only " +
         str(in.remaining()) + " bytes follow the header, and each entry takes at least " +
         str(kMinMetadataEntryBytes));
  }

  metadata.reserve(static_cast<size_t>(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string entry = "key of metadata entry " + str(i);
    MetadataEntry e;
    e.key = in.read_string(Ctx{entry});
    const std::string what = "metadata " + quote_name(e.key);
    if (auto it = metadata_index.find(e.key); it != metadata_index.end()) {
      fail("duplicate metadata key " + quote_name(e.key) + " (entries " + str(it->second) +
           " and " + str(i) + "): expected unique keys");
    }
    const auto type = in.read<uint32_t>(Ctx{what, Ctx::kNoIndex, " (value type)"});
    if (!valid_value_type(type)) {
      fail(what + " has unknown value type " + str(type) + ": expected 0..12 (uint8 .. float64)");
    }
    e.value = read_value(in, static_cast<ValueType>(type), Ctx{what}, 0);
    metadata_index.emplace(e.key, metadata.size());
    metadata.push_back(std::move(e));
  }
  read_alignment();

  if (n_tensors > in.remaining() / kMinTensorInfoBytes) {
    fail("tensor count " + str(n_tensors) + " is impossible (truncated or corrupt file): only " +
         str(in.remaining()) + " bytes follow the metadata, and each tensor info takes at least " +
         str(kMinTensorInfoBytes));
  }
  tensors.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) read_tensor_info(in, i);

  // The data section starts at the next multiple of the alignment (pos < 2^63, alignment <= 2^31).
  data_offset = (in.pos() + alignment - 1) / alignment * alignment;
  const uint64_t size = bytes.size();
  for (const TensorInfo& t : tensors) {
    if (data_offset > size || t.offset > size - data_offset ||
        t.n_bytes > size - data_offset - t.offset) {
      fail("tensor " + quote_name(t.name) + " data (" + str(t.n_bytes) + " bytes at offset " +
           str(t.offset) + " of the data section, which starts at " + str(data_offset) +
           ") lies past the end of the file (size " + str(size) + ")");
    }
  }
}

File::File(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

File File::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->mapping = MappedFile(path, "a GGUF model file (magic \"GGUF\")");
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

uint32_t File::version() const {
  return impl_->version;
}
uint32_t File::alignment() const {
  return impl_->alignment;
}
uint64_t File::data_offset() const {
  return impl_->data_offset;
}
const std::vector<MetadataEntry>& File::metadata() const {
  return impl_->metadata;
}
const std::vector<TensorInfo>& File::tensors() const {
  return impl_->tensors;
}
const std::string& File::path() const {
  return impl_->path;
}

const Value* File::find(std::string_view key) const {
  auto it = impl_->metadata_index.find(key);
  return it == impl_->metadata_index.end() ? nullptr : &impl_->metadata[it->second].value;
}

namespace {

const Value& require(const File& f, std::string_view key, const char* expected) {
  const Value* v = f.find(key);
  if (v == nullptr) {
    throw Error(f.path() + ": metadata key " + quote_name(key) + " is missing: expected " +
                expected);
  }
  return *v;
}

[[noreturn]] void wrong_type(const File& f, std::string_view key, const Value& v,
                             const char* expected) {
  std::string got = describe(v.type);
  if (const auto* a = std::get_if<Array>(&v.data)) got = "array of " + describe(a->element_type);
  throw Error(f.path() + ": metadata key " + quote_name(key) + " has type " + got + ": expected " +
              expected);
}

// Integer value as int64, if it is an integer that fits.
std::optional<int64_t> as_int(const Value& v) {
  if (const auto* s = std::get_if<int64_t>(&v.data)) return *s;
  if (const auto* u = std::get_if<uint64_t>(&v.data)) {
    if (*u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return static_cast<int64_t>(*u);
  }
  return std::nullopt;
}

bool is_integer(const Value& v) {
  return std::holds_alternative<int64_t>(v.data) || std::holds_alternative<uint64_t>(v.data);
}

const Array& require_array(const File& f, std::string_view key, const char* expected,
                           bool (*element_ok)(ValueType)) {
  const Value& v = require(f, key, expected);
  const auto* a = std::get_if<Array>(&v.data);
  if (a == nullptr || !element_ok(a->element_type)) wrong_type(f, key, v, expected);
  return *a;
}

}  // namespace

std::string File::get_string(std::string_view key) const {
  const Value& v = require(*this, key, "string");
  const auto* s = std::get_if<std::string>(&v.data);
  if (s == nullptr) wrong_type(*this, key, v, "string");
  return *s;
}

uint64_t File::get_uint(std::string_view key) const {
  const char* expected = "an unsigned integer";
  const Value& v = require(*this, key, expected);
  if (const auto* u = std::get_if<uint64_t>(&v.data)) return *u;
  if (const auto* s = std::get_if<int64_t>(&v.data)) {
    if (*s >= 0) return static_cast<uint64_t>(*s);
    throw Error(path() + ": metadata key " + quote_name(key) + " is " + std::to_string(*s) +
                ": expected an unsigned integer (>= 0)");
  }
  wrong_type(*this, key, v, expected);
}

int64_t File::get_int(std::string_view key) const {
  const char* expected = "an integer";
  const Value& v = require(*this, key, expected);
  if (!is_integer(v)) wrong_type(*this, key, v, expected);
  if (auto i = as_int(v)) return *i;
  throw Error(path() + ": metadata key " + quote_name(key) + " is " +
              str(std::get<uint64_t>(v.data)) + ": expected an integer that fits in int64");
}

double File::get_float(std::string_view key) const {
  const char* expected = "float32 or float64";
  const Value& v = require(*this, key, expected);
  const auto* d = std::get_if<double>(&v.data);
  if (d == nullptr) wrong_type(*this, key, v, expected);
  return *d;
}

bool File::get_bool(std::string_view key) const {
  const Value& v = require(*this, key, "bool");
  const auto* b = std::get_if<bool>(&v.data);
  if (b == nullptr) wrong_type(*this, key, v, "bool");
  return *b;
}

std::vector<std::string> File::get_string_array(std::string_view key) const {
  const Array& a = require_array(*this, key, "array of string",
                                 [](ValueType t) { return t == ValueType::string; });
  std::vector<std::string> out;
  out.reserve(a.elements.size());
  for (const Value& e : a.elements) out.push_back(std::get<std::string>(e.data));
  return out;
}

std::vector<double> File::get_float_array(std::string_view key) const {
  const Array& a = require_array(*this, key, "array of float32 or float64", [](ValueType t) {
    return t == ValueType::float32 || t == ValueType::float64;
  });
  std::vector<double> out;
  out.reserve(a.elements.size());
  for (const Value& e : a.elements) out.push_back(std::get<double>(e.data));
  return out;
}

std::vector<int64_t> File::get_int_array(std::string_view key) const {
  const Array& a = require_array(*this, key, "array of integers", [](ValueType t) {
    return t == ValueType::uint8 || t == ValueType::int8 || t == ValueType::uint16 ||
           t == ValueType::int16 || t == ValueType::uint32 || t == ValueType::int32 ||
           t == ValueType::uint64 || t == ValueType::int64;
  });
  std::vector<int64_t> out;
  out.reserve(a.elements.size());
  for (size_t i = 0; i < a.elements.size(); ++i) {
    auto v = as_int(a.elements[i]);
    if (!v) {
      throw Error(path() + ": metadata key " + quote_name(key) + " element " + str(i) + " is " +
                  str(std::get<uint64_t>(a.elements[i].data)) +
                  ": expected an integer that fits in int64");
    }
    out.push_back(*v);
  }
  return out;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = impl_->tensor_index.find(name);
  return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

std::span<const std::byte> File::tensor_data(const TensorInfo& info) const {
  const uint64_t size = impl_->bytes.size();
  const uint64_t start = impl_->data_offset;
  if (start > size || info.offset > size - start || info.n_bytes > size - start - info.offset) {
    throw Error(path() + ": tensor " + quote_name(info.name) + " data (" + str(info.n_bytes) +
                " bytes at data offset " + str(info.offset) + ") lies outside the file (size " +
                str(size) + "): expected a tensor info from this file");
  }
  return impl_->bytes.subspan(static_cast<size_t>(start + info.offset),
                              static_cast<size_t>(info.n_bytes));
}

std::string File::content_hash() const {
  // Per tensor, in file order: u64 name length, name bytes, u32 type id, u32 n_dims,
  // i64 dims[n_dims], data bytes. Lengths are included so no two tensor lists hash alike
  // by shifting bytes between fields.
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  if (!state || XXH3_128bits_reset(state.get()) != XXH_OK) {
    throw Error(path() + ": cannot start the XXH3 content hash (out of memory)");
  }
  auto feed = [&](const void* p, size_t n) { XXH3_128bits_update(state.get(), p, n); };
  for (const TensorInfo& t : impl_->tensors) {
    const uint64_t name_len = t.name.size();
    const auto type_id = static_cast<uint32_t>(t.type);
    const auto n_dims = static_cast<uint32_t>(t.dims.size());
    feed(&name_len, sizeof name_len);
    feed(t.name.data(), t.name.size());
    feed(&type_id, sizeof type_id);
    feed(&n_dims, sizeof n_dims);
    feed(t.dims.data(), t.dims.size() * sizeof(int64_t));
    const std::span<const std::byte> data = tensor_data(t);
    feed(data.data(), data.size());
  }
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state.get()));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (unsigned char c : canonical.digest) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace bx::gguf
