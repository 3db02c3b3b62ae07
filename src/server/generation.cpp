#include "server/generation.h"

#include "core/error.h"
#include "server/response_hash.h"

namespace bx::server {

using nlohmann::json;

std::string dump_json(const json& object) {
  return object.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string sse_line(const json& object) {
  return "data: " + dump_json(object) + "\n\n";
}

Generation::Generation(Engine& engine, const Tokenizer& tokenizer, ResponseContext context,
                       bool chat, GenerationOptions options, bool echo, std::vector<Prompt> prompts,
                       int max_tokens)
    : engine_(engine),
      tokenizer_(tokenizer),
      context_(std::move(context)),
      chat_(chat),
      options_(std::move(options)),
      echo_(echo),
      prompts_(std::move(prompts)),
      start_(std::chrono::steady_clock::now()) {
  choices_.resize(prompts_.size() * static_cast<size_t>(options_.n));
  try {
    for (Prompt& p : prompts_) {
      EngineRequest r;
      r.prompt = p.ids;
      r.sampling = options_.sampling;
      r.n = options_.n;
      r.max_tokens = max_tokens;
      r.min_tokens = options_.min_tokens;
      r.ignore_eos = options_.ignore_eos;
      r.stop_token_ids = options_.stop_token_ids;
      r.stop = options_.stop;
      r.top_logprobs = options_.logprobs ? options_.top_logprobs : 0;
      r.prompt_logprobs = echo_ && options_.logprobs;
      r.prompt_top_logprobs = r.prompt_logprobs ? options_.top_logprobs : 0;
      p.stream = engine_.submit(std::move(r));
    }
  } catch (...) {
    cancel();
    throw;
  }
}

Generation::~Generation() {
  cancel();
}

void Generation::cancel() {
  for (Prompt& p : prompts_) {
    if (p.stream && !p.stream->done()) p.stream->cancel();
  }
}

uint64_t Generation::prompt_tokens() const {
  uint64_t total = 0;
  for (const Prompt& p : prompts_) total += p.ids.size();
  return total;
}

uint64_t Generation::generated_tokens() const {
  uint64_t total = 0;
  for (const Choice& c : choices_) total += c.tokens.size();
  return total;
}

std::string Generation::token_string(int32_t id) const {
  return model_token_bytes(tokenizer_, id);
}

std::string Generation::echo_text(size_t prompt_index) const {
  return prompts_[prompt_index].echo_text;
}

json Generation::usage() const {
  const uint64_t prompt = prompt_tokens(), generated = generated_tokens();
  return {{"prompt_tokens", prompt},
          {"completion_tokens", generated},
          {"total_tokens", prompt + generated}};
}

json Generation::chunk(json choices) const {
  json c = {{"id", context_.id},
            {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
            {"created", context_.created},
            {"model", context_.model},
            {"system_fingerprint", fingerprint()},
            {"choices", std::move(choices)}};
  if (options_.include_usage) c["usage"] = nullptr;
  return c;
}

namespace {

json bytes_of(const std::string& s) {
  json out = json::array();
  for (unsigned char b : s) out.push_back(b);
  return out;
}

json optional_string(const std::optional<std::string>& s) {
  return s ? json(*s) : json(nullptr);
}

}  // namespace

json Generation::completion_logprobs(const std::vector<int32_t>& ids,
                                     const std::vector<std::optional<float>>& logprobs,
                                     const std::vector<std::vector<TokenLogprob>>& top,
                                     size_t text_offset) const {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(),
       offsets = json::array();
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string s = token_string(ids[i]);
    tokens.push_back(s);
    offsets.push_back(text_offset);
    text_offset += s.size();
    if (!logprobs[i]) {
      token_logprobs.push_back(nullptr);
      top_logprobs.push_back(nullptr);
      continue;
    }
    token_logprobs.push_back(*logprobs[i]);
    // The alternatives, plus the chosen token if it is not among them (as vLLM does).
    json alternatives = json::object();
    for (const TokenLogprob& t : top[i]) alternatives[token_string(t.token)] = t.logprob;
    if (!alternatives.contains(s)) alternatives[s] = *logprobs[i];
    top_logprobs.push_back(std::move(alternatives));
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_logprobs},
          {"top_logprobs", top_logprobs},
          {"text_offset", offsets}};
}

json Generation::chat_logprob_entries(size_t from, const Choice& c) const {
  json entries = json::array();
  for (size_t i = from; i < c.tokens.size(); ++i) {
    const std::string s = token_string(c.tokens[i]);
    json top = json::array();
    for (const TokenLogprob& t : c.top[i]) {
      const std::string ts = token_string(t.token);
      top.push_back({{"token", ts}, {"logprob", t.logprob}, {"bytes", bytes_of(ts)}});
    }
    entries.push_back(
        {{"token", s}, {"logprob", c.logprobs[i]}, {"bytes", bytes_of(s)}, {"top_logprobs", top}});
  }
  return entries;
}

json Generation::finished_choice(size_t index) const {
  const Choice& c = choices_[index];
  const size_t p = index / static_cast<size_t>(options_.n);
  json choice = {{"index", index}};
  if (chat_) {
    choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    choice["logprobs"] = options_.logprobs
                             ? json{{"content", chat_logprob_entries(0, c)}, {"refusal", nullptr}}
                             : json(nullptr);
  } else {
    const std::string prefix = echo_ ? echo_text(p) : "";
    choice["text"] = prefix + c.text;
    if (options_.logprobs) {
      std::vector<int32_t> ids;
      std::vector<std::optional<float>> lps;
      std::vector<std::vector<TokenLogprob>> top;
      if (echo_) {
        ids = prompts_[p].ids;
        prompt_logprobs(p, lps, top);
      }
      for (size_t i = 0; i < c.tokens.size(); ++i) {
        ids.push_back(c.tokens[i]);
        lps.push_back(c.logprobs[i]);
        top.push_back(c.top[i]);
      }
      choice["logprobs"] = completion_logprobs(ids, lps, top, 0);
    } else {
      choice["logprobs"] = nullptr;
    }
  }
  choice["finish_reason"] = c.finish ? json(finish_reason_name(*c.finish)) : json(nullptr);
  choice["stop_reason"] = optional_string(c.stop_reason);
  choice["bitexact_hash"] = choice_hash(c.tokens, c.logprobs);
  if (options_.return_token_ids) {
    choice["token_ids"] = c.tokens;
    choice["prompt_token_ids"] = prompts_[p].ids;
  }
  return choice;
}

std::string Generation::consume(size_t p, const EngineEvent& e, bool streaming) {
  const size_t n = static_cast<size_t>(options_.n);
  if (e.kind == EngineEvent::Kind::scored) {
    prompts_[p].prompt_logprobs = e.prompt_logprobs;
    prompts_[p].prompt_top = e.prompt_top_logprobs;
    if (!streaming || !echo_ || chat_) return "";
    // Echo with logprobs: the prompt of every choice of this prompt, with its logprobs.
    json choices = json::array();
    std::vector<std::optional<float>> lps;
    std::vector<std::vector<TokenLogprob>> top;
    prompt_logprobs(p, lps, top);
    const json lp = completion_logprobs(prompts_[p].ids, lps, top, 0);
    for (size_t i = 0; i < n; ++i) {
      choices.push_back({{"index", p * n + i},
                         {"text", echo_text(p)},
                         {"logprobs", lp},
                         {"finish_reason", nullptr}});
    }
    return sse_line(chunk(std::move(choices)));
  }

  const size_t index = p * n + static_cast<size_t>(e.sample);
  check(index < choices_.size(), "engine event for an unknown sample");
  Choice& c = choices_[index];
  if (e.kind == EngineEvent::Kind::token) {
    if (!ttft_) {
      ttft_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
    const size_t offset = (echo_ ? echo_text(p).size() : 0) + c.text.size();
    c.tokens.push_back(e.token);
    c.logprobs.push_back(e.logprob);
    c.top.push_back(e.top_logprobs);
    c.text += e.text;
    if (!streaming) return "";
    json choice = {{"index", index}};
    if (chat_) {
      choice["delta"] = {{"content", e.text}};
      choice["logprobs"] = options_.logprobs
                               ? json{{"content", chat_logprob_entries(c.tokens.size() - 1, c)},
                                      {"refusal", nullptr}}
                               : json(nullptr);
    } else {
      choice["text"] = e.text;
      choice["logprobs"] =
          options_.logprobs ? completion_logprobs({e.token}, {e.logprob}, {e.top_logprobs}, offset)
                            : json(nullptr);
    }
    choice["finish_reason"] = nullptr;
    return sse_line(chunk(json::array({std::move(choice)})));
  }

  // finished
  c.text += e.text;
  c.finish = e.finish;
  c.stop_reason = e.stop_reason;
  if (!streaming) return "";
  json choice = {{"index", index}};
  if (chat_) {
    choice["delta"] = e.text.empty() ? json::object() : json{{"content", e.text}};
  } else {
    choice["text"] = e.text;
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason_name(e.finish);
  choice["stop_reason"] = optional_string(e.stop_reason);
  choice["bitexact_hash"] = choice_hash(c.tokens, c.logprobs);
  if (options_.return_token_ids) {
    choice["token_ids"] = c.tokens;
    choice["prompt_token_ids"] = prompts_[p].ids;
  }
  return sse_line(chunk(json::array({std::move(choice)})));
}

void Generation::prompt_logprobs(size_t p, std::vector<std::optional<float>>& lps,
                                 std::vector<std::vector<TokenLogprob>>& top) const {
  const Prompt& prompt = prompts_[p];
  for (size_t i = 0; i < prompt.ids.size(); ++i) {
    if (i == 0 || prompt.prompt_logprobs.size() < i) {
      lps.push_back(std::nullopt);
      top.emplace_back();
    } else {
      lps.push_back(prompt.prompt_logprobs[i - 1]);
      // completion_logprobs adds the prompt token itself when it is not among the top-k.
      top.push_back(i - 1 < prompt.prompt_top.size() ? prompt.prompt_top[i - 1]
                                                     : std::vector<TokenLogprob>{});
    }
  }
}

bool wait_or_client_gone(RequestStream& stream, const std::function<bool()>& client_gone,
                         std::chrono::milliseconds poll,
                         std::chrono::steady_clock::time_point& next_check, bool until_finished) {
  while (true) {
    const bool ready = until_finished ? stream.wait_finished_for(poll) : stream.wait_for(poll);
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_check) {
      if (client_gone()) return true;
      next_check = now + poll;
    }
    if (ready) return false;
  }
}

json Generation::wait_for_response(const std::function<bool()>& client_gone) {
  auto next_check = std::chrono::steady_clock::now() + kClientPoll;
  for (size_t p = 0; p < prompts_.size(); ++p) {
    while (true) {
      // The whole response is written at the end: wait for the prompt's last event, not each.
      if (wait_or_client_gone(*prompts_[p].stream, client_gone, kClientPoll, next_check,
                              /*until_finished=*/true)) {
        cancel();
        throw ClientGone{};
      }
      std::optional<EngineEvent> e = prompts_[p].stream->next();
      if (!e) break;
      consume(p, *e, false);
    }
  }
  json choices = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) choices.push_back(finished_choice(i));
  return {{"id", context_.id},
          {"object", chat_ ? "chat.completion" : "text_completion"},
          {"created", context_.created},
          {"model", context_.model},
          {"system_fingerprint", fingerprint()},
          {"choices", std::move(choices)},
          {"usage", usage()}};
}

std::string Generation::next_sse() {
  if (stream_done_) return "";
  const size_t n = static_cast<size_t>(options_.n);
  if (!stream_started_) {
    stream_started_ = true;
    json choices = json::array();
    for (size_t i = 0; i < choices_.size(); ++i) {
      if (chat_) {
        choices.push_back({{"index", i},
                           {"delta", {{"role", "assistant"}, {"content", ""}}},
                           {"logprobs", nullptr},
                           {"finish_reason", nullptr}});
      } else if (echo_ && !options_.logprobs) {
        choices.push_back({{"index", i},
                           {"text", echo_text(i / n)},
                           {"logprobs", nullptr},
                           {"finish_reason", nullptr}});
      }
    }
    if (!choices.empty()) return sse_line(chunk(std::move(choices)));
  }
  while (stream_prompt_ < prompts_.size()) {
    std::optional<EngineEvent> e = prompts_[stream_prompt_].stream->next();
    if (!e) {
      ++stream_prompt_;
      continue;
    }
    std::string out = consume(stream_prompt_, *e, true);
    if (!out.empty()) return out;
  }
  std::string out;
  if (options_.include_usage) {
    json last = chunk(json::array());
    last["usage"] = usage();
    out += sse_line(last);
  }
  out += "data: [DONE]\n\n";
  stream_done_ = true;
  return out;
}

std::string Generation::fingerprint() const {
  if (!context_.fingerprint_of || prompts_.empty()) return context_.system_fingerprint;
  return context_.fingerprint_of(prompts_[0].stream->weights_version());
}

}  // namespace bx::server
