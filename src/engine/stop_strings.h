// Stop strings over streamed text: finds a stop string even when it spans several tokens, and
// never lets any part of it reach the output.
//
// Text arrives in pieces (whole UTF-8 characters, from StreamingDecoder). The matcher releases
// text as soon as it cannot be the start of a stop string and holds back the longest tail that
// is a proper prefix of one. When a stop string appears, everything before its first occurrence
// (the earliest start over all stop strings) is released and the rest is dropped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bx {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);

  struct Result {
    std::string text;      // safe to emit now
    bool stopped = false;  // a stop string was found; text ends right before it
    std::string stop;      // which one (the earliest occurrence; the longest at a tie)
  };
  Result push(std::string_view piece);
  // The held-back tail, at the end of a sequence that did not stop on a string.
  std::string flush();

 private:
  std::vector<std::string> stops_;
  std::string held_;
};

}  // namespace bx
