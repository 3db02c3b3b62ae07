// Test support: builds small GGUF v3 files in memory (and on disk) for tests and fuzz seeds.
//
//   bx::test::GgufWriter w;
//   w.add_string("general.architecture", "llama");
//   w.add_u32("llama.block_count", 2);
//   w.add_array_string("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"});
//   w.add_tensor("token_embd.weight", {64, 3}, data, bx::gguf::GgmlType::Q8_0);  // dims[0] fastest
//   std::vector<std::byte> bytes = w.bytes();
//   w.write(path);
//
// Header-only and free of library symbols (it uses only the enums of model/gguf.h and the inline
// helpers of core/half.h), so a standalone tool can include it too. Quantizers are simple
// round-to-nearest, with the block layouts that gguf_dequant.cpp reads.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "model/gguf.h"

namespace bx::test {

using gguf::GgmlType;
using gguf::ValueType;

// f32 -> IEEE binary16, round to nearest even; overflow gives inf, NaN stays a quiet NaN.
inline uint16_t f32_to_f16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (a >= 0x38800000u) {                                              // normal in f16
    uint32_t r = a - (112u << 23);                                     // rebias 127 -> 15
    r += 0xfffu + ((r >> 13) & 1u);                                    // round to nearest even
    return static_cast<uint16_t>(sign | (r >> 13));
  }
  // f16 subnormal (units of 2^-24) or zero. value = m * 2^(e-150), in units: m >> (126 - e).
  const uint32_t e = a >> 23;
  if (e < 102) return sign;  // below 2^-25: rounds to zero
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - e;  // 14 .. 24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u) != 0)) ++q;
  return static_cast<uint16_t>(sign | q);
}

namespace detail {

// round(v) clamped to [lo, hi]; NaN gives 0.
inline int round_clamp(float v, int lo, int hi) {
  if (!(v == v)) return 0;
  const float r = std::round(v);
  if (r <= static_cast<float>(lo)) return lo;
  if (r >= static_cast<float>(hi)) return hi;
  return static_cast<int>(r);
}

inline void put_f16(std::vector<std::byte>& out, float v) {
  const uint16_t h = f32_to_f16(v);
  out.push_back(static_cast<std::byte>(h & 0xffu));
  out.push_back(static_cast<std::byte>(h >> 8));
}

}  // namespace detail

// Elements per block and bytes per block of the types the writer can quantize to.
inline uint32_t writer_block_size(GgmlType t) {
  switch (t) {
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
      return 32;
    default:
      return 1;
  }
}

// Quantizes x (a multiple of the block size) to `type`: F32, F16, BF16, Q8_0, Q4_0 or Q4_1.
//   Q8_0: d = amax/127,             q = round(x/d) in [-127, 127]
//   Q4_0: d = (signed max |x|)/-8,  q = round(x/d) + 8 in [0, 15]
//   Q4_1: d = (max-min)/15, m = min, q = round((x-m)/d) in [0, 15]
// q is computed with d and m as rounded to f16, so values on the grid come back exactly.
inline std::vector<std::byte> quantize(std::span<const float> x, GgmlType type) {
  std::vector<std::byte> out;
  const uint32_t bs = writer_block_size(type);
  if (x.size() % bs != 0) {
    throw Error("quantize: " + std::to_string(x.size()) +
                " values is not a multiple of the block size " + std::to_string(bs));
  }
  switch (type) {
    case GgmlType::F32:
      out.resize(x.size() * 4);
      if (!x.empty()) std::memcpy(out.data(), x.data(), out.size());
      return out;
    case GgmlType::F16:
      for (float v : x) detail::put_f16(out, v);
      return out;
    case GgmlType::BF16:
      for (float v : x) {
        const uint16_t h = f32_to_bf16(v);
        out.push_back(static_cast<std::byte>(h & 0xffu));
        out.push_back(static_cast<std::byte>(h >> 8));
      }
      return out;
    default:
      break;
  }
  for (size_t b = 0; b < x.size(); b += 32) {
    const std::span<const float> blk = x.subspan(b, 32);
    int q[32] = {};
    if (type == GgmlType::Q8_0) {
      float amax = 0.0f;
      for (float v : blk) amax = std::max(amax, std::fabs(v));
      const float d = f16_to_f32(f32_to_f16(amax / 127.0f));
      detail::put_f16(out, d);
      for (int j = 0; j < 32; ++j) {
        q[j] = d == 0.0f ? 0 : detail::round_clamp(blk[j] / d, -127, 127);
        out.push_back(static_cast<std::byte>(static_cast<uint8_t>(static_cast<int8_t>(q[j]))));
      }
      continue;
    }
    if (type == GgmlType::Q4_0) {
      float max = 0.0f;
      for (float v : blk) {
        if (std::fabs(v) > std::fabs(max)) max = v;
      }
      const float d = f16_to_f32(f32_to_f16(max / -8.0f));
      detail::put_f16(out, d);
      for (int j = 0; j < 32; ++j)
        q[j] = d == 0.0f ? 8 : detail::round_clamp(blk[j] / d + 8.0f, 0, 15);
    } else if (type == GgmlType::Q4_1) {
      float lo = blk[0], hi = blk[0];
      for (float v : blk) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      const float d = f16_to_f32(f32_to_f16((hi - lo) / 15.0f));
      const float m = f16_to_f32(f32_to_f16(lo));
      detail::put_f16(out, d);
      detail::put_f16(out, m);
      for (int j = 0; j < 32; ++j)
        q[j] = d == 0.0f ? 0 : detail::round_clamp((blk[j] - m) / d, 0, 15);
    } else {
      throw Error("quantize: type " + std::to_string(static_cast<uint32_t>(type)) +
                  " is not one the writer quantizes to: expected F32, F16, BF16, Q8_0, Q4_0, Q4_1");
    }
    for (int j = 0; j < 16; ++j) {  // element j in the low nibble, j+16 in the high nibble
      out.push_back(static_cast<std::byte>(static_cast<unsigned>(q[j]) |
                                           (static_cast<unsigned>(q[j + 16]) << 4)));
    }
  }
  return out;
}

class GgufWriter {
 public:
  void add_u8(std::string_view key, uint8_t v) { scalar(key, ValueType::uint8, v); }
  void add_i8(std::string_view key, int8_t v) { scalar(key, ValueType::int8, v); }
  void add_u16(std::string_view key, uint16_t v) { scalar(key, ValueType::uint16, v); }
  void add_i16(std::string_view key, int16_t v) { scalar(key, ValueType::int16, v); }
  void add_u32(std::string_view key, uint32_t v) { scalar(key, ValueType::uint32, v); }
  void add_i32(std::string_view key, int32_t v) { scalar(key, ValueType::int32, v); }
  void add_u64(std::string_view key, uint64_t v) { scalar(key, ValueType::uint64, v); }
  void add_i64(std::string_view key, int64_t v) { scalar(key, ValueType::int64, v); }
  void add_f32(std::string_view key, float v) { scalar(key, ValueType::float32, v); }
  void add_f64(std::string_view key, double v) { scalar(key, ValueType::float64, v); }
  void add_bool(std::string_view key, bool v) { scalar(key, ValueType::boolean, uint8_t{v}); }
  void add_string(std::string_view key, std::string_view v) {
    begin(key, ValueType::string);
    put_string(meta_, v);
  }
  void add_array_string(std::string_view key, const std::vector<std::string>& v) {
    begin_array(key, ValueType::string, v.size());
    for (const std::string& s : v) put_string(meta_, s);
  }
  void add_array_f32(std::string_view key, const std::vector<float>& v) {
    array(key, ValueType::float32, v);
  }
  void add_array_i32(std::string_view key, const std::vector<int32_t>& v) {
    array(key, ValueType::int32, v);
  }
  void add_array_u32(std::string_view key, const std::vector<uint32_t>& v) {
    array(key, ValueType::uint32, v);
  }

  // Any value, arrays of any element type and nested arrays included. Integers and floats are
  // narrowed to v.type; array elements are written as the array's element_type.
  void add_value(std::string_view key, const gguf::Value& v) {
    begin(key, v.type);
    put_value(meta_, v.type, v);
  }

  // A tensor from f32 values (dims[0] fastest; product(dims) == data.size()), stored as `type`.
  void add_tensor(std::string_view name, std::vector<int64_t> dims, std::span<const float> data,
                  GgmlType type = GgmlType::F32) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    if (n != static_cast<int64_t>(data.size())) {
      throw Error("GgufWriter: tensor '" + std::string(name) + "' has " + std::to_string(n) +
                  " elements by its dims but " + std::to_string(data.size()) +
                  " values were given");
    }
    add_raw_tensor(name, std::move(dims), type, quantize(data, type));
  }
  void add_tensor(std::string_view name, std::vector<int64_t> dims,
                  std::initializer_list<float> data, GgmlType type = GgmlType::F32) {
    add_tensor(name, std::move(dims), std::span<const float>(data.begin(), data.size()), type);
  }
  // A tensor given as its stored bytes, of any type id (nothing is checked: for bad-input tests).
  void add_raw_tensor(std::string_view name, std::vector<int64_t> dims, GgmlType type,
                      std::vector<std::byte> bytes) {
    tensors_.push_back({std::string(name), std::move(dims), type, std::move(bytes)});
  }

  // Sets the data alignment and writes it as 'general.alignment' (uint32) at this point of the
  // metadata. Without a call the alignment is the GGUF default, 32, and no key is written.
  void set_alignment(uint32_t a) {
    alignment_ = a;
    add_u32("general.alignment", a);
  }
  // Written into the header; 3 unless changed (tests of version handling).
  void set_version(uint32_t v) { version_ = v; }

  std::vector<std::byte> bytes() const {
    const uint64_t align = alignment_ == 0 ? 1 : alignment_;
    auto pad = [&](uint64_t n) { return (n + align - 1) / align * align; };
    std::vector<std::byte> out;
    put(out, uint32_t{0x46554747u});  // "GGUF"
    put(out, version_);
    put(out, static_cast<uint64_t>(tensors_.size()));
    put(out, n_kv_);
    out.insert(out.end(), meta_.begin(), meta_.end());
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
      put_string(out, t.name);
      put(out, static_cast<uint32_t>(t.dims.size()));
      for (int64_t d : t.dims) put(out, static_cast<uint64_t>(d));
      put(out, static_cast<uint32_t>(t.type));
      put(out, offset);
      offset = pad(offset + t.data.size());
    }
    out.resize(pad(out.size()));
    for (const Tensor& t : tensors_) {
      out.insert(out.end(), t.data.begin(), t.data.end());
      out.resize(pad(out.size()));
    }
    return out;
  }

  void write(const std::string& path) const {
    const std::vector<std::byte> b = bytes();
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    if (!f) throw Error("GgufWriter: cannot write " + path);
  }

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    GgmlType type;
    std::vector<std::byte> data;
  };

  template <class T>
  static void put(std::vector<std::byte>& out, T v) {
    std::byte b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  static void put_string(std::vector<std::byte>& out, std::string_view s) {
    put(out, static_cast<uint64_t>(s.size()));
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out.insert(out.end(), p, p + s.size());
  }
  static void put_value(std::vector<std::byte>& out, ValueType t, const gguf::Value& v) {
    auto as_u = [&]() -> uint64_t {
      if (const auto* u = std::get_if<uint64_t>(&v.data)) return *u;
      if (const auto* i = std::get_if<int64_t>(&v.data)) return static_cast<uint64_t>(*i);
      if (const auto* b = std::get_if<bool>(&v.data)) return *b ? 1 : 0;
      return 0;
    };
    auto as_d = [&]() -> double {
      if (const auto* d = std::get_if<double>(&v.data)) return *d;
      return 0.0;
    };
    switch (t) {
      case ValueType::uint8:
      case ValueType::int8:
      case ValueType::boolean:
        put(out, static_cast<uint8_t>(as_u()));
        break;
      case ValueType::uint16:
      case ValueType::int16:
        put(out, static_cast<uint16_t>(as_u()));
        break;
      case ValueType::uint32:
      case ValueType::int32:
        put(out, static_cast<uint32_t>(as_u()));
        break;
      case ValueType::uint64:
      case ValueType::int64:
        put(out, as_u());
        break;
      case ValueType::float32:
        put(out, static_cast<float>(as_d()));
        break;
      case ValueType::float64:
        put(out, as_d());
        break;
      case ValueType::string: {
        const auto* s = std::get_if<std::string>(&v.data);
        put_string(out, s != nullptr ? std::string_view(*s) : std::string_view());
        break;
      }
      case ValueType::array: {
        const auto* a = std::get_if<gguf::Array>(&v.data);
        const ValueType et = a != nullptr ? a->element_type : ValueType::uint8;
        put(out, static_cast<uint32_t>(et));
        put(out, static_cast<uint64_t>(a != nullptr ? a->elements.size() : 0));
        if (a != nullptr) {
          for (const gguf::Value& e : a->elements) put_value(out, et, e);
        }
        break;
      }
    }
  }
  void begin(std::string_view key, ValueType t) {
    put_string(meta_, key);
    put(meta_, static_cast<uint32_t>(t));
    ++n_kv_;
  }
  void begin_array(std::string_view key, ValueType element_type, size_t n) {
    begin(key, ValueType::array);
    put(meta_, static_cast<uint32_t>(element_type));
    put(meta_, static_cast<uint64_t>(n));
  }
  template <class T>
  void scalar(std::string_view key, ValueType t, T v) {
    begin(key, t);
    put(meta_, v);
  }
  template <class T>
  void array(std::string_view key, ValueType t, const std::vector<T>& v) {
    begin_array(key, t, v.size());
    for (T x : v) put(meta_, x);
  }

  std::vector<std::byte> meta_;
  uint64_t n_kv_ = 0;
  std::vector<Tensor> tensors_;
  uint32_t alignment_ = 32;
  uint32_t version_ = 3;
};

}  // namespace bx::test
