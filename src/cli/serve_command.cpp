// bitexact serve: the OpenAI-compatible HTTP server (server/http_server.h) on one model.
//
// The listener is up before the model loads, so /health answers 503 while loading and 200 once
// requests are served. Prints "bitexact: listening on http://HOST:PORT" on stdout when bound
// (with --port 0 the port is chosen by the system). SIGINT or SIGTERM stops it.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>
#include <tuple>

#include <pthread.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "model/random_model.h"
#include "server/http_server.h"
#include "template/chat_template.h"

namespace bx::cli {
namespace {

struct ServeFlags {
  ModelFlags model;
  EngineFlags engine;
  server::ServerOptions server;
  std::string chat_template;
  double header_timeout_seconds = 10;
  double body_timeout_seconds = 10;
};

void run_serve(ServeFlags& f) {
  server::ServerOptions options = f.server;
  if (options.api_key.empty()) {
    if (const char* key = std::getenv("BITEXACT_API_KEY")) options.api_key = key;
  }
  if (options.model_name.empty()) {
    options.model_name = std::filesystem::path(f.model.model_path).stem().string();
  }
  check(options.port >= 0 && options.port <= 65535,
        "--port is " + std::to_string(options.port) + ", expected 0 to 65535");
  check(
      options.max_connections >= 1,
      "--max-connections is " + std::to_string(options.max_connections) + ", expected at least 1");
  check(options.keep_alive_seconds >= 1, "--keep-alive-seconds is " +
                                             std::to_string(options.keep_alive_seconds) +
                                             ", expected at least 1");
  for (const auto& [flag, seconds, ms] :
       {std::tuple{"--header-timeout-seconds", f.header_timeout_seconds,
                   &options.header_timeout_ms},
        std::tuple{"--body-timeout-seconds", f.body_timeout_seconds, &options.body_timeout_ms}}) {
    check(seconds >= 0.1 && seconds <= 3600,
          std::string(flag) + " is " + std::to_string(seconds) + ", expected 0.1 to 3600");
    *ms = static_cast<int>(seconds * 1000);
  }
  check(options.max_queue >= 1,
        "--max-queue is " + std::to_string(options.max_queue) + ", expected at least 1");
  check(
      options.max_body_bytes >= 1024,
      "--max-body-bytes is " + std::to_string(options.max_body_bytes) + ", expected at least 1024");
  check(options.admin.weights_dir.empty() || options.admin.enabled,
        "--weights-dir is only read by the admin routes; add --enable-admin");
  check(f.model.tokenizer.empty() || std::filesystem::exists(f.model.tokenizer),
        "--tokenizer " + f.model.tokenizer + " does not exist");
  if (!f.chat_template.empty()) {
    options.chat_template = server::builtin_chat_template(f.chat_template);
    check(options.chat_template.has_value(),
          "--chat-template is '" + f.chat_template + "', expected a built-in format: chatml");
  } else if (std::optional<ChatTemplate> own = ChatTemplate::of_model(
                 f.model.tokenizer.empty() ? f.model.model_path : f.model.tokenizer)) {
    // The model's own Jinja template; it writes any BOS itself.
    auto shared = std::make_shared<ChatTemplate>(std::move(*own));
    options.chat_template = server::ChatTemplate{
        "model",
        [shared](const nlohmann::json& messages, bool add_generation_prompt) {
          return shared->render(nlohmann::ordered_json(messages), add_generation_prompt);
        },
        /*add_bos=*/false};
  }
  LoadOptions load_options;
  EngineOptions engine_options;
  apply_engine_flags(f.engine, load_options, engine_options);
  check(is_random_model_spec(f.model.model_path) || std::filesystem::exists(f.model.model_path),
        "--model " + f.model.model_path + " does not exist");

  // Signals go to the thread that waits for them, never to a worker.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not a crash

  server::HttpServer http(options);
  const int port = http.bind();
  std::printf("bitexact: listening on http://%s:%d\n", options.host.c_str(), port);
  std::fflush(stdout);
  std::thread listener([&] { http.listen(); });

  std::unique_ptr<LoadedModel> model;
  std::unique_ptr<Engine> engine;
  try {
    model = std::make_unique<LoadedModel>(load_with_progress(f.model, load_options));
    check(model->tokenizer != nullptr,
          "the model has no tokenizer; the server needs one (give one with --tokenizer)");
    engine = std::make_unique<Engine>(*model, engine_options);
  } catch (...) {
    http.stop();
    listener.join();
    throw;
  }
  http.serve_model(*model, *engine);
  engine->start();
  if (!f.model.quiet) {
    std::fprintf(stderr, "bitexact: serving '%s' (%s)\n", options.model_name.c_str(),
                 model->system_fingerprint().c_str());
  }

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  if (!f.model.quiet) std::fprintf(stderr, "bitexact: stopping (signal %d)\n", signal_number);
  http.stop();
  listener.join();
  engine->stop();
}

}  // namespace

void register_serve(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server");
  add_model_flags(*cmd, flags->model);
  server::ServerOptions& s = flags->server;
  cmd->add_option("--host", s.host, "Address to listen on (127.0.0.1: this machine only)");
  cmd->add_option("--port", s.port, "Port (8000; 0 = any free port)");
  cmd->add_option("--api-key", s.api_key,
                  "Require 'Authorization: Bearer KEY' (default: $BITEXACT_API_KEY, else none)");
  cmd->add_option("--served-model-name", s.model_name,
                  "The model id clients use (default: the file name without extension)");
  cmd->add_option("--chat-template", flags->chat_template,
                  "Use a built-in chat format (chatml) instead of the model's own template");
  cmd->add_option("--max-body-bytes", s.max_body_bytes, "Largest request body (1 MiB)");
  cmd->add_option("--max-connections", s.max_connections,
                  "Open connections, one thread each; one more sheds the longest-idle (512)");
  cmd->add_option("--max-queue", s.max_queue,
                  "Generation and score requests in flight; more get 503 (1024)");
  cmd->add_option("--keep-alive-seconds", s.keep_alive_seconds,
                  "Idle time before a connection is closed (10)");
  cmd->add_option("--header-timeout-seconds", flags->header_timeout_seconds,
                  "Time for a request's line and headers, from its first byte; then 408 (10)");
  cmd->add_option("--body-timeout-seconds", flags->body_timeout_seconds,
                  "Time for a request's body, from the end of its headers; then 408 (10)");
  cmd->add_flag("--enable-admin", s.admin.enabled,
                "Serve the admin routes: POST /v1/load_weights, /v1/pause, /v1/resume, "
                "/v1/reset_prefix_cache; GET /v1/weights_version (behind --api-key)");
  cmd->add_option("--weights-dir", s.admin.weights_dir,
                  "The folder /v1/load_weights reads from (paths relative to it; nothing "
                  "outside it)");
  add_engine_flags(*cmd, flags->engine);
  cmd->callback([flags] { run_serve(*flags); });
}

}  // namespace bx::cli
