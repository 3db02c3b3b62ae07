#include "model/tensor_dump.h"

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "core/error.h"

namespace bx {
namespace {

namespace fs = std::filesystem;

std::string call_folder_name(int64_t call) {
  char name[32];
  std::snprintf(name, sizeof name, "%06lld", static_cast<long long>(call));
  return name;
}

// "embed.npy" (layer -1), "blk.3.q.npy".
std::string tensor_file_name(std::string_view name, int layer) {
  const std::string base =
      layer < 0 ? std::string(name) : "blk." + std::to_string(layer) + "." + std::string(name);
  return base + ".npy";
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  check(out.good(), "tensor dump: cannot write '" + path.string() + "'");
}

}  // namespace

void write_npy_f32(const fs::path& path, const float* values, int64_t rows, int64_t cols) {
  static_assert(std::endian::native == std::endian::little, "the .npy data is written as held");
  // Format 1.0: magic, version, u16 header length, then a Python dict literal padded with spaces
  // and ended by '\n' so that the data starts at a multiple of 64 bytes.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  const size_t preamble = 10;  // magic (6) + version (2) + header length (2)
  const size_t padded = (preamble + header.size() + 1 + 63) / 64 * 64;
  header.append(padded - preamble - header.size() - 1, ' ');
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(values),
               static_cast<size_t>(rows * cols) * sizeof(float));
  write_file(path, bytes);
}

TensorDump::TensorDump(fs::path folder) : folder_(std::move(folder)) {
  std::error_code error;
  fs::create_directories(folder_, error);
  check(!error && fs::is_directory(folder_), "tensor dump: cannot create the folder '" +
                                                 folder_.string() + "'" +
                                                 (error ? ": " + error.message() : std::string()));
  index_ = {{"format", "bitexact-tensor-dump"}, {"version", 1}, {"calls", nlohmann::json::array()}};
}

void TensorDump::begin_forward(const ForwardBatch& batch, Backend& backend) {
  backend_ = &backend;
  index_["backend"] = backend.name();
  const std::string folder = call_folder_name(calls_);
  std::error_code error;
  fs::create_directories(folder_ / folder, error);
  check(!error, "tensor dump: cannot create the folder '" + (folder_ / folder).string() + "'");
  call_ = {{"call", calls_},
           {"folder", folder},
           {"tokens", std::vector<int32_t>(batch.tokens.begin(), batch.tokens.end())},
           {"positions", std::vector<int32_t>(batch.positions.begin(), batch.positions.end())},
           {"logit_rows", std::vector<int32_t>(batch.logit_rows.begin(), batch.logit_rows.end())},
           {"tensors", nlohmann::json::array()}};
}

void TensorDump::observe(std::string_view name, int layer, const Tensor& tensor) {
  check(backend_ != nullptr, "tensor dump: observe outside a forward call");
  nlohmann::json entry = {
      {"name", name}, {"layer", layer}, {"shape", {tensor.rows, tensor.cols}}, {"file", nullptr}};
  if (tensor.dtype == DType::f32) {
    const std::string file =
        call_["folder"].get<std::string>() + "/" + tensor_file_name(name, layer);
    host_.resize(static_cast<size_t>(tensor.rows * tensor.cols));
    backend_->copy_to_host(tensor, host_.data());
    write_npy_f32(folder_ / file, host_.data(), tensor.rows, tensor.cols);
    entry["file"] = file;
    entry["dtype"] = "float32";
  } else {
    entry["dtype"] = std::string(dtype_name(tensor.dtype));
  }
  call_["tensors"].push_back(std::move(entry));
}

void TensorDump::end_forward() {
  check(backend_ != nullptr, "tensor dump: end_forward outside a forward call");
  index_["calls"].push_back(std::move(call_));
  call_ = nullptr;
  backend_ = nullptr;
  ++calls_;
  const fs::path index = folder_ / "index.json";
  const fs::path temporary = folder_ / "index.json.tmp";
  write_file(temporary, index_.dump(1) + "\n");
  std::error_code error;
  fs::rename(temporary, index, error);
  check(!error, "tensor dump: cannot rename '" + temporary.string() + "' to '" + index.string() +
                    "': " + error.message());
}

std::shared_ptr<TensorObserver> tensor_dump_from_env() {
  const char* folder = std::getenv(kTensorDumpEnv);
  if (folder == nullptr || *folder == '\0') return nullptr;
  return std::make_shared<TensorDump>(folder);
}

}  // namespace bx
