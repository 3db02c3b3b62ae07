"""SamplingParams: the server's sampling fields (README, Serving), for LLM.generate / chat."""

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class SamplingParams:
    """How to generate. Defaults are the server's: temperature 1, seed 0 (so a request without
    a seed is still reproducible), 16 tokens.

    temperature: 0 is greedy. top_p in (0, 1], top_k (0 = off), min_p in [0, 1].
    seed: Philox key of the sampler (0 to 2**64 - 1); sample i of n uses a seed derived from it,
    so sample 0 equals the request with n = 1.
    max_tokens / min_tokens: generated tokens (EOS and stop ids are not chosen before min_tokens).
    stop: strings that end the text before them; stop_token_ids: ids that end generation.
    logprobs: the chosen token's logprob is always reported; logprobs=k (0..20) adds the k most
    likely alternatives of each position (top_logprobs is a synonym, as in the chat API).
    prompt_logprobs: also report the logprob of every prompt token after the first.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int = 0
    max_tokens: int = 16
    min_tokens: int = 0
    stop: Optional[List[str]] = None
    stop_token_ids: Optional[List[int]] = None
    ignore_eos: bool = False
    n: int = 1
    logprobs: Optional[int] = None
    top_logprobs: Optional[int] = None
    prompt_logprobs: bool = False

    def _top_count(self) -> int:
        if self.logprobs is not None and self.top_logprobs is not None and (
            self.logprobs != self.top_logprobs
        ):
            raise ValueError(
                f"logprobs is {self.logprobs} and top_logprobs {self.top_logprobs}; "
                "give one of them (they are the same setting)"
            )
        k = self.top_logprobs if self.top_logprobs is not None else self.logprobs
        return 0 if k is None else int(k)

    def _request(self, core, prompt_ids):
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if not 0 <= self.seed < 2**64:
            raise ValueError(f"seed is {self.seed}, expected 0 to 2**64 - 1")
        return core.Request(
            prompt=list(prompt_ids),
            temperature=float(self.temperature),
            top_p=float(self.top_p),
            top_k=int(self.top_k),
            min_p=float(self.min_p),
            seed=int(self.seed),
            max_tokens=int(self.max_tokens),
            min_tokens=int(self.min_tokens),
            stop=stop,
            stop_token_ids=list(self.stop_token_ids or []),
            ignore_eos=bool(self.ignore_eos),
            n=int(self.n),
            top_logprobs=self._top_count(),
            prompt_logprobs=bool(self.prompt_logprobs),
        )
