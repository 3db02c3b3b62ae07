// Where tests find the shared models (../shared, beside the repository root).
#pragma once

#include <filesystem>
#include <string>

namespace bx::test {

inline std::string stories260k_path() {
  return std::string(BITEXACT_SOURCE_DIR) + "/../shared/models/stories260K.gguf";
}

inline bool have_stories260k() { return std::filesystem::exists(stories260k_path()); }

}  // namespace bx::test
