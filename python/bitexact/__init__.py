"""bitexact in Python: the C++ engine in-process, outputs bitwise identical whatever else runs.

    import bitexact
    llm = bitexact.LLM("models/SmolLM2-135M-Instruct.Q4_1.gguf")
    out = llm.generate(["The capital of France is"], bitexact.SamplingParams(temperature=0))
    print(out[0].outputs[0].text, out[0].outputs[0].bitexact_hash, llm.fingerprint)

The engine runs on its own thread (continuous batching over everything submitted, from any
number of Python threads); every call that waits for it releases the GIL. No Python runs in the
engine's path: this module only converts arguments and results.
"""

from ._params import SamplingParams
from ._outputs import CompletionOutput, RequestOutput, ScoreOutput, StreamEvent
from ._llm import LLM, Tokenizer

__all__ = [
    "LLM",
    "SamplingParams",
    "Tokenizer",
    "RequestOutput",
    "CompletionOutput",
    "ScoreOutput",
    "StreamEvent",
]
