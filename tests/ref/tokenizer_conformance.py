#!/usr/bin/env python3
"""Reference ids for the tokenizer conformance test (tests/unit/tokenizer_conformance_test.cpp).

Writes into OUT_DIR:
  corpus.jsonl            one {"text": ...} a line: a deterministic corpus of >= 2,000 strings
                          (many scripts, NFC and NFD forms, combining marks, emoji with ZWJ
                          sequences and skin tones, whitespace runs, tabs, CRLF, code, digits
                          and long numbers, special-token strings inside text).
  features_byte_level/, features_metaspace/
                          two small tokenizers trained here that exercise the rest of the
                          supported pipeline: added tokens with lstrip / rstrip / single_word /
                          normalized, NFKC, Replace with a regex, Split with each behavior and
                          invert, Digits, ByteLevel with add_prefix_space, Metaspace with split,
                          TemplateProcessing with a prefix and a suffix.
  spm_legacy/, spm_metaspace/
                          two SentencePiece-style BPE tokenizers with byte fallback that this
                          script trains with the `tokenizers` package on half of the corpus:
                          the same vocabulary and merges, with Llama-2's legacy pipeline
                          (Prepend + Replace normalizer, no pre-tokenizer) and with the newer
                          Llama / Mistral one (Metaspace pre-tokenizer, prepend_scheme first).
  reference.jsonl         per tokenizer and string: ids without and with special tokens, the
                          reference decode with and without special tokens, and whether the
                          reference decode gives the (NFC-normalized) text back.
  manifest.json           the tokenizer directories, by name.

Usage: tokenizer_conformance.py OUT_DIR QWEN3_TOKENIZER_DIR
"""
import json
import os
import random
import sys
import unicodedata

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers import processors, trainers

SEED = 20261122

SENTENCES = [
    # Latin with accents (NFC here; NFD forms are added below)
    "The quick brown fox jumps over the lazy dog.",
    "Ça va très bien, merci ! Où est la bibliothèque ?",
    "Grüße aus München: Straße, Äpfel, Öl und Übermut.",
    "¿Dónde está el niño? ¡Mañana será otro día!",
    "Tiếng Việt có nhiều dấu: người, được, những, thế giới.",
    "Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Ångström, Øresund, Æsir, Þórr, ðæt, œuvre, façade, naïve, coöperate.",
    # Cyrillic, Greek
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Україна, Беларусь, Қазақстан, Српска ћирилица: љубав, њива.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Καλημέρα κόσμε!",
    # Arabic, Hebrew (right to left), Persian
    "مرحبا بالعالم! كيف حالك اليوم؟ ٣ كتب و١٢ قلماً.",
    "שלום עולם! מה שלומך היום? אני לומד עברית.",
    "سلام دنیا، حال شما چطور است؟ ۱۲۳۴",
    # Indic, Thai
    "नमस्ते दुनिया! आप कैसे हैं? हिन्दी में लिखा गया वाक्य।",
    "বাংলা ভাষা, தமிழ் மொழி, తెలుగు భాష, ગુજરાતી.",
    "สวัสดีชาวโลก ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
    # CJK, Hangul
    "你好，世界！今天天气很好。我们一起去公园吧。",
    "日本語の文章：ひらがな、カタカナ、漢字が混ざっています。",
    "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３，半角ｶﾀｶﾅ",
    "안녕하세요, 세계! 한국어 문장입니다. 감사합니다.",
    # Emoji: ZWJ sequences, skin tones, flags, keycaps, variation selectors
    "Family: 👨‍👩‍👧‍👦 and 👩‍❤️‍💋‍👨, thumbs 👍🏽👍🏿, flags 🇫🇷🇯🇵🏳️‍🌈, keycap 1️⃣ #️⃣",
    "I ❤️ pizza 🍕🍕🍕 and 🤖 robots! 🧑🏾‍💻 codes, 🏃‍♀️ runs. ☺︎ vs ☺️",
    # Combining marks
    "e\u0301 a\u0300 o\u0308 n\u0303 c\u0327 — Z\u0351\u0352a\u0353\u0354l\u0355g\u0356o\u0357",
    "q\u0307\u0323 ḍ̇ ṩ a\u20dd x\u0336y\u0336",
    # Code
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\r\n",
    "{\"key\": [1, 2.5e-3, null, true], \"nested\": {\"x\": \"y\"}}",
    "<html><body class=\"main\">&lt;p&gt; &amp; &#x1F600;</body></html>",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "$ ls -la ~/projects | grep -v '^d' && echo \"done\" || exit 1",
    # Contractions and case
    "I'm sure they'll say we'd've known; don't you think it's fine? THEY'RE HERE. We'Ve",
    # Digits and numbers
    "3.14159265358979323846264338327950288419716939937510",
    "Call 1-800-555-0199 or +44 (0)20 7946 0958; 1,234,567.89 €; 2026-11-22T09:07:11Z",
    "123456789012345678901234567890 0x1F 0b1011 1e10 ½ ¾ ² ³ Ⅻ ⅷ",
    "٠١٢٣٤٥٦٧٨٩ ०१२३४५६७८९ ๐๑๒๓ １２３４５",
]

SPECIAL_STRINGS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>",
                   "<tool_call>", "<s>", "</s>", "<unk>", "<|im_end", "<s", "</s >", "<|fim_prefix|>",
                   "<mask>", " <mask> ", "x<mask>y", "[SEP]", "[SEP]  ", "hello", "Hello", "ﬁ"]

WHITESPACE = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r\n\r\n", " \n ", "\u00a0",
              "\u3000", "\u2009", "\u200b", " \t \n", "    ", "\r", "\v", "\f"]

# Blocks of assigned characters (Unicode <= 14) to draw random characters from.
RANGES = [(0x20, 0x7E), (0xA0, 0x17F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
          (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF),
          (0x1E00, 0x1EFF), (0x2000, 0x206F), (0x20A0, 0x20BF), (0x2190, 0x21FF),
          (0x2200, 0x22FF), (0x2500, 0x257F), (0x3040, 0x30FF), (0x4E00, 0x9FFF),
          (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F),
          (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF), (0x1D400, 0x1D7FF), (0x10000, 0x1007F)]


def random_chars(rng, n):
    out = []
    while len(out) < n:
        lo, hi = rng.choice(RANGES)
        c = chr(rng.randint(lo, hi))
        if unicodedata.category(c) in ("Cn", "Cs", "Co"):
            continue
        out.append(c)
    return "".join(out)


def make_corpus():
    rng = random.Random(SEED)
    corpus = []
    corpus += SENTENCES
    corpus += [unicodedata.normalize("NFD", s) for s in SENTENCES]
    corpus += [unicodedata.normalize("NFKC", s) for s in SENTENCES[:8]]
    corpus += ["", " ", "a", "\n", "\t", "\r\n", "  leading", "trailing  ", " both ", "x" * 300,
               " " * 40, "\n" * 12, "\t \t \t", "a\r\nb\r\nc", "a  b   c    d", "1" * 50]
    corpus += [s for s in SPECIAL_STRINGS]
    corpus += ["<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
               "text<s>more</s>end", " <s> spaced </s> ", "<unk><unk>", "<<|im_end|>>",
               "<think>\nreasoning\n</think>\n\nanswer", "a<|endoftext|>b<|endoftext|>"]
    fragments = SENTENCES + SPECIAL_STRINGS + WHITESPACE
    while len(corpus) < 2400:
        kind = rng.random()
        if kind < 0.45:
            parts = []
            for _ in range(rng.randint(1, 6)):
                r = rng.random()
                if r < 0.4:
                    s = rng.choice(SENTENCES)
                    a = rng.randint(0, len(s))
                    parts.append(s[a:a + rng.randint(1, 40)])
                elif r < 0.6:
                    parts.append(rng.choice(WHITESPACE))
                elif r < 0.7:
                    parts.append(rng.choice(SPECIAL_STRINGS))
                elif r < 0.85:
                    parts.append(str(rng.randint(0, 10 ** rng.randint(1, 25))))
                else:
                    parts.append(random_chars(rng, rng.randint(1, 8)))
            text = "".join(parts)
        elif kind < 0.7:
            text = random_chars(rng, rng.randint(1, 30))
        elif kind < 0.85:
            text = rng.choice(WHITESPACE).join(rng.choice(fragments)[:rng.randint(0, 30)]
                                                for _ in range(rng.randint(2, 5)))
        else:
            s = rng.choice(SENTENCES)
            text = unicodedata.normalize(rng.choice(["NFC", "NFD"]), s)
            if rng.random() < 0.5:
                text = text.upper()
        corpus.append(text)
    return corpus


def train_spm_style(corpus, out_dir):
    """Trains one BPE vocabulary; saves it with the legacy and the Metaspace pipelines."""
    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=1500, limit_alphabet=120, show_progress=False,
                                  special_tokens=["<unk>", "<s>", "</s>"])
    base.train_from_iterator(corpus[::2], trainer=trainer)
    trained = json.loads(base.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for token, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    specials = [AddedToken(t, special=True, normalized=False) for t in ["<unk>", "<s>", "</s>"]]
    decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                 decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    dirs = {}
    for variant in ["spm_legacy", "spm_metaspace"]:
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>",
                                   byte_fallback=True, fuse_unk=True))
        if variant == "spm_legacy":
            tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                                   normalizers.Replace(" ", "▁")])
            tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                               special_tokens=[("<s>", 1)])
        else:
            tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                         split=False)
            tok.post_processor = processors.TemplateProcessing(
                single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
        tok.decoder = decoder
        tok.add_special_tokens(specials)
        d = os.path.join(out_dir, variant)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        if variant == "spm_legacy":
            with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
                json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                           "eos_token": "</s>", "unk_token": "<unk>"}, f)
        dirs[variant] = d
    return dirs


def train_features(corpus, out_dir):
    """Two small tokenizers whose pipelines use the remaining supported components."""
    dirs = {}
    added = [AddedToken("<mask>", lstrip=True, rstrip=True, single_word=True, special=True,
                        normalized=False),
             AddedToken("[SEP]", rstrip=True, special=True, normalized=False),
             AddedToken("hello", special=False, normalized=True),
             AddedToken("\ufb01", special=False, normalized=True)]  # NFKC: "fi"
    # Byte-level BPE.
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(),
                                           normalizers.Replace(Regex(r"\t+"), "\t")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("-", behavior="merged_with_next"),
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["[CLS]"])
    tok.train_from_iterator(corpus[1::2], trainer=trainer)
    tok.add_tokens(added)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                      special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])])
    dirs["features_byte_level"] = save(tok, out_dir, "features_byte_level")

    # Metaspace with split, byte fallback, Split behaviors.
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Strip(left=False, right=True),
                                           normalizers.NFD()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\s*[\r\n]+"), behavior="removed"),
        pre_tokenizers.Split(",", behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="contiguous"),
        pre_tokenizers.Split(Regex(r"[\p{L}\p{M}]+"), behavior="isolated", invert=True),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(
        replacement="▁", prepend_scheme="always")])
    trainer = trainers.BpeTrainer(vocab_size=800, limit_alphabet=100, show_progress=False,
                                  special_tokens=["<unk>"] + ["<0x%02X>" % b for b in range(256)])
    tok.train_from_iterator(corpus[::3], trainer=trainer)
    tok.add_tokens(added)
    dirs["features_metaspace"] = save(tok, out_dir, "features_metaspace")
    return dirs


def save(tok, out_dir, name):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    return d


def main():
    out_dir, qwen_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    corpus = make_corpus()
    with open(os.path.join(out_dir, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for text in corpus:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    dirs = {"qwen3": qwen_dir}
    dirs.update(train_spm_style(corpus, out_dir))
    dirs.update(train_features(corpus, out_dir))
    with open(os.path.join(out_dir, "reference.jsonl"), "w", encoding="utf-8") as f:
        for name, d in dirs.items():
            tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            encodings = tok.encode_batch(corpus, add_special_tokens=False)
            with_special = tok.encode_batch(corpus, add_special_tokens=True)
            for i, text in enumerate(corpus):
                ids = encodings[i].ids
                decoded = tok.decode(ids, skip_special_tokens=False)
                f.write(json.dumps({
                    "tokenizer": name, "line": i, "ids": ids,
                    "ids_special": with_special[i].ids,
                    "decoded": decoded,
                    "decoded_skip": tok.decode(ids, skip_special_tokens=True),
                    "round_trips": decoded == unicodedata.normalize("NFC", text),
                }, ensure_ascii=False) + "\n")
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"tokenizers": dirs, "corpus_size": len(corpus)}, f)


if __name__ == "__main__":
    main()
