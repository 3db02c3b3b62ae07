// Unit tests of the tokenizer.json pipeline pieces that the conformance test (which compares
// whole tokenizers with the `tokenizers` package) does not pin down on its own: merge order on
// small vocabularies, unknown / byte-fallback handling, tokenizer_config.json precedence, GGUF
// gpt2 vocabularies, and the errors for what is not supported.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/gguf.h"
#include "support/gguf_writer.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/gguf_bpe_tokenizer.h"
#include "tokenizer/load_tokenizer.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

namespace bx {
namespace {

using Ids = std::vector<int32_t>;
using nlohmann::json;

Ids encode_word(const BpeModel& model, const std::string& word) {
  Ids out;
  model.encode(word, out);
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(BpeModel, LowestRankMergesFirstLeftmostOnTies) {
  BpeModelSpec spec;
  spec.vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"aa", 6}};
  spec.merges = {{"b", "c"}, {"a", "b"}, {"a", "bc"}, {"a", "a"}};
  const BpeModel model(spec);
  EXPECT_EQ(encode_word(model, "abc"), (Ids{5}));  // b c (rank 0), then a bc
  EXPECT_EQ(encode_word(model, "ab"), (Ids{3}));
  EXPECT_EQ(encode_word(model, "aaa"), (Ids{6, 0}));  // equal ranks: the leftmost pair first
  EXPECT_EQ(encode_word(model, "cab"), (Ids{2, 3}));
}

TEST(BpeModel, IgnoreMergesTakesWholeWords) {
  BpeModelSpec spec;
  spec.vocab = {{"a", 0}, {"b", 1}, {"ab", 2}, {"abb", 3}, {"bb", 4}};
  spec.merges = {{"b", "b"}, {"a", "b"}};
  EXPECT_EQ(encode_word(BpeModel(spec), "abb"), (Ids{0, 4}));  // merges never reach "abb"
  spec.ignore_merges = true;
  EXPECT_EQ(encode_word(BpeModel(spec), "abb"), (Ids{3}));
  EXPECT_EQ(encode_word(BpeModel(spec), "bba"), (Ids{4, 0}));
}

TEST(BpeModel, ByteFallbackThenUnknown) {
  BpeModelSpec spec;
  spec.vocab = {{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}};
  spec.unk_token = "<unk>";
  spec.byte_fallback = true;
  const BpeModel model(spec);
  EXPECT_EQ(encode_word(model, "a\xC3\xA9"), (Ids{1, 2, 3}));  // é: its two byte tokens
  EXPECT_EQ(encode_word(model, "a\xC3\xB6"), (Ids{1, 0}));     // ö: <0xB6> missing -> <unk>
  spec.fuse_unk = true;
  EXPECT_EQ(encode_word(BpeModel(spec), "xya"), (Ids{0, 1}));  // fused
  spec.fuse_unk = false;
  EXPECT_EQ(encode_word(BpeModel(spec), "xya"), (Ids{0, 0, 1}));
  spec.unk_token.clear();
  EXPECT_EQ(encode_word(BpeModel(spec), "xya"), (Ids{1}));  // no unknown token: dropped
}

TEST(BpeModel, RejectsMergesOutsideTheVocabulary) {
  BpeModelSpec spec;
  spec.vocab = {{"a", 0}, {"b", 1}};
  spec.merges = {{"a", "b"}};
  EXPECT_NE(error_of([&] { BpeModel m(spec); }).find("'ab'"), std::string::npos);
  spec.vocab.emplace_back("c", 0);
  EXPECT_NE(error_of([&] { BpeModel m(spec); }).find("id 0 is given to both"), std::string::npos);
}

json tiny_json() {
  return {{"model",
           {{"type", "BPE"},
            {"vocab", {{"<s>", 0}, {"</s>", 1}, {"h", 2}, {"i", 3}, {"hi", 4}}},
            {"merges", json::array({json::array({"h", "i"})})}}},
          {"added_tokens",
           {{{"id", 0}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
            {{"id", 1}, {"content", "</s>"}, {"special", true}, {"normalized", false}}}},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single",
             {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
              {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
            {"special_tokens",
             {{"<s>", {{"id", "<s>"}, {"ids", json::array({0})}, {"tokens", json::array({"<s>"})}}},
              {"</s>",
               {{"id", "</s>"}, {"ids", json::array({1})}, {"tokens", json::array({"</s>"})}}}}}}}};
}

TEST(TokenizerJson, PostProcessorAndConfigDecideSpecialTokens) {
  const BpeTokenizer plain(parse_tokenizer_json(tiny_json(), nullptr, "tiny"));
  EXPECT_EQ(plain.encode("hi", false), (Ids{4}));
  EXPECT_EQ(plain.encode("hi", true), (Ids{0, 4, 1}));  // the template
  EXPECT_EQ(plain.encode("<s>hi</s>", false), (Ids{0, 4, 1}));
  EXPECT_EQ(plain.bos_id(), 0);
  EXPECT_EQ(plain.eos_id(), 1);
  EXPECT_EQ(plain.decode(Ids{0, 4, 1}), "hi");
  EXPECT_EQ(plain.decode(Ids{0, 4, 1}, false), "<s>hi</s>");

  // add_bos_token / add_eos_token, when present, replace the template (a missing one is false).
  const json config = {
      {"add_bos_token", true}, {"bos_token", {{"content", "<s>"}}}, {"eos_token", "</s>"}};
  const BpeTokenizer bos_only(parse_tokenizer_json(tiny_json(), &config, "tiny"));
  EXPECT_EQ(bos_only.encode("hi", true), (Ids{0, 4}));
  const json neither = {{"add_bos_token", false}};
  EXPECT_EQ(BpeTokenizer(parse_tokenizer_json(tiny_json(), &neither, "tiny")).encode("hi", true),
            (Ids{4}));
  const json bad = {{"eos_token", "<eos>"}};
  EXPECT_NE(error_of([&] {
              parse_tokenizer_json(tiny_json(), &bad, "tiny");
            }).find("eos_token '<eos>' is not a token"),
            std::string::npos);
}

TEST(TokenizerJson, MergeFormatsAndRobertaProcessing) {
  json j = tiny_json();
  j["model"]["merges"] = json::array({"h i"});  // the older "a b" string form
  j["post_processor"] = {{"type", "RobertaProcessing"},
                         {"sep", json::array({"</s>", 1})},
                         {"cls", json::array({"<s>", 0})}};
  const BpeTokenizer tok(parse_tokenizer_json(j, nullptr, "tiny"));
  EXPECT_EQ(tok.encode("hi", false), (Ids{4}));
  EXPECT_EQ(tok.encode("hih", true), (Ids{0, 4, 2, 1}));
  j["model"]["merges"] = json::array({"h i x"});
  EXPECT_NE(error_of([&] {
              parse_tokenizer_json(j, nullptr, "tiny");
            }).find("expected two tokens separated by one space"),
            std::string::npos);
}

TEST(TokenizerJson, InvalidUtf8IsRejectedWithItsOffset) {
  const BpeTokenizer tok(parse_tokenizer_json(tiny_json(), nullptr, "tiny"));
  const std::string e = error_of([&] { tok.encode("hi\xE2\x82", false); });
  EXPECT_NE(e.find("byte 0xE2 at byte offset 2 starts a truncated character"), std::string::npos)
      << e;
  EXPECT_NE(error_of([&] { tok.encode("\xFFhi", true); }).find("byte offset 0"), std::string::npos);
}

TEST(TokenizerJson, UnsupportedSettingsAreNamed) {
  auto with = [](const char* key, json value) {
    json j = tiny_json();
    j["model"][key] = std::move(value);
    return error_of([&] { parse_tokenizer_json(j, nullptr, "tiny"); });
  };
  EXPECT_NE(with("dropout", 0.1).find("dropout 0.1 is not supported"), std::string::npos);
  EXPECT_EQ(with("dropout", nullptr), "(no error)");
  EXPECT_NE(with("continuing_subword_prefix", "##").find("continuing_subword_prefix"),
            std::string::npos);
  EXPECT_NE(with("type", "WordPiece").find("unsupported tokenizer model type 'WordPiece'"),
            std::string::npos);
  json j = tiny_json();
  j["post_processor"] = {{"type", "Unknown"}};
  EXPECT_NE(error_of([&] {
              parse_tokenizer_json(j, nullptr, "tiny");
            }).find("unsupported post-processor type 'Unknown'"),
            std::string::npos);
  j = tiny_json();
  j["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_NE(error_of([&] { parse_tokenizer_json(j, nullptr, "tiny"); }).find("does not compile"),
            std::string::npos);
}

TEST(TokenizerJson, ByteLevelTokenBytesAreRaw) {
  // "é" is two byte-level characters, Ã (0xC3) and © (0xA9).
  json j = tiny_json();
  j["model"]["vocab"]["\xC3\x83"] = 5;
  j["model"]["vocab"]["\xC2\xA9"] = 6;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  j["decoder"] = {{"type", "ByteLevel"}};
  const BpeTokenizer tok(parse_tokenizer_json(j, nullptr, "tiny"));
  EXPECT_EQ(tok.encode("\xC3\xA9", false), (Ids{5, 6}));
  EXPECT_EQ(tok.token_bytes(5), "\xC3");  // half a character
  EXPECT_EQ(tok.decode(Ids{5}), "\xEF\xBF\xBD");
  EXPECT_EQ(tok.decode(Ids{5, 6}), "\xC3\xA9");
  EXPECT_EQ(tok.token_bytes(0), "");  // special
  EXPECT_THROW(tok.token_bytes(7), Error);
}

gguf::File gguf_from(const test::GgufWriter& w, std::vector<std::byte>& storage) {
  storage = w.bytes();
  return gguf::File::parse(storage, "vocab.gguf");
}

TEST(GgufBpe, VocabularyTypesAndSpecialTokens) {
  test::GgufWriter w;
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "llama-bpe");
  w.add_array_string("tokenizer.ggml.tokens",
                     {"<|begin|>", "h", "i", "hi", "\xC4\xA0", "\xC4\xA0hi", "<tool>"});
  w.add_array_i32("tokenizer.ggml.token_type", {3, 1, 1, 1, 1, 1, 4});
  w.add_array_string("tokenizer.ggml.merges", {"h i", "\xC4\xA0 hi"});
  w.add_u32("tokenizer.ggml.bos_token_id", 0);
  std::vector<std::byte> storage;
  const gguf::File file = gguf_from(w, storage);
  const auto tok = load_gguf_tokenizer(file);
  EXPECT_EQ(tok->encode("hi hi", false), (Ids{3, 5}));
  EXPECT_EQ(tok->encode("hi", true), (Ids{0, 3}));  // llama3 family: BOS by default
  EXPECT_EQ(tok->encode("<|begin|>hi<tool>", false), (Ids{0, 3, 6}));
  EXPECT_EQ(tok->decode(Ids{0, 3, 6, 5}), "hi<tool> hi");  // <tool> is not special
  EXPECT_EQ(tok->decode(Ids{0, 3}, false), "<|begin|>hi");
  EXPECT_EQ(tok->bos_id(), 0);
  EXPECT_EQ(tok->eos_id(), -1);
}

TEST(GgufBpe, ClearErrors) {
  test::GgufWriter w;
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_array_string("tokenizer.ggml.tokens", {"a", "b"});
  std::vector<std::byte> storage;
  EXPECT_NE(error_of([&] {
              load_gguf_tokenizer(gguf_from(w, storage));
            }).find("no tokenizer.ggml.merges"),
            std::string::npos);
  w.add_array_string("tokenizer.ggml.merges", {"a b"});
  EXPECT_NE(error_of([&] { load_gguf_tokenizer(gguf_from(w, storage)); })
                .find("vocab.gguf: BPE model: merge 0 ('a' 'b') uses a token that is not in "
                      "the vocabulary: 'ab'"),
            std::string::npos);
}

// Byte-level BPE loses nothing: any well-formed text, even of unassigned code points, comes
// back as its NFC form; any byte string is either encoded or rejected with a bx::Error.
TEST(TokenizerJson, Qwen3RoundTripsRandomText) {
  const std::string dir = std::string(BITEXACT_SOURCE_DIR) + "/../shared/tokenizers/qwen3";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no " << dir;
  const auto tok = load_tokenizer_dir(dir);
  const Normalizer nfc = Normalizer::from_json(json{{"type", "NFC"}});
  std::mt19937 rng(42);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text;
    const int n = 1 + static_cast<int>(rng() % 20);
    for (int k = 0; k < n; ++k) {
      auto cp = static_cast<uint32_t>(rng() % 4 == 0 ? rng() % 0x80 : rng() % 0x110000);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x20;
      if (cp < 0x80) {
        text += static_cast<char>(cp);
      } else if (cp < 0x800) {
        text += static_cast<char>(0xC0 | (cp >> 6));
        text += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        text += static_cast<char>(0xE0 | (cp >> 12));
        text += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        text += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        text += static_cast<char>(0xF0 | (cp >> 18));
        text += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        text += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        text += static_cast<char>(0x80 | (cp & 0x3F));
      }
    }
    ASSERT_EQ(tok->decode(tok->encode(text, false), false), nfc.apply(text))
        << json::binary({text.begin(), text.end()}).dump();
    std::string bytes;
    for (int k = 0; k < n; ++k) bytes += static_cast<char>(rng() % 256);
    try {
      const Ids ids = tok->encode(bytes, false);
      EXPECT_TRUE(utf8::is_valid(bytes));
      EXPECT_EQ(tok->decode(ids), nfc.apply(bytes));
    } catch (const Error& e) {
      EXPECT_FALSE(utf8::is_valid(bytes));
      EXPECT_NE(std::string(e.what()).find("byte offset"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace bx
