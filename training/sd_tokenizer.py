"""CLIP's byte-level BPE (the tokenizer Stable Diffusion's text encoder uses), in the file layout of a
diffusers `tokenizer/` folder: vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json.

It serves two jobs:
  - `train_bpe` learns a small vocabulary (a few hundred merges) for the stand-in models;
  - `ClipTokenizer` is the reference tokenizer that produced the input_ids in reference.json
    (the TypeScript side must produce the same ids from the same files).

CLIP specifics followed here: text is whitespace-collapsed and lower-cased; words are split by
CLIP's pattern (letters runs, single digits, runs of other non-space characters); each word's bytes
are mapped to printable characters (GPT-2's bytes_to_unicode) and the last symbol carries the
"</w>" end-of-word suffix; ids are [<|startoftext|>] + tokens[:75] + [<|endoftext|>], padded to 77
with the pad token (<|endoftext|> in SD 1.x, "!" = id 0 in SD 2.x).
"""

from __future__ import annotations

import collections
import json
import os
import re
from typing import Dict, List, Sequence, Tuple

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
END_OF_WORD = "</w>"
MODEL_MAX_LENGTH = 77

# CLIP's pattern with \p{L} / \p{N} spelled for Python's re: [^\W\d_] is a letter, \d a digit.
_WORD_PATTERN = re.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+",
    re.IGNORECASE,
)


def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character map (same order as theirs: vocab ids follow it)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


_BYTE_ENCODER = bytes_to_unicode()


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def words_of(text: str) -> List[str]:
    """The pre-tokenized words of a text, each as its byte-level characters."""
    return ["".join(_BYTE_ENCODER[b] for b in w.encode("utf-8")) for w in _WORD_PATTERN.findall(normalize(text))]


def _symbols(word: str) -> Tuple[str, ...]:
    return tuple(word[:-1]) + (word[-1] + END_OF_WORD,)


def merge_pair(symbols: Sequence[str], pair: Tuple[str, str]) -> Tuple[str, ...]:
    """`symbols` with every non-overlapping occurrence of `pair`, left to right, joined into one."""
    out: List[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def train_bpe(corpus: Sequence[str], num_merges: int) -> List[Tuple[str, str]]:
    """Learns merges the classic way: repeatedly merge the most frequent adjacent pair (ties: the
    lexicographically smallest pair, so the result does not depend on dict order)."""
    counts = collections.Counter(w for text in corpus for w in words_of(text))
    words = {_symbols(w): c for w, c in counts.items()}
    merges: List[Tuple[str, str]] = []
    while len(merges) < num_merges:
        pairs: collections.Counter = collections.Counter()
        for symbols, c in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        merged = {}
        for symbols, c in words.items():
            out = merge_pair(symbols, best)
            merged[out] = merged.get(out, 0) + c
        words = merged
    return merges


def build_vocab(merges: Sequence[Tuple[str, str]]) -> Dict[str, int]:
    """CLIP's id order: 256 byte characters, the same with "</w>", one token per merge, then the two specials."""
    base = list(_BYTE_ENCODER.values())
    tokens = base + [b + END_OF_WORD for b in base] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab: Dict[str, int] = {}
    for t in tokens:
        if t in vocab:
            raise ValueError(f"duplicate vocabulary entry {t!r}")
        vocab[t] = len(vocab)
    return vocab


def write_tokenizer_dir(out_dir: str, merges: Sequence[Tuple[str, str]], pad_token: str, tokenizer_json: bool = False) -> None:
    """Writes the four files of a diffusers tokenizer/ folder as the Hub's SD exports have them
    (and tokenizer.json when asked)."""
    os.makedirs(out_dir, exist_ok=True)
    vocab = build_vocab(merges)
    if pad_token not in vocab:
        raise ValueError(f"pad token {pad_token!r} is not in the vocabulary")
    from make_hf_style_fixture import write_json  # biome's JSON layout (the fixtures are linted)

    write_json(os.path.join(out_dir, "vocab.json"), vocab)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))

    def special(content: str) -> dict:
        return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}

    write_json(os.path.join(out_dir, "special_tokens_map.json"),
               {"bos_token": special(BOS), "eos_token": special(EOS), "pad_token": pad_token, "unk_token": special(EOS)})
    config = {
        "add_prefix_space": False,
        "bos_token": special(BOS),
        "do_lower_case": True,
        "eos_token": special(EOS),
        "errors": "replace",
        "model_max_length": MODEL_MAX_LENGTH,
        "pad_token": pad_token,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": special(EOS),
    }
    write_json(os.path.join(out_dir, "tokenizer_config.json"), config)
    if tokenizer_json:
        write_tokenizer_json(out_dir, merges, pad_token)


# CLIP's pre-tokenizer pattern as Hugging Face tokenizers writes it in tokenizer.json (Rust regex syntax).
HF_CLIP_PATTERN = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


MERGES_PLACEHOLDER = "@@merges@@"


def write_tokenizer_json(out_dir: str, merges: Sequence[Tuple[str, str]], pad_token: str) -> None:
    """The fast-tokenizer file (tokenizer.json) as transformers' CLIPTokenizerFast saves it: NFC +
    whitespace collapse + lower-case, CLIP's split pattern, byte-level alphabet, BPE with "</w>",
    <|startoftext|> … <|endoftext|> around the ids, padding and truncation to 77 left to the pipeline
    (as in the Hub's SD exports). Some exports ship it, many do not."""
    vocab = build_vocab(merges)
    from make_hf_style_fixture import write_json

    def added(token: str) -> dict:
        return {"id": vocab[token], "content": token, "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": True}

    path = os.path.join(out_dir, "tokenizer.json")
    write_json(path, {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(BOS), added(EOS)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"}, {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": HF_CLIP_PATTERN}, "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "RobertaProcessing", "sep": [EOS, vocab[EOS]], "cls": [BOS, vocab[BOS]],
                           "trim_offsets": False, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": EOS, "continuing_subword_prefix": "", "end_of_word_suffix": END_OF_WORD,
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": MERGES_PLACEHOLDER},
    })
    # biome puts a long array of strings one per line (make_hf_style_fixture fills only number arrays well).
    with open(path, encoding="utf-8") as f:
        text = f.read()
    block = "[\n" + ",\n".join(" " * 6 + json.dumps(f"{a} {b}") for a, b in merges) + "\n    ]"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(json.dumps(MERGES_PLACEHOLDER), block))


class ClipTokenizer:
    """Reads a tokenizer/ folder (vocab.json + merges.txt + the configs) and encodes like CLIPTokenizer."""

    def __init__(self, tokenizer_dir: str):
        with open(os.path.join(tokenizer_dir, "vocab.json"), encoding="utf-8") as f:
            self.vocab: Dict[str, int] = json.load(f)
        with open(os.path.join(tokenizer_dir, "merges.txt"), encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f]
        merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
        self.ranks = {m: i for i, m in enumerate(merges)}
        with open(os.path.join(tokenizer_dir, "tokenizer_config.json"), encoding="utf-8") as f:
            config = json.load(f)
        self.max_length = int(config.get("model_max_length", MODEL_MAX_LENGTH))
        pad = config.get("pad_token", EOS)
        pad = pad["content"] if isinstance(pad, dict) else pad
        self.bos_id, self.eos_id, self.pad_id = self.vocab[BOS], self.vocab[EOS], self.vocab[pad]

    def bpe(self, word: str) -> List[str]:
        symbols = list(_symbols(word))
        while len(symbols) > 1:
            ranked = [(self.ranks.get(p, float("inf")), i) for i, p in enumerate(zip(symbols, symbols[1:]))]
            rank, _ = min(ranked)
            if rank == float("inf"):
                break
            pair = next(p for p in zip(symbols, symbols[1:]) if self.ranks.get(p) == rank)
            symbols = list(merge_pair(symbols, pair))
        return symbols

    def tokens(self, text: str) -> List[int]:
        """Ids of the text without specials; a symbol missing from the vocabulary maps to unk (<|endoftext|>)."""
        return [self.vocab.get(s, self.eos_id) for w in words_of(text) for s in self.bpe(w)]

    def __call__(self, text: str) -> List[int]:
        """input_ids as the pipeline feeds them: truncated and padded to model_max_length."""
        ids = [self.bos_id] + self.tokens(text)[: self.max_length - 2] + [self.eos_id]
        return ids + [self.pad_id] * (self.max_length - len(ids))
