#!/usr/bin/env python3
"""Reference token ids for the SentencePiece-style tokenizer, from the `sentencepiece` library.

Reads the vocabulary of a GGUF file (tokens, scores, token types, special ids, add_space_prefix)
with the `gguf` package, rebuilds it as a sentencepiece BPE ModelProto (byte fallback, identity
normalizer, dummy prefix as in the GGUF, extra whitespace kept), encodes a generated corpus and
writes one JSON object per line: {"text": ..., "ids": [...]} (ids without BOS).

tests/unit/tokenizer_test.cpp requires SpmTokenizer::encode to give exactly these ids.

    python3 -m venv /tmp/venv-tok
    /tmp/venv-tok/bin/pip install sentencepiece gguf protobuf numpy
    /tmp/venv-tok/bin/python tests/ref/make_spm_fixture.py \
        ../shared/models/stories260K.gguf tests/data/spm_stories260k_fixture.jsonl

The corpus is generated from a fixed seed, so a rerun writes the same file.
"""

import argparse
import json
import random
import sys

import gguf
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb


def field_scalar(reader, key, default):
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.parts[field.data[0]][0]


def read_vocab(path):
    reader = gguf.GGUFReader(path)
    model = bytes(reader.fields["tokenizer.ggml.model"].parts[-1]).decode()
    if model != "llama":
        sys.exit(f"{path}: tokenizer.ggml.model is {model!r}; expected 'llama'")
    tf = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(tf.parts[i]).decode("utf-8") for i in tf.data]
    n = len(tokens)
    sf = reader.fields.get("tokenizer.ggml.scores")
    scores = [float(sf.parts[i][0]) for i in sf.data] if sf else [0.0] * n
    yf = reader.fields.get("tokenizer.ggml.token_type")
    types = [int(yf.parts[i][0]) for i in yf.data] if yf else [1] * n

    def special(key):
        v = int(field_scalar(reader, key, -1))
        return -1 if v in (-1, 0xFFFFFFFF) else v

    return {
        "tokens": tokens,
        "scores": scores,
        "types": types,
        "unk": special("tokenizer.ggml.unknown_token_id"),
        "bos": special("tokenizer.ggml.bos_token_id"),
        "eos": special("tokenizer.ggml.eos_token_id"),
        "add_space_prefix": bool(field_scalar(reader, "tokenizer.ggml.add_space_prefix", True)),
    }


def build_processor(vocab):
    m = pb.ModelProto()
    # GGUF token types use sentencepiece's numbering: 1 normal, 2 unknown, 3 control,
    # 4 user defined, 5 unused, 6 byte.
    for text, score, kind in zip(vocab["tokens"], vocab["scores"], vocab["types"]):
        piece = m.pieces.add()
        piece.piece = text
        piece.score = score
        piece.type = kind
    ts = m.trainer_spec
    ts.model_type = pb.TrainerSpec.BPE
    ts.vocab_size = len(vocab["tokens"])
    ts.byte_fallback = True
    ts.unk_id = vocab["unk"]
    ts.bos_id = vocab["bos"]
    ts.eos_id = vocab["eos"]
    ts.pad_id = -1
    for key, id_ in (("unk_piece", vocab["unk"]), ("bos_piece", vocab["bos"]),
                     ("eos_piece", vocab["eos"])):
        if id_ >= 0:
            setattr(ts, key, vocab["tokens"][id_])
    ns = m.normalizer_spec
    ns.name = "identity"  # no precompiled charsmap: text is not normalized
    ns.precompiled_charsmap = b""
    ns.add_dummy_prefix = vocab["add_space_prefix"]
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    return spm.SentencePieceProcessor(model_proto=m.SerializeToString())


HANDWRITTEN = [
    "",
    " ",
    "  ",
    "     ",
    "a",
    "Hello world",
    "Hello  world",
    " Hello world",
    "Hello world ",
    "  leading and trailing  ",
    "Once upon a time, there was a little girl named Lily.",
    "Lily and Timmy were happy. They played with the big ball.",
    "\"Can I play?\" she asked. Her mom said, \"Yes!\"",
    "line one\nline two",
    "\n",
    "\n\n\n",
    "ends with newline\n",
    "\nstarts with newline",
    "windows\r\nline\r\nendings\r\n",
    "\r",
    "tab\tseparated\tvalues",
    "\t\tindented",
    "mixed \t \n \r\n whitespace",
    "café naïve résumé",
    "jalapeño piñata",
    "Ærøskøbing Øresund",
    "Größe Straße",
    "français: où est la bibliothèque ?",
    "日本語のテキスト",
    "中文字符测试",
    "한국어 텍스트",
    "Привет, мир!",
    "Γειά σου Κόσμε",
    "שלום עולם",
    "مرحبا بالعالم",
    "हिन्दी",
    "ไทย",
    "emoji 😀 here",
    "😀😃😄😁",
    "👍🏽",
    "👨‍👩‍👧‍👦 family",
    "🏳️‍🌈 flag",
    "🇫🇷🇯🇵",
    "❤️",
    "e\u0301 combining acute",
    "“curly quotes” and ‘single’ ones",
    "em—dash and en–dash…",
    "price: 5€ or $5 or £5",
    "™ ® ©",
    "non\u00a0breaking\u00a0space",
    "hair\u200aspace",
    "zero\u200bwidth",
    "\u2581already a marker",
    "▁▁",
    "<s> </s> <unk>",
    "<0x41> is not a byte token in text",
    "1234567890",
    "3.14159 2.71828",
    "a-b_c/d\\e|f~g",
    "[brackets] {braces} (parens) <angles>",
    "`code` *stars* %percent &amp;",
    "x" * 300,
    "the " * 100,
    "\u0001\u0002 control \u007f chars",
    "\u0000nul inside\u0000",
    "\U0010FFFF max code point",
    "\uFFFD replacement char",
    "\uFEFF byte order mark",
    # Runs of one letter: the same token can merge at overlapping places, so only the
    # leftmost-first rule decides (e.g. "lll" -> "ll" "l", not "l" "ll").
    "lll",
    "llll",
    "lllll",
    "ooo",
    "oooooo",
    "ppp",
    "eee",
    "sss ttt",
    "Lilly",
    "balllll",
]

# Pools the random strings draw from.
ASCII_WORDS = (
    "the a to and was he she they it her his Lily Tim Timmy Ben Sue mom dad happy sad big "
    "little play played playing said saw want wanted friend friends day time once upon there "
    "named dog cat ball tree park sun toy red blue very so but for with on in of up down"
).split()
ACCENTED = list("éèêëàâäôöùûüçñøåæœßÉÀÇÑáíóúý")
CJK = list("日本語中文字符测试漢字かなカナ한국어")
EMOJI = ["😀", "🎉", "🐶", "🌍", "🚀", "👍🏽", "👨‍👩‍👧", "❤️", "🇺🇸", "🧑‍💻"]
PUNCT = list(".,!?;:'\"-()[]{}<>/\\|@#$%^&*_+=~`") + ["“", "”", "’", "—", "–", "…"]
WHITESPACE = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\u00a0", "\u200a"]


def random_string(rng):
    kind = rng.randrange(6)
    n = rng.randint(1, 24)
    parts = []
    for _ in range(n):
        r = rng.random()
        if kind == 0 or r < 0.45:
            parts.append(rng.choice(ASCII_WORDS))
        elif r < 0.55:
            parts.append(rng.choice(ACCENTED) * rng.randint(1, 2) + rng.choice(ASCII_WORDS))
        elif r < 0.63:
            parts.append("".join(rng.choice(CJK) for _ in range(rng.randint(1, 5))))
        elif r < 0.70:
            parts.append(rng.choice(EMOJI))
        elif r < 0.80:
            parts.append(rng.choice(PUNCT))
        elif r < 0.87:
            parts.append(chr(rng.randint(0x20, 0x7E)))
        elif r < 0.90:
            parts.append(rng.choice("lopestrm") * rng.randint(2, 7))
        elif r < 0.93:
            # any scalar value except surrogates
            cp = rng.randint(0xA0, 0x10FFFF)
            while 0xD800 <= cp <= 0xDFFF:
                cp = rng.randint(0xA0, 0x10FFFF)
            parts.append(chr(cp))
        else:
            parts.append(str(rng.randint(0, 100000)))
        parts.append(rng.choice(WHITESPACE) if rng.random() < 0.25 else " ")
    text = "".join(parts)
    if kind == 1:
        text = text.strip()
    elif kind == 2:
        text = rng.choice(WHITESPACE) + text
    return text


def corpus(n_random, seed):
    rng = random.Random(seed)
    texts = list(HANDWRITTEN)
    for _ in range(n_random):
        texts.append(random_string(rng))
    # A few long ones, so the merge queue has real work.
    for _ in range(5):
        texts.append("".join(random_string(rng) for _ in range(20)))
    return texts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("gguf_path")
    parser.add_argument("out_path")
    parser.add_argument("--random", type=int, default=500, help="random strings to add")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()

    vocab = read_vocab(args.gguf_path)
    sp = build_processor(vocab)
    texts = corpus(args.random, args.seed)
    with open(args.out_path, "w", encoding="utf-8", newline="\n") as out:
        for text in texts:
            ids = sp.encode(text, out_type=int)
            # The C++ test also requires decode(ids) == text with "▁" read as a space (a literal
            # "▁" encodes like a space), with and without a BOS in front; check sentencepiece
            # agrees, so that expectation is sentencepiece's too.
            expected = text.replace("\u2581", " ")
            for prefix in ([], [vocab["bos"]] if vocab["bos"] >= 0 else []):
                if sp.decode(prefix + ids) != expected:
                    sys.exit(f"sentencepiece decode({prefix + ids}) = {sp.decode(prefix + ids)!r}, "
                             f"not {expected!r}")
            out.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=True) + "\n")
    print(f"wrote {len(texts)} strings to {args.out_path} (sentencepiece {spm.__version__})")


if __name__ == "__main__":
    main()
