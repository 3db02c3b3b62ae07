// libFuzzer target for the GGUF reader: parses the input with File::parse, then touches every
// metadata value (recursively), every typed getter on every key, every tensor's data, the
// content hash, and dequantizes each tensor of a loadable type (up to kMaxDequantElements).
// A bx::Error from File::parse (or from a getter asked for the wrong type) is an accepted outcome.
// Once a file has parsed, its tensors must be readable, hashable and dequantizable: an exception
// there escapes and libFuzzer reports it, like a crash or a sanitizer report.
// Build and run: see fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/error.h"
#include "model/gguf.h"

namespace {

using namespace bx::gguf;

constexpr int64_t kMaxDequantElements = int64_t{1} << 16;

// Reads every byte of every value so the sanitizers see any bad pointer or length.
uint64_t walk(const Value& v) {
  uint64_t h = static_cast<uint64_t>(v.type);
  if (const auto* u = std::get_if<uint64_t>(&v.data)) h += *u;
  if (const auto* i = std::get_if<int64_t>(&v.data)) h += static_cast<uint64_t>(*i);
  if (const auto* d = std::get_if<double>(&v.data)) h += *d == *d ? 1 : 2;
  if (const auto* b = std::get_if<bool>(&v.data)) h += *b ? 1 : 0;
  if (const auto* s = std::get_if<std::string>(&v.data)) {
    for (char c : *s) h = h * 31 + static_cast<unsigned char>(c);
  }
  if (const auto* a = std::get_if<Array>(&v.data)) {
    h += static_cast<uint64_t>(a->element_type);
    for (const Value& e : a->elements) h = h * 7 + walk(e);
  }
  return h;
}

template <class F>
uint64_t try_get(F&& f) {
  try {
    f();
    return 1;
  } catch (const bx::Error&) {
    return 0;
  }
}

void exercise(const File& f) {
  volatile uint64_t sink = f.version() + f.alignment() + f.data_offset();
  for (const MetadataEntry& e : f.metadata()) {
    sink = sink + walk(e.value);
    const std::string& k = e.key;
    if (f.find(k) == nullptr) __builtin_trap();  // every key must be findable
    sink = sink + try_get([&] { return f.get_string(k).size(); });
    sink = sink + try_get([&] { return f.get_uint(k); });
    sink = sink + try_get([&] { return f.get_int(k); });
    sink = sink + try_get([&] { return f.get_float(k); });
    sink = sink + try_get([&] { return f.get_bool(k); });
    sink = sink + try_get([&] { return f.get_string_array(k).size(); });
    sink = sink + try_get([&] { return f.get_float_array(k).size(); });
    sink = sink + try_get([&] { return f.get_int_array(k).size(); });
  }
  sink = sink + try_get([&] { return f.get_string("general.architecture").size(); });
  std::vector<float> out;
  for (const TensorInfo& t : f.tensors()) {
    if (f.find_tensor(t.name) != &t) __builtin_trap();  // names are unique and indexed
    sink = sink + ggml_type_name(t.type).size() + quote_name(t.name).size();
    const std::span<const std::byte> data = f.tensor_data(t);
    if (data.size() != t.n_bytes) __builtin_trap();
    if (!data.empty())
      sink =
          sink + std::to_integer<uint64_t>(data.front()) + std::to_integer<uint64_t>(data.back());
    if (to_dtype(t.type) && t.n_elements <= kMaxDequantElements) {
      out.assign(static_cast<size_t>(t.n_elements), 0.0f);
      dequantize_to_f32(t, data, out.data());
      for (float x : out) sink = sink + (x == x ? 1 : 0);
    }
  }
  if (f.content_hash().size() != 32) __builtin_trap();
  (void)sink;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  std::optional<File> f;
  try {
    f.emplace(File::parse(bytes, "fuzz.gguf"));
  } catch (const bx::Error&) {
    return 0;  // a clear rejection is the expected outcome for most inputs
  }
  exercise(*f);
  return 0;
}
