// Conformance of the tokenizer.json and GGUF gpt2 tokenizers with the `tokenizers` package.
// tests/ref/tokenizer_conformance.py (run with BITEXACT_PYTHON once; its output is kept in the
// temp directory, named after the script, for the other test processes) writes a corpus of
// >= 2,000 strings and the package's ids and decodes for ../shared/tokenizers/qwen3 and for
// four tokenizers it trains itself (two SentencePiece-style with byte fallback, two that use the
// rest of the supported components); every string is then encoded and decoded here, in
// process, and must match 100%:
//   - ids without and with special tokens (encode(text, add_special));
//   - decode(ids) with and without special tokens equals the package's decode;
//   - decode(encode(s)) == NFC(s) wherever the package's decode gives NFC(s) back (every string
//     for Qwen3, whose byte-level BPE is lossless);
//   - the StreamingDecoder's pieces add up to decode(ids).
// The Qwen3 vocabulary is also written into a GGUF image (tokenizer.ggml.model = gpt2,
// pre = qwen2) and must give the same ids as the package.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "support/gguf_writer.h"
#include "tokenizer/load_tokenizer.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/tokenizer_json.h"

namespace bx {
namespace {

namespace fs = std::filesystem;

struct Reference {
  std::string tokenizer;
  size_t line = 0;
  std::vector<int32_t> ids, ids_special;
  std::string decoded, decoded_skip;
  bool round_trips = false;
};

struct Fixture {
  std::string skip_reason;  // non-empty: no Python
  std::string error;        // non-empty: the script failed
  fs::path dir;
  std::vector<std::string> corpus;
  std::vector<Reference> refs;
  nlohmann::json manifest;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const Fixture& fixture() {
  static const Fixture fixture_data = [] {
    Fixture f;
    const char* python = std::getenv("BITEXACT_PYTHON");
    if (python == nullptr || !fs::exists(python)) {
      f.skip_reason = "BITEXACT_PYTHON is not set or missing; the reference needs `tokenizers`";
      return f;
    }
    // ctest runs each test in its own process: the first one writes the reference files into
    // a directory named after the script's content, the interpreter and the checkout (the
    // manifest names files under the checkout's ../shared), the others (and later runs) reuse it.
    const std::string source = BITEXACT_SOURCE_DIR;
    const fs::path script = fs::path(source) / "tests/ref/tokenizer_conformance.py";
    const size_t key = std::hash<std::string>{}(read_text(script) + python + "|" + source);
    f.dir = fs::temp_directory_path() / ("bitexact_tokenizer_conformance_" + std::to_string(key));
    if (!fs::exists(f.dir / "manifest.json")) {
      const fs::path scratch = f.dir.string() + "." + std::to_string(::getpid());
      fs::remove_all(scratch);
      fs::create_directories(scratch);
      const std::string command =
          "'" + std::string(python) + "' '" + script.string() + "' '" + scratch.string() + "' '" +
          source + "/../shared/tokenizers/qwen3' 2>'" + (scratch / "stderr").string() + "'";
      if (std::system(command.c_str()) != 0) {
        f.error = "reference script failed: " + command + "\n" + read_text(scratch / "stderr");
        return f;
      }
      // The tokenizer directories in the manifest name the final place.
      std::string manifest = read_text(scratch / "manifest.json");
      for (size_t at = manifest.find(scratch.string()); at != std::string::npos;
           at = manifest.find(scratch.string(), at)) {
        manifest.replace(at, scratch.string().size(), f.dir.string());
      }
      std::ofstream(scratch / "manifest.json", std::ios::binary) << manifest;
      std::error_code renamed;
      fs::rename(scratch, f.dir, renamed);
      if (renamed) fs::remove_all(scratch);  // another process got there first
    }
    std::ifstream corpus(f.dir / "corpus.jsonl");
    for (std::string line; std::getline(corpus, line);) {
      f.corpus.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
    }
    std::ifstream refs(f.dir / "reference.jsonl");
    for (std::string line; std::getline(refs, line);) {
      const nlohmann::json j = nlohmann::json::parse(line);
      Reference r;
      r.tokenizer = j["tokenizer"].get<std::string>();
      r.line = j["line"].get<size_t>();
      r.ids = j["ids"].get<std::vector<int32_t>>();
      r.ids_special = j["ids_special"].get<std::vector<int32_t>>();
      r.decoded = j["decoded"].get<std::string>();
      r.decoded_skip = j["decoded_skip"].get<std::string>();
      r.round_trips = j["round_trips"].get<bool>();
      f.refs.push_back(std::move(r));
    }
    f.manifest = nlohmann::json::parse(read_text(f.dir / "manifest.json"));
    return f;
  }();
  return fixture_data;
}

std::string ids_string(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

struct Counts {
  size_t strings = 0, ids = 0, ids_special = 0, decoded = 0, decoded_skip = 0, round_trip = 0,
         round_trip_expected = 0, streaming = 0;
};

// Compares `tokenizer` with the references of `name`; reports the first few differences.
Counts compare(const Tokenizer& tokenizer, const std::string& name, bool check_decode) {
  const Fixture& f = fixture();
  const Normalizer nfc = Normalizer::from_json(nlohmann::json{{"type", "NFC"}});
  Counts c;
  int reported = 0;
  auto report = [&](const std::string& what, const std::string& text, const std::string& want,
                    const std::string& got) {
    if (++reported > 8) return;
    ADD_FAILURE() << name << " " << what << " differs for " << nlohmann::json(text).dump()
                  << "\n  reference: " << want << "\n  bitexact:  " << got;
  };
  for (const Reference& r : f.refs) {
    if (r.tokenizer != name) continue;
    const std::string& text = f.corpus.at(r.line);
    ++c.strings;
    const std::vector<int32_t> ids = tokenizer.encode(text, false);
    if (ids == r.ids) {
      ++c.ids;
    } else {
      report("ids", text, ids_string(r.ids), ids_string(ids));
    }
    const std::vector<int32_t> ids_special = tokenizer.encode(text, true);
    if (ids_special == r.ids_special) {
      ++c.ids_special;
    } else {
      report("ids with special tokens", text, ids_string(r.ids_special), ids_string(ids_special));
    }
    if (!check_decode) continue;
    const std::string decoded = tokenizer.decode(ids, /*skip_special=*/false);
    if (decoded == r.decoded) {
      ++c.decoded;
    } else {
      report("decode", text, nlohmann::json(r.decoded).dump(), nlohmann::json(decoded).dump());
    }
    const std::string decoded_skip = tokenizer.decode(ids, /*skip_special=*/true);
    if (decoded_skip == r.decoded_skip) {
      ++c.decoded_skip;
    } else {
      report("decode skipping special tokens", text, nlohmann::json(r.decoded_skip).dump(),
             nlohmann::json(decoded_skip).dump());
    }
    if (r.round_trips) {
      ++c.round_trip_expected;
      if (decoded == nfc.apply(text)) {
        ++c.round_trip;
      } else {
        report("decode(encode(s)) vs NFC(s)", text, nlohmann::json(nfc.apply(text)).dump(),
               nlohmann::json(decoded).dump());
      }
    }
    StreamingDecoder stream(tokenizer, {});
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    if (streamed == decoded_skip) {
      ++c.streaming;
    } else {
      report("streaming decode", text, nlohmann::json(decoded_skip).dump(),
             nlohmann::json(streamed).dump());
    }
  }
  std::printf("%s: %zu strings; ids %zu/%zu, ids+special %zu/%zu", name.c_str(), c.strings, c.ids,
              c.strings, c.ids_special, c.strings);
  if (check_decode) {
    std::printf(
        ", decode %zu/%zu, decode skipping special %zu/%zu, round trip %zu/%zu, "
        "streaming %zu/%zu",
        c.decoded, c.strings, c.decoded_skip, c.strings, c.round_trip, c.round_trip_expected,
        c.streaming, c.strings);
  }
  std::printf("\n");
  return c;
}

class TokenizerConformance : public ::testing::Test {
 protected:
  void SetUp() override {
    const Fixture& f = fixture();
    if (!f.skip_reason.empty()) GTEST_SKIP() << f.skip_reason;
    ASSERT_TRUE(f.error.empty()) << f.error;
    ASSERT_GE(f.corpus.size(), 2000u);
  }
  static std::string dir_of(const std::string& name) {
    return fixture().manifest["tokenizers"][name].get<std::string>();
  }
  static void expect_all(const Counts& c, bool check_decode) {
    EXPECT_GE(c.strings, 2000u);
    EXPECT_EQ(c.ids, c.strings);
    EXPECT_EQ(c.ids_special, c.strings);
    if (check_decode) {
      EXPECT_EQ(c.decoded, c.strings);
      EXPECT_EQ(c.decoded_skip, c.strings);
      EXPECT_EQ(c.round_trip, c.round_trip_expected);
      EXPECT_EQ(c.streaming, c.strings);
    }
  }
};

TEST_F(TokenizerConformance, Qwen3TokenizerJson) {
  const auto tokenizer = load_tokenizer_dir(dir_of("qwen3"));
  const Counts c = compare(*tokenizer, "qwen3", true);
  expect_all(c, true);
  EXPECT_EQ(c.round_trip_expected, c.strings);  // byte-level BPE: every string comes back
}

TEST_F(TokenizerConformance, SentencePieceStyleLegacy) {
  const auto tokenizer = load_tokenizer_dir(dir_of("spm_legacy"));
  expect_all(compare(*tokenizer, "spm_legacy", true), true);
}

TEST_F(TokenizerConformance, SentencePieceStyleMetaspace) {
  const auto tokenizer = load_tokenizer_dir(dir_of("spm_metaspace"));
  expect_all(compare(*tokenizer, "spm_metaspace", true), true);
}

// Added tokens with lstrip / rstrip / single_word / normalized, NFKC, Replace(regex), Split
// MergedWithNext, Digits, ByteLevel with add_prefix_space, TemplateProcessing [CLS] $A [SEP].
TEST_F(TokenizerConformance, FeaturesByteLevel) {
  const auto tokenizer = load_tokenizer_dir(dir_of("features_byte_level"));
  expect_all(compare(*tokenizer, "features_byte_level", true), true);
}

// Strip, NFD, Split Removed / MergedWithPrevious / Contiguous / inverted, Metaspace with split,
// ByteFallback + Metaspace decoders.
TEST_F(TokenizerConformance, FeaturesMetaspace) {
  const auto tokenizer = load_tokenizer_dir(dir_of("features_metaspace"));
  expect_all(compare(*tokenizer, "features_metaspace", true), true);
}

// Negative control: the comparison can fail. Without its NFC normalizer, Qwen3 differs from the
// reference on the NFD strings of the corpus.
TEST_F(TokenizerConformance, NegativeControlWithoutNfcDiffers) {
  nlohmann::json tj =
      nlohmann::json::parse(read_text(fs::path(dir_of("qwen3")) / "tokenizer.json"));
  tj["normalizer"] = nullptr;
  const BpeTokenizer tokenizer(parse_tokenizer_json(tj, nullptr, "qwen3 without NFC"));
  size_t differ = 0, strings = 0;
  const Fixture& f = fixture();
  for (const Reference& r : f.refs) {
    if (r.tokenizer != "qwen3") continue;
    ++strings;
    differ += tokenizer.encode(f.corpus.at(r.line), false) != r.ids ? 1 : 0;
  }
  std::printf("qwen3 without NFC: %zu of %zu strings differ\n", differ, strings);
  EXPECT_GT(differ, 50u);
  EXPECT_LT(differ, strings);
}

// The Qwen3 vocabulary as llama.cpp's converter writes it into a GGUF file.
TEST_F(TokenizerConformance, Qwen3AsGgufGpt2) {
  const nlohmann::json tj =
      nlohmann::json::parse(read_text(fs::path(dir_of("qwen3")) / "tokenizer.json"));
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  size_t n = tj["model"]["vocab"].size();
  for (const nlohmann::json& t : tj["added_tokens"]) n = std::max(n, t["id"].get<size_t>() + 1);
  tokens.resize(n);
  types.assign(n, 1);
  for (const auto& [text, id] : tj["model"]["vocab"].items()) tokens[id.get<size_t>()] = text;
  for (const nlohmann::json& t : tj["added_tokens"]) {
    tokens[t["id"].get<size_t>()] = t["content"].get<std::string>();
    types[t["id"].get<size_t>()] = t["special"].get<bool>() ? 3 : 4;
  }
  std::vector<std::string> merges;
  for (const nlohmann::json& m : tj["model"]["merges"]) {
    merges.push_back(m.is_string() ? m.get<std::string>()
                                   : m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  test::GgufWriter w;
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "qwen2");
  w.add_array_string("tokenizer.ggml.tokens", tokens);
  w.add_array_i32("tokenizer.ggml.token_type", types);
  w.add_array_string("tokenizer.ggml.merges", merges);
  w.add_u32("tokenizer.ggml.eos_token_id", 151645);
  const std::vector<std::byte> bytes = w.bytes();
  const gguf::File file = gguf::File::parse(bytes, "qwen3.gguf");
  const auto tokenizer = load_gguf_tokenizer(file);
  EXPECT_EQ(tokenizer->eos_id(), 151645);
  expect_all(compare(*tokenizer, "qwen3", false), false);
}

}  // namespace
}  // namespace bx
