// Fast mode GEMM (gemm.h): cuBLAS with its default heuristics — the non-invariant baseline.
#include <cublas_v2.h>

#include <mutex>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"

namespace bx::cuda {
namespace {

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw Error(std::string(what) + ": " + cublasGetStatusName(status) + ": " +
                cublasGetStatusString(status));
  }
}

cublasHandle_t handle() {
  static std::once_flag created;
  static cublasHandle_t h = nullptr;
  std::call_once(created, [] { check_cublas(cublasCreate(&h), "cublasCreate"); });
  return h;
}

}  // namespace

void gemm_bf16_cublas(const GemmArgs& a, cudaStream_t stream) {
  BX_CHECK(!a.accumulate && a.n_parts == 0 && a.w_up == nullptr,
           "gemm_bf16_cublas: accumulate, output parts and the gated epilogue are not supported");
  BX_CHECK(a.M >= 0 && a.N >= 0 && a.K >= 0, "gemm_bf16_cublas: negative size");
  if (a.M == 0 || a.N == 0) return;
  cublasHandle_t h = handle();
  check_cublas(cublasSetStream(h, stream), "cublasSetStream");
  // Row-major y[M,N] is column-major y^T [N,M] = W[N,K] x^T: W is column-major [K,N] (op T),
  // x is column-major [K,M] (op N).
  const float alpha = 1.0f, beta = 0.0f;
  check_cublas(
      cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(a.N), static_cast<int>(a.M),
                   static_cast<int>(a.K), &alpha, a.w, CUDA_R_16BF, static_cast<int>(a.w_stride),
                   a.x, CUDA_R_16BF, static_cast<int>(a.x_stride), &beta, a.y, CUDA_R_32F,
                   static_cast<int>(a.y_stride), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx");
}

}  // namespace bx::cuda
