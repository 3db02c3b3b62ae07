"""The verifiable tasks of the GRPO benchmark: prompts generated from a seed, rewards computed in
code from the completion, exact.

Arithmetic (a model with a tokenizer): "What is a + b?" with a, b in [0, 20]; reward 1 when the
last integer in the completion's text is a + b, else 0 (a model that restates the question
before answering is not penalised for the operands).
TokenParity (a model without a tokenizer, e.g. a random-init folder): the prompt is random token
ids; reward = the fraction of completion tokens whose id is even. Learnable by any policy (it
moves probability mass between token classes) and exact.
"""

import random
import re
from dataclasses import dataclass
from typing import List, Optional

_INT = re.compile(r"-?\d+")


@dataclass
class Problem:
    prompt_ids: List[int]
    answer: Optional[int]  # Arithmetic: the exact sum; TokenParity: None


class Arithmetic:
    name = "arithmetic"

    def __init__(self, tokenizer, max_operand: int = 20):
        self.tokenizer = tokenizer
        self.max_operand = max_operand

    def problems(self, rng: random.Random, count: int) -> List[Problem]:
        out = []
        for _ in range(count):
            a, b = rng.randint(0, self.max_operand), rng.randint(0, self.max_operand)
            messages = [{"role": "user",
                         "content": f"What is {a} + {b}? Answer with the number only."}]
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                     tokenize=True)
            out.append(Problem(prompt_ids=list(ids), answer=a + b))
        return out

    def reward(self, problem: Problem, completion_ids: List[int]) -> float:
        found = _INT.findall(self.tokenizer.decode(completion_ids))
        return 1.0 if found and int(found[-1]) == problem.answer else 0.0


class TokenParity:
    name = "token_parity"

    def __init__(self, vocab_size: int, prompt_length: int = 8):
        self.vocab_size = vocab_size
        self.prompt_length = prompt_length

    def problems(self, rng: random.Random, count: int) -> List[Problem]:
        return [Problem(prompt_ids=[rng.randrange(1, self.vocab_size)
                                    for _ in range(self.prompt_length)], answer=None)
                for _ in range(count)]

    def reward(self, problem: Problem, completion_ids: List[int]) -> float:
        if not completion_ids:
            return 0.0
        return sum(1 for t in completion_ids if t % 2 == 0) / len(completion_ids)
