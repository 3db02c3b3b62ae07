#include "engine/stop_strings.h"

#include <algorithm>
#include <utility>

namespace bx {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

StopStringMatcher::Result StopStringMatcher::push(std::string_view piece) {
  held_.append(piece);
  if (stops_.empty()) return Result{std::exchange(held_, {}), false, {}};

  size_t first = std::string::npos;
  const std::string* which = nullptr;
  for (const std::string& s : stops_) {
    const size_t at = held_.find(s);
    if (at == std::string::npos) continue;
    if (at < first || (at == first && s.size() > which->size())) first = at, which = &s;
  }
  if (which != nullptr) {
    Result r{held_.substr(0, first), true, *which};
    held_.clear();
    return r;
  }
  // Keep the longest tail of held_ that a stop string starts with (shorter than that string:
  // a whole occurrence would have been found above).
  size_t keep = 0;
  for (const std::string& s : stops_) {
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k) {
      if (std::string_view(held_).substr(held_.size() - k) == std::string_view(s).substr(0, k)) {
        keep = k;
        break;
      }
    }
  }
  Result r{held_.substr(0, held_.size() - keep), false, {}};
  held_.erase(0, held_.size() - keep);
  return r;
}

std::string StopStringMatcher::flush() { return std::exchange(held_, {}); }

}  // namespace bx
