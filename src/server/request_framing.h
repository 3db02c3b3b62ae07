// How a request says where its body ends, checked once its headers are in and before any body
// byte is read (RFC 9112 section 6). A request a proxy could read differently from this server is
// refused, so no request can be smuggled behind another:
//   - more than one Content-Length, or one that is not a plain decimal number -> 400;
//   - Transfer-Encoding other than exactly "chunked", more than one, or with Content-Length -> 400;
//   - HTTP/1.1 without exactly one Host -> 400;
//   - a body on anything but POST -> 400; POST with neither length nor chunking -> 411;
//   - a Content-Length over the body limit -> 413 (chunked bodies are cut at the limit while read).
// Every refusal ends the connection: its body is never read.
#pragma once

#include <httplib.h>

#include <cstddef>
#include <optional>

#include "server/api_error.h"

namespace bx::server {

std::optional<ApiError> check_request_framing(const httplib::Request& req, size_t max_body_bytes);

}  // namespace bx::server
