#include "tokenizer/tokenizer.h"

#include "tokenizer/utf8.h"

namespace bx {

namespace {

// Moves the complete characters at the front of `pending` to the result, ill-formed subparts
// as U+FFFD. An incomplete last character stays in `pending`, unless `at_end`.
std::string take_complete(std::string& pending, bool at_end) {
  std::string out;
  const std::string_view text = pending;
  size_t pos = 0;
  while (pos < text.size()) {
    const utf8::Step step = utf8::next(text.substr(pos));
    if (step.status == utf8::Status::truncated && !at_end) break;
    if (step.status == utf8::Status::valid) {
      out.append(text.substr(pos, step.length));
    } else {
      out.append(utf8::kReplacement);
    }
    pos += step.length;
  }
  pending.erase(0, pos);
  return out;
}

}  // namespace

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, std::span<const int32_t> prompt)
    : tokenizer_(tokenizer) {
  for (int32_t id : prompt) {
    if (!model_token_bytes(tokenizer_, id).empty()) {
      at_sequence_start_ = false;
      break;
    }
  }
}

std::string StreamingDecoder::push(int32_t id) {
  const std::string bytes = model_token_bytes(tokenizer_, id);
  if (at_sequence_start_ && !bytes.empty()) {
    // The first piece of the sequence may lose a dummy-prefix space.
    pending_ += tokenizer_.leading_token_bytes(id);
    at_sequence_start_ = false;
  } else {
    pending_ += bytes;
  }
  return take_complete(pending_, /*at_end=*/false);
}

std::string StreamingDecoder::flush() {
  return take_complete(pending_, /*at_end=*/true);
}

}  // namespace bx
