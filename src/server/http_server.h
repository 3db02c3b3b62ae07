// The OpenAI-compatible HTTP server (cpp-httplib underneath, kept out of this header).
//
// Threads: one thread per connection (thread_per_connection.h) parses HTTP, JSON, tokenizes,
// renders chat templates and writes responses; the engine's own thread (Engine::start) owns all
// engine state. They meet only at Engine::submit and RequestStream, so no HTTP activity can change
// an output bit (INVARIANCE.md): a response depends only on its request and the engine
// configuration, which its system_fingerprint names.
//
// Routes: POST /v1/completions, /v1/chat/completions, /v1/score (teacher-forced logprobs of
// continuation ids), /tokenize, /detokenize; GET /v1/models, /health (503 until serve_model),
// /metrics (Prometheus); with admin.enabled the admin routes of admin_routes.h. Every route but
// /health needs the API key when one is set ("Authorization: Bearer KEY", compared in constant
// time).
//
// Security defaults: the listener binds 127.0.0.1 unless told otherwise. Framing is checked
// before any body byte is read (request_framing.h: conflicting or invalid Content-Length,
// Transfer-Encoding, missing Host -> 400, and the connection ends). Bodies are read up to
// max_body_bytes and no further, Content-Length or chunked (413 the moment the limit is
// passed); JSON nests at most kMaxJsonDepth deep (openai_request.h). Every read has a deadline
// (connection.h): headers within header_timeout_ms (408), the body within body_timeout_ms
// (408); more than max_headers headers or max_header_bytes of header text -> 431. At most
// max_connections connections are open; one more sheds the longest-idle one
// (connection_registry.h). At most max_queue generation or score requests are admitted at once
// (more get 503 queue_full). A non-streaming request whose client hangs up is cancelled within
// Generation::kClientPoll plus one engine step, as a streaming one is. No request field is ever
// used as a filesystem path outside the admin's --weights-dir (checked there: no absolute
// paths, no "..", no symlink leaving it).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "server/admin_routes.h"
#include "server/chat_template.h"

namespace bx {
class Engine;
struct LoadedModel;
}  // namespace bx

namespace bx::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;         // 0: any free port (bind() says which)
  std::string api_key;     // empty: no authentication
  std::string model_name;  // the id /v1/models lists and requests may name
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 32 << 10;
  int max_headers = 64;
  int max_connections = 512;                  // open connections (one thread each)
  int max_queue = 1024;                       // generation and score requests admitted at once
  int keep_alive_seconds = 10;                // how long a connection may sit idle (also before its
                                              // first request) before the server closes it
  int header_timeout_ms = 10'000;             // request line and headers, from their first byte
  int body_timeout_ms = 10'000;               // the whole body, from the end of the headers
  std::optional<ChatTemplate> chat_template;  // none: chat answers 400
  AdminOptions admin;                         // the admin routes (admin_routes.h), off by default
};

class HttpServer {
 public:
  explicit HttpServer(ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; returns the port. Throws bx::Error if it cannot.
  int bind();
  // Serves until stop() (from another thread). Requests before serve_model() get 503.
  void listen();
  void stop();
  // From now on requests run on this model and engine (both outlive the server). Call it before
  // engine.start(): it installs the engine's step observer (metrics).
  void serve_model(LoadedModel& model, Engine& engine);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// a == b in time that depends only on the lengths, not on where they differ.
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace bx::server
