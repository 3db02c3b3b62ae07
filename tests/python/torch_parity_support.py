"""Helpers of the bitexact.torch parity tests (test_torch_parity.py on the CPU, test_torch_cuda.py
on the GPU): sequences sampled by bitexact.LLM, the same tokens as trainer batches (alone, right
padded, left padded, packed), and the check that the patched model's logprobs equal the engine's."""

import torch
import transformers

import bitexact
import bitexact.torch as bxt


def sample_sequences(llm, prompts, max_tokens, seeds):
    """[(prompt ids, completion ids, engine logprobs)] for each prompt, greedy and seeded t=1."""
    out = []
    params = [bitexact.SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)]
    params += [bitexact.SamplingParams(temperature=1.0, seed=s, max_tokens=max_tokens,
                                       ignore_eos=True) for s in seeds]
    for p in params:
        for prompt, result in zip(prompts, llm.generate(prompts, p)):
            sample = result.outputs[0] if hasattr(result, "outputs") else result
            prompt_ids = list(result.prompt_token_ids) if hasattr(result, "prompt_token_ids") else list(prompt)
            out.append((prompt_ids, list(sample.token_ids), torch.tensor(sample.logprobs, dtype=torch.float32)))
    return out


def trainer_batch(seqs, padding):
    """input_ids, targets and the slices of the generated tokens' logprobs, for `padding` in
    right, left (a [B, L] batch and attention_mask) or packed ([1, T] and cu_seqlens)."""
    rows = [p + c for p, c, _ in seqs]
    if padding == "packed":
        ids = torch.tensor([t for r in rows for t in r[:-1]])
        targets = torch.tensor([t for r in rows for t in r[1:]])
        lengths = torch.tensor([len(r) - 1 for r in rows])
        cu = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
        picks = [(0, slice(int(cu[i]) + len(p) - 1, int(cu[i + 1]))) for i, (p, _, _) in enumerate(seqs)]
        return dict(input_ids=ids.view(1, -1), cu_seqlens=cu), targets.view(1, -1), picks
    L = max(len(r) - 1 for r in rows)
    ids = torch.zeros(len(rows), L, dtype=torch.int64)
    targets = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    picks = []
    for i, (r, (p, _, _)) in enumerate(zip(rows, seqs)):
        n = len(r) - 1
        at = 0 if padding == "right" else L - n
        ids[i, at:at + n] = torch.tensor(r[:-1])
        targets[i, at:at + n] = torch.tensor(r[1:])
        mask[i, at:at + n] = 1
        picks.append((i, slice(at + len(p) - 1, at + n)))
    return dict(input_ids=ids, attention_mask=mask), targets, picks


def trainer_logprobs(model, seqs, padding, device):
    kwargs, targets, picks = trainer_batch(seqs, padding)
    kwargs = {k: v.to(device) for k, v in kwargs.items()}
    with torch.no_grad():
        lp = bxt.token_logprobs(model, targets=targets.to(device), **kwargs).cpu()
    return [lp[i, s] for i, s in picks]


def assert_parity(model, seqs, device):
    for padding in ("alone", "right", "left", "packed"):
        if padding == "alone":
            got = [trainer_logprobs(model, [s], "right", device)[0] for s in seqs]
        else:
            got = trainer_logprobs(model, seqs, padding, device)
        for (prompt, completion, want), g in zip(seqs, got):
            assert torch.equal(g, want), (padding, prompt, completion, (g - want).abs().max())


def unpatched_logprobs(model, seqs, device):
    out = []
    with torch.no_grad():
        for p, c, _ in seqs:
            ids = torch.tensor([p + c[:-1]], device=device)
            logits = model(input_ids=ids).logits[0].float()
            lp = torch.log_softmax(logits, -1)[len(p) - 1:].gather(1, torch.tensor(c, device=device).view(-1, 1))
            out.append(lp.view(-1).cpu())
    return out


TINY = dict(vocab_size=320, hidden_size=64, intermediate_size=136, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
            rms_norm_eps=1e-6, tie_word_embeddings=False, initializer_range=0.1)


def random_folder(tmp_path, arch, dtype=torch.float32, **extra):
    """A random `arch` model (transformers) saved as config.json + safetensors in `dtype`, and the
    model in that dtype: the engine loads exactly the values the model holds."""
    config_class = {"LlamaForCausalLM": transformers.LlamaConfig,
                    "Qwen2ForCausalLM": transformers.Qwen2Config,
                    "Qwen3ForCausalLM": transformers.Qwen3Config}[arch]
    config = config_class(**{**TINY, **extra})
    config.architectures = [arch]
    torch.manual_seed(len(arch))
    model = getattr(transformers, arch)(config).float()
    with torch.no_grad():  # norms away from 1, biases away from 0, so every weight matters
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("norm.weight") else 0.0))
    model.to(dtype)
    folder = tmp_path / arch
    model.save_pretrained(folder, safe_serialization=True)
    return folder, model


def prompts_of(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, 320, (int(torch.randint(1, 40, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]
