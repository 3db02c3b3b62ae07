"""What LLM.generate, chat, score and stream return."""

from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class CompletionOutput:
    """One sample. logprobs are the engine's float32 values (exact as Python floats):
    log_softmax of the model's unmodified logits at each chosen token. top_logprobs[i] is a
    list of (token_id, logprob), most likely first, when SamplingParams.logprobs was given.
    bitexact_hash is the server's hash of the ids and logprob bits (response_hash.h).
    finish_reason: "stop" (EOS, a stop id or string), "length", "cancelled", or "abort" (ended by
    update_weights(in_flight="abort")). weights_version: the weights it was computed with."""

    index: int
    token_ids: List[int]
    logprobs: List[float]
    text: str
    finish_reason: str
    stop_reason: Optional[str]
    bitexact_hash: str
    weights_version: int
    top_logprobs: List[List[tuple]] = field(default_factory=list)


@dataclass
class RequestOutput:
    prompt: Optional[str]
    prompt_token_ids: List[int]
    outputs: List[CompletionOutput]
    prompt_logprobs: Optional[List[float]]  # [len(prompt_token_ids) - 1] when asked
    system_fingerprint: str  # the engine's at the weights_version the request ran on


@dataclass
class ScoreOutput:
    """Teacher forcing: logprobs[i] is the logprob of continuation_ids[i] after the prompt and
    the ids before it, equal bit for bit to what generation reported for the same tokens."""

    logprobs: List[float]
    prompt_logprobs: Optional[List[float]]
    bitexact_hash: str
    weights_version: int


@dataclass
class StreamEvent:
    """One streamed token (kind "token": token_id, logprob, text it completes) or the end of a
    sample (kind "finished": finish_reason, stop_reason, any text held back until then)."""

    kind: str
    sample: int
    text: str
    token_id: Optional[int] = None
    logprob: Optional[float] = None
    top_logprobs: Optional[List[tuple]] = None
    finish_reason: Optional[str] = None
    stop_reason: Optional[str] = None
