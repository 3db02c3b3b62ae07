// Running a reference Python script from a test: the interpreter comes from BITEXACT_PYTHON
// (CMake passes it to every test; scripts/setup.sh makes the venv with tests/requirements.txt).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace bx::test {

// The interpreter, or "" when BITEXACT_PYTHON is unset or names no file (the caller skips).
inline std::string python_interpreter() {
  const char* env = std::getenv("BITEXACT_PYTHON");
  if (env == nullptr || !std::filesystem::exists(env)) return "";
  return env;
}

// Quotes one argument for /bin/sh.
inline std::string shell_quote(const std::string& s) {
  std::string out(1, '\'');
  for (char c : s) {
    if (c == '\'') {
      out.append("'\\''");
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

// Runs `python script args...` (script relative to the source tree); returns the exit status
// (0 = success). stderr goes to the test log.
inline int run_python(const std::string& python, const std::string& script,
                      const std::vector<std::string>& args) {
  std::string command = shell_quote(python);
  command.push_back(' ');
  command.append(shell_quote(std::string(BITEXACT_SOURCE_DIR) + "/" + script));
  for (const std::string& a : args) {
    command.push_back(' ');
    command.append(shell_quote(a));
  }
  return std::system(command.c_str());
}

}  // namespace bx::test
