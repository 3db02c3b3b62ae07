#include "server/admin_routes.h"

#include "core/error.h"
#include "engine/engine.h"
#include "engine/weight_swap.h"
#include "model/loader.h"
#include "server/api_error.h"

namespace bx::server {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

ApiError forbidden(const std::string& message) {
  return ApiError(403, "permission_error", message, "path", "path_not_allowed");
}

// Whether `inner` is `outer` or lies below it (both canonical).
bool inside(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

InFlight in_flight_of(const json& body) {
  if (!body.contains("in_flight")) return InFlight::finish;
  const json& v = body["in_flight"];
  if (v == "finish") return InFlight::finish;
  if (v == "abort") return InFlight::abort;
  throw invalid_field("in_flight", "in_flight is " + v.dump() +
                                       ", expected \"finish\" (requests running end on the old "
                                       "weights first) or \"abort\" (they end now)");
}

}  // namespace

AdminRoutes::AdminRoutes(const AdminOptions& options) {
  if (options.weights_dir.empty()) return;
  std::error_code ec;
  check(fs::is_directory(options.weights_dir, ec),
        "--weights-dir " + options.weights_dir + " is not a directory");
  weights_dir_ = fs::canonical(options.weights_dir);
}

fs::path AdminRoutes::resolve(const std::string& path) const {
  if (weights_dir_.empty()) {
    throw forbidden("the server was started without --weights-dir; load_weights is off");
  }
  if (path.empty()) throw invalid_field("path", "path is empty; expected a file or folder name");
  const fs::path relative(path);
  if (relative.is_absolute()) {
    throw forbidden("path '" + path + "' is absolute; expected a path relative to --weights-dir");
  }
  for (const fs::path& part : relative) {
    if (part == "..") throw forbidden("path '" + path + "' contains '..'");
  }
  std::error_code ec;
  const fs::path real = fs::canonical(weights_dir_ / relative, ec);
  if (ec) {
    throw ApiError(404, "not_found_error", "path '" + path + "' does not exist in --weights-dir",
                   "path", "weights_not_found");
  }
  if (!inside(real, weights_dir_)) {
    throw forbidden("path '" + path + "' leads outside --weights-dir (through a symlink)");
  }
  return real;
}

json AdminRoutes::load_weights(const json& body, LoadedModel& model, Engine& engine) {
  if (!body.contains("path") || !body["path"].is_string()) {
    throw invalid_field("path", "expected \"path\": a string, relative to --weights-dir");
  }
  const fs::path real = resolve(body["path"].get<std::string>());
  const InFlight in_flight = in_flight_of(body);
  std::string fingerprint;
  const uint64_t version = swap_weights_from_file(engine, model, real.string(), in_flight, [&] {
    fingerprint = model.system_fingerprint();
    std::lock_guard lock(mutex_);
    fingerprints_[model.weights_version] = fingerprint;
    latest_ = model.weights_version;
  });
  return {{"weights_version", version}, {"system_fingerprint", fingerprint}};
}

void AdminRoutes::set_initial_fingerprint(const std::string& fingerprint) {
  std::lock_guard lock(mutex_);
  fingerprints_[0] = fingerprint;
}

std::string AdminRoutes::fingerprint_of(uint64_t version) const {
  std::lock_guard lock(mutex_);
  const auto it = fingerprints_.find(version);
  return it == fingerprints_.end() ? std::string() : it->second;
}

std::string AdminRoutes::latest_fingerprint() const {
  return fingerprint_of(latest_version());
}

uint64_t AdminRoutes::latest_version() const {
  std::lock_guard lock(mutex_);
  return latest_;
}

std::vector<AdminRoutes::Route> AdminRoutes::routes() {
  std::vector<Route> out;
  out.push_back(
      {"POST", "/v1/load_weights", "load_weights",
       [this](const json& body, LoadedModel& m, Engine& e) { return load_weights(body, m, e); }});
  out.push_back({"POST", "/v1/pause", "pause", [](const json&, LoadedModel&, Engine& e) {
                   e.pause();
                   return json{{"paused", true}};
                 }});
  out.push_back({"POST", "/v1/resume", "resume", [](const json&, LoadedModel&, Engine& e) {
                   e.resume();
                   return json{{"paused", false}};
                 }});
  out.push_back({"POST", "/v1/reset_prefix_cache", "reset_prefix_cache",
                 [](const json&, LoadedModel&, Engine& e) {
                   e.run_exclusive([] {}, InFlight::keep);
                   return json{{"reset", true}};
                 }});
  out.push_back({"GET", "/v1/weights_version", "weights_version",
                 [this](const json&, LoadedModel&, Engine& e) {
                   const uint64_t version = latest_version();
                   return json{{"weights_version", version},
                               {"system_fingerprint", fingerprint_of(version)},
                               {"paused", e.paused()}};
                 }});
  return out;
}

}  // namespace bx::server
