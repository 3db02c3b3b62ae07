#include "server/request_framing.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace bx::server {
namespace {

ApiError framing_error(int status, const std::string& header, const std::string& message,
                       const char* code) {
  return ApiError(status, "invalid_request_error", message, header, code);
}

std::string lower_trimmed(std::string s) {
  const auto space = [](unsigned char c) { return c == ' ' || c == '\t'; };
  while (!s.empty() && space(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && space(static_cast<unsigned char>(s[start]))) ++start;
  s.erase(0, start);
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string shown_header(const std::string& value) {
  std::string s = value.size() > 40 ? value.substr(0, 37) + "..." : value;
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return "'" + s + "'";
}

}  // namespace

std::optional<ApiError> check_request_framing(const httplib::Request& req, size_t max_body_bytes) {
  if (req.version == "HTTP/1.1" && req.get_header_value_count("Host") != 1) {
    return framing_error(400, "Host",
                         req.has_header("Host")
                             ? "the request has " +
                                   std::to_string(req.get_header_value_count("Host")) +
                                   " Host headers; expected exactly one"
                             : "the HTTP/1.1 request has no Host header; expected one (RFC 9112)",
                         "invalid_host");
  }
  const size_t lengths = req.get_header_value_count("Content-Length");
  const size_t encodings = req.get_header_value_count("Transfer-Encoding");
  if (lengths > 1) {
    return framing_error(400, "Content-Length",
                         "the request has " + std::to_string(lengths) +
                             " Content-Length headers; expected at most one",
                         "invalid_content_length");
  }
  if (encodings > 1 || (encodings == 1 && lengths == 1)) {
    return framing_error(400, "Transfer-Encoding",
                         encodings > 1 ? "the request has more than one Transfer-Encoding header"
                                       : "the request has both Transfer-Encoding and "
                                         "Content-Length; expected one of them",
                         "invalid_transfer_encoding");
  }
  const bool chunked = encodings == 1;
  if (chunked && lower_trimmed(req.get_header_value("Transfer-Encoding")) != "chunked") {
    return framing_error(400, "Transfer-Encoding",
                         "Transfer-Encoding is " +
                             shown_header(req.get_header_value("Transfer-Encoding")) +
                             "; only 'chunked' is supported",
                         "invalid_transfer_encoding");
  }
  uint64_t length = 0;
  if (lengths == 1) {
    const std::string value = req.get_header_value("Content-Length");
    const std::string digits = lower_trimmed(value);
    const bool decimal = !digits.empty() && digits.size() <= 18 &&
                         std::all_of(digits.begin(), digits.end(),
                                     [](unsigned char c) { return std::isdigit(c) != 0; });
    if (!decimal) {
      return framing_error(400, "Content-Length",
                           "Content-Length is " + shown_header(value) +
                               "; expected a non-negative decimal number of bytes",
                           "invalid_content_length");
    }
    length = std::stoull(digits);
  }
  const bool has_body = chunked || length > 0;
  if (req.method != "POST") {
    if (has_body) {
      return framing_error(400, chunked ? "Transfer-Encoding" : "Content-Length",
                           "a " + req.method + " request has a body; only POST requests take one",
                           "unexpected_body");
    }
    return std::nullopt;
  }
  if (lengths == 0 && !chunked) {
    return framing_error(411, "Content-Length",
                         "the POST request has neither Content-Length nor Transfer-Encoding: "
                         "chunked; expected one of them",
                         "length_required");
  }
  if (length > max_body_bytes) {
    return framing_error(413, "Content-Length",
                         "the request body is " + std::to_string(length) +
                             " bytes, larger than the limit of " + std::to_string(max_body_bytes) +
                             " bytes",
                         "body_too_large");
  }
  return std::nullopt;
}

}  // namespace bx::server
