// The OpenAI-compatible HTTP server (cpp-httplib underneath, kept out of this header).
//
// Threads: cpp-httplib's pool of max_connections threads parses HTTP, JSON, tokenizes, renders
// chat templates and writes responses; the engine's own thread (Engine::start) owns all engine
// state. They meet only at Engine::submit and RequestStream, so no HTTP activity can change an
// output bit (INVARIANCE.md): a response depends only on its request and the engine
// configuration, which its system_fingerprint names.
//
// Routes: POST /v1/completions, /v1/chat/completions, /v1/score (teacher-forced logprobs of
// continuation ids), /tokenize, /detokenize; GET /v1/models, /health (503 until serve_model),
// /metrics (Prometheus); with admin.enabled the admin routes of admin_routes.h. Every route but
// /health needs the API key when one is set ("Authorization: Bearer KEY", compared in constant
// time).
//
// Security defaults: the listener binds 127.0.0.1 unless told otherwise; bodies over
// max_body_bytes get 413, requests with more than max_headers headers or max_header_bytes of
// header text get 431 (cpp-httplib also caps each header line at 8 KiB); at most
// max_connections connections are served at once (the rest wait for a thread); at most
// max_queue generation or score requests are admitted at once (more get 503 queue_full). No
// request field is ever used as a filesystem path outside the admin's --weights-dir (checked
// there: no absolute paths, no "..", no symlink leaving it).
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
  int max_connections = 256;                  // HTTP worker threads
  int max_queue = 1024;                       // generation and score requests admitted at once
  int keep_alive_seconds = 10;                // how long a connection may sit idle (also before its
                                              // first request) before the server closes it
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
