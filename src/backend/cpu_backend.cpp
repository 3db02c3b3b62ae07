#include "backend/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "kernels/q8_0_tiles.h"
#include "kernels/quant.h"
#include "kernels/rows.h"

namespace bx {
namespace {

constexpr size_t kAlignment = 64;

float* f32(const Tensor& t) {
  return static_cast<float*>(t.data);
}

void check_f32(const Tensor& t, const char* what) {
  BX_CHECK(t.dtype == DType::f32, std::string("cpu backend: ") + what + " must be F32");
}

}  // namespace

void CpuBackend::AlignedFree::operator()(void* p) const {
  std::free(p);
}

std::string CpuBackend::unsupported_head_dim(int head_dim) const {
  if (head_dim > 0 && head_dim <= kAttentionMaxHeadDim) return {};
  return "head dims up to " + std::to_string(kAttentionMaxHeadDim);
}

CpuBackend::CpuBackend(int threads, QuantDot quant_dot) : pool_(threads), quant_dot_(quant_dot) {}
CpuBackend::~CpuBackend() = default;

void* CpuBackend::allocate_bytes(size_t bytes) {
  ++allocation_count_;
  const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  BX_CHECK(p != nullptr,
           "cpu backend: out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, rounded == 0 ? kAlignment : rounded);
  return p;
}

Tensor CpuBackend::alloc(DType dtype, int64_t rows, int64_t cols) {
  BX_CHECK(dtype == DType::f32 || dtype == DType::bf16, "cpu backend: alloc supports F32 and BF16");
  const size_t element = dtype == DType::f32 ? 4 : 2;
  void* p = allocate_bytes(static_cast<size_t>(rows * cols) * element);
  allocations_.emplace_back(p);
  return Tensor{p, dtype, rows, cols, cols};
}

Tensor CpuBackend::upload_matrix(const float* host, int64_t rows, int64_t cols, DType dtype) {
  Tensor t = alloc(dtype, rows, cols);
  const size_t n = static_cast<size_t>(rows * cols);
  if (dtype == DType::f32) {
    std::memcpy(t.data, host, n * sizeof(float));
  } else {
    auto* out = static_cast<uint16_t*>(t.data);
    for (size_t i = 0; i < n; ++i) out[i] = f32_to_bf16(host[i]);
  }
  return t;
}

bool CpuBackend::can_hold_blocks(DType dtype) const {
  return quant::is_block_format(dtype);
}

Tensor CpuBackend::upload_blocks(const void* blocks, int64_t rows, int64_t cols, DType dtype) {
  BX_CHECK(can_hold_blocks(dtype), "cpu backend: upload_blocks takes a block format (" +
                                       quant::block_format_names() + "), not " +
                                       std::string(dtype_name(dtype)));
  BX_CHECK(rows >= 0 && cols >= 0, "cpu backend: negative weight shape");
  const size_t bytes =
      static_cast<size_t>(quant::bytes_for(dtype, cols)) * static_cast<size_t>(rows);
  void* p = allocate_bytes(bytes);
  allocations_.emplace_back(p);
  if (bytes > 0) std::memcpy(p, blocks, bytes);
  return Tensor{p, dtype, rows, cols, cols};
}

bool CpuBackend::prefer_gemm_layout(const Tensor& w) {
  if (q8_0_tiled_.count(w.data) != 0) return true;  // a tied output: the embedding's bytes
  if (quant_dot_ != QuantDot::int8_activations || w.dtype != DType::q8_0 || w.rows == 0 ||
      w.rows % quant::kQ8TileRows != 0 || w.stride != w.cols) {
    return false;
  }
  const int64_t row_bytes = quant::bytes_for(w.dtype, w.cols);
  auto* bytes = static_cast<uint8_t*>(w.data);
  const std::vector<uint8_t> rows(bytes, bytes + row_bytes * w.rows);
  quant::q8_0_to_tiles(rows.data(), w.rows, w.cols, bytes);
  q8_0_tiled_.insert(w.data);
  tiled_row_.resize(std::max(tiled_row_.size(), static_cast<size_t>(row_bytes)));
  return true;
}

void CpuBackend::init_kv_cache(const KvCacheShape& shape) {
  BX_CHECK(shape.n_layers > 0 && shape.n_blocks > 0 && shape.block_size > 0 &&
               shape.n_kv_heads > 0 && shape.head_dim > 0,
           "cpu backend: KV cache shape must be positive in every dimension");
  const size_t per_layer =
      static_cast<size_t>(shape.n_blocks) * shape.block_size * shape.n_kv_heads * shape.head_dim;
  kv_storage_.reset(allocate_bytes(per_layer * 2 * shape.n_layers * sizeof(float)));
  kv_shape_ = shape;
}

KvLayerView CpuBackend::kv_layer(int layer) const {
  BX_CHECK(kv_storage_ != nullptr, "cpu backend: the KV cache is not initialised");
  const size_t per_layer = static_cast<size_t>(kv_shape_.n_blocks) * kv_shape_.block_size *
                           kv_shape_.n_kv_heads * kv_shape_.head_dim;
  float* base = static_cast<float*>(kv_storage_.get()) + per_layer * 2 * layer;
  return KvLayerView{base,
                     base + per_layer,
                     kv_shape_.n_blocks,
                     kv_shape_.block_size,
                     kv_shape_.n_kv_heads,
                     kv_shape_.head_dim};
}

void CpuBackend::set_rope_table(const RopeTable& table) {
  rope_table_ = table;
}

void CpuBackend::set_local_rope_table(const RopeTable& table) {
  BX_CHECK(
      table.head_dim == rope_table_.head_dim && table.max_positions == rope_table_.max_positions,
      "cpu backend: the local RoPE table must have the first table's head_dim and positions");
  local_rope_table_ = table;
}

void CpuBackend::begin_batch(const ForwardBatch& batch) {
  batch_ = batch;
}

void CpuBackend::embed(const Tensor& table, Tensor out) {
  const int64_t T = out.rows;
  if (q8_0_tiled_.count(table.data) != 0) {  // the row out of its tile, then as below
    for (int64_t t = 0; t < T; ++t) {
      quant::q8_0_tiled_row(static_cast<const uint8_t*>(table.data), table.stride,
                            batch_.tokens[t], table.cols, tiled_row_.data());
      quant::dequantize_row(table.dtype, tiled_row_.data(), table.cols, f32(out) + t * out.stride);
    }
    return;
  }
  if (quant::is_block_format(table.dtype)) {  // the row dequantized as at load (kernels/quant.h)
    const int64_t row_bytes = quant::bytes_for(table.dtype, table.stride);
    for (int64_t t = 0; t < T; ++t) {
      quant::dequantize_row(
          table.dtype, static_cast<const std::byte*>(table.data) + batch_.tokens[t] * row_bytes,
          table.cols, f32(out) + t * out.stride);
    }
    return;
  }
  check_f32(table, "embedding table");
  for (int64_t t = 0; t < T; ++t) {
    std::memcpy(f32(out) + t * out.stride, f32(table) + batch_.tokens[t] * table.stride,
                static_cast<size_t>(table.cols) * sizeof(float));
  }
}

void CpuBackend::rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor out) {
  bx::rmsnorm(f32(x), x.stride, f32(w), eps, f32(out), out.stride, x.rows, x.cols, pool_);
}

void CpuBackend::matmul(const Tensor& x, const Tensor& w, Tensor y) {
  MatmulArgs args;
  args.x = f32(x);
  args.x_stride = x.stride;
  args.w = w.data;
  args.w_dtype = w.dtype;
  args.w_stride = w.stride;
  args.y = f32(y);
  args.y_stride = y.stride;
  args.M = x.rows;
  args.N = w.rows;
  args.K = x.cols;
  args.order = order_;
  args.quant_dot = quant_dot_;
  if (q8_0_tiled_.count(w.data) != 0) args.w_layout = WeightLayout::q8_0_tiles;
  bx::matmul(args, pool_);
}

void CpuBackend::add_bias(Tensor y, const Tensor& bias) {
  check_f32(bias, "bias");
  BX_CHECK(bias.rows == 1 && bias.cols == y.cols,
           "cpu backend: bias of " + std::to_string(bias.cols) + " columns for rows of " +
               std::to_string(y.cols));
  // Row stride 0: the one bias row is added to every row of y.
  bx::add_inplace(f32(y), y.stride, f32(bias), 0, y.rows, y.cols, pool_);
}

void CpuBackend::gemm(const GemmOp& op) {
  check_gemm_op(op, "cpu backend");
  check_f32(op.x, "gemm input");
  const int64_t M = op.x.rows, N = op.w[0].rows;
  switch (op.epilogue) {
    case GemmEpilogue::store:
      for (int i = 0; i < op.n_parts; ++i) {
        matmul(op.x, op.w[i], op.y[i]);
        if (op.bias[i].data != nullptr) add_bias(op.y[i], op.bias[i]);
      }
      return;
    case GemmEpilogue::accumulate: {
      check_f32(op.y[0], "gemm output");
      Tensor t = op.scratch.rows_view(0, M);
      t.cols = N;
      matmul(op.x, op.w[0], t);
      if (op.bias[0].data != nullptr) add_bias(t, op.bias[0]);
      bx::add_inplace(f32(op.y[0]), op.y[0].stride, f32(t), t.stride, M, N, pool_);
      return;
    }
    case GemmEpilogue::swiglu:
    case GemmEpilogue::geglu: {
      check_f32(op.y[0], "gemm output");
      Tensor up = op.scratch.rows_view(0, M);
      up.cols = N;
      matmul(op.x, op.w[0], op.y[0]);
      matmul(op.x, op.w_up, up);
      const auto gate = op.epilogue == GemmEpilogue::swiglu ? bx::silu_mul : bx::gelu_tanh_mul;
      gate(f32(op.y[0]), op.y[0].stride, f32(up), up.stride, f32(op.y[0]), op.y[0].stride, M, N,
           pool_);
      return;
    }
  }
}

// rmsnorm of every head of x [T, n_heads * Dh] as a row: one call over [T * n_heads, Dh] when the
// rows are dense, else one call per head (rows are independent, so the same bits).
void CpuBackend::norm_heads(const Tensor& x, int n_heads, const Tensor& w, float eps) {
  check_f32(w, "q/k norm weight");
  const int64_t head_dim = w.cols;
  BX_CHECK(w.rows == 1 && x.cols == int64_t{n_heads} * head_dim,
           "cpu backend: rope: " + std::to_string(x.cols) + " columns are not " +
               std::to_string(n_heads) + " heads of the norm's " + std::to_string(head_dim));
  if (x.stride == x.cols) {
    bx::rmsnorm(f32(x), head_dim, f32(w), eps, f32(x), head_dim, x.rows * n_heads, head_dim, pool_);
    return;
  }
  for (int h = 0; h < n_heads; ++h) {
    float* head = f32(x) + int64_t{h} * head_dim;
    bx::rmsnorm(head, x.stride, f32(w), eps, head, x.stride, x.rows, head_dim, pool_);
  }
}

void CpuBackend::rope(const RopeOp& op) {
  check_f32(op.q, "rope q");
  const bool has_k = op.k.data != nullptr;
  if (has_k) check_f32(op.k, "rope k");
  if (op.q_norm.data != nullptr) norm_heads(op.q, op.n_heads, op.q_norm, op.eps);
  if (has_k && op.k_norm.data != nullptr) norm_heads(op.k, op.n_kv_heads, op.k_norm, op.eps);
  BX_CHECK(!op.local_table || !local_rope_table_.cos.empty(),
           "cpu backend: rope asks for the local table, which was never set");
  const RopeTable& table = op.local_table ? local_rope_table_ : rope_table_;
  rope_inplace(f32(op.q), op.q.stride, batch_.positions.data(), op.q.rows, op.n_heads, table,
               pool_);
  if (has_k) {
    rope_inplace(f32(op.k), op.k.stride, batch_.positions.data(), op.k.rows, op.n_kv_heads, table,
                 pool_);
  }
}

void CpuBackend::kv_write(int layer, const Tensor& k, const Tensor& v) {
  kv_cache_write(kv_layer(layer), f32(k), k.stride, f32(v), v.stride, batch_.positions.data(),
                 batch_.block_tables.data(), k.rows);
}

void CpuBackend::attention(int layer, const Tensor& q, int n_heads, float scale, int window,
                           Tensor out) {
  AttentionArgs args;
  args.q = f32(q);
  args.q_stride = q.stride;
  args.out = f32(out);
  args.out_stride = out.stride;
  args.positions = batch_.positions.data();
  args.block_tables = batch_.block_tables.data();
  args.T = q.rows;
  args.n_heads = n_heads;
  args.scale = scale;
  args.window = window;
  args.kv = kv_layer(layer);
  bx::attention(args, pool_);
}

void CpuBackend::scale(Tensor x, float factor) {
  check_f32(x, "scale");
  pool_.parallel_for(x.rows, 1, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      float* row = f32(x) + m * x.stride;
      for (int64_t i = 0; i < x.cols; ++i) row[i] = row[i] * factor;
    }
  });
}

void CpuBackend::add(const Tensor& x, Tensor y) {
  check_f32(x, "add input");
  check_f32(y, "add output");
  BX_CHECK(x.rows == y.rows && x.cols == y.cols, "cpu backend: add of mismatched shapes");
  bx::add_inplace(f32(y), y.stride, f32(x), x.stride, y.rows, y.cols, pool_);
}

void CpuBackend::gather_logit_rows(const Tensor& x, Tensor out) {
  for (int64_t r = 0; r < out.rows; ++r) {
    std::memcpy(f32(out) + r * out.stride, f32(x) + batch_.logit_rows[r] * x.stride,
                static_cast<size_t>(x.cols) * sizeof(float));
  }
}

void CpuBackend::log_softmax(const Tensor& x, Tensor out) {
  bx::log_softmax(f32(x), x.stride, f32(out), out.stride, x.rows, x.cols, pool_);
}

void CpuBackend::copy_to_host(const Tensor& x, float* host) {
  for (int64_t r = 0; r < x.rows; ++r) {
    std::memcpy(host + r * x.cols, f32(x) + r * x.stride,
                static_cast<size_t>(x.cols) * sizeof(float));
  }
}

void CpuBackend::copy_from_host(const float* host, Tensor x) {
  check_f32(x, "copy_from_host destination");
  for (int64_t r = 0; r < x.rows; ++r) {
    std::memcpy(f32(x) + r * x.stride, host + r * x.cols,
                static_cast<size_t>(x.cols) * sizeof(float));
  }
}

int64_t CpuBackend::moe_scratch_bytes(int64_t T, int64_t D, int64_t F, int E, int k) const {
  return static_cast<int64_t>(moe_workspace_bytes(T, D, F, MoeRouting{E, k, false}));
}

void CpuBackend::moe(const MoeOp& op) {
  check_f32(op.x, "moe input");
  for (const Tensor* w : {&op.router, &op.gate, &op.up, &op.down}) {
    BX_CHECK(q8_0_tiled_.count(w->data) == 0,
             "cpu backend: moe weights must keep the GGUF row layout (prefer_gemm_layout moved one)");
  }
  check_f32(op.y, "moe output");
  const int64_t T = op.x.rows, D = op.x.cols;
  BX_CHECK(op.y.rows == T && op.y.cols == D && op.router.cols == D && op.gate.cols == D &&
               op.up.cols == D && op.router.rows > 0 && op.down.rows == op.router.rows * D,
           "cpu backend: moe shapes x [" + std::to_string(T) + ", " + std::to_string(D) + "], y [" +
               std::to_string(op.y.rows) + ", " + std::to_string(op.y.cols) + "], router [" +
               std::to_string(op.router.rows) + ", " + std::to_string(op.router.cols) +
               "], down [" + std::to_string(op.down.rows) + ", " + std::to_string(op.down.cols) +
               "]: expected y like x, router [E, D], " + "gate and up [E*F, D], down [E*D, F]");
  const auto as_matrix = [](const Tensor& t) {
    return MoeMatrix{t.data, t.dtype, t.rows, t.stride};
  };
  MoeArgs args;
  args.x = f32(op.x);
  args.x_stride = op.x.stride;
  args.y = f32(op.y);
  args.y_stride = op.y.stride;
  args.T = T;
  args.D = D;
  args.F = op.down.cols;
  args.routing = MoeRouting{static_cast<int>(op.router.rows), op.top_k, op.normalize};
  args.router = as_matrix(op.router);
  args.gate = as_matrix(op.gate);
  args.up = as_matrix(op.up);
  args.down = as_matrix(op.down);
  const size_t need = moe_workspace_bytes(T, D, args.F, args.routing);
  const size_t have = static_cast<size_t>(op.scratch.rows * op.scratch.cols) *
                      (op.scratch.dtype == DType::f32 ? 4 : 2);
  BX_CHECK(op.scratch.data != nullptr && have >= need,
           "cpu backend: moe scratch of " + std::to_string(have) + " bytes, expected at least " +
               std::to_string(need));
  args.workspace = op.scratch.data;
  args.order = order_;
  args.combine =
      order_ == ReductionOrder::canonical ? MoeCombine::rank_order : MoeCombine::arrival_order;
  bx::moe(args, pool_);
}

}  // namespace bx
