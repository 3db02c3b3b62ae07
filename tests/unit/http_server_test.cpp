// The HTTP server in-process: /health and every model route answer 503 until serve_model, then
// 200; the OpenAI error object's shape; the constant-time key comparison; request parsing
// errors name their field.
#include <gtest/gtest.h>

#include <httplib.h>

#include <thread>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/http_server.h"
#include "server/openai_request.h"
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
