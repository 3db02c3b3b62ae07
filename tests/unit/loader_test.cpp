// Loading a model file: each kind of bad model is one bx::Error naming the tensor or key and what
// was expected. The files are a valid random model rewritten with one thing wrong.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/error.h"
#include "model/gguf.h"
#include "model/loader.h"
#include "support/gguf_writer.h"
#include "support/random_model.h"

namespace bx {
namespace {

using gguf::GgmlType;

// What to do with one tensor of the source file while copying it.
struct TensorEdit {
  bool drop = false;
  std::vector<int64_t> dims;  // empty: keep
  std::optional<GgmlType> type;
};

// Copies `source` to a new file with metadata overrides and per-tensor edits; returns its path.
// `metadata(key, writer)` returns true when it has written a replacement for the key (or none,
// to drop it); otherwise the entry is copied.
std::string rewrite(const std::string& source, const std::string& name,
                    const std::function<bool(const std::string&, test::GgufWriter&)>& metadata,
                    const std::function<TensorEdit(const gguf::TensorInfo&)>& edit) {
  const gguf::File file = gguf::File::open(source);
  test::GgufWriter w;
  for (const gguf::MetadataEntry& e : file.metadata()) {
    if (!metadata(e.key, w)) w.add_value(e.key, e.value);
  }
  for (const gguf::TensorInfo& t : file.tensors()) {
    const TensorEdit change = edit(t);
    if (change.drop) continue;
    const std::span<const std::byte> data = file.tensor_data(t);
    if (!change.dims.empty() || change.type) {
      // Content does not matter for these errors; sizes must match the declared type.
      const std::vector<int64_t> dims = change.dims.empty() ? t.dims : change.dims;
      int64_t n = 1;
      for (int64_t d : dims) n *= d;
      const GgmlType type = change.type.value_or(t.type);
      const gguf::GgmlTypeTraits* traits = gguf::ggml_type_traits(type);
      const size_t bytes = static_cast<size_t>(n / traits->block_size * traits->type_size);
      w.add_raw_tensor(t.name, dims, type, std::vector<std::byte>(bytes));
    } else {
      w.add_raw_tensor(t.name, t.dims, t.type, std::vector<std::byte>(data.begin(), data.end()));
    }
  }
  const std::string path =
      (std::filesystem::temp_directory_path() / ("bitexact-loader-" + name + ".gguf")).string();
  w.write(path);
  return path;
}

class LoaderErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    test::RandomLlamaSpec spec;
    spec.tied_output = false;
    model_ = std::make_unique<test::RandomLlamaFile>("loader-source", spec);
  }

  // Loading `path` throws a bx::Error whose message contains every needle.
  void expect_error(const std::string& path, std::initializer_list<std::string> needles) {
    try {
      load_model(path, LoadOptions{});
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      for (const std::string& needle : needles) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
            << "'" << needle << "' not in: " << e.what();
      }
    }
    std::filesystem::remove(path);
  }

  static bool keep_metadata(const std::string&, test::GgufWriter&) { return false; }
  static TensorEdit keep_tensor(const gguf::TensorInfo&) { return {}; }

  std::unique_ptr<test::RandomLlamaFile> model_;
};

TEST_F(LoaderErrors, TheUnchangedCopyLoads) {
  const std::string path = rewrite(model_->path(), "copy", keep_metadata, keep_tensor);
  EXPECT_NO_THROW(load_model(path, LoadOptions{}));
  std::filesystem::remove(path);
}

TEST_F(LoaderErrors, MissingTensorIsNamed) {
  const std::string path = rewrite(model_->path(), "missing", keep_metadata, [](const auto& t) {
    return TensorEdit{t.name == "blk.1.ffn_up.weight", {}, {}};
  });
  expect_error(path, {"missing tensor", "blk.1.ffn_up.weight"});
}

TEST_F(LoaderErrors, WrongShapeIsNamedWithTheExpectedShape) {
  const std::string path = rewrite(model_->path(), "shape", keep_metadata, [](const auto& t) {
    TensorEdit e;
    if (t.name == "blk.0.attn_k.weight") e.dims = {t.dims[0], t.dims[1] + 32};
    return e;
  });
  expect_error(path, {"blk.0.attn_k.weight", "has shape", "expected"});
}

TEST_F(LoaderErrors, UnsupportedTensorTypeIsNamed) {
  const std::string path = rewrite(model_->path(), "type", keep_metadata, [](const auto& t) {
    TensorEdit e;
    if (t.name == "blk.0.ffn_down.weight") {
      e.type = GgmlType::Q8_K;  // a ggml type (256 / 292) that is not loadable
      e.dims = {256, 256};      // a whole number of Q8_K blocks (the type is checked first)
    }
    return e;
  });
  expect_error(path, {"blk.0.ffn_down.weight", "Q8_K", "supported", "Q4_K"});
}

// A K-quant matrix of the wrong shape (whole super-blocks, so it parses) is named with the shape
// the model needs; one whose rows are not whole super-blocks (96 of 256) is named by the parser.
TEST_F(LoaderErrors, KQuantWrongShapeIsNamed) {
  const std::string path =
      rewrite(model_->path(), "kquant-shape", keep_metadata, [](const auto& t) {
        TensorEdit e;
        if (t.name == "blk.0.ffn_down.weight") {
          e.type = GgmlType::Q4_K;
          e.dims = {256, 256};
        }
        return e;
      });
  expect_error(path, {"blk.0.ffn_down.weight", "shape [256, 256]", "expected [96, 64]"});
}

TEST_F(LoaderErrors, KQuantRowsNotWholeSuperBlocksAreNamed) {
  const std::string path = rewrite(model_->path(), "kquant-rows", keep_metadata, [](const auto& t) {
    TensorEdit e;
    if (t.name == "blk.1.attn_output.weight") e.type = GgmlType::Q6_K;  // rows of 64
    return e;
  });
  expect_error(path, {"blk.1.attn_output.weight", "Q6_K", "block size 256"});
}

TEST_F(LoaderErrors, UnsupportedArchitectureIsNamed) {
  const std::string path = rewrite(
      model_->path(), "arch",
      [](const std::string& key, test::GgufWriter& w) {
        if (key != "general.architecture") return false;
        w.add_string(key, "mamba");
        return true;
      },
      keep_tensor);
  expect_error(path, {"unsupported architecture", "mamba", "llama"});
}

TEST_F(LoaderErrors, MissingArchitectureKeyIsNamed) {
  const std::string path = rewrite(
      model_->path(), "nokey",
      [](const std::string& key, test::GgufWriter&) { return key == "llama.block_count"; },
      keep_tensor);
  expect_error(path, {"llama.block_count"});
}

}  // namespace
}  // namespace bx
