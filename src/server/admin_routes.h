// The admin endpoints RL trainers drive between training steps (as SGLang's
// update_weights_from_disk and vLLM's pause / resume), registered by HttpServer only with
// `serve --enable-admin`, and behind --api-key like every route:
//
//   POST /v1/load_weights {"path": P, "in_flight": "finish" | "abort"}
//       The safetensors file or Hugging Face checkpoint folder P, relative to the --weights-dir
//       fixed at start, replaces the weights in place (engine/weight_swap.h): an absolute P, a
//       ".." component, or a symlink that leaves the directory is 403 (permission_error); a
//       missing P 404; a bad tensor 400 naming it, the old weights kept. in_flight (default
//       finish): requests running end on the old weights first, or end now with finish_reason
//       "abort". -> {"weights_version", "system_fingerprint"}
//   POST /v1/pause            new requests wait in the queue (none is dropped); requests
//                             already running go on to their end. -> {"paused": true}
//   POST /v1/resume           the queue runs again. -> {"paused": false}
//   POST /v1/reset_prefix_cache  forgets the cached prompt blocks. -> {"reset": true}
//   GET  /v1/weights_version  -> {"weights_version", "system_fingerprint", "paused"}
//
// Every response carries the fingerprint of the weights_version it ran on (fingerprint_of).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bx {
class Engine;
struct LoadedModel;
}  // namespace bx

namespace bx::server {

struct AdminOptions {
  bool enabled = false;
  std::string weights_dir;  // empty: /v1/load_weights answers 403
};

class AdminRoutes {
 public:
  // Throws bx::Error when weights_dir is given but is not a directory.
  explicit AdminRoutes(const AdminOptions& options);

  struct Route {
    std::string method;  // "GET" or "POST"
    std::string path;
    std::string name;  // for metrics
    // The request body (a JSON object; {} when empty) -> the response body. Throws ApiError.
    std::function<nlohmann::json(const nlohmann::json& body, LoadedModel&, Engine&)> handle;
  };
  std::vector<Route> routes();

  // The model's fingerprint as loaded (HttpServer::serve_model sets it).
  void set_initial_fingerprint(const std::string& fingerprint);
  // The fingerprint at weights_version `version`.
  std::string fingerprint_of(uint64_t version) const;
  std::string latest_fingerprint() const;
  uint64_t latest_version() const;

 private:
  // P relative to the weights dir, resolved; ApiError 403 / 404 as above.
  std::filesystem::path resolve(const std::string& path) const;
  nlohmann::json load_weights(const nlohmann::json& body, LoadedModel& model, Engine& engine);

  std::filesystem::path weights_dir_;  // canonical
  mutable std::mutex mutex_;
  std::map<uint64_t, std::string> fingerprints_;  // version -> fingerprint, recorded at updates
  uint64_t latest_ = 0;
};

}  // namespace bx::server
