// Errors: one exception type whose message names what is wrong and what was expected.
// The CLI catches it at the top and prints it as one line on stderr with a nonzero exit.
#pragma once

#include <stdexcept>
#include <string>

namespace bx {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws bx::Error(message) when condition is false.
inline void check(bool condition, const std::string& message) {
  if (!condition) throw Error(message);
}

// The same for hot paths (kernels, forward): `message` is evaluated only when the check fails,
// so a passing check costs one branch instead of building a string.
#define BX_CHECK(condition, message)                  \
  do {                                                \
    if (!(condition)) throw ::bx::Error(message);     \
  } while (false)

}  // namespace bx
