"""Mixture-of-Experts models against transformers (T2 for issue 18): tiny random
Qwen3MoeForCausalLM and MixtralForCausalLM, made by transformers and written by its save_pretrained
(per-expert tensors, as checkpoints hold them), loaded by bitexact as Hugging Face folders. The
engine's teacher-forced logprobs of random token sequences must lie within 2e-4 of transformers'
own forward pass in float64 (the bound of the dense models' float64 comparisons,
tests/support/reference_compare.h).

Weights are redrawn so that every part matters: matrices with standard deviation 1/sqrt(fan_in),
routers three times wider (tokens then spread over the experts), norms 1 + N(0, 0.1).
Negative control: the same transformers model routing each token to one expert fewer differs from
the engine far beyond the bound, so the comparison can fail."""

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
bitexact = pytest.importorskip("bitexact")

BOUND = 2e-4

TINY = dict(vocab_size=320, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=512, rms_norm_eps=1e-6,
            tie_word_embeddings=False)

FAMILIES = {
    "Qwen3MoeForCausalLM": (transformers.Qwen3MoeConfig,
                            dict(num_experts=8, num_experts_per_tok=3, moe_intermediate_size=24,
                                 intermediate_size=96, norm_topk_prob=True)),
    "Qwen3MoeForCausalLM-unnormalized": (transformers.Qwen3MoeConfig,
                                         dict(num_experts=6, num_experts_per_tok=2,
                                              moe_intermediate_size=32, intermediate_size=96,
                                              norm_topk_prob=False)),
    "MixtralForCausalLM": (transformers.MixtralConfig,
                           dict(num_local_experts=8, num_experts_per_tok=2, intermediate_size=40)),
}


def moe_folder(tmp_path, family):
    """The transformers model (float32 weights) and the folder save_pretrained wrote of it."""
    arch = family.split("-")[0]
    config_class, extra = FAMILIES[family]
    config = config_class(**TINY, **extra)
    config.architectures = [arch]
    torch.manual_seed(len(family))
    model = getattr(transformers, arch)(config).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith("embed_tokens.weight"):
                p.normal_(0.0, 1.0)
            else:  # [..., fan_in]: linear weights, stacked experts, routers
                std = 1.0 / math.sqrt(p.shape[-1])
                p.normal_(0.0, 3.0 * std if name.endswith("mlp.gate.weight") else std)
    folder = tmp_path / family
    model.save_pretrained(folder, safe_serialization=True)
    return model, folder


def sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 320, (int(torch.randint(8, 60, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


def reference_logprobs(model, seqs):
    """log p(token t | tokens < t) for t >= 1 of each sequence, by the model in float64 (eager
    attention and experts: the grouped-GEMM experts take no float64)."""
    model.double().eval()
    model.config._attn_implementation = "eager"
    model.config._experts_implementation = "eager"
    out = []
    with torch.no_grad():
        for s in seqs:
            logits = model(input_ids=torch.tensor([s])).logits[0].double()
            lp = torch.log_softmax(logits, -1)[:-1].gather(1, torch.tensor(s[1:]).view(-1, 1))
            out.append(lp.view(-1))
    return out


def engine_logprobs(folder, seqs):
    llm = bitexact.LLM(str(folder), backend="cpu")
    scored = llm.score([s[:1] for s in seqs], [s[1:] for s in seqs])
    return [torch.tensor(r.logprobs, dtype=torch.float64) for r in scored]


def worst(got, want):
    return max(float((g - w).abs().max()) for g, w in zip(got, want))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_logprobs_match_transformers_in_float64(tmp_path, family):
    model, folder = moe_folder(tmp_path, family)
    seqs = sequences(6, len(family))
    got = engine_logprobs(folder, seqs)
    err = worst(got, reference_logprobs(model, seqs))
    print(f"{family}: worst logprob difference {err:.3g}")
    assert err < BOUND


def test_routing_to_one_expert_fewer_differs(tmp_path):
    model, folder = moe_folder(tmp_path, "Qwen3MoeForCausalLM")
    seqs = sequences(4, 11)
    got = engine_logprobs(folder, seqs)
    assert worst(got, reference_logprobs(model, seqs)) < BOUND
    routers = [m for m in model.modules() if type(m).__name__.endswith("TopKRouter")]
    assert len(routers) == TINY["num_hidden_layers"]
    for r in routers:
        r.top_k -= 1
    assert worst(got, reference_logprobs(model, seqs)) > 100 * BOUND
