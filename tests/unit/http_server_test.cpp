// The HTTP server in-process: /health and every model route answer 503 until serve_model, then
// 200; the OpenAI error object's shape; the constant-time key comparison; request parsing
// errors name their field.
#include <gtest/gtest.h>

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/generation.h"
#include "server/http_server.h"
#include "server/openai_request.h"
#include "server/request_framing.h"
#include "support/shared_model.h"

namespace bx::server {
namespace {

using nlohmann::json;

TEST(ConstantTimeEqual, ComparesWholeStrings) {
  EXPECT_TRUE(constant_time_equal("secret-key", "secret-key"));
  EXPECT_FALSE(constant_time_equal("secret-key", "secret-kex"));
  EXPECT_FALSE(constant_time_equal("secret-key", "secret-key2"));
  EXPECT_FALSE(constant_time_equal("secret-key", ""));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

TEST(ApiErrorObject, HasTheOpenAIShape) {
  const json j = invalid_field("top_p", "top_p is 0").to_json();
  EXPECT_EQ(j["error"]["message"], "top_p is 0");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "top_p");
  EXPECT_EQ(j["error"]["code"], "invalid_value");
  EXPECT_TRUE(ApiError(500, "internal_error", "x").to_json()["error"]["param"].is_null());
}

TEST(RequestParsing, NamesTheBadField) {
  const auto param_of = [](const json& body) {
    try {
      parse_completion_request(body);
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400);
      return e.to_json()["error"]["param"].get<std::string>();
    }
    return std::string("no error");
  };
  EXPECT_EQ(param_of({{"prompt", "x"}, {"top_k", "5"}}), "top_k");
  EXPECT_EQ(param_of({{"prompt", "x"}, {"seed", 1.5}}), "seed");
  EXPECT_EQ(param_of({{"prompt", "x"}, {"stream_options", {{"include_usage", true}}}}),
            "stream_options");
  EXPECT_EQ(param_of({{"prompt", json::array()}}), "prompt");
  EXPECT_EQ(param_of({{"prompt", "x"}, {"min_tokens", 5}, {"max_tokens", 2}}), "min_tokens");
  EXPECT_EQ(param_of(json{{"max_tokens", 2}}), "prompt");
  const CompletionRequest ok =
      parse_completion_request({{"prompt", {{1, 2}, {3}}}, {"top_k", -1}, {"seed", -1}});
  ASSERT_EQ(ok.prompts.size(), 2u);
  EXPECT_EQ(ok.prompts[0].ids, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(ok.options.sampling.top_k, 0);
  EXPECT_EQ(ok.options.sampling.seed, ~uint64_t{0});
  EXPECT_THROW(parse_json_object("{\"a\": "), ApiError);
}

TEST(RequestParsing, StopsJsonNestedDeeperThanTheLimitWhileParsing) {
  const auto nested = [](size_t depth) {
    return "{\"prompt\": \"x\", \"stop\": " + std::string(depth, '[') + std::string(depth, ']') +
           "}";
  };
  const auto code_of = [](const std::string& body) {
    try {
      parse_completion_request(parse_json_object(body));
    } catch (const ApiError& e) {
      return e.to_json()["error"]["code"].get<std::string>() + " " + e.what();
    }
    return std::string("accepted");
  };
  // The body's object is level 1: 63 arrays inside it make 64 levels, one more is refused.
  EXPECT_EQ(code_of(nested(kMaxJsonDepth - 1)).rfind("invalid_value", 0), 0u);
  EXPECT_EQ(code_of(nested(kMaxJsonDepth)).rfind("json_too_deep", 0), 0u);
  // 1,000,000 levels (the stack overflowed at about 52,000 before): a 400 naming the depth.
  const std::string deep = code_of(nested(1'000'000));
  EXPECT_EQ(deep.rfind("json_too_deep", 0), 0u) << deep;
  EXPECT_NE(deep.find("1000001 levels deep; expected at most 64"), std::string::npos) << deep;
}

TEST(RequestParsing, ErrorMessagesShowDeepValuesWithoutRecursion) {
  // A value built in memory (not parsed, so not depth-limited): the message shows its start.
  json deep = json::array();
  for (int i = 0; i < 200'000; ++i) deep = json::array({std::move(deep)});
  json body = {{"prompt", "x"}};
  body["temperature"] = std::move(deep);
  try {
    parse_completion_request(body);
    FAIL() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_NE(std::string(e.what()).find("temperature is an array ([[[[["), std::string::npos)
        << e.what();
    EXPECT_LT(std::string(e.what()).size(), 200u);
  }
}

TEST(RequestFraming, RefusesAmbiguousOrInvalidFraming) {
  const auto code_of = [](std::string method, std::string version,
                          std::vector<std::pair<std::string, std::string>> headers) {
    httplib::Request req;
    req.method = std::move(method);
    req.version = std::move(version);
    for (auto& [k, v] : headers) req.headers.emplace(k, v);
    const std::optional<ApiError> e = check_request_framing(req, 1000);
    if (!e) return std::string("ok");
    const json j = e->to_json()["error"];
    return std::to_string(e->status()) + " " + j["code"].get<std::string>() + " " +
           j["param"].get<std::string>();
  };
  const std::string v11 = "HTTP/1.1";
  EXPECT_EQ(code_of("POST", v11, {{"Host", "h"}, {"Content-Length", "10"}}), "ok");
  EXPECT_EQ(code_of("POST", v11, {{"Host", "h"}, {"Transfer-Encoding", "Chunked "}}), "ok");
  EXPECT_EQ(code_of("GET", "HTTP/1.0", {}), "ok");
  EXPECT_EQ(code_of("GET", v11, {}), "400 invalid_host Host");
  EXPECT_EQ(code_of("GET", v11, {{"Host", "a"}, {"host", "b"}}), "400 invalid_host Host");
  for (const char* bad : {"-5", "abc", "", "1e3", "0x10", "10, 10", "99999999999999999999"}) {
    EXPECT_EQ(code_of("POST", v11, {{"Host", "h"}, {"Content-Length", bad}}),
              "400 invalid_content_length Content-Length")
        << bad;
  }
  EXPECT_EQ(
      code_of("POST", v11, {{"Host", "h"}, {"Content-Length", "10"}, {"Content-Length", "10"}}),
      "400 invalid_content_length Content-Length");
  EXPECT_EQ(code_of("POST", v11,
                    {{"Host", "h"}, {"Content-Length", "10"}, {"Transfer-Encoding", "chunked"}}),
            "400 invalid_transfer_encoding Transfer-Encoding");
  EXPECT_EQ(code_of("POST", v11, {{"Host", "h"}, {"Transfer-Encoding", "gzip, chunked"}}),
            "400 invalid_transfer_encoding Transfer-Encoding");
  EXPECT_EQ(code_of("POST", v11, {{"Host", "h"}}), "411 length_required Content-Length");
  EXPECT_EQ(code_of("POST", v11, {{"Host", "h"}, {"Content-Length", "1001"}}),
            "413 body_too_large Content-Length");
  EXPECT_EQ(code_of("GET", v11, {{"Host", "h"}, {"Content-Length", "3"}}),
            "400 unexpected_body Content-Length");
}

// A non-streaming request asks whether its client left at least every poll, also while the
// engine's events keep coming faster than the poll (a fast model never lets wait_for time out).
TEST(ClientWatch, AsksWhileEventsKeepComing) {
  using namespace std::chrono_literals;
  RequestStream stream(1);
  std::atomic<bool> stop{false};
  std::thread engine([&] {
    while (!stop) {
      stream.push(EngineEvent{});  // a token event every millisecond
      std::this_thread::sleep_for(1ms);
    }
  });
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::steady_clock::now() - start; };
  auto next_check = start + Generation::kClientPoll;
  bool gone = false;
  while (!gone && elapsed() < 2s) {
    gone = wait_or_client_gone(
        stream, [&] { return elapsed() > 100ms; }, Generation::kClientPoll, next_check);
    if (!gone) (void)stream.try_next();
  }
  stop = true;
  engine.join();
  EXPECT_TRUE(gone) << "the client was never asked while events flowed";
  EXPECT_LT(elapsed(), 1s);
}

// A non-streaming request sleeps until its last event (one wake, not one a token), then finds
// every event still queued in order.
TEST(ClientWatch, UntilFinishedReturnsAtTheLastEventWithEveryEventQueued) {
  using namespace std::chrono_literals;
  RequestStream stream(1);
  for (int i = 0; i < 5; ++i) {
    EngineEvent token;
    token.token = i;
    stream.push(token);
  }
  EXPECT_FALSE(stream.wait_finished_for(5ms)) << "returned on token events";
  std::thread engine([&] {
    for (int i = 5; i < 40; ++i) {
      EngineEvent token;
      token.token = i;
      stream.push(token);
      std::this_thread::sleep_for(1ms);
    }
    EngineEvent finished;
    finished.kind = EngineEvent::Kind::finished;
    stream.push(finished);
  });
  auto next_check = std::chrono::steady_clock::now() + Generation::kClientPoll;
  const bool gone = wait_or_client_gone(
      stream, [] { return false; }, Generation::kClientPoll, next_check, /*until_finished=*/true);
  const bool finished_when_woken = stream.wait_finished_for(0ms);
  engine.join();
  EXPECT_FALSE(gone);
  EXPECT_TRUE(finished_when_woken) << "woken before the last event";
  for (int i = 0; i < 40; ++i) {
    std::optional<EngineEvent> e = stream.next();
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->token, i);
  }
  std::optional<EngineEvent> last = stream.next();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->kind, EngineEvent::Kind::finished);
  EXPECT_FALSE(stream.next().has_value());
}

TEST(HttpServerLifecycle, AnswersLoadingUntilTheModelIsServed) {
  if (!test::have_stories260k()) GTEST_SKIP() << test::stories260k_path() << " not found";
  ServerOptions options;
  options.port = 0;
  options.model_name = "stories260K";
  options.max_connections = 4;
  HttpServer server(options);
  const int port = server.bind();
  std::thread listener([&] { server.listen(); });
  httplib::Client client("127.0.0.1", port);

  auto health = client.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(json::parse(health->body), json({{"status", "loading"}}));
  auto early = client.Post("/v1/completions", R"({"prompt": "x"})", "application/json");
  ASSERT_TRUE(early);
  EXPECT_EQ(early->status, 503);
  EXPECT_EQ(json::parse(early->body)["error"]["code"], "model_loading");

  LoadedModel model = load_model(test::stories260k_path(), LoadOptions{});
  Engine engine(model, {});
  server.serve_model(model, engine);
  engine.start();
  health = client.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body),
            json({{"status", "ok"}, {"system_fingerprint", model.system_fingerprint()}}));
  auto done =
      client.Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 3})", "application/json");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, 200) << done->body;
  EXPECT_EQ(json::parse(done->body)["usage"]["completion_tokens"], 3);
  server.stop();
  listener.join();
  engine.stop();
}

}  // namespace
}  // namespace bx::server
