// A read-only, private memory mapping of a whole regular file, unmapped on destruction.
//
// Opening fails with one bx::Error naming the path and the reason (cannot open, not a regular
// file, empty file, mmap failed); `expected` says what the file should have been
// ("a GGUF model file", "a safetensors file") and ends the messages where it helps.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace bx {

class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(const std::string& path, const std::string& expected);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(data_), size_}; }

 private:
  void unmap();
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace bx
