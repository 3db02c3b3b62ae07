#include "server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

#include <sys/socket.h>

#include "core/error.h"
#include "engine/engine.h"
#include "model/loader.h"
#include "server/api_error.h"
#include "server/generation.h"
#include "server/metrics.h"
#include "server/openai_request.h"
#include "server/response_hash.h"

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

// cpp-httplib 0.11 listens with a backlog of 5, so a burst of connections overflows the accept
// queue and clients see resets. listen() again on the bound socket only changes the backlog.
class Listener : public httplib::Server {
 public:
  void set_backlog(int backlog) {
    check(::listen(svr_sock_, backlog) == 0, "cannot set the listen backlog");
  }
};

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
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

  explicit Impl(ServerOptions o) : options(std::move(o)) {
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

  // Wraps a route: ApiError -> its status; bx::Error (engine validation) -> 400; anything
  // else -> 500. Counts the request.
  template <class F>
  httplib::Server::Handler route(std::string name, F f) {
    return [this, name, f](const httplib::Request& req, httplib::Response& res) {
      try {
        f(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const Error& e) {
        send_error(res, ApiError(400, "invalid_request_error", e.what()));
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, "internal_error", e.what()));
      }
      metrics.count_request(name, res.status == -1 ? 200 : res.status);
    };
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
      const json response = generation->wait_for_response();
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

  void completions(const httplib::Request& req, httplib::Response& res) {
    const Ready r = ready();
    CompletionRequest c = parse_completion_request(parse_json_object(req.body));
    check_model(c.options.model);
    std::vector<Generation::Prompt> prompts;
    for (PromptInput& in : c.prompts) {
      Generation::Prompt p;
      if (in.text) {
        p.ids = r.model.tokenizer->encode(*in.text, /*add_bos=*/true);
        p.echo_text = *in.text;
      } else {
        p.ids = checked_ids(r.model, std::move(in.ids), "prompt");
        p.echo_text = r.model.tokenizer->decode(p.ids);
      }
      prompts.push_back(std::move(p));
    }
    const int max_tokens = c.options.max_tokens.value_or(16);
    run_generation(res, r, /*chat=*/false, std::move(c.options), c.echo, std::move(prompts),
                   max_tokens);
  }

  void chat_completions(const httplib::Request& req, httplib::Response& res) {
    const Ready r = ready();
    ChatRequest c = parse_chat_request(parse_json_object(req.body));
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
    std::vector<Generation::Prompt> prompts;
    prompts.push_back(std::move(p));
    run_generation(res, r, /*chat=*/true, std::move(c.options), /*echo=*/false, std::move(prompts),
                   max_tokens);
  }

  void score(const httplib::Request& req, httplib::Response& res) {
    const Ready r = ready();
    ScoreRequest s = parse_score_request(parse_json_object(req.body));
    check_model(s.model);
    std::vector<int32_t> prompt = s.prompt.text
                                      ? r.model.tokenizer->encode(*s.prompt.text, /*add_bos=*/true)
                                      : checked_ids(r.model, std::move(s.prompt.ids), "prompt");
    std::vector<int32_t> continuation =
        checked_ids(r.model, std::move(s.continuation), "continuation");
    const std::shared_ptr<Admission> admission = admit();
    EngineRequest er;
    er.prompt = prompt;
    er.score_ids = continuation;
    er.prompt_logprobs = s.prompt_logprobs;
    er.max_tokens = 0;
    er.sampling.temperature = 0.0f;
    const std::shared_ptr<RequestStream> stream = r.engine.submit(std::move(er));
    std::optional<EngineEvent> scored;
    while (std::optional<EngineEvent> e = stream->next()) {
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

  void tokenize(const httplib::Request& req, httplib::Response& res) {
    const Ready r = ready();
    const TokenizeRequest t = parse_tokenize_request(parse_json_object(req.body));
    check_model(t.model);
    const std::vector<int32_t> ids = r.model.tokenizer->encode(t.prompt, t.add_special_tokens);
    res.set_content(dump_json({{"tokens", ids},
                               {"count", ids.size()},
                               {"max_model_len", r.model.config.context_length}}),
                    "application/json");
  }

  void detokenize(const httplib::Request& req, httplib::Response& res) {
    const Ready r = ready();
    DetokenizeRequest d = parse_detokenize_request(parse_json_object(req.body));
    check_model(d.model);
    const std::vector<int32_t> ids = checked_ids(r.model, std::move(d.tokens), "tokens");
    res.set_content(dump_json({{"prompt", r.model.tokenizer->decode(ids)}}), "application/json");
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

  // Limits and authentication, before any route runs.
  httplib::Server::HandlerResponse pre_route(const httplib::Request& req, httplib::Response& res) {
    size_t header_bytes = 0;
    for (const auto& [key, value] : req.headers) header_bytes += key.size() + value.size() + 4;
    if (req.headers.size() > static_cast<size_t>(options.max_headers) ||
        header_bytes > options.max_header_bytes) {
      send_error(
          res, ApiError(431, "invalid_request_error",
                        "the request headers are too large (" + std::to_string(req.headers.size()) +
                            " headers, " + std::to_string(header_bytes) +
                            " bytes); expected at most " + std::to_string(options.max_headers) +
                            " headers and " + std::to_string(options.max_header_bytes) + " bytes",
                        "", "headers_too_large"));
      metrics.count_request("other", 431);
      return httplib::Server::HandlerResponse::Handled;
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
    send_error(res, ApiError(401, "invalid_request_error",
                             auth.empty() ? "no API key given; send 'Authorization: Bearer KEY'"
                                          : "the API key is not valid",
                             "", "invalid_api_key"));
    metrics.count_request("unauthorized", 401);
    return httplib::Server::HandlerResponse::Handled;
  }

  // Statuses cpp-httplib sets itself (no route, body too large, bad HTTP): the error object.
  httplib::Server::HandlerResponse library_error(const httplib::Request& req,
                                                 httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours
    if (res.status == 404) {
      send_error(
          res, ApiError(404, "not_found_error", "there is no route " + req.method + " " + req.path,
                        "", "route_not_found"));
    } else if (res.status == 413) {
      send_error(res, ApiError(413, "invalid_request_error",
                               "the request body is larger than " +
                                   std::to_string(options.max_body_bytes) + " bytes",
                               "", "body_too_large"));
    } else {
      send_error(res, ApiError(res.status, "invalid_request_error",
                               "the HTTP request could not be served (status " +
                                   std::to_string(res.status) + ")"));
    }
    metrics.count_request("other", res.status);
    return httplib::Server::HandlerResponse::Handled;
  }

  void install_routes() {
    http.new_task_queue = [n = options.max_connections] {
      return new httplib::ThreadPool(static_cast<size_t>(n));
    };
    http.set_payload_max_length(options.max_body_bytes);
    http.set_keep_alive_max_count(1000);
    http.set_keep_alive_timeout(options.keep_alive_seconds);
    http.set_read_timeout(30);
    http.set_write_timeout(30);
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return pre_route(req, res);
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
    http.Post("/v1/completions", route("completions", bind(&Impl::completions)));
    http.Post("/v1/chat/completions", route("chat_completions", bind(&Impl::chat_completions)));
    http.Post("/v1/score", route("score", bind(&Impl::score)));
    http.Post("/tokenize", route("tokenize", bind(&Impl::tokenize)));
    http.Post("/detokenize", route("detokenize", bind(&Impl::detokenize)));
    http.Get("/v1/models", route("models", bind(&Impl::models)));
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const bool is_ready = model.load() != nullptr && engine.load() != nullptr;
      res.status = is_ready ? 200 : 503;
      res.set_content(is_ready ? R"({"status":"ok"})" : R"({"status":"loading"})",
                      "application/json");
    });
    http.Get("/metrics", route("metrics", [this](const httplib::Request&, httplib::Response& res) {
               res.set_content(metrics.render(engine.load()), "text/plain; version=0.0.4");
             }));
    if (admin) install_admin_routes();
  }

  // admin_routes.h: JSON body in, JSON out, through route() (errors, metrics).
  void install_admin_routes() {
    for (AdminRoutes::Route& r : admin->routes()) {
      auto handler = route(
          r.name, [this, handle = r.handle](const httplib::Request& req, httplib::Response& res) {
            const Ready ready_model = ready();
            const json body = req.body.empty() ? json::object() : parse_json_object(req.body);
            res.set_content(dump_json(handle(body, ready_model.model, ready_model.engine)),
                            "application/json");
          });
      if (r.method == "GET") {
        http.Get(r.path, std::move(handler));
      } else {
        http.Post(r.path, std::move(handler));
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
