#include "server/api_error.h"

namespace bx::server {

nlohmann::json ApiError::to_json() const {
  nlohmann::json error = {
      {"message", what()}, {"type", type_}, {"param", nullptr}, {"code", nullptr}};
  if (!param_.empty()) error["param"] = param_;
  if (!code_.empty()) error["code"] = code_;
  return {{"error", error}};
}

}  // namespace bx::server
