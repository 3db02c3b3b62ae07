// Test support: builds safetensors files in memory (and on disk) for tests and fuzz seeds.
//
//   bx::test::SafetensorsWriter w;
//   w.add_metadata("format", "pt");
//   w.add_tensor("model.norm.weight", {64}, values, "BF16");   // F32, F16 or BF16 from floats
//   w.add_raw_tensor("ids", "I64", {2}, bytes);               // any dtype string, bytes as given
//   w.write(path);
//
// Layout as the format's reference writer makes it: the u64 header length, the JSON header
// padded with spaces to a multiple of 8 bytes, then the tensors' bytes back to back in the order
// they were added. header() gives the JSON text, and assemble() builds a file around any header
// text and data, so a bad-input test can write exactly the malformed file it needs.
// Header-only and free of library symbols (only core/half.h's inline conversions).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "support/gguf_writer.h"  // f32_to_f16

namespace bx::test {

// A JSON string literal: quotes, backslashes and control bytes escaped.
inline std::string json_quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// Stored bytes of `values` as dtype "F32", "F16" or "BF16" (little-endian, round to nearest even).
inline std::vector<std::byte> encode_floats(std::span<const float> values, std::string_view dtype) {
  std::vector<std::byte> out;
  auto put16 = [&](uint16_t h) {
    out.push_back(static_cast<std::byte>(h & 0xffu));
    out.push_back(static_cast<std::byte>(h >> 8));
  };
  if (dtype == "F32") {
    out.resize(values.size() * 4);
    if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  } else if (dtype == "F16") {
    for (float v : values) put16(f32_to_f16(v));
  } else if (dtype == "BF16") {
    for (float v : values) put16(f32_to_bf16(v));
  } else {
    throw Error("encode_floats: dtype " + std::string(dtype) + " is not F32, F16 or BF16");
  }
  return out;
}

class SafetensorsWriter {
 public:
  void add_metadata(std::string key, std::string value) {
    metadata_.emplace_back(std::move(key), std::move(value));
  }

  // A tensor from floats (product(shape) of them), stored as "F32", "F16" or "BF16".
  void add_tensor(std::string name, std::vector<int64_t> shape, std::span<const float> values,
                  std::string_view dtype = "F32") {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (n != static_cast<int64_t>(values.size())) {
      throw Error("SafetensorsWriter: tensor '" + name + "' has " + std::to_string(n) +
                  " elements by its shape but " + std::to_string(values.size()) + " values");
    }
    add_raw_tensor(std::move(name), std::string(dtype), std::move(shape),
                   encode_floats(values, dtype));
  }

  // A tensor given as its dtype string and stored bytes (nothing checked: for bad-input tests).
  void add_raw_tensor(std::string name, std::string dtype, std::vector<int64_t> shape,
                      std::vector<std::byte> bytes) {
    tensors_.push_back({std::move(name), std::move(dtype), std::move(shape), std::move(bytes)});
  }

  // The JSON header, tensors in the order added, data_offsets back to back.
  std::string header() const {
    std::string h = "{";
    auto comma = [&](bool first) {
      if (!first) h += ',';
    };
    bool first = true;
    if (!metadata_.empty()) {
      h += "\"__metadata__\":{";
      for (size_t i = 0; i < metadata_.size(); ++i) {
        comma(i == 0);
        h += json_quote(metadata_[i].first);
        h += ':';
        h += json_quote(metadata_[i].second);
      }
      h += '}';
      first = false;
    }
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
      comma(first);
      first = false;
      h += json_quote(t.name);
      h += ":{\"dtype\":";
      h += json_quote(t.dtype);
      h += ",\"shape\":[";
      for (size_t i = 0; i < t.shape.size(); ++i) {
        comma(i == 0);
        h += std::to_string(t.shape[i]);
      }
      h += "],\"data_offsets\":[";
      h += std::to_string(offset);
      h += ',';
      offset += t.bytes.size();
      h += std::to_string(offset);
      h += "]}";
    }
    h += '}';
    return h;
  }

  // The tensors' bytes back to back.
  std::vector<std::byte> data() const {
    std::vector<std::byte> d;
    for (const Tensor& t : tensors_) d.insert(d.end(), t.bytes.begin(), t.bytes.end());
    return d;
  }

  std::vector<std::byte> bytes() const { return assemble(header(), data()); }

  void write(const std::string& path) const { write_bytes(path, bytes()); }

  // A file image: u64 length of the padded header, the header padded with spaces to a multiple of
  // 8 bytes (pad = false: as given), then `data`.
  static std::vector<std::byte> assemble(std::string header, std::span<const std::byte> data,
                                         bool pad = true) {
    if (pad) header.resize((header.size() + 7) / 8 * 8, ' ');
    const uint64_t n = header.size();
    std::vector<std::byte> out(8 + header.size() + data.size());
    std::memcpy(out.data(), &n, 8);
    if (!header.empty()) std::memcpy(out.data() + 8, header.data(), header.size());
    if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
    return out;
  }

  static void write_bytes(const std::string& path, std::span<const std::byte> bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
    if (!f) throw Error("SafetensorsWriter: cannot write " + path);
  }

 private:
  struct Tensor {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
    std::vector<std::byte> bytes;
  };
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace bx::test
