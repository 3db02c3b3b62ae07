// libFuzzer target for the safetensors reader: parses the input with safetensors::File::parse,
// then reads every metadata entry, looks every tensor up by name, reads its bytes and widens each
// loadable (F32 / F16 / BF16) tensor of up to kMaxConvertElements to f32.
// A bx::Error from File::parse is an accepted outcome. Once a file has parsed, its tensors must be
// findable, inside the file, tiling the data section, and convertible: an exception there escapes
// and libFuzzer reports it, like a crash or a sanitizer report.
// Build and run: see fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/safetensors.h"

namespace {

using namespace bx::safetensors;

constexpr int64_t kMaxConvertElements = int64_t{1} << 16;

void exercise(const File& f, size_t file_size) {
  volatile uint64_t sink = f.header_length() + f.data_offset();
  if (f.data_offset() != 8 + f.header_length() || f.data_offset() > file_size) __builtin_trap();
  for (const auto& [key, value] : f.metadata()) sink = sink + key.size() + value.size();
  uint64_t covered = 0;
  std::vector<float> out;
  for (const TensorInfo& t : f.tensors()) {
    if (f.find_tensor(t.name) != &t) __builtin_trap();  // names are unique and found
    sink = sink + dtype_name(t.dtype).size();
    const std::span<const std::byte> data = f.tensor_data(t);
    if (data.size() != t.n_bytes()) __builtin_trap();
    if (t.n_bytes() != static_cast<uint64_t>(t.n_elements) * dtype_size(t.dtype)) __builtin_trap();
    covered += t.n_bytes();
    if (!data.empty())
      sink =
          sink + std::to_integer<uint64_t>(data.front()) + std::to_integer<uint64_t>(data.back());
    if (to_dtype(t.dtype) && t.n_elements <= kMaxConvertElements) {
      out.assign(static_cast<size_t>(t.n_elements), 0.0f);
      convert_to_f32(t, data, out.data());
      for (float x : out) sink = sink + (x == x ? 1 : 0);
    }
  }
  // The tensors tile the data section: their sizes add up to it exactly.
  if (covered != file_size - f.data_offset()) __builtin_trap();
  (void)sink;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  std::optional<File> f;
  try {
    f.emplace(File::parse(bytes, "fuzz.safetensors"));
  } catch (const bx::Error&) {
    return 0;  // a clear rejection is the expected outcome for most inputs
  }
  exercise(*f, size);
  return 0;
}
