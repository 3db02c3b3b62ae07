// Where tests find the default model, SmolLM2-135M-Instruct Q4_1, which
// scripts/get-default-model.sh (run by scripts/setup.sh) puts in the git-ignored models/.
#pragma once

#include <filesystem>
#include <string>

namespace bx::test {

inline std::string smollm2_path() {
  return std::string(BITEXACT_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

inline bool have_smollm2() {
  return std::filesystem::exists(smollm2_path());
}

inline constexpr const char* kNoSmollm2 =
    "models/SmolLM2-135M-Instruct.Q4_1.gguf is missing: run scripts/get-default-model.sh "
    "(scripts/setup.sh does)";

}  // namespace bx::test
