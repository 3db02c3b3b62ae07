#include "server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "core/error.h"
#include "engine/engine.h"
#include "model/loader.h"
#include "server/api_error.h"
#include "server/connection.h"
#include "server/connection_registry.h"
#include "server/generation.h"
#include "server/metrics.h"
#include "server/openai_request.h"
#include "server/request_framing.h"
#include "server/response_hash.h"
#include "server/thread_per_connection.h"

namespace bx::server {

using nlohmann::json;

bool constant_time_equal(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() != b.size() ? 1u : 0u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  res.set_content(dump_json(e.to_json()), "application/json");
}

// One admitted generation or score request; gives its place back when destroyed.
class Admission {
 public:
  explicit Admission(std::atomic<int>& count) : count_(count) {}
  ~Admission() { count_.fetch_sub(1); }
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;

 private:
  std::atomic<int>& count_;
};

// cpp-httplib's server with our own connection loop: each accepted socket becomes a Connection
// (deadlines on every read, connection.h), registered in the ConnectionRegistry (cap, shedding
// the oldest idle), and served request after request through httplib's own request parser.
class Listener : public httplib::Server {
 public:
  Listener(ConnectionRegistry& registry, ConnectionLimits limits)
      : registry_(registry), limits_(limits) {}

  // cpp-httplib 0.11 listens with a backlog of 5, so a burst of connections overflows the
  // accept queue and clients see resets. listen() again on the bound socket only changes it.
  void set_backlog(int backlog) {
    check(::listen(svr_sock_, backlog) == 0, "cannot set the listen backlog");
  }

 private:
  bool process_and_close_socket(socket_t sock) override {
    if (!registry_.admit(sock)) {
      // Every open connection is busy with a request: refuse this one, with a reason.
      const std::string body = dump_json(
          ApiError(503, "service_unavailable", "too many open connections, all busy; retry later",
                   "", "too_many_connections")
              .to_json());
      const std::string response =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Connection: close\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
      [[maybe_unused]] const ssize_t n =
          ::send(sock, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::shutdown(sock, SHUT_RDWR);
      ::close(sock);
      return false;
    }
    // Responses go out as a header write and a body write: without TCP_NODELAY the second
    // waits for the client's delayed ACK (about 40 ms a request on a kept-alive connection).
    const int one = 1;
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Connection connection(sock, limits_, registry_);
    bool ok = true;
    for (size_t left = keep_alive_max_count_; ok && left > 0; --left) {
      if (svr_sock_ == INVALID_SOCKET || !connection.wait_for_request()) break;
      bool connection_closed = false;
      ok = process_request(connection, /*close_connection=*/left == 1, connection_closed, nullptr);
      if (connection_closed || connection.must_close()) break;
    }
    connection.finish();
    return ok;
  }

  ConnectionRegistry& registry_;
  ConnectionLimits limits_;
};

ConnectionLimits limits_of(const ServerOptions& o) {
  ConnectionLimits l;
  l.keep_alive = std::chrono::seconds(o.keep_alive_seconds);
  l.header_timeout = std::chrono::milliseconds(o.header_timeout_ms);
  l.body_timeout = std::chrono::milliseconds(o.body_timeout_ms);
  l.write_timeout = std::chrono::seconds(30);
  l.max_header_bytes = o.max_header_bytes;
  return l;
}

// Whether the client of the request this thread serves has hung up.
bool client_gone() {
  const Connection* c = Connection::current();
  return c != nullptr && c->peer_closed();
}

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
  ConnectionRegistry connections;
  Listener http;
  Metrics metrics;
  std::atomic<LoadedModel*> model{nullptr};
  std::atomic<Engine*> engine{nullptr};
  std::string fingerprint;  // written before model is published
  std::atomic<int> admitted{0};
  std::atomic<uint64_t> next_id{0};
  uint64_t id_salt = 0;
  int64_t started_at = unix_now();

  std::unique_ptr<AdminRoutes> admin;  // with options.admin.enabled

  explicit Impl(ServerOptions o)
      : options(std::move(o)),
        connections(static_cast<size_t>(options.max_connections)),
        http(connections, limits_of(options)) {
    if (options.admin.enabled) admin = std::make_unique<AdminRoutes>(options.admin);
    std::random_device rd;
    id_salt = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }

  struct Ready {
    LoadedModel& model;
    Engine& engine;
  };
  Ready ready() const {
    LoadedModel* m = model.load(std::memory_order_acquire);
    Engine* e = engine.load(std::memory_order_acquire);
    if (m == nullptr || e == nullptr) {
      throw ApiError(503, "service_unavailable", "the model is still loading; retry shortly", "",
                     "model_loading");
    }
    return {*m, *e};
  }

  // The fingerprint at a weights_version (only admin load_weights changes it).
  std::string fingerprint_of(uint64_t version) const {
    return admin ? admin->fingerprint_of(version) : fingerprint;
  }

  void check_model(const std::string& name) const {
    if (!name.empty() && name != options.model_name) {
      throw ApiError(404, "invalid_request_error",
                     "the model '" + name + "' does not exist; this server serves '" +
                         options.model_name + "'",
                     "model", "model_not_found");
    }
  }

  std::shared_ptr<Admission> admit() {
    if (admitted.fetch_add(1) >= options.max_queue) {
      admitted.fetch_sub(1);
      throw ApiError(503, "service_unavailable",
                     "the request queue is full (" + std::to_string(options.max_queue) +
                         " requests in flight); retry later",
                     "", "queue_full");
    }
    return std::make_shared<Admission>(admitted);
  }

  std::string new_id(const char* prefix) {
    uint64_t z = id_salt + 0x9E3779B97F4A7C15ull * (next_id.fetch_add(1) + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    char text[40];
    std::snprintf(text, sizeof text, "%s%016llx", prefix, static_cast<unsigned long long>(z));
    return text;
  }

  std::vector<int32_t> checked_ids(const LoadedModel& m, std::vector<int32_t> ids,
                                   const char* param) const {
    for (int32_t id : ids) {
      if (id >= m.config.vocab_size) {
        throw invalid_field(param, std::string(param) + " holds token id " + std::to_string(id) +
                                       ", outside the vocabulary [0, " +
                                       std::to_string(m.config.vocab_size) + ")");
      }
    }
    return ids;
  }

  // Runs a route: ApiError -> its status; bx::Error (engine validation) -> 400; a client that
  // hung up -> 499 (nothing is sent); anything else -> 500. Counts the request.
  template <class F>
  void run_route(const std::string& name, httplib::Response& res, F f) {
    try {
      f();
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const ClientGone&) {
      end_connection(res, /*linger=*/false);
      res.status = 499;  // as nginx logs it: the client closed the request
      res.set_content("", "application/json");
    } catch (const Error& e) {
      send_error(res, engine_error(e.what()));
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, "internal_error", e.what()));
    }
    metrics.count_request(name, res.status == -1 ? 200 : res.status);
  }

  template <class F>
  httplib::Server::Handler route(std::string name, F f) {
    return [this, name, f](const httplib::Request& req, httplib::Response& res) {
      run_route(name, res, [&] { f(req, res); });
    };
  }

  // A POST route: reads the body (at most max_body_bytes, chunked or not), then method(body).
  httplib::Server::HandlerWithContentReader post_route(std::string name,
                                                       void (Impl::*method)(const std::string&,
                                                                            httplib::Response&)) {
    return [this, name, method](const httplib::Request&, httplib::Response& res,
                                const httplib::ContentReader& reader) {
      run_route(name, res, [&] {
        const std::string body = read_body(reader, res);
        (this->*method)(body, res);
      });
    };
  }

  // After this response the connection closes (linger: its body was not read, connection.h).
  static void end_connection(httplib::Response& res, bool linger) {
    if (Connection* c = Connection::current()) c->close_after_response(linger);
    res.set_header("Connection", "close");
  }

  // The body as it arrives, stopped as soon as it passes the limit: nothing past
  // max_body_bytes is read or kept, whatever the framing.
  std::string read_body(const httplib::ContentReader& reader, httplib::Response& res) {
    std::string body;
    bool too_large = false;
    const bool ok = reader([&](const char* data, size_t n) {
      if (n > options.max_body_bytes - body.size()) {
        too_large = true;
        return false;
      }
      body.append(data, n);
      return true;
    });
    if (too_large) {
      end_connection(res, /*linger=*/true);
      throw ApiError(413, "invalid_request_error",
                     "the request body is larger than the limit of " +
                         std::to_string(options.max_body_bytes) + " bytes",
                     "body", "body_too_large");
    }
    if (!ok) {
      end_connection(res, /*linger=*/false);
      const Connection* c = Connection::current();
      if (c != nullptr && c->failure() == Connection::Failure::body_timeout) {
        throw ApiError(408, "invalid_request_error",
                       "the request body did not arrive within " +
                           std::to_string(options.body_timeout_ms) + " ms",
                       "body", "body_timeout");
      }
      throw ApiError(400, "invalid_request_error",
                     "the request body could not be read (the connection closed, or the chunked "
                     "encoding is malformed)",
                     "body", "invalid_body");
    }
    return body;
  }

  // An engine validation error (bx::Error) as a 400 naming the field it is about.
  static ApiError engine_error(const std::string& message) {
    // The first field the message names (engine messages name the field they are about).
    static constexpr std::pair<const char*, const char*> kNamed[] = {{"max_tokens", "max_tokens"},
                                                                     {"min_tokens", "min_tokens"},
                                                                     {"top_logprobs", "logprobs"},
                                                                     {"stop", "stop"},
                                                                     {"temperature", "temperature"},
                                                                     {"top_p", "top_p"},
                                                                     {"top_k", "top_k"},
                                                                     {"min_p", "min_p"},
                                                                     {"n is ", "n"},
                                                                     {"prompt", "prompt"}};
    std::string param = "request";
    for (const auto& [needle, field] : kNamed) {
      if (message.find(needle) != std::string::npos) {
        param = field;
        break;
      }
    }
    return ApiError(400, "invalid_request_error", message, param, "invalid_value");
  }

  // A prompt that leaves no room in the context (checked here so the error names the field).
  void check_prompt_fits(const LoadedModel& m, size_t prompt_tokens, int max_tokens,
                         const char* param) const {
    const size_t context = static_cast<size_t>(m.config.context_length);
    if (prompt_tokens < context || (prompt_tokens == context && max_tokens == 0)) return;
    throw ApiError(400, "invalid_request_error",
                   std::string(param) + " has " + std::to_string(prompt_tokens) +
                       " tokens but the model's context holds " + std::to_string(context) +
                       (max_tokens > 0 ? ", and generating needs room for one more" : ""),
                   param, "context_length_exceeded");
  }

  void run_generation(httplib::Response& res, Ready r, bool chat, GenerationOptions request,
                      bool echo, std::vector<Generation::Prompt> prompts, int max_tokens) {
    std::shared_ptr<Admission> admission = admit();
    ResponseContext context{new_id(chat ? "chatcmpl-" : "cmpl-"), unix_now(), options.model_name,
                            fingerprint, nullptr};
    if (admin) context.fingerprint_of = [this](uint64_t v) { return fingerprint_of(v); };
    const bool stream = request.stream;
    const auto start = std::chrono::steady_clock::now();
    auto generation =
        std::make_shared<Generation>(r.engine, *r.model.tokenizer, std::move(context), chat,
                                     std::move(request), echo, std::move(prompts), max_tokens);
    const auto record = [this, start](const Generation& g) {
      metrics.count_tokens(g.prompt_tokens(), g.generated_tokens());
      if (const auto ttft = g.time_to_first_token()) metrics.observe_time_to_first_token(*ttft);
      metrics.observe_request_latency(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
    if (!stream) {
      const json response = generation->wait_for_response(client_gone);
      record(*generation);
      res.set_content(dump_json(response), "application/json");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [generation, admission](size_t, httplib::DataSink& sink) {
          try {
            const std::string text = generation->next_sse();
            if (text.empty()) {
              sink.done();
              return true;
            }
            if (!sink.write(text.data(), text.size())) {
              generation->cancel();  // the client went away: free its KV blocks
              return false;
            }
            return true;
          } catch (const std::exception&) {
            generation->cancel();
            return false;
          }
        },
        [generation, record](bool success) {
          if (!success) generation->cancel();
          record(*generation);
        });
  }

  void completions(const std::string& body, httplib::Response& res) {
    const Ready r = ready();
    CompletionRequest c = parse_completion_request(parse_json_object(body));
    check_model(c.options.model);
    std::vector<Generation::Prompt> prompts;
    for (PromptInput& in : c.prompts) {
      Generation::Prompt p;
      if (in.text) {
        p.ids = r.model.tokenizer->encode(*in.text, /*add_bos=*/true);
        p.echo_text = *in.text;
      } else {
        p.ids = checked_ids(r.model, std::move(in.ids), "prompt");
        p.echo_text = decode_model_ids(*r.model.tokenizer, p.ids);
      }
      prompts.push_back(std::move(p));
    }
    const int max_tokens = c.options.max_tokens.value_or(16);
    for (const Generation::Prompt& p : prompts) {
      check_prompt_fits(r.model, p.ids.size(), max_tokens, "prompt");
    }
    run_generation(res, r, /*chat=*/false, std::move(c.options), c.echo, std::move(prompts),
                   max_tokens);
  }

  void chat_completions(const std::string& body, httplib::Response& res) {
    const Ready r = ready();
    ChatRequest c = parse_chat_request(parse_json_object(body));
    check_model(c.options.model);
    if (!options.chat_template) {
      throw ApiError(400, "invalid_request_error",
                     "the model '" + options.model_name +
                         "' has no chat template (its file has no usable tokenizer.chat_template), "
                         "so chat messages cannot be turned into a prompt; use /v1/completions, or "
                         "start the server with --chat-template chatml",
                     "messages", "chat_template_missing");
    }
    Generation::Prompt p;
    p.echo_text = options.chat_template->render(c.messages, /*add_generation_prompt=*/true);
    p.ids = r.model.tokenizer->encode(p.echo_text, options.chat_template->add_bos);
    // Until the context is full, unless limited.
    const int max_tokens = c.options.max_tokens.value_or(r.model.config.context_length);
    check_prompt_fits(r.model, p.ids.size(), max_tokens, "messages");
    std::vector<Generation::Prompt> prompts;
    prompts.push_back(std::move(p));
    run_generation(res, r, /*chat=*/true, std::move(c.options), /*echo=*/false, std::move(prompts),
                   max_tokens);
  }

  void score(const std::string& body, httplib::Response& res) {
    const Ready r = ready();
    ScoreRequest s = parse_score_request(parse_json_object(body));
    check_model(s.model);
    std::vector<int32_t> prompt = s.prompt.text
                                      ? r.model.tokenizer->encode(*s.prompt.text, /*add_bos=*/true)
                                      : checked_ids(r.model, std::move(s.prompt.ids), "prompt");
    const std::vector<int32_t> continuation =
        checked_ids(r.model, std::move(s.continuation), "continuation");
    check_prompt_fits(r.model, prompt.size() + continuation.size(), 0, "continuation");
    const std::shared_ptr<Admission> admission = admit();
    EngineRequest er;
    er.prompt = prompt;
    er.score_ids = continuation;
    er.prompt_logprobs = s.prompt_logprobs;
    er.max_tokens = 0;
    er.sampling.temperature = 0.0f;
    const std::shared_ptr<RequestStream> stream = r.engine.submit(std::move(er));
    std::optional<EngineEvent> scored;
    auto next_check = std::chrono::steady_clock::now() + Generation::kClientPoll;
    while (true) {
      if (wait_or_client_gone(*stream, client_gone, Generation::kClientPoll, next_check)) {
        stream->cancel();
        throw ClientGone{};
      }
      std::optional<EngineEvent> e = stream->next();
      if (!e) break;
      if (e->kind == EngineEvent::Kind::scored) scored = std::move(e);
    }
    check(scored.has_value(), "the score request was cancelled");
    json out = {{"id", new_id("score-")},
                {"object", "score"},
                {"created", unix_now()},
                {"model", options.model_name},
                {"system_fingerprint", fingerprint_of(stream->weights_version())},
                {"prompt_tokens", prompt.size()},
                {"continuation", continuation},
                {"logprobs", scored->score_logprobs},
                {"bitexact_hash", choice_hash(continuation, scored->score_logprobs)},
                {"usage",
                 {{"prompt_tokens", prompt.size() + continuation.size()},
                  {"completion_tokens", 0},
                  {"total_tokens", prompt.size() + continuation.size()}}}};
    if (s.prompt_logprobs) {
      json lps = json::array({nullptr});
      for (float lp : scored->prompt_logprobs) lps.push_back(lp);
      out["prompt_logprobs"] = lps;
    }
    metrics.count_tokens(prompt.size() + continuation.size(), 0);
    res.set_content(dump_json(out), "application/json");
  }

  void tokenize(const std::string& body, httplib::Response& res) {
    const Ready r = ready();
    const TokenizeRequest t = parse_tokenize_request(parse_json_object(body));
    check_model(t.model);
    const std::vector<int32_t> ids = r.model.tokenizer->encode(t.prompt, t.add_special_tokens);
    res.set_content(dump_json({{"tokens", ids},
                               {"count", ids.size()},
                               {"max_model_len", r.model.config.context_length}}),
                    "application/json");
  }

  void detokenize(const std::string& body, httplib::Response& res) {
    const Ready r = ready();
    DetokenizeRequest d = parse_detokenize_request(parse_json_object(body));
    check_model(d.model);
    const std::vector<int32_t> ids = checked_ids(r.model, std::move(d.tokens), "tokens");
    res.set_content(dump_json({{"prompt", r.model.tokenizer->decode(ids)}}), "application/json");
  }

  // The tokenizer's special tokens and limits, in the form vLLM's /tokenizer_info has, which
  // lm-eval-harness's remote tokenizer reads (it needs eos_token; it then finds the ids through
  // /tokenize with add_special_tokens false).
  void tokenizer_info(const httplib::Request&, httplib::Response& res) {
    const Ready r = ready();
    const Tokenizer& t = *r.model.tokenizer;
    const auto special = [&](int32_t id) {  // the token's text, as /tokenize reads it back
      const int32_t ids[] = {id};
      return id < 0 ? json(nullptr) : json(t.decode(ids, /*skip_special=*/false));
    };
    res.set_content(dump_json({{"tokenizer_class", "bitexact"},
                               {"bos_token", special(t.bos_id())},
                               {"eos_token", special(t.eos_id())},
                               {"pad_token", nullptr},
                               {"unk_token", nullptr},
                               {"add_bos_token", t.bos_id() >= 0},
                               {"model_max_length", r.model.config.context_length},
                               {"max_model_len", r.model.config.context_length}}),
                    "application/json");
  }

  void models(const httplib::Request&, httplib::Response& res) {
    const Ready r = ready();
    const json model_entry = {
        {"id", options.model_name},
        {"object", "model"},
        {"created", started_at},
        {"owned_by", "bitexact"},
        {"max_model_len", r.model.config.context_length},
        {"system_fingerprint", admin ? admin->latest_fingerprint() : fingerprint}};
    res.set_content(dump_json({{"object", "list"}, {"data", json::array({model_entry})}}),
                    "application/json");
  }

  // Framing, limits and authentication, before any route runs and before any body byte is read.
  // A request refused here ends its connection (its body stays unread).
  httplib::Server::HandlerResponse pre_route(const httplib::Request& req, httplib::Response& res) {
    if (Connection* c = Connection::current()) c->start_body();
    const auto refuse = [&](const ApiError& e, const char* counted_as) {
      end_connection(res, /*linger=*/true);
      send_error(res, e);
      metrics.count_request(counted_as, e.status());
      return httplib::Server::HandlerResponse::Handled;
    };
    if (const std::optional<ApiError> e = check_request_framing(req, options.max_body_bytes)) {
      return refuse(*e, "other");
    }
    size_t header_bytes = 0;
    for (const auto& [key, value] : req.headers) header_bytes += key.size() + value.size() + 4;
    if (req.headers.size() > static_cast<size_t>(options.max_headers) ||
        header_bytes > options.max_header_bytes) {
      return refuse(
          ApiError(431, "invalid_request_error",
                   "the request headers are too large (" + std::to_string(req.headers.size()) +
                       " headers, " + std::to_string(header_bytes) + " bytes); expected at most " +
                       std::to_string(options.max_headers) + " headers and " +
                       std::to_string(options.max_header_bytes) + " bytes",
                   "headers", "headers_too_large"),
          "other");
    }
    if (options.api_key.empty() || req.path == "/health") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    const std::string given = auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : "";
    if (constant_time_equal(given, options.api_key)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    return refuse(ApiError(401, "invalid_request_error",
                           auth.empty() ? "no API key given; send 'Authorization: Bearer KEY'"
                                        : "the API key is not valid",
                           "Authorization", "invalid_api_key"),
                  "unauthorized");
  }

  // Statuses cpp-httplib sets itself (no route, bad HTTP, a read that failed): the error object.
  httplib::Server::HandlerResponse library_error(const httplib::Request& req,
                                                 httplib::Response& res) {
    if (res.status == 499) return httplib::Server::HandlerResponse::Unhandled;  // nobody to tell
    // Ours already (a route, pre_route or the Expect check wrote it). Handled all the same: on
    // the Expect: 100-continue path cpp-httplib (0.11) sets Content-Length only for a handled
    // error; without it the body is delimited by the close alone.
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Handled;
    const Connection* c = Connection::current();
    const Connection::Failure failure = c ? c->failure() : Connection::Failure::none;
    if (res.status != 404) end_connection(res, /*linger=*/false);  // the stream is out of step
    if (failure == Connection::Failure::header_timeout) {
      res.status = 408;
      send_error(res, ApiError(408, "invalid_request_error",
                               "the request headers did not arrive within " +
                                   std::to_string(options.header_timeout_ms) + " ms",
                               "headers", "header_timeout"));
    } else if (failure == Connection::Failure::headers_too_large) {
      res.status = 431;
      send_error(res, ApiError(431, "invalid_request_error",
                               "the request line and headers are larger than " +
                                   std::to_string(options.max_header_bytes) + " bytes",
                               "headers", "headers_too_large"));
    } else if (res.status == 404) {
      send_error(
          res, ApiError(404, "not_found_error", "there is no route " + req.method + " " + req.path,
                        "", "route_not_found"));
    } else if (res.status == 413) {
      send_error(res, ApiError(413, "invalid_request_error",
                               "the request body is larger than " +
                                   std::to_string(options.max_body_bytes) + " bytes",
                               "body", "body_too_large"));
    } else {
      send_error(res, ApiError(res.status, "invalid_request_error",
                               "the HTTP request could not be parsed or served (status " +
                                   std::to_string(res.status) + ")",
                               "request", "invalid_http"));
    }
    metrics.count_request("other", res.status);
    return httplib::Server::HandlerResponse::Handled;
  }

  void install_routes() {
    http.new_task_queue = [] { return new ThreadPerConnection(); };
    http.set_payload_max_length(options.max_body_bytes);
    http.set_keep_alive_max_count(1000);
    http.set_keep_alive_timeout(options.keep_alive_seconds);
    http.set_read_timeout(30);  // per read; the Connection's deadlines are the tighter bound
    http.set_write_timeout(30);
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return pre_route(req, res);
    });
    // "Expect: 100-continue": a body that would be refused is refused before the client sends it.
    http.set_expect_100_continue_handler(
        [this](const httplib::Request& req, httplib::Response& res) {
          const std::optional<ApiError> e = check_request_framing(req, options.max_body_bytes);
          if (!e) return 100;
          end_connection(res, /*linger=*/true);
          send_error(res, *e);
          metrics.count_request("other", e->status());
          return e->status();
        });
    http.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
          return library_error(req, res);
        }));
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
          send_error(res, ApiError(500, "internal_error", "internal server error"));
        });
    const auto bind = [this](auto method) {
      return [this, method](const httplib::Request& req, httplib::Response& res) {
        (this->*method)(req, res);
      };
    };
    // Every POST reads its body through post_route (check_request_framing has ruled out a POST
    // without a length, so cpp-httplib's plain handlers, which read a body whole, never run).
    http.Post("/v1/completions", post_route("completions", &Impl::completions));
    http.Post("/v1/chat/completions", post_route("chat_completions", &Impl::chat_completions));
    http.Post("/v1/score", post_route("score", &Impl::score));
    http.Post("/tokenize", post_route("tokenize", &Impl::tokenize));
    http.Post("/detokenize", post_route("detokenize", &Impl::detokenize));
    if (admin) install_admin_routes();  // before the catch-all below, which would match first
    http.Post(
        ".*", httplib::Server::HandlerWithContentReader([this](const httplib::Request& req,
                                                               httplib::Response& res,
                                                               const httplib::ContentReader&) {
          end_connection(res, /*linger=*/true);  // the body is not read
          send_error(res, ApiError(404, "not_found_error", "there is no route POST " + req.path,
                                   "path", "route_not_found"));
          metrics.count_request("other", 404);
        }));
    http.Get("/v1/models", route("models", bind(&Impl::models)));
    http.Get("/tokenizer_info", route("tokenizer_info", bind(&Impl::tokenizer_info)));
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const bool is_ready = model.load() != nullptr && engine.load() != nullptr;
      res.status = is_ready ? 200 : 503;
      // 200 {"status":"ok","system_fingerprint":FP} once serving (deploy/fleet_check.py admits
      // a replica to a fleet only with the fleet's FP); 503 {"status":"loading"} before.
      const json body = is_ready ? json{{"status", "ok"}, {"system_fingerprint", fingerprint}}
                                 : json{{"status", "loading"}};
      res.set_content(body.dump(), "application/json");
    });
    http.Get("/metrics", route("metrics", [this](const httplib::Request&, httplib::Response& res) {
               res.set_content(metrics.render(engine.load()), "text/plain; version=0.0.4");
             }));
  }

  // admin_routes.h: JSON body in, JSON out, through run_route() (errors, metrics); a POST body is
  // read as every POST's is (read_body: at most max_body_bytes).
  void install_admin_routes() {
    for (AdminRoutes::Route& r : admin->routes()) {
      auto answer = [this, handle = r.handle](const std::string& body, httplib::Response& res) {
        const Ready ready_model = ready();
        const json request = body.empty() ? json::object() : parse_json_object(body);
        res.set_content(dump_json(handle(request, ready_model.model, ready_model.engine)),
                        "application/json");
      };
      if (r.method == "GET") {
        http.Get(r.path, route(r.name, [answer](const httplib::Request&, httplib::Response& res) {
                   answer("", res);
                 }));
      } else {
        http.Post(r.path,
                  httplib::Server::HandlerWithContentReader(
                      [this, name = r.name, answer](const httplib::Request&, httplib::Response& res,
                                                    const httplib::ContentReader& reader) {
                        run_route(name, res, [&] { answer(read_body(reader, res), res); });
                      }));
      }
    }
  }
};

HttpServer::HttpServer(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->install_routes();
}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::bind() {
  const ServerOptions& o = impl_->options;
  if (o.port == 0) {
    const int port = impl_->http.bind_to_any_port(o.host);
    check(port > 0, "cannot listen on " + o.host + " (any port)");
    impl_->http.set_backlog(std::max(o.max_connections, 128));
    return port;
  }
  check(impl_->http.bind_to_port(o.host, o.port),
        "cannot listen on " + o.host + ":" + std::to_string(o.port) +
            " (in use, or not an address of this machine)");
  impl_->http.set_backlog(std::max(o.max_connections, 128));
  return o.port;
}

void HttpServer::listen() {
  impl_->http.listen_after_bind();
}

void HttpServer::stop() {
  if (impl_->http.is_running()) impl_->http.stop();
  impl_->connections.shutdown_all();  // idle keep-alive connections end now, not at their timeout
}

void HttpServer::serve_model(LoadedModel& model, Engine& engine) {
  impl_->fingerprint = model.system_fingerprint();
  if (impl_->admin) impl_->admin->set_initial_fingerprint(impl_->fingerprint);
  engine.set_step_observer(
      [this](double seconds, size_t) { impl_->metrics.observe_step(seconds); });
  impl_->engine.store(&engine, std::memory_order_release);
  impl_->model.store(&model, std::memory_order_release);
}

}  // namespace bx::server
