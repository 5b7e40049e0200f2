#!/usr/bin/env python3
"""Writes the two small byte-level BPE tokenizers of tests/tokenizer_check.sh:

  tests/data/tokenizers/gpt2/    GPT-2 style: ByteLevel pre-tokenizer (its own
                                 expression), merges as "a b" strings, two
                                 special added tokens
  tests/data/tokenizers/llama3/  Llama 3 style: Split (Llama 3's expression,
                                 Isolated) then ByteLevel without its
                                 expression, ignore_merges, merges as
                                 ["a", "b"] pairs, a few whole words in the
                                 vocab that no merge makes, four special added
                                 tokens (one, <mask>, with lstrip and rstrip)
                                 and one non-special

each as tokenizer.json (the fields the Rust tokenizers crate writes) and a
minimal tokenizer_config.json. Both are trained here, deterministically (ties
go to the smallest pair), on the text below; the training's pre-tokenization
only approximates the expressions with Python's re (\\w, \\d): the files are
test data, what matters is that they are valid and have a few hundred merges.

    python3 tests/data/make_tokenizers.py        (from anywhere; standard library only)
"""
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tokenizers")

# The exact expression of Llama 3's tokenizer.json (and of d1__re_text in d1.h).
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")

TEXT = """\
The quick brown fox jumps over the lazy dog. The dog didn't move; it's lazy, and we're sure
they've seen it before. I'm certain you'll agree that he'd do the same. THE DOG'S BED IS WARM.
A tokenizer turns text into numbers, and the numbers back into text. Diffusion language models
fill in masked tokens step by step, from a canvas of mask tokens to a finished answer.
Reinforcement learning rewards the model when the answer is right, and the model learns to reason.
In the beginning there was the word, and the word was split into pieces by the pre-tokenizer.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 42 100 256 1000 1024 2048 4096 65536 123456 1234567 2024 1999.
12+3=15 7*8=56 100-1=99 81/9=9 (2+3)*4=20 2^10=1024 3.14159 2.71828 -17 +42 1e-5 x**2 + y**2 = z**2
Let f(x) = 3x^2 + 2x - 1; then f'(x) = 6x + 2 and f(2) = 15. The sum of 1..100 is 5050.
for (i = 0; i < n; i++) {
\tsum += a[i] * b[i];
\treturn x;
}
def main(argv):
    if len(argv) > 1:
        print("hello, world")
    return 0
int main(void) { printf("%d\\n", 42); return 0; }
const x = [1, 2, 3].map((v) => v * 2); // doubled
if (a == b && c != d || !e) { x += 1; } else { x -= 1; }
Caf\u00e9 na\u00efve r\u00e9sum\u00e9 fa\u00e7ade \u00fcber Stra\u00dfe \u00e0 la carte se\u00f1or Z\u00fcrich \u00bd \u00bc \u00be x\u00b2 y\u00b3 \u00a9 \u00ae \u00b0C
Le caf\u00e9 est tr\u00e8s bon, n'est-ce pas? Gr\u00fc\u00dfe aus M\u00fcnchen! \u00bfQu\u00e9 tal? \u00c5ngstr\u00f6m \u00d8resund
The sudoku grid has nine rows, nine columns and nine boxes; each holds the digits 1 to 9 once.
Countdown: reach the target with + - * / and the numbers given, each used at most once.
"""


def bytes_to_unicode():
    """GPT-2's byte -> printable stand-in map, in its order (the vocab's first 256 ids)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [(b, chr(c)) for b, c in zip(bs, cs)]


BYTE_PAIRS = bytes_to_unicode()
STAND_IN = dict(BYTE_PAIRS)

# Python re approximations of the two expressions (letters [^\W\d_], numbers \d).
GPT2_TRAIN = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")
LLAMA3_TRAIN = re.compile(r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\w]?[^\W\d_]+|\d{1,3}| ?(?:[^\s\w]|_)+[\r\n]*|"""
                          r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


def train(pattern, n_merges):
    counts = {}
    for piece in pattern.findall(TEXT):
        word = tuple(STAND_IN[b] for b in piece.encode("utf-8"))
        counts[word] = counts.get(word, 0) + 1
    vocab = {c: i for i, (_, c) in enumerate(BYTE_PAIRS)}
    merges = []
    words = list(counts.items())
    while len(merges) < n_merges:
        pairs = {}
        for w, c in words:
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        a, b = best
        merges.append(best)
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
        new_words = []
        for w, c in words:
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words.append((tuple(out), c))
        words = new_words
    return vocab, merges


def added(id_, content, special, strip=False):
    return {"id": id_, "content": content, "single_word": False, "lstrip": strip, "rstrip": strip,
            "normalized": not special, "special": special}


def write(name, tokenizer, config):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for fn, obj in (("tokenizer.json", tokenizer), ("tokenizer_config.json", config)):
        with open(os.path.join(d, fn), "w", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def config_for(added_tokens, eos):
    return {
        "added_tokens_decoder": {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                                   "single_word", "special")}
                                 for t in added_tokens},
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": eos,
        "model_max_length": 1000000000000000019884624838656,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }


def bpe_model(vocab, merges, ignore_merges, pair_form):
    return {
        "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
        "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
        "vocab": vocab,
        "merges": [[a, b] for a, b in merges] if pair_form else ["%s %s" % (a, b) for a, b in merges],
    }


def main():
    # GPT-2 style
    vocab, merges = train(GPT2_TRAIN, 300)
    toks = [added(len(vocab), "<|endoftext|>", True), added(len(vocab) + 1, "<|mdm_mask|>", True)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    write("gpt2", {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": toks, "normalizer": None,
        "pre_tokenizer": byte_level, "post_processor": None, "decoder": byte_level,
        "model": bpe_model(vocab, merges, False, False),
    }, config_for(toks, "<|endoftext|>"))

    # Llama 3 style: whole words that no merge makes (ignore_merges takes them whole)
    vocab, merges = train(LLAMA3_TRAIN, 400)
    for w in (" tokenizer", " diffusion", " Sudoku", " zebra", "Zebra", " canvas", "ing"):
        t = "".join(STAND_IN[b] for b in w.encode("utf-8"))
        if t not in vocab:
            vocab[t] = len(vocab)
    n = len(vocab)
    toks = [added(n, "<|startoftext|>", True), added(n + 1, "<|eot_id|>", True), added(n + 2, "<|mdm_mask|>", True),
            added(n + 3, "<think>", False), added(n + 4, "<mask>", True, strip=True)]
    write("llama3", {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": toks, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": bpe_model(vocab, merges, True, True),
    }, config_for(toks, "<|eot_id|>"))


if __name__ == "__main__":
    main()
