// bitexact verify: replays recorded requests against a server and reports every choice whose
// bitexact_hash (server/response_hash.h) differs from the recorded one.
//
// The requests file has one JSON object a line:
//   {"path": "/v1/completions" or "/v1/chat/completions", "request": {...},
//    "hashes": ["bx1-...", ...]}          (or "response": a recorded response object)
// Streaming requests are replayed without streaming (the hashes are the same). With --record OUT
// the hashes are not compared but written: each line of FILE goes to OUT with the server's
// hashes and system_fingerprint added. Exit status 0 when every hash matches, 1 otherwise.
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"

namespace bx::cli {
namespace {

using nlohmann::json;

struct VerifyFlags {
  std::string url = "http://127.0.0.1:8000";
  std::string requests_path;
  std::string record_path;
  std::string api_key;
  int timeout_seconds = 600;
};

std::vector<std::string> hashes_of(const json& response) {
  std::vector<std::string> hashes;
  if (!response.contains("choices") || !response["choices"].is_array()) return hashes;
  for (const json& c : response["choices"]) hashes.push_back(c.value("bitexact_hash", ""));
  return hashes;
}

void run_verify(VerifyFlags& f) {
  if (f.api_key.empty()) {
    if (const char* key = std::getenv("BITEXACT_API_KEY")) f.api_key = key;
  }
  std::ifstream in(f.requests_path);
  check(in.good(), "cannot open --requests " + f.requests_path);
  std::unique_ptr<std::ofstream> out;
  if (!f.record_path.empty()) {
    out = std::make_unique<std::ofstream>(f.record_path);
    check(out->good(), "cannot write --record " + f.record_path);
  }
  httplib::Client client(f.url);
  check(client.is_valid(), "--url is '" + f.url + "', expected http://HOST:PORT");
  client.set_read_timeout(f.timeout_seconds);
  client.set_write_timeout(f.timeout_seconds);
  if (!f.api_key.empty()) client.set_bearer_token_auth(f.api_key);

  size_t line_number = 0, requests = 0, choices = 0, differing = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = f.requests_path + ":" + std::to_string(line_number);
    json entry = json::parse(line, nullptr, false);
    check(!entry.is_discarded() && entry.is_object() && entry.contains("request") &&
              entry["request"].is_object(),
          where + ": expected a JSON object with \"path\" and \"request\"");
    const std::string path = entry.value("path", "/v1/completions");
    check(path == "/v1/completions" || path == "/v1/chat/completions",
          where + ": path is '" + path + "', expected /v1/completions or /v1/chat/completions");
    json request = entry["request"];
    request["stream"] = false;
    request.erase("stream_options");
    const auto res = client.Post(path, request.dump(), "application/json");
    check(static_cast<bool>(res),
          where + ": no answer from " + f.url + " (" + httplib::to_string(res.error()) + ")");
    const json response = json::parse(res->body, nullptr, false);
    check(res->status == 200 && !response.is_discarded(),
          where + ": the server answered " + std::to_string(res->status) + ": " + res->body);
    const std::vector<std::string> got = hashes_of(response);
    ++requests;
    choices += got.size();
    if (out) {
      entry["hashes"] = got;
      entry["system_fingerprint"] = response.value("system_fingerprint", "");
      *out << entry.dump() << "\n";
      continue;
    }
    std::vector<std::string> want;
    if (entry.contains("hashes")) {
      want = entry["hashes"].get<std::vector<std::string>>();
    } else if (entry.contains("response")) {
      want = hashes_of(entry["response"]);
    }
    check(!want.empty(), where + ": no recorded \"hashes\" or \"response\" to compare with");
    const std::string recorded_fp = entry.value("system_fingerprint", "");
    const std::string server_fp = response.value("system_fingerprint", "");
    if (!recorded_fp.empty() && recorded_fp != server_fp) {
      std::printf("%s: note: recorded on %s, the server is %s (another configuration)\n",
                  where.c_str(), recorded_fp.c_str(), server_fp.c_str());
    }
    if (want.size() != got.size()) {
      std::printf("%s: DIFFERS: %zu choices recorded, %zu returned\n", where.c_str(), want.size(),
                  got.size());
      ++differing;
      continue;
    }
    for (size_t i = 0; i < want.size(); ++i) {
      if (want[i] != got[i]) {
        std::printf("%s: choice %zu DIFFERS: recorded %s, got %s\n", where.c_str(), i,
                    want[i].c_str(), got[i].c_str());
        ++differing;
      }
    }
  }
  if (out) {
    std::printf("verify: recorded %zu requests (%zu choices) into %s\n", requests, choices,
                f.record_path.c_str());
    return;
  }
  std::printf("verify: %zu requests, %zu choices, %zu differ\n", requests, choices, differing);
  std::fflush(stdout);
  if (differing > 0) std::exit(1);
}

}  // namespace

void register_verify(CLI::App& app) {
  auto flags = std::make_shared<VerifyFlags>();
  CLI::App* cmd = app.add_subcommand(
      "verify", "Replay recorded requests and report any choice hash that differs");
  cmd->add_option("--url", flags->url, "Server base URL (http://127.0.0.1:8000)");
  cmd->add_option("--requests", flags->requests_path, "JSON-lines file of recorded requests")
      ->required();
  cmd->add_option("--record", flags->record_path,
                  "Write the requests with the server's hashes here instead of comparing");
  cmd->add_option("--api-key", flags->api_key, "API key (default: $BITEXACT_API_KEY)");
  cmd->add_option("--timeout", flags->timeout_seconds, "Seconds to wait for one answer (600)");
  cmd->callback([flags] { run_verify(*flags); });
}

}  // namespace bx::cli
