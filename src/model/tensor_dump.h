// A TensorObserver (model/tensor_observer.h) that writes every observed tensor of every forward
// call to a folder as numpy .npy files, with an index.json naming them:
//
//   <folder>/index.json
//   <folder>/000000/embed.npy  <folder>/000000/blk.0.q.npy ...  <folder>/000000/logits.npy
//   <folder>/000001/...                                         (one folder per forward call)
//
// Each .npy is float32, little-endian, C order, of the tensor's [rows, cols]. index.json:
//   {"format": "bitexact-tensor-dump", "version": 1, "backend": "cpu-avx2",
//    "calls": [{"call": 0, "folder": "000000", "tokens": [...], "positions": [...],
//               "logit_rows": [...],
//               "tensors": [{"name": "q", "layer": 0, "file": "000000/blk.0.q.npy",
//                            "shape": [T, 256], "dtype": "float32"}, ...]}, ...]}
// A tensor held in another dtype (ffn_act in bf16 on CUDA) is listed with its dtype and
// "file": null. index.json is rewritten after every call (a temporary file, then a rename), so it
// always lists complete calls. Files of an earlier dump in the same folder are overwritten, and
// the index lists this process's calls only. scripts/compare_dumps.py compares two dumps.
//
// Set BITEXACT_DUMP=<folder> and every model load_model makes writes one (model/loader.h).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/tensor_observer.h"

namespace bx {

inline constexpr const char* kTensorDumpEnv = "BITEXACT_DUMP";

class TensorDump : public TensorObserver {
 public:
  // Creates `folder` and its parents where missing; throws bx::Error naming it if that fails.
  explicit TensorDump(std::filesystem::path folder);

  void begin_forward(const ForwardBatch& batch, Backend& backend) override;
  void observe(std::string_view name, int layer, const Tensor& tensor) override;
  void end_forward() override;

  const std::filesystem::path& folder() const { return folder_; }
  int64_t calls() const { return calls_; }

 private:
  std::filesystem::path folder_;
  Backend* backend_ = nullptr;  // of the call in progress
  int64_t calls_ = 0;           // finished forward calls
  nlohmann::json index_;        // {"format", "version", "backend", "calls": [...]}
  nlohmann::json call_;         // the call in progress
  std::vector<float> host_;     // one tensor's rows
};

// A TensorDump into $BITEXACT_DUMP, or nullptr when it is unset or empty.
std::shared_ptr<TensorObserver> tensor_dump_from_env();

// Writes [rows, cols] float32 values as a .npy file; throws bx::Error naming the path on failure.
void write_npy_f32(const std::filesystem::path& path, const float* values, int64_t rows,
                   int64_t cols);

}  // namespace bx
