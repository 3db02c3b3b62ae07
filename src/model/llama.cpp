#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace bx {

LlamaModel::LlamaModel(const ModelConfig& config, LlamaWeights weights, Backend& backend,
                       int max_batch_tokens, int max_logit_rows)
    : config_(config),
      weights_(std::move(weights)),
      backend_(backend),
      max_batch_tokens_(max_batch_tokens),
      max_logit_rows_(max_logit_rows),
      graphs_(backend.capabilities().graph_capture) {
  BX_CHECK(max_batch_tokens > 0, "max batch tokens must be positive");
  BX_CHECK(max_logit_rows > 0, "max logit rows must be positive");
  for (const LlamaLayerWeights& w : weights_.layers) {
    BX_CHECK(!config_.qkv_bias || (w.bq.data && w.bk.data && w.bv.data),
             "model: the config asks for q/k/v biases but a layer has none");
    BX_CHECK(!config_.output_bias || w.bo.data,
             "model: the config asks for an output bias but a layer has none");
    BX_CHECK(!config_.qk_norm || (w.q_norm.data && w.k_norm.data),
             "model: the config asks for q/k norms but a layer has none");
    BX_CHECK(!config_.post_norms || (w.post_attn_norm.data && w.post_ffn_norm.data),
             "model: the config asks for post-norms but a layer has none");
    BX_CHECK(config_.is_moe()
                 ? w.router.data && w.expert_gate.data && w.expert_up.data && w.expert_down.data
                 : w.w_gate.data && w.w_up.data && w.w_down.data,
             config_.is_moe() ? "model: the config asks for experts but a layer has none"
                              : "model: a layer has no MLP weights");
  }
  if (config_.is_moe()) {
    moe_ = backend_.capabilities().moe;
    BX_CHECK(moe_ != nullptr, "model: backend " + backend_.name() +
                                  " cannot run Mixture-of-Experts layers (" + config_.architecture +
                                  "): use --backend cpu");
  }
  const int64_t T = max_batch_tokens;
  x_ = backend_.alloc(DType::f32, T, config_.dim);
  h_ = backend_.alloc(DType::f32, T, config_.dim);
  q_ = backend_.alloc(DType::f32, T, config_.q_dim());
  k_ = backend_.alloc(DType::f32, T, config_.kv_dim());
  v_ = backend_.alloc(DType::f32, T, config_.kv_dim());
  attn_ = backend_.alloc(DType::f32, T, config_.q_dim());
  if (moe_ != nullptr) {
    const int64_t bytes = moe_->moe_scratch_bytes(T, config_.dim, config_.expert_ffn_dim,
                                                  config_.n_experts, config_.n_experts_used);
    mlp_scratch_ = backend_.alloc(DType::f32, 1, (bytes + 3) / 4);
  } else {
    act_ = backend_.alloc(backend_.gemm_input_dtype(), T, config_.ffn_dim);
    mlp_scratch_ = backend_.alloc(DType::f32, T, 2 * int64_t{config_.ffn_dim});
  }
  final_rows_ = backend_.alloc(DType::f32, max_logit_rows, config_.dim);
  logits_ = backend_.alloc(DType::f32, max_logit_rows, config_.vocab_size);
  logprobs_ = backend_.alloc(DType::f32, max_logit_rows, config_.vocab_size);
}

namespace {

void validate_batch(const ForwardBatch& batch, const ModelConfig& config, int max_tokens,
                    int max_rows) {
  const size_t T = batch.tokens.size();
  BX_CHECK(T > 0, "forward: the batch has no tokens");
  BX_CHECK(T <= static_cast<size_t>(max_tokens), "forward: " + std::to_string(T) +
                                                     " tokens exceed max batch tokens " +
                                                     std::to_string(max_tokens));
  BX_CHECK(batch.positions.size() == T && batch.block_tables.size() == T,
           "forward: tokens, positions and block tables must have one entry per token");
  BX_CHECK(batch.logit_rows.size() <= static_cast<size_t>(max_rows),
           "forward: " + std::to_string(batch.logit_rows.size()) + " logit rows exceed the limit " +
               std::to_string(max_rows));
  for (size_t t = 0; t < T; ++t) {
    BX_CHECK(batch.tokens[t] >= 0 && batch.tokens[t] < config.vocab_size,
             "forward: token id " + std::to_string(batch.tokens[t]) +
                 " is outside the vocabulary [0, " + std::to_string(config.vocab_size) + ")");
    BX_CHECK(batch.positions[t] >= 0 && batch.positions[t] < config.context_length,
             "forward: position " + std::to_string(batch.positions[t]) +
                 " is outside the context [0, " + std::to_string(config.context_length) + ")");
  }
  for (int32_t row : batch.logit_rows) {
    BX_CHECK(row >= 0 && static_cast<size_t>(row) < T,
             "forward: logit row " + std::to_string(row) + " is not a token of the batch");
  }
  BX_CHECK(batch.fillers == 0 || (batch.fillers > 0 && static_cast<size_t>(batch.fillers) < T &&
                                  batch.logit_rows.size() == T),
           "forward: " + std::to_string(batch.fillers) + " filler tokens in a batch of " +
               std::to_string(T) + "; expected fewer than T, in a decode step (every token a row)");
  BX_CHECK(batch.table_offsets.empty() || batch.table_offsets.size() == T,
           "forward: the table offsets must be empty or one per token");
}

}  // namespace

void LlamaModel::forward(const ForwardBatch& batch, float* logits, float* logprobs) {
  LogitOutputs out;
  out.logits = logits;
  out.logprobs = logprobs;
  forward(batch, out);
}

int LlamaModel::decode_bucket(int rows) const {
  if (!graphs_.active() || observer_ != nullptr || scratch_block_[0] < 0 || rows <= 0 ||
      rows > kMaxReplayRows) {
    return 0;
  }
  const int bucket = DecodeGraphs::bucket(rows);
  return bucket <= max_batch_tokens_ && bucket <= max_logit_rows_ ? bucket : 0;
}

// Embedding, layers, final norm, output projection and log-softmax of T tokens and R logit rows
// (begin_batch done): device work only, nothing waits for the host.
void LlamaModel::run_ops(int64_t T, int64_t R) {
  const float eps = config_.rms_eps;
  const float scale = config_.attention_scale_or_default();
  Backend& be = backend_;

  Tensor x = x_.rows_view(0, T);  // the residual stream
  Tensor h = h_.rows_view(0, T);
  Tensor q = q_.rows_view(0, T), k = k_.rows_view(0, T), v = v_.rows_view(0, T);
  Tensor attn = attn_.rows_view(0, T);
  Tensor act = moe_ ? act_ : act_.rows_view(0, T);
  Tensor mlp_scratch = moe_ ? mlp_scratch_ : mlp_scratch_.rows_view(0, T);

  be.embed(weights_.token_embd, x);
  if (config_.embed_scale != 1.0f) be.scale(x, config_.embed_scale);
  observe("embed", -1, x);
  for (const LlamaLayerWeights& w : weights_.layers) {
    const int layer = static_cast<int>(&w - weights_.layers.data());
    // x += attention(rope(norm(x) Wq), cache[rope(norm(x) Wk), norm(x) Wv]) Wo
    be.rmsnorm(x, w.attn_norm, eps, h);
    observe("attn_norm", layer, h);
    const Tensor qkv_weights[] = {w.wq, w.wk, w.wv};
    const Tensor qkv[] = {q, k, v};
    const Tensor qkv_bias[] = {w.bq, w.bk, w.bv};           // empty unless config.qkv_bias
    be.gemm(GemmOp::parts(h, qkv_weights, qkv, qkv_bias));  // q = h Wq^T (+ bq), k, v likewise
    observe("q", layer, q);
    observe("k", layer, k);
    observe("v", layer, v);
    // q[t,h] = rope(rmsnorm(q[t,h]) * q_norm), k likewise (the norms only if qk_norm)
    const bool windowed = config_.is_windowed(layer);
    RopeOp rope;
    rope.local_table = windowed;
    rope.q = q;
    rope.n_heads = config_.n_heads;
    rope.k = k;
    rope.n_kv_heads = config_.n_kv_heads;
    if (config_.qk_norm) {
      rope.q_norm = w.q_norm;
      rope.k_norm = w.k_norm;
      rope.eps = eps;
    }
    be.rope(rope);
    observe("q_rope", layer, q);
    observe("k_rope", layer, k);
    be.kv_write(layer, k, v);
    be.attention(layer, q, config_.n_heads, scale, windowed ? config_.sliding_window : 0, attn);
    observe("attn", layer, attn);
    if (config_.post_norms) {  // x += rmsnorm(attn Wo^T (+ bo)) * post_attn_norm
      be.gemm(GemmOp::projection(attn, w.wo, h, w.bo));
      be.rmsnorm(h, w.post_attn_norm, eps, h);
      be.add(h, x);
    } else {
      be.gemm(GemmOp::residual(attn, w.wo, x, h, w.bo));  // x += attn Wo^T (+ bo); h: scratch
    }
    observe("attn_residual", layer, x);
    be.rmsnorm(x, w.ffn_norm, eps, h);
    observe("ffn_norm", layer, h);
    if (moe_ != nullptr) {
      // x += sum over the token's top-k experts e, in rank order, of p_e * swiglu_e(norm(x))
      MoeOp op;
      op.x = h;
      op.y = x;
      op.router = w.router;
      op.gate = w.expert_gate;
      op.up = w.expert_up;
      op.down = w.expert_down;
      op.top_k = config_.n_experts_used;
      op.normalize = config_.norm_topk_prob;
      op.scratch = mlp_scratch;
      moe_->moe(op);
      observe("ffn_residual", layer, x);
      continue;
    }
    // x += (silu(norm(x) Wg) * (norm(x) Wu)) Wd   (gelu_tanh for silu: Gemma 3)
    if (config_.gelu_tanh_mlp) {
      be.gemm(GemmOp::geglu(h, w.w_gate, w.w_up, act, mlp_scratch));  // gelu_tanh(h Wg^T) * h Wu^T
    } else {
      be.gemm(GemmOp::swiglu(h, w.w_gate, w.w_up, act, mlp_scratch));  // F.silu(h Wg^T) * h Wu^T
    }
    observe("ffn_act", layer, act);
    if (config_.post_norms) {  // x += rmsnorm(act Wd^T) * post_ffn_norm
      be.gemm(GemmOp::projection(act, w.w_down, h));
      be.rmsnorm(h, w.post_ffn_norm, eps, h);
      be.add(h, x);
    } else {
      be.gemm(GemmOp::residual(act, w.w_down, x, h));  // x += act Wd^T; h: scratch
    }
    observe("ffn_residual", layer, x);
  }
  if (R == 0) return;
  Tensor rows = final_rows_.rows_view(0, R);
  Tensor row_logits = logits_.rows_view(0, R);
  be.gather_logit_rows(x, rows);
  be.rmsnorm(rows, weights_.output_norm, eps, rows);
  observe("final_norm", -1, rows);
  be.gemm(GemmOp::projection(rows, weights_.output, row_logits));
  observe("logits", -1, row_logits);
  be.log_softmax(row_logits, logprobs_.rows_view(0, R));
  observe("logprobs", -1, logprobs_.rows_view(0, R));
}

void LlamaModel::forward(const ForwardBatch& batch, const LogitOutputs& out) {
  validate_batch(batch, config_, max_batch_tokens_, max_logit_rows_);
  const int64_t T = static_cast<int64_t>(batch.tokens.size());
  int64_t R = static_cast<int64_t>(batch.logit_rows.size());
  BX_CHECK(out.full.empty() || out.full.size() == static_cast<size_t>(R - batch.fillers),
           "forward: the full-row flags must be empty or one per logit row");
  BX_CHECK((out.greedy_ids == nullptr) == (out.greedy_logprobs == nullptr),
           "forward: greedy ids and greedy logprobs go together");
  Backend& be = backend_;

  be.begin_batch(batch);
  if (observer_ == nullptr && graphs_.active() && DecodeGraphs::is_bucket_step(batch)) {
    graphs_.run(static_cast<int>(T), [&] { run_ops(T, T); });
  } else {
    if (observer_ != nullptr) observer_->begin_forward(batch, be);
    run_ops(T, R);
    if (observer_ != nullptr) observer_->end_forward();
  }
  R -= batch.fillers;  // the rows returned
  if (R == 0) return;
  Tensor row_logits = logits_.rows_view(0, R);
  Tensor row_logprobs = logprobs_.rows_view(0, R);
  if (out.greedy_ids != nullptr && !out.sampling.empty()) {
    sample_rows(be, row_logits, row_logprobs, out.sampling, out.token_indices, out.greedy_ids,
                out.greedy_logprobs);
  } else if (out.greedy_ids != nullptr) {
    greedy_rows(be, row_logits, row_logprobs, out.greedy_ids, out.greedy_logprobs);
  }
  // Full rows, in runs of consecutive rows: one copy per run.
  const auto V = static_cast<size_t>(config_.vocab_size);
  for (int64_t first = 0; first < R;) {
    const auto wanted = [&](int64_t r) { return out.full.empty() || out.full[r] != 0; };
    if (!wanted(first)) {
      ++first;
      continue;
    }
    int64_t end = first + 1;
    while (end < R && wanted(end)) ++end;
    const size_t offset = static_cast<size_t>(first) * V;
    if (out.logits != nullptr) {
      be.copy_to_host(row_logits.rows_view(first, end - first), out.logits + offset);
    }
    if (out.logprobs != nullptr) {
      be.copy_to_host(row_logprobs.rows_view(first, end - first), out.logprobs + offset);
    }
    first = end;
  }
}

}  // namespace bx
