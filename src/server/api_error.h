// The OpenAI error object and the HTTP status that goes with it.
//
// Every failure a client can cause leaves the server as
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// with one of these statuses: 400 malformed JSON, a wrong type, an out-of-range value, an
// unsupported field, a missing chat template; 401 a missing or wrong API key; 404 an unknown
// model or route; 413 a body over the limit; 503 the request queue is full or the model is still
// loading. Handlers throw ApiError; the router turns it into the response.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace bx::server {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, const std::string& message, std::string param = {},
           std::string code = {})
      : std::runtime_error(message),
        status_(status),
        type_(std::move(type)),
        param_(std::move(param)),
        code_(std::move(code)) {}

  int status() const { return status_; }
  // {"error": {...}}; param and code are null when empty.
  nlohmann::json to_json() const;

 private:
  int status_;
  std::string type_;
  std::string param_;
  std::string code_;
};

// 400 invalid_request_error about one request field.
inline ApiError invalid_field(const std::string& param, const std::string& message) {
  return ApiError(400, "invalid_request_error", message, param, "invalid_value");
}

}  // namespace bx::server
