"""bitexact.LLM: a model and its engine in this process."""

import json
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import _core
from ._outputs import CompletionOutput, RequestOutput, ScoreOutput, StreamEvent
from ._params import SamplingParams

Prompt = Union[str, Sequence[int]]


class Tokenizer:
    """The model's tokenizer (GGUF vocabulary or tokenizer.json) and chat template."""

    def __init__(self, core):
        self._core = core

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        """Token ids of text; special-token strings in it are recognised. add_special_tokens
        adds BOS (as `bitexact generate` does for a prompt)."""
        return self._core.encode(text, add_special_tokens)

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._core.decode(list(token_ids), skip_special_tokens)

    @property
    def bos_token_id(self) -> int:
        return self._core.bos_token_id

    @property
    def eos_token_ids(self) -> List[int]:
        return list(self._core.eos_token_ids)

    def apply_chat_template(self, messages, add_generation_prompt: bool = True,
                            tokenize: bool = False, **kwargs):
        """The prompt a conversation becomes under the model's own template, as transformers'
        apply_chat_template renders it; token ids (no BOS added) with tokenize=True. kwargs go
        to the template (e.g. tools=...)."""
        text = self._core.apply_chat_template(
            json.dumps(list(messages)), add_generation_prompt,
            json.dumps(kwargs) if kwargs else "")
        return self.encode(text, add_special_tokens=False) if tokenize else text


class Stream:
    """An iterator of StreamEvent for one request (all its samples), in the order the engine
    made them. cancel() ends it: the engine frees its KV blocks at its next step and finishes
    each unfinished sample with finish_reason "cancelled". Leaving a `with` block cancels."""

    def __init__(self, core_stream, prompt_ids):
        self._stream = core_stream
        self.prompt_token_ids = prompt_ids

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        e = self._stream.next_event()
        if e is None:
            raise StopIteration
        return StreamEvent(**e)

    def cancel(self) -> None:
        self._stream.cancel()

    @property
    def weights_version(self) -> int:
        return self._stream.weights_version

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()
        return False


def _tensor_pairs(named_tensors) -> List[Tuple[str, object]]:
    """(name, tensor) pairs as the extension takes them: torch tensors detached (DLPack refuses
    tensors that require grad) and their CUDA work finished; a dict works too."""
    items = named_tensors.items() if hasattr(named_tensors, "items") else named_tensors
    pairs = []
    for name, tensor in items:
        if hasattr(tensor, "detach"):
            tensor = tensor.detach()
            if getattr(tensor, "is_cuda", False):
                import torch  # only reached with torch tensors

                torch.cuda.current_stream(tensor.device).synchronize()
        pairs.append((name, tensor))
    return pairs


class LLM:
    """A model loaded into a backend with an engine running on its own thread.

    model: a GGUF file, a Hugging Face folder, or random:NAME[:SEED].
    backend: "cpu" or "cuda" (a build with nvcc). mode: "invariant" or "fast" (a comparison mode
    whose bits depend on the batch; it has its own fingerprint).
    Engine flags (none changes an output bit): threads (0 = all cores), max_batch_tokens (512),
    max_seqs (64), prefill_chunk (0 = max_batch_tokens), kv_block_size (16), kv_cache_tokens
    (0 = automatic), prefix_cache (True).
    """

    def __init__(self, model: str, backend: str = "cpu", mode: str = "invariant", *,
                 threads: int = 0, max_batch_tokens: int = 512, max_seqs: int = 64,
                 prefill_chunk: int = 0, kv_block_size: int = 16, kv_cache_tokens: int = 0,
                 prefix_cache: bool = True):
        self._core = _core.Engine(
            model=str(model), backend=backend, mode=mode, threads=threads,
            max_batch_tokens=max_batch_tokens, max_seqs=max_seqs, prefill_chunk=prefill_chunk,
            kv_block_size=kv_block_size, kv_cache_tokens=kv_cache_tokens,
            prefix_cache=prefix_cache)
        self.tokenizer = Tokenizer(self._core) if self._core.has_tokenizer else None

    # ---- identity ----
    @property
    def fingerprint(self) -> str:
        """The system_fingerprint: weights, backend, dtypes, mode, kernel version, and the
        weights_version once the weights were updated."""
        return self._core.fingerprint

    @property
    def weights_version(self) -> int:
        """0 as loaded; each update_weights / load_weights adds one."""
        return self._core.weights_version

    # ---- generation ----
    def _prompt_ids(self, prompt: Prompt) -> List[int]:
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise ValueError("this model has no tokenizer; give prompts as token ids")
            return self.tokenizer.encode(prompt, add_special_tokens=True)
        return [int(t) for t in prompt]

    def _as_list(self, prompts) -> list:
        if isinstance(prompts, str):
            return [prompts]
        prompts = list(prompts)
        if prompts and isinstance(prompts[0], int):
            return [prompts]  # one prompt of token ids
        return prompts

    def generate(self, prompts: Union[Prompt, Iterable[Prompt]],
                 params: Optional[SamplingParams] = None) -> List[RequestOutput]:
        """Completes every prompt (text, which gets BOS as `bitexact generate` gives it, or token
        ids), all through the engine together. Every request is checked before any runs."""
        params = params or SamplingParams()
        prompts = self._as_list(prompts)
        ids = [self._prompt_ids(p) for p in prompts]
        results = self._core.generate([params._request(_core, p) for p in ids])
        return [self._request_output(p if isinstance(p, str) else None, i, samples,
                                     params.prompt_logprobs)
                for p, i, samples in zip(prompts, ids, results)]

    def _request_output(self, prompt, ids, samples, prompt_logprobs) -> RequestOutput:
        outputs = []
        for index, s in enumerate(samples):
            outputs.append(CompletionOutput(
                index=index, token_ids=list(s["token_ids"]), logprobs=list(s["logprobs"]),
                text=s["text"], finish_reason=s["finish_reason"], stop_reason=s["stop_reason"],
                bitexact_hash=s["bitexact_hash"], weights_version=s["weights_version"],
                top_logprobs=[list(t) for t in s["top_logprobs"]]))
        prompt_logprobs = list(samples[0]["prompt_logprobs"]) if prompt_logprobs else None
        return RequestOutput(prompt=prompt, prompt_token_ids=ids, outputs=outputs,
                             prompt_logprobs=prompt_logprobs,
                             system_fingerprint=samples[0]["system_fingerprint"])

    def stream(self, prompt: Prompt, params: Optional[SamplingParams] = None) -> Stream:
        """One prompt, streamed: an iterator of StreamEvent, with cancel()."""
        params = params or SamplingParams()
        ids = self._prompt_ids(prompt)
        return Stream(self._core.submit(params._request(_core, ids)), ids)

    def chat(self, messages, params: Optional[SamplingParams] = None,
             **template_kwargs) -> RequestOutput:
        """One conversation ([{"role", "content"}, ...]) through the model's chat template,
        the assistant's turn opened; or a list of conversations, all run together (returns a
        list)."""
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer; chat needs one")
        many = bool(messages) and isinstance(messages[0], (list, tuple))
        conversations = messages if many else [messages]
        prompts = [self.tokenizer.apply_chat_template(c, add_generation_prompt=True,
                                                      tokenize=True, **template_kwargs)
                   for c in conversations]
        outs = self.generate(prompts, params)
        return outs if many else outs[0]

    def score(self, prompt_ids, continuation_ids, prompt_logprobs: bool = False):
        """Logprobs of continuation_ids after prompt_ids by teacher forcing (one pair, or lists
        of them, all run together), equal bit for bit to generation's logprobs of the same
        tokens; prompt_logprobs adds those of prompt tokens 1.."""
        one = bool(prompt_ids) and isinstance(prompt_ids[0], int)
        prompts = [list(prompt_ids)] if one else [list(p) for p in prompt_ids]
        continuations = [list(continuation_ids)] if one else [list(c) for c in continuation_ids]
        results = self._core.score(prompts, continuations, prompt_logprobs)
        outs = [ScoreOutput(logprobs=list(r["logprobs"]),
                            prompt_logprobs=list(r["prompt_logprobs"]) if prompt_logprobs else None,
                            bitexact_hash=r["bitexact_hash"],
                            weights_version=r["weights_version"]) for r in results]
        return outs[0] if one else outs

    # ---- weights ----
    def update_weights(self, named_tensors, in_flight: str = "finish") -> int:
        """Replaces weights in place: (name, tensor) pairs or a dict. Names: Hugging Face names
        (model.layers.0.self_attn.q_proj.weight, ...) for every model, and a GGUF model's own
        tensor names (blk.0.attn_q.weight, ...); tensors: float32 or bfloat16, anything with
        DLPack or the buffer protocol (numpy, torch on the CPU or, with backend="cuda", on the
        GPU: then it never visits the host). Every name, shape and dtype is checked first: an
        error names the bad tensor and nothing changes.

        in_flight="finish": requests the engine is running end on the old weights first, and
        requests submitted meanwhile wait and run on the new ones; "abort": requests in flight
        end now with finish_reason "abort" (keeping their tokens, all from the old weights).
        Either way no sample mixes two weight versions, and the prefix cache is dropped.
        Returns the new weights_version (also in the fingerprint and every later output)."""
        return self._core.update_weights(_tensor_pairs(named_tensors), in_flight)

    def load_weights(self, path: str, in_flight: str = "finish") -> int:
        """update_weights from a safetensors file or a Hugging Face folder's checkpoint (F32 or
        BF16 tensors, Hugging Face or GGUF names as above)."""
        return self._core.load_weights(str(path), in_flight)

    def reset_prefix_cache(self) -> None:
        """Forgets the computed prompt blocks (they change no bit; this frees them)."""
        self._core.reset_prefix_cache()
