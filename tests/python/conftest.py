"""Shared fixtures of the Python package tests: the models, the CLI binary, bit comparisons."""

import os
import struct
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STORIES = ROOT.parent / "shared" / "models" / "stories260K.gguf"
SMOLLM = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def cli_binary() -> Path:
    return Path(os.environ.get("BITEXACT_BIN", ROOT / "build" / "bitexact"))


def f32_bits(values):
    """The float32 bit patterns of values (Python floats holding float32 values)."""
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in values]


def same_bits(a, b) -> bool:
    return list(a.token_ids) == list(b.token_ids) and f32_bits(a.logprobs) == f32_bits(b.logprobs)


@pytest.fixture(scope="session")
def stories_path():
    if not STORIES.exists():
        pytest.skip(f"{STORIES} not found")
    return STORIES


@pytest.fixture(scope="session")
def smollm_path():
    if not SMOLLM.exists():
        pytest.skip(f"{SMOLLM} not found (scripts/get-default-model.sh)")
    return SMOLLM
