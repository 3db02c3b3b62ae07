// SentencePiece-style tokenizer, streaming decoder and UTF-8 helpers.
//
// Three kinds of check:
//   - hand-made vocabularies, where the expected ids follow from the merge rule by hand;
//   - a naive O(n^2) merge loop (below) against the priority-queue encoder on random vocabularies
//     with many equal scores;
//   - stories260K's vocabulary against ids produced by the `sentencepiece` library
//     (tests/data/spm_stories260k_fixture.jsonl, written by tests/ref/make_spm_fixture.py).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/gguf.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/utf8.h"

namespace bx {
namespace {

const char* kModelPath = "../shared/models/stories260K.gguf";
const char* kFixturePath = "tests/data/spm_stories260k_fixture.jsonl";
const std::string kMarker = "\xE2\x96\x81";  // "▁"

using Ids = std::vector<int32_t>;

// ---- Hand-made vocabularies -----------------------------------------------------------------

// <unk> <s> </s>, then (optionally) the 256 byte tokens, then `normal` with their scores.
struct VocabBuilder {
  SpmVocab v;
  explicit VocabBuilder(bool with_bytes = true) {
    add("<unk>", 0, TokenType::unknown);
    add("<s>", 0, TokenType::control);
    add("</s>", 0, TokenType::control);
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    if (with_bytes) {
      for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        add(name, 0, TokenType::byte);
      }
    }
  }
  int32_t add(const std::string& text, float score, TokenType type = TokenType::normal) {
    v.tokens.push_back(text);
    v.scores.push_back(score);
    v.types.push_back(type);
    return static_cast<int32_t>(v.tokens.size() - 1);
  }
};

// Byte token ids of a VocabBuilder(true) vocabulary.
int32_t byte_id(unsigned char b) {
  return 3 + b;
}

std::string u(const std::string& text_with_underscores) {
  // "_a" -> "▁a": test vocabularies are easier to read with '_' for the marker.
  std::string out;
  for (char c : text_with_underscores) {
    if (c == '_') {
      out += kMarker;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

TEST(SpmTokenizer, HigherScoreMergesFirst) {
  for (bool bc_first : {true, false}) {
    VocabBuilder b;
    const int32_t a = b.add("a", -10), bb = b.add("b", -10), c = b.add("c", -10);
    const int32_t ab = b.add("ab", bc_first ? -2.0f : -1.0f);
    const int32_t bc = b.add("bc", bc_first ? -1.0f : -2.0f);
    b.v.add_space_prefix = false;
    SpmTokenizer tok(b.v);
    if (bc_first) {
      EXPECT_EQ(tok.encode("abc", false), (Ids{a, bc}));
    } else {
      EXPECT_EQ(tok.encode("abc", false), (Ids{ab, c}));
    }
    EXPECT_EQ(tok.encode("b", false), (Ids{bb}));
  }
}

TEST(SpmTokenizer, EqualScoresMergeLeftmostFirst) {
  VocabBuilder b;
  const int32_t a = b.add("a", -10);
  const int32_t aa = b.add("aa", -1);
  b.add("b", -10);
  const int32_t c = b.add("c", -10);
  const int32_t ab = b.add("ab", -3), bc = b.add("bc", -3);
  b.v.add_space_prefix = false;
  SpmTokenizer tok(b.v);
  EXPECT_EQ(tok.encode("aaa", false), (Ids{aa, a}));
  EXPECT_EQ(tok.encode("aaaaa", false), (Ids{aa, aa, a}));
  EXPECT_EQ(tok.encode("abc", false), (Ids{ab, c}));  // "ab" and "bc" tie: leftmost wins
  (void)bc;
}

TEST(SpmTokenizer, MergesCascadeThroughIntermediateTokens) {
  // "▁the" is reachable only through "▁t" + "he" (as in stories260K).
  VocabBuilder b;
  const int32_t sp_t = b.add(u("_t"), 0), he = b.add("he", -1), sp_the = b.add(u("_the"), -6);
  b.add(u("_"), -151);
  for (const char* ch : {"t", "h", "e"}) b.add(ch, -154);
  SpmTokenizer tok(b.v);
  EXPECT_EQ(tok.encode("the", false), (Ids{sp_the}));
  EXPECT_EQ(tok.encode("the the", false), (Ids{sp_the, sp_the}));
  (void)sp_t;
  (void)he;
}

TEST(SpmTokenizer, DummyPrefixAndSpaces) {
  VocabBuilder b;
  const int32_t sp = b.add(u("_"), -5), a = b.add("a", -5), sp_a = b.add(u("_a"), -1);
  {
    SpmTokenizer tok(b.v);
    EXPECT_EQ(tok.encode("a", false), (Ids{sp_a}));
    EXPECT_EQ(tok.encode(" a", false), (Ids{sp, sp_a}));
    EXPECT_EQ(tok.encode("a  a", false), (Ids{sp_a, sp, sp_a}));
    EXPECT_EQ(tok.encode("a ", false), (Ids{sp_a, sp}));
    EXPECT_EQ(tok.encode("   ", false), (Ids{sp, sp, sp, sp}));
    EXPECT_EQ(tok.decode(tok.encode("   ", false)), "   ");
    EXPECT_EQ(tok.decode(tok.encode("a  a ", false)), "a  a ");
  }
  b.v.add_space_prefix = false;
  SpmTokenizer tok(b.v);
  EXPECT_EQ(tok.encode("a", false), (Ids{a}));
  EXPECT_EQ(tok.encode(" a", false), (Ids{sp_a}));
  EXPECT_EQ(tok.decode(Ids{sp_a}), " a");  // no dummy prefix to remove
}

TEST(SpmTokenizer, EmptyText) {
  VocabBuilder b;
  SpmTokenizer tok(b.v);
  EXPECT_EQ(tok.encode("", false), Ids{});
  EXPECT_EQ(tok.encode("", true), Ids{1});
  EXPECT_EQ(tok.decode(Ids{}), "");
  EXPECT_EQ(tok.decode(Ids{1}), "");
}

TEST(SpmTokenizer, AddBosWithoutBosIsAnError) {
  VocabBuilder b;
  b.v.bos_id = -1;
  SpmTokenizer tok(b.v);
  EXPECT_EQ(tok.encode("x", false).size(), 4u);  // ▁ and x as bytes
  EXPECT_THROW(tok.encode("x", true), Error);
}

TEST(SpmTokenizer, ByteFallbackForMissingCharacters) {
  VocabBuilder b;
  const int32_t sp_hi = b.add(u("_hi"), -1);
  b.add(u("_h"), -2);
  const int32_t sp = b.add(u("_"), -3);
  b.add("h", -4);
  const int32_t i = b.add("i", -5);
  {
    SpmTokenizer tok(b.v);
    // "😀" = F0 9F 98 80, "\n" = 0A: neither is a token.
    EXPECT_EQ(tok.encode("hi😀", false),
              (Ids{sp_hi, byte_id(0xF0), byte_id(0x9F), byte_id(0x98), byte_id(0x80)}));
    EXPECT_EQ(tok.encode("hi\ni", false), (Ids{sp_hi, byte_id(0x0A), i}));
    EXPECT_EQ(tok.encode("😀", false),
              (Ids{sp, byte_id(0xF0), byte_id(0x9F), byte_id(0x98), byte_id(0x80)}));
    EXPECT_EQ(tok.decode(tok.encode("hi😀 hi", true)), "hi😀 hi");
  }
  // Without a "▁" token the marker itself falls back to bytes, which decode as the marker
  // (llama.cpp does the same): such a vocabulary cannot round-trip spaces.
  VocabBuilder nb;
  const int32_t x = nb.add("x", -1);
  SpmTokenizer tok(nb.v);
  EXPECT_EQ(tok.encode("x", false), (Ids{byte_id(0xE2), byte_id(0x96), byte_id(0x81), x}));
  EXPECT_EQ(tok.decode(tok.encode("x", false)), kMarker + "x");
}

TEST(SpmTokenizer, NewlineAsTokenOrBytes) {
  VocabBuilder b;
  const int32_t sp = b.add(u("_"), -3), a = b.add("a", -4), sp_a = b.add(u("_a"), -1);
  {
    SpmTokenizer tok(b.v);
    EXPECT_EQ(tok.encode("\n", false), (Ids{sp, byte_id(0x0A)}));
    EXPECT_EQ(tok.encode("a\na", false), (Ids{sp_a, byte_id(0x0A), a}));
    EXPECT_EQ(tok.encode("a\r\n", false), (Ids{sp_a, byte_id(0x0D), byte_id(0x0A)}));
    EXPECT_EQ(tok.decode(tok.encode("a\r\n a\n\n", false)), "a\r\n a\n\n");
  }
  const int32_t nl = b.add("\n", -2);
  SpmTokenizer tok(b.v);
  EXPECT_EQ(tok.encode("a\na", false), (Ids{sp_a, nl, a}));
}

TEST(SpmTokenizer, UnknownTokenWhenByteTokensAreMissing) {
  VocabBuilder b(/*with_bytes=*/false);
  const int32_t sp_a = b.add(u("_a"), -1);
  b.add(u("_"), -2);
  const int32_t a = b.add("a", -3);
  SpmTokenizer tok(b.v);
  // One unknown token per character that is not in the vocabulary.
  EXPECT_EQ(tok.encode("a😀éa", false), (Ids{sp_a, 0, 0, a}));
  EXPECT_EQ(tok.decode(Ids{sp_a, 0, a}), "aa");  // <unk> prints nothing

  b.v.unk_id = -1;
  SpmTokenizer no_unk(b.v);
  EXPECT_THROW(no_unk.encode("a😀", false), Error);
}

// tokenizer.h: ill-formed UTF-8 is rejected, naming the byte offset of the first bad byte.
TEST(SpmTokenizer, InvalidUtf8IsRejectedWithItsOffset) {
  VocabBuilder b;
  b.add(u("_"), -3);
  b.add("a", -4);
  b.add(u("_a"), -1);
  b.add("\xC3\xA9", -5);  // é
  SpmTokenizer tok(b.v);
  const std::pair<std::string, std::string> cases[] = {
      {std::string("\xE2") + "a", "byte 0xE2 at byte offset 0"},
      {"a\xFF", "byte 0xFF at byte offset 1"},
      {"aa\x80\x80", "byte 0x80 at byte offset 2"},
      {"a\xC3", "byte 0xC3 at byte offset 1 starts a truncated character"},
      {"\xC0\xAF", "byte 0xC0 at byte offset 0"},        // overlong
      {"ab\xED\xA0\x80", "byte 0xED at byte offset 2"},  // a UTF-16 surrogate
  };
  for (const auto& [text, needle] : cases) {
    for (bool add_special : {false, true}) {
      try {
        tok.encode(text, add_special);
        ADD_FAILURE() << "no error for " << nlohmann::json::binary({text.begin(), text.end()});
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      }
    }
    EXPECT_THROW(tok.encode_plain(text), Error);
  }
  // Well-formed text round-trips; ill-formed bytes from byte tokens decode to U+FFFD.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    const int n = static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) {
      const char* pool[] = {"a", " ", "\xC3\xA9", "\xF0\x9F\x98\x80"};
      text += pool[rng() % 4];
    }
    EXPECT_EQ(tok.decode(tok.encode(text, true)), text);
  }
  const int32_t e2 = byte_id(0xE2);
  EXPECT_EQ(tok.decode(Ids{e2}), "\xEF\xBF\xBD");
  EXPECT_EQ(tok.token_bytes(e2), "\xE2");
}

// Control, unknown and user-defined token strings in the text become their ids (llama.cpp with
// parse_special, the `tokenizers` package); each text piece between them gets the dummy prefix.
TEST(SpmTokenizer, SpecialTokenStringsAreRecognised) {
  VocabBuilder b;  // <unk> 0, <s> 1, </s> 2
  const int32_t unk = 0, bos = 1, eos = 2;
  const int32_t user = b.add("<tool>", 0, TokenType::user_defined);
  const int32_t sp_a = b.add(u("_a"), -1);
  const int32_t a = b.add("a", -4);
  SpmTokenizer tok(b.v);
  EXPECT_EQ(tok.encode("<unk>", false), (Ids{unk}));
  EXPECT_EQ(tok.encode("a<s>a</s>", false), (Ids{sp_a, bos, sp_a, eos}));
  EXPECT_EQ(tok.encode("<tool>a", true), (Ids{bos, user, sp_a}));
  EXPECT_NE(tok.encode_plain("a<s>"), (Ids{sp_a, bos}));  // sentencepiece does not match them
  EXPECT_EQ(tok.decode(Ids{bos, sp_a, eos}), "a");
  EXPECT_EQ(tok.decode(Ids{bos, sp_a, eos}, /*skip_special=*/false), "<s>a</s>");
  EXPECT_EQ(tok.decode(Ids{user, a}), "<tool>a");
}

TEST(SpmTokenizer, TokenBytes) {
  VocabBuilder b;
  const int32_t sp = b.add(u("_"), -1), sp_ab = b.add(u("_a_b"), -2);
  const int32_t user = b.add(u("<|_|>"), 0, TokenType::user_defined);
  const int32_t unused = b.add(u("_x"), 0, TokenType::unused);
  SpmTokenizer tok(b.v);
  EXPECT_EQ(tok.token_bytes(sp), " ");
  EXPECT_EQ(tok.token_bytes(sp_ab), " a b");
  EXPECT_EQ(tok.token_bytes(byte_id(0x41)), "A");
  EXPECT_EQ(tok.token_bytes(byte_id(0x00)), std::string(1, '\0'));
  EXPECT_EQ(tok.token_bytes(byte_id(0xE2)), "\xE2");
  EXPECT_EQ(tok.token_bytes(0), "");             // <unk>
  EXPECT_EQ(tok.token_bytes(1), "");             // <s>
  EXPECT_EQ(tok.token_bytes(2), "");             // </s>
  EXPECT_EQ(tok.token_bytes(user), u("<|_|>"));  // user-defined: as written (llama.cpp)
  EXPECT_EQ(tok.token_bytes(unused), "");        // as llama.cpp: printed like a control token
  EXPECT_THROW(tok.token_bytes(-1), Error);
  EXPECT_THROW(tok.token_bytes(tok.vocab_size()), Error);
}

TEST(SpmTokenizer, DecodeRemovesOneDummySpaceFromTheFirstPiece) {
  VocabBuilder b;
  const int32_t sp = b.add(u("_"), -1), sp_a = b.add(u("_a"), -2), a = b.add("a", -3);
  SpmTokenizer tok(b.v);
  EXPECT_EQ(tok.decode(Ids{sp_a, sp_a}), "a a");
  EXPECT_EQ(tok.decode(Ids{1, sp_a, sp_a, 2}), "a a");  // BOS does not count as the first piece
  EXPECT_EQ(tok.decode(Ids{1, 1, sp, sp_a}), " a");     // only one space goes
  EXPECT_EQ(tok.decode(Ids{a, sp_a}), "a a");
  // Only a "▁" can be the dummy prefix; a byte token keeps its space (as sentencepiece does).
  EXPECT_EQ(tok.decode(Ids{byte_id(' '), a}), " a");
  EXPECT_EQ(tok.decode(Ids{1, byte_id(' '), sp_a}), "  a");
  EXPECT_THROW(tok.decode(Ids{sp_a, 9999}), Error);
}

TEST(SpmTokenizer, ValidatesTheVocabulary) {
  auto expect_error = [](SpmVocab v, const std::string& needle) {
    try {
      SpmTokenizer tok(std::move(v));
      ADD_FAILURE() << "no error; expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  {
    VocabBuilder b;
    b.v.scores.pop_back();
    expect_error(b.v, "scores");
  }
  {
    VocabBuilder b;
    b.v.types.push_back(TokenType::normal);
    expect_error(b.v, "token types");
  }
  {
    VocabBuilder b;
    b.v.bos_id = 259;
    expect_error(b.v, "BOS id 259 is out of range");
  }
  {
    VocabBuilder b;
    b.v.eos_id = -2;
    expect_error(b.v, "EOS id -2");
  }
  {
    VocabBuilder b;
    b.add("<0xZZ>", 0, TokenType::byte);
    expect_error(b.v, "<0xNN>");
  }
  {
    VocabBuilder b;
    b.add("x", 0, static_cast<TokenType>(9));
    expect_error(b.v, "type 9");
  }
  {
    VocabBuilder b;
    b.add("x", std::nanf(""));
    expect_error(b.v, "NaN");
  }
  expect_error(SpmVocab{}, "no tokens");
  // Scores and types may be left out.
  SpmVocab plain;
  plain.tokens = {"a", "b", "ab"};
  SpmTokenizer tok(plain);
  plain.add_space_prefix = false;
  EXPECT_EQ(SpmTokenizer(plain).encode("ab", false), (Ids{2}));
}

TEST(SpmTokenizer, RepeatedTokenTextMapsToTheLastId) {
  VocabBuilder b;
  b.add("a", -1);
  const int32_t second = b.add("a", -2);
  b.v.add_space_prefix = false;
  SpmTokenizer tok(b.v);
  EXPECT_EQ(tok.encode("a", false), (Ids{second}));
}

// ---- Priority queue vs. a naive merge loop -------------------------------------------------

// The rule written as plainly as possible: rescan all adjacent pairs, merge the best
// (highest score, then leftmost), repeat. O(n^2) per merge.
Ids naive_encode(const SpmVocab& v, const std::string& text) {
  std::string s = v.add_space_prefix && !text.empty() ? kMarker : "";
  for (char c : text) s += c == ' ' ? kMarker : std::string(1, c);
  auto find = [&](const std::string& t) -> int32_t {
    int32_t found = -1;
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      if (v.tokens[i] == t) found = static_cast<int32_t>(i);
    }
    return found;
  };
  std::vector<std::string> syms;
  for (size_t pos = 0; pos < s.size();) {
    const utf8::Step st = utf8::next(std::string_view(s).substr(pos));
    const size_t len = st.status == utf8::Status::valid ? st.length : 1;
    syms.push_back(s.substr(pos, len));
    pos += len;
  }
  while (true) {
    int64_t best = -1;
    float best_score = 0;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      const int32_t id = find(syms[i] + syms[i + 1]);
      if (id < 0) continue;
      if (best < 0 || v.scores[id] > best_score) {
        best = static_cast<int64_t>(i);
        best_score = v.scores[id];
      }
    }
    if (best < 0) break;
    syms[best] += syms[best + 1];
    syms.erase(syms.begin() + best + 1);
  }
  Ids out;
  for (const std::string& sym : syms) {
    const int32_t id = find(sym);
    if (id >= 0) {
      out.push_back(id);
    } else {
      for (char c : sym) out.push_back(byte_id(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

TEST(SpmTokenizer, MatchesNaiveMergeLoopOnRandomVocabularies) {
  std::mt19937 rng(12345);
  const std::vector<std::string> alphabet = {"a", "b", "c", kMarker, "é", "\n"};
  int total_tokens = 0;
  for (int trial = 0; trial < 60; ++trial) {
    VocabBuilder b;
    for (const std::string& ch : alphabet) {
      if (rng() % 5 != 0) b.add(ch, -100);  // sometimes a character is missing: bytes
    }
    const int n_tokens = 5 + static_cast<int>(rng() % 40);
    for (int k = 0; k < n_tokens; ++k) {
      std::string t;
      const int len = 2 + static_cast<int>(rng() % 4);
      for (int j = 0; j < len; ++j) t += alphabet[rng() % alphabet.size()];
      // Few distinct scores, so ties are common.
      b.add(t, -static_cast<float>(rng() % 4));
    }
    b.v.add_space_prefix = trial % 3 != 0;
    SpmTokenizer tok(b.v);
    for (int s = 0; s < 40; ++s) {
      std::string text;
      const int len = static_cast<int>(rng() % 30);
      for (int j = 0; j < len; ++j) {
        const size_t pick = rng() % (alphabet.size() + 1);
        text += pick == alphabet.size() ? " " : alphabet[pick];
      }
      const Ids got = tok.encode(text, false);
      ASSERT_EQ(got, naive_encode(b.v, text)) << "trial " << trial << " text '" << text << "'";
      total_tokens += static_cast<int>(got.size());
    }
  }
  EXPECT_GT(total_tokens, 10000);
}

// ---- stories260K ----------------------------------------------------------------------------

class SpmStories : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    file_ = std::make_unique<gguf::File>(gguf::File::open(kModelPath));
    tok_ = std::make_unique<SpmTokenizer>(SpmTokenizer::from_gguf(*file_));
  }
  static void TearDownTestSuite() {
    tok_.reset();
    file_.reset();
  }
  static std::unique_ptr<gguf::File> file_;
  static std::unique_ptr<SpmTokenizer> tok_;
};
std::unique_ptr<gguf::File> SpmStories::file_;
std::unique_ptr<SpmTokenizer> SpmStories::tok_;

struct FixtureLine {
  std::string text;
  Ids ids;
};

std::vector<FixtureLine> read_fixture() {
  std::ifstream in(kFixturePath);
  check(in.good(), std::string("cannot open ") + kFixturePath);
  std::vector<FixtureLine> lines;
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    lines.push_back({j.at("text").get<std::string>(), j.at("ids").get<Ids>()});
  }
  return lines;
}

// Strings that stress the round trip; see also the fixture's texts.
const std::vector<std::string>& roundtrip_corpus() {
  static const std::vector<std::string> corpus = {
      "Once upon a time, there was a little girl named Lily.",
      "Tim said, \"Look at the big red ball!\" and ran to get it.",
      "café naïve résumé jalapeño Øresund Größe",
      "日本語のテキスト 中文 한국어",
      "emoji 😀 and 🎉🎉 and a thumbs up 👍🏽",
      "family 👨‍👩‍👧‍👦 and flag 🏳️‍🌈 and 🇫🇷",
      "tabs\tand\t\ttabs",
      "new\nlines\n\n",
      "windows\r\nline\r\nendings\r\n",
      "repeated    spaces     here",
      " leading space",
      "  two leading spaces",
      "trailing space ",
      " ",
      "\n",
      "\t",
      "“quotes” ‘single’ — dashes – … ™ € \u00a0 \u200a",
      "e\u0301 combining",
      "\U0010FFFF",
      std::string("nul\0inside", 10),
      "<s> not a control token </s>",
  };
  return corpus;
}

TEST_F(SpmStories, VocabularyAndSpecialIds) {
  EXPECT_EQ(tok_->vocab_size(), 512);
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_EQ(tok_->eos_id(), 2);
  EXPECT_EQ(tok_->unk_id(), 0);
  EXPECT_TRUE(tok_->vocab().add_space_prefix);
  EXPECT_EQ(tok_->token_bytes(1), "");
  EXPECT_EQ(tok_->token_bytes(2), "");
  EXPECT_EQ(tok_->token_bytes(3), std::string(1, '\0'));  // <0x00>
  EXPECT_EQ(tok_->token_bytes(tok_->token_id(kMarker + "the")), " the");
  EXPECT_EQ(tok_->encode("", true), Ids{1});
  const Ids hello = tok_->encode("Hello", true);
  ASSERT_FALSE(hello.empty());
  EXPECT_EQ(hello[0], 1);
}

TEST_F(SpmStories, MatchesSentencepieceFixture) {
  const std::vector<FixtureLine> lines = read_fixture();
  ASSERT_GE(lines.size(), 500u);
  int differ = 0;
  for (const FixtureLine& line : lines) {
    // sentencepiece decodes these ids to the text with "▁" read as a space (the script checks).
    std::string expected_text;
    for (size_t pos = 0; pos < line.text.size();) {
      if (line.text.compare(pos, kMarker.size(), kMarker) == 0) {
        expected_text += ' ';
        pos += kMarker.size();
      } else {
        expected_text += line.text[pos++];
      }
    }
    EXPECT_EQ(tok_->decode(line.ids), expected_text);
    Ids with_bos = {1};
    with_bos.insert(with_bos.end(), line.ids.begin(), line.ids.end());
    EXPECT_EQ(tok_->decode(with_bos), expected_text);

    const Ids got = tok_->encode_plain(line.text);  // sentencepiece does not match "<s>"
    if (got != line.ids) {
      ++differ;
      ADD_FAILURE() << "differs from sentencepiece on " << nlohmann::json(line.text).dump()
                    << "\n  got      " << nlohmann::json(got).dump() << "\n  expected "
                    << nlohmann::json(line.ids).dump();
    }
  }
  EXPECT_EQ(differ, 0) << "of " << lines.size() << " strings";
}

TEST_F(SpmStories, RoundTrip) {
  std::vector<std::string> texts = roundtrip_corpus();
  for (const FixtureLine& line : read_fixture()) {
    // A literal "▁" in the text encodes like a space; it cannot come back.
    if (line.text.find(kMarker) == std::string::npos) texts.push_back(line.text);
  }
  for (const std::string& text : texts) {
    // Control-token strings become control tokens, which decode to nothing.
    if (text.find("<s>") != std::string::npos || text.find("</s>") != std::string::npos ||
        text.find("<unk>") != std::string::npos) {
      continue;
    }
    EXPECT_EQ(tok_->decode(tok_->encode(text, false)), text);
    EXPECT_EQ(tok_->decode(tok_->encode(text, true)), text);
  }
}

TEST_F(SpmStories, LiteralMarkerDecodesAsSpace) {
  EXPECT_EQ(tok_->encode(kMarker + "a", false), tok_->encode(" a", false));
  EXPECT_EQ(tok_->decode(tok_->encode(kMarker + "a", false)), " a");
}

TEST_F(SpmStories, LongTextIsFast) {
  std::string text;
  while (text.size() < 300'000) text += "Once upon a time, there was a little girl named Lily. ";
  text += "😀";
  const auto t0 = std::chrono::steady_clock::now();
  const Ids ids = tok_->encode(text, false);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(tok_->decode(ids), text);
  // About 0.4 s in a release build; a quadratic merge loop would take hours.
  EXPECT_LT(s, 20.0) << "300 kB took " << s << " s: not O(n log n)?";
}

// ---- StreamingDecoder -----------------------------------------------------------------------

// Every piece must be well-formed UTF-8; returns the concatenation.
std::string stream_all(const Tokenizer& tok, std::span<const int32_t> prompt,
                       std::span<const int32_t> generated) {
  StreamingDecoder dec(tok, prompt);
  std::string out;
  for (int32_t id : generated) {
    const std::string piece = dec.push(id);
    EXPECT_TRUE(utf8::is_valid(piece)) << "ill-formed piece after id " << id;
    out += piece;
  }
  const std::string rest = dec.flush();
  EXPECT_TRUE(utf8::is_valid(rest));
  return out + rest;
}

TEST_F(SpmStories, StreamingEqualsDecode) {
  std::vector<std::string> texts = roundtrip_corpus();
  for (const FixtureLine& line : read_fixture()) texts.push_back(line.text);
  int splits = 0;
  for (const std::string& text : texts) {
    if (!utf8::is_valid(text)) continue;
    const Ids ids = tok_->encode(text, true);
    const std::span<const int32_t> all(ids);
    // Split points between prompt and generation: all of them, or about 64 for long texts.
    const size_t stride = ids.size() / 64 + 1;
    for (size_t k = 0; k <= ids.size(); k += (k < 8 ? 1 : stride)) {
      const std::string prompt_text = tok_->decode(all.first(k));
      const std::string full = tok_->decode(all);
      std::string prompt_bytes;  // decode() would show a cut character as U+FFFD
      for (int32_t id : all.first(k)) prompt_bytes += tok_->token_bytes(id);
      if (!utf8::is_valid(prompt_bytes)) continue;  // prompt ends inside a character
      ASSERT_EQ(full.compare(0, prompt_text.size(), prompt_text), 0);
      EXPECT_EQ(stream_all(*tok_, all.first(k), all.subspan(k)), full.substr(prompt_text.size()))
          << "text " << nlohmann::json(text).dump() << " split at " << k;
      ++splits;
    }
  }
  EXPECT_GT(splits, 5000);
}

TEST_F(SpmStories, StreamingHoldsBackSplitCharacters) {
  // "😀" is not in the vocabulary: four byte tokens.
  const Ids ids = tok_->encode("a😀b", false);
  ASSERT_EQ(ids.size(), 6u);
  StreamingDecoder dec(*tok_, Ids{1});
  EXPECT_EQ(dec.push(ids[0]), "a");  // "▁a" at the start of the sequence: no space
  EXPECT_EQ(dec.push(ids[1]), "");
  EXPECT_EQ(dec.push(ids[2]), "");
  EXPECT_EQ(dec.push(ids[3]), "");
  EXPECT_EQ(dec.push(ids[4]), "😀");
  EXPECT_EQ(dec.push(ids[5]), "b");
  EXPECT_EQ(dec.flush(), "");

  // After a prompt with text, the first generated piece keeps its space.
  const Ids prompt = tok_->encode("Hi", true);
  StreamingDecoder dec2(*tok_, prompt);
  EXPECT_EQ(dec2.push(tok_->token_id(kMarker + "the")), " the");
  // A prompt of control tokens only: still the start of the sequence.
  StreamingDecoder dec3(*tok_, Ids{1, 1});
  EXPECT_EQ(dec3.push(tok_->token_id(kMarker + "the")), "the");
  EXPECT_EQ(dec3.push(tok_->token_id(kMarker + "the")), " the");
  EXPECT_EQ(dec3.push(2), "");  // EOS prints nothing
}

// Ids the model has rows for but the tokenizer lacks (an embedding larger than the vocabulary)
// stream and decode as nothing; token_bytes itself still refuses them.
TEST_F(SpmStories, IdsBeyondTheVocabularyDecodeAsNothing) {
  const int32_t beyond = tok_->vocab_size();  // 512: a padding row of a larger embedding
  EXPECT_THROW(tok_->token_bytes(beyond), Error);
  EXPECT_EQ(model_token_bytes(*tok_, beyond), "");
  EXPECT_EQ(model_token_bytes(*tok_, beyond - 1), tok_->token_bytes(beyond - 1));
  const Ids ids = tok_->encode("Once upon a time", true);
  Ids padded = ids;
  padded.insert(padded.begin() + 2, beyond + 100);
  EXPECT_EQ(decode_model_ids(*tok_, padded), tok_->decode(ids));
  StreamingDecoder dec(*tok_, Ids{1});
  EXPECT_EQ(dec.push(beyond + 7), "");
  EXPECT_EQ(dec.push(tok_->token_id(kMarker + "the")), "the");  // still the sequence start
  EXPECT_THROW(model_token_bytes(*tok_, -1), Error);
}

TEST_F(SpmStories, StreamingReplacesInvalidBytes) {
  const std::string fffd = "\xEF\xBF\xBD";
  auto byte = [](unsigned char b) { return static_cast<int32_t>(3 + b); };  // <0xNN> ids
  const int32_t a = tok_->token_id("a");
  {
    StreamingDecoder dec(*tok_, Ids{1});
    EXPECT_EQ(dec.push(byte(0xE2)), "");
    EXPECT_EQ(dec.push(a), fffd + "a");  // the character never completed
  }
  {
    StreamingDecoder dec(*tok_, Ids{1});
    EXPECT_EQ(dec.push(byte(0xFF)), fffd);  // can never start a character
    EXPECT_EQ(dec.push(byte(0x80)), fffd);  // a stray continuation byte
    EXPECT_EQ(dec.push(byte(0xE2)), "");
    EXPECT_EQ(dec.push(byte(0x96)), "");
    EXPECT_EQ(dec.flush(), fffd);  // E2 96: one maximal subpart, one U+FFFD
    EXPECT_EQ(dec.push(a), "a");   // usable after flush
  }
  {
    StreamingDecoder dec(*tok_, Ids{1});
    EXPECT_EQ(dec.push(byte(0xE2)), "");
    EXPECT_EQ(dec.push(byte(0x96)), "");
    EXPECT_EQ(dec.push(byte(0xE2)), fffd);  // E2 96 E2: the first two are one U+FFFD
    EXPECT_EQ(dec.push(byte(0x96)), "");
    EXPECT_EQ(dec.push(byte(0x81)), "\xE2\x96\x81");
  }
  {
    StreamingDecoder dec(*tok_, Ids{1});
    EXPECT_EQ(dec.push(byte(0xED)), "");
    EXPECT_EQ(dec.push(byte(0xA0)), fffd + fffd);  // a surrogate: ED alone, then A0 alone
  }
  // Random byte soup: never ill-formed output, never a crash.
  std::mt19937 rng(99);
  for (int trial = 0; trial < 500; ++trial) {
    Ids gen;
    for (int k = 0; k < 20; ++k) gen.push_back(static_cast<int32_t>(rng() % 512));
    const std::string out = stream_all(*tok_, Ids{1}, gen);
    EXPECT_TRUE(utf8::is_valid(out));
    const std::string raw = tok_->decode(gen);
    if (utf8::is_valid(raw)) {
      EXPECT_EQ(out, raw);
    }
    EXPECT_EQ(out, utf8::sanitize(raw));
  }
}

// ---- from_gguf on small hand-written GGUF images --------------------------------------------

// A GGUF v3 image with no tensors and the given metadata.
class GgufImage {
 public:
  GgufImage& str(const std::string& key, const std::string& value) {
    this->key(key, 8);
    string(value);
    ++n_kv_;
    return *this;
  }
  GgufImage& u32(const std::string& key, uint32_t value) {
    this->key(key, 4);
    pod(value);
    ++n_kv_;
    return *this;
  }
  GgufImage& boolean(const std::string& key, bool value) {
    this->key(key, 7);
    pod(static_cast<uint8_t>(value));
    ++n_kv_;
    return *this;
  }
  GgufImage& strings(const std::string& key, const std::vector<std::string>& values) {
    this->key(key, 9);
    pod(uint32_t{8});
    pod(static_cast<uint64_t>(values.size()));
    for (const std::string& v : values) string(v);
    ++n_kv_;
    return *this;
  }
  GgufImage& floats(const std::string& key, const std::vector<float>& values) {
    this->key(key, 9);
    pod(uint32_t{6});
    pod(static_cast<uint64_t>(values.size()));
    for (float v : values) pod(v);
    ++n_kv_;
    return *this;
  }
  GgufImage& ints(const std::string& key, const std::vector<int32_t>& values) {
    this->key(key, 9);
    pod(uint32_t{5});
    pod(static_cast<uint64_t>(values.size()));
    for (int32_t v : values) pod(v);
    ++n_kv_;
    return *this;
  }
  // The whole file: header, metadata, padding to 32.
  std::vector<std::byte> bytes() const {
    std::vector<std::byte> out;
    auto put = [&](const void* p, size_t n) {
      const auto* b = static_cast<const std::byte*>(p);
      out.insert(out.end(), b, b + n);
    };
    put("GGUF", 4);
    const uint32_t version = 3;
    const uint64_t n_tensors = 0;
    put(&version, 4);
    put(&n_tensors, 8);
    put(&n_kv_, 8);
    put(body_.data(), body_.size());
    while (out.size() % 32 != 0) out.push_back(std::byte{0});
    return out;
  }

 private:
  template <typename T>
  void pod(T v) {
    const auto* b = reinterpret_cast<const std::byte*>(&v);
    body_.insert(body_.end(), b, b + sizeof v);
  }
  void string(const std::string& s) {
    pod(static_cast<uint64_t>(s.size()));
    const auto* b = reinterpret_cast<const std::byte*>(s.data());
    body_.insert(body_.end(), b, b + s.size());
  }
  void key(const std::string& k, uint32_t type) {
    string(k);
    pod(type);
  }
  std::vector<std::byte> body_;
  uint64_t n_kv_ = 0;
};

SpmTokenizer tokenizer_from(const GgufImage& image) {
  const std::vector<std::byte> bytes = image.bytes();
  const gguf::File file = gguf::File::parse(bytes, "test.gguf");
  return SpmTokenizer::from_gguf(file);
}

std::string error_from(const GgufImage& image) {
  try {
    tokenizer_from(image);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const std::vector<std::string> kTinyTokens = {"<unk>", "<s>", "</s>",
                                              "\xE2\x96\x81"
                                              "a",
                                              "a"};

TEST(SpmFromGguf, OptionalFieldsDefault) {
  GgufImage image;
  image.str("tokenizer.ggml.model", "llama").strings("tokenizer.ggml.tokens", kTinyTokens);
  const SpmTokenizer tok = tokenizer_from(image);
  EXPECT_EQ(tok.vocab_size(), 5);
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_EQ(tok.eos_id(), -1);
  EXPECT_EQ(tok.unk_id(), -1);
  EXPECT_TRUE(tok.vocab().add_space_prefix);
  EXPECT_EQ(tok.vocab().scores, std::vector<float>(5, 0.0f));
  EXPECT_EQ(tok.encode("a", false), Ids{3});
  EXPECT_EQ(tok.token_bytes(1), "<s>");  // no types: every token is normal
}

TEST(SpmFromGguf, ReadsEveryField) {
  GgufImage image;
  image.str("tokenizer.ggml.model", "llama")
      .strings("tokenizer.ggml.tokens", kTinyTokens)
      .floats("tokenizer.ggml.scores", {0, 0, 0, -1, -2})
      .ints("tokenizer.ggml.token_type", {2, 3, 3, 1, 1})
      .u32("tokenizer.ggml.bos_token_id", 1)
      .u32("tokenizer.ggml.eos_token_id", 2)
      .u32("tokenizer.ggml.unknown_token_id", 0)
      .boolean("tokenizer.ggml.add_space_prefix", false);
  const SpmTokenizer tok = tokenizer_from(image);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_FALSE(tok.vocab().add_space_prefix);
  EXPECT_EQ(tok.encode("a", true), (Ids{1, 4}));
  EXPECT_EQ(tok.encode(" a", false), (Ids{3}));
  EXPECT_EQ(tok.encode("b", false), (Ids{0}));  // no byte tokens: <unk>
  EXPECT_EQ(tok.token_bytes(1), "");
}

TEST(SpmFromGguf, NoneIdIsMinusOne) {
  GgufImage image;
  image.str("tokenizer.ggml.model", "llama")
      .strings("tokenizer.ggml.tokens", kTinyTokens)
      .u32("tokenizer.ggml.eos_token_id", 0xFFFFFFFFu);
  EXPECT_EQ(tokenizer_from(image).eos_id(), -1);
}

TEST(SpmFromGguf, ClearErrors) {
  auto contains = [](const std::string& message, const std::string& needle) {
    EXPECT_NE(message.find(needle), std::string::npos) << message;
  };
  {
    GgufImage image;
    image.str("tokenizer.ggml.model", "gpt2").strings("tokenizer.ggml.tokens", kTinyTokens);
    const std::string e = error_from(image);
    contains(e, "\"gpt2\"");
    contains(e, "expected \"llama\"");
  }
  {
    GgufImage image;
    image.strings("tokenizer.ggml.tokens", kTinyTokens);
    contains(error_from(image), "tokenizer.ggml.model");
  }
  {
    GgufImage image;
    image.str("tokenizer.ggml.model", "llama")
        .strings("tokenizer.ggml.tokens", kTinyTokens)
        .floats("tokenizer.ggml.scores", {0, 0, 0});
    const std::string e = error_from(image);
    contains(e, "tokenizer.ggml.scores has 3 entries");
    contains(e, "expected 5");
  }
  {
    GgufImage image;
    image.str("tokenizer.ggml.model", "llama")
        .strings("tokenizer.ggml.tokens", kTinyTokens)
        .ints("tokenizer.ggml.token_type", {1, 1, 1, 1, 7});
    contains(error_from(image), "tokenizer.ggml.token_type[4] is 7");
  }
  {
    GgufImage image;
    image.str("tokenizer.ggml.model", "llama")
        .strings("tokenizer.ggml.tokens", kTinyTokens)
        .u32("tokenizer.ggml.bos_token_id", 5);
    const std::string e = error_from(image);
    contains(e, "tokenizer.ggml.bos_token_id is 5");
    contains(e, "[0, 5)");
  }
}

// ---- UTF-8 helpers --------------------------------------------------------------------------

TEST(Utf8, SequenceLength) {
  EXPECT_EQ(utf8::sequence_length(0x00), 1u);
  EXPECT_EQ(utf8::sequence_length('a'), 1u);
  EXPECT_EQ(utf8::sequence_length(0x7F), 1u);
  EXPECT_EQ(utf8::sequence_length(0x80), 0u);
  EXPECT_EQ(utf8::sequence_length(0xBF), 0u);
  EXPECT_EQ(utf8::sequence_length(0xC0), 0u);
  EXPECT_EQ(utf8::sequence_length(0xC1), 0u);
  EXPECT_EQ(utf8::sequence_length(0xC2), 2u);
  EXPECT_EQ(utf8::sequence_length(0xDF), 2u);
  EXPECT_EQ(utf8::sequence_length(0xE0), 3u);
  EXPECT_EQ(utf8::sequence_length(0xEF), 3u);
  EXPECT_EQ(utf8::sequence_length(0xF0), 4u);
  EXPECT_EQ(utf8::sequence_length(0xF4), 4u);
  EXPECT_EQ(utf8::sequence_length(0xF5), 0u);
  EXPECT_EQ(utf8::sequence_length(0xFF), 0u);
}

TEST(Utf8, NextAndValidity) {
  using S = utf8::Status;
  auto step = [](const std::string& s) { return utf8::next(s); };
  EXPECT_EQ(step("a").status, S::valid);
  EXPECT_EQ(step("é").length, 2u);
  EXPECT_EQ(step("€x").length, 3u);
  EXPECT_EQ(step("😀").length, 4u);
  EXPECT_EQ(step("\xF0\x9F\x98").status, S::truncated);
  EXPECT_EQ(step("\xF0\x9F\x98").length, 3u);
  EXPECT_EQ(step("\xE0\x80\x80").status, S::invalid);  // overlong
  EXPECT_EQ(step("\xE0\x80\x80").length, 1u);
  EXPECT_EQ(step("\xED\xA0\x80").status, S::invalid);      // surrogate
  EXPECT_EQ(step("\xF4\x90\x80\x80").status, S::invalid);  // above U+10FFFF
  EXPECT_EQ(step(std::string("\xE2\x96") + "a").status, S::invalid);
  EXPECT_EQ(step(std::string("\xE2\x96") + "a").length, 2u);
  EXPECT_EQ(step("\xF4\x8F\xBF\xBF").status, S::valid);  // U+10FFFF
  EXPECT_EQ(step("\xED\x9F\xBF").status, S::valid);      // U+D7FF
  EXPECT_TRUE(utf8::is_valid(""));
  EXPECT_TRUE(utf8::is_valid("héllo 😀 日本"));
  EXPECT_FALSE(utf8::is_valid("h\xC3"));
  const std::string fffd = "\uFFFD";
  // a, E2 96 (truncated by 'b'), b, FF, é, F0 (truncated at the end)
  const std::string soup = std::string("a\xE2\x96") + "b\xFF\xC3\xA9\xF0";
  EXPECT_EQ(utf8::sanitize(soup), "a" + fffd + "b" + fffd + "é" + fffd);
}

}  // namespace
}  // namespace bx
