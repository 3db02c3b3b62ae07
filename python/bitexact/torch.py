"""bitexact.torch: the trainer's side. bitexact's kernels as PyTorch ops, so a PyTorch model
computes the engine's logprobs bit for bit (INVARIANCE.md promise 7) and still trains.

    import bitexact.torch as bxt
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    bxt.patch(model)                                    # in place, no copy of the weights
    lp = bxt.token_logprobs(model, input_ids, targets, attention_mask=mask)   # [B, L]
    (-(lp * advantages)).sum().backward()               # gradients through every op

The same bits as the engine serving that folder (`bitexact.LLM`, `bitexact score`) on the same
device class: the CPU ops for CPU tensors, the CUDA ops for CUDA tensors. A GGUF file the engine
serves loads with from_gguf (its weights dequantized exactly, in the engine's RoPE layout).
"""

from ._torch_gguf import from_gguf
from ._torch_ops import (attention, attention_reference, embedding, linear, rmsnorm,
                         rmsnorm_reference, rope, rope_tables, silu_mul, target_logprobs)
from ._torch_patch import SUPPORTED, BatchLayout, make_layout, patch, token_logprobs

__all__ = [
    "SUPPORTED", "BatchLayout", "attention", "attention_reference", "embedding", "from_gguf",
    "linear", "make_layout", "patch", "rmsnorm", "rmsnorm_reference", "rope", "rope_tables",
    "silu_mul", "target_logprobs", "token_logprobs",
]
