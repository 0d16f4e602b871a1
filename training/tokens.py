"""Token files (.tokens): the hand-off from the TypeScript data pipeline (src/core/data/tokenFile.ts).
Python never tokenizes; it only reads ids.

Layout, little-endian:
    bytes 0-3    ASCII magic "IMTK"
    bytes 4-7    uint32 header length H
    8 .. 8+H     UTF-8 JSON header, space-padded so that 8+H is a multiple of 8
    8+H .. EOF   uint16 token ids

Header: {"format": "imagine-bot/tokens", "version": 1, "dtype": "uint16", "tokenizer": "gpt2",
"vocabSize": 50257, "tokens": N, "documents": D, "meanCaptionTokens": float,
"tags": {"start": ..., "end": ...} | null, "source": "..."}
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import numpy as np

MAGIC = b"IMTK"
FORMAT = "imagine-bot/tokens"
VERSION = 1
TRAIN_FILE = "train.tokens"
EVAL_FILE = "eval.tokens"


class TokenFileError(Exception):
    """A token file that cannot be trained on; the message names the file and the problem."""


@dataclass
class TokenFile:
    path: str
    header: Dict[str, Any]
    ids: np.ndarray  # read-only uint16 memmap (or an empty array)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def tags(self) -> Optional[Dict[str, str]]:
        return self.header.get("tags")

    @property
    def mean_caption_tokens(self) -> float:
        return float(self.header.get("meanCaptionTokens", 0.0))


def read_token_file(path: str, check_ids: bool = True) -> TokenFile:
    """Opens a token file with numpy.memmap after checking the magic, header and size.
    check_ids scans every id once against vocabSize (cheap next to training on them)."""
    if not os.path.isfile(path):
        raise TokenFileError(f"{path} does not exist; write it with `data tokenize` (see training/README.md)")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8 or prefix[:4] != MAGIC:
            raise TokenFileError(f"{path} is not a token file: it does not start with the magic bytes 'IMTK'")
        (h,) = struct.unpack("<I", prefix[4:8])
        if 8 + h > size:
            raise TokenFileError(f"{path} is truncated: its header claims {h} bytes but the file has {size}")
        raw = f.read(h)
    if (8 + h) % 8 != 0:
        raise TokenFileError(f"{path}: header length {h} leaves token data unaligned (8 + H must be a multiple of 8)")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenFileError(f"{path}: the JSON header cannot be parsed ({e})") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise TokenFileError(f"{path}: header format is {header.get('format') if isinstance(header, dict) else header!r}, expected {FORMAT!r}")
    if header.get("version") != VERSION:
        raise TokenFileError(f"{path}: header version {header.get('version')!r} is not supported (this reader knows version {VERSION})")
    if header.get("dtype") != "uint16":
        raise TokenFileError(f"{path}: dtype {header.get('dtype')!r} is not supported (expected 'uint16')")
    for key in ("tokens", "vocabSize"):
        if not isinstance(header.get(key), int) or header[key] < 0:
            raise TokenFileError(f"{path}: header field {key!r} must be a non-negative integer, got {header.get(key)!r}")
    data_bytes = size - 8 - h
    if data_bytes % 2 != 0:
        raise TokenFileError(f"{path} is truncated: {data_bytes} bytes of token data is not a whole number of uint16 ids")
    n = data_bytes // 2
    if n != header["tokens"]:
        raise TokenFileError(
            f"{path} holds {n} token ids but its header says {header['tokens']} (truncated or partially written file?)"
        )
    if n == 0:
        ids = np.zeros(0, dtype=np.uint16)
    else:
        ids = np.memmap(path, dtype="<u2", mode="r", offset=8 + h, shape=(n,))
    if check_ids and n > 0:
        top = int(ids.max())
        if top >= header["vocabSize"]:
            bad = int(np.argmax(ids >= header["vocabSize"]))
            raise TokenFileError(
                f"{path}: token id {top} is outside the vocabulary (vocabSize {header['vocabSize']}); first bad id at index {bad}"
            )
    return TokenFile(path=path, header=header, ids=ids)


def read_data_dir(directory: str) -> Dict[str, TokenFile]:
    """A data directory holds train.tokens and eval.tokens, written by `data tokenize`."""
    out = {}
    for split, name in (("train", TRAIN_FILE), ("eval", EVAL_FILE)):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise TokenFileError(
                f"{path} is missing: a data directory needs {TRAIN_FILE} and {EVAL_FILE}; create them with "
                "`npx tsx src/adapters/cli/main.ts data tokenize --input CAPTIONS --out DIR`"
            )
        out[split] = read_token_file(path)
    return out


def write_token_file(
    path: str,
    ids: Sequence[int],
    *,
    documents: int = 0,
    mean_caption_tokens: float = 0.0,
    tags: Optional[Dict[str, str]] = None,
    source: str = "python",
    vocab_size: int = 50257,
    header_overrides: Optional[Dict[str, Any]] = None,
) -> None:
    """Writes the same layout as the TypeScript writer. For tests and synthetic data only: real
    token files come from the TypeScript tokenizer."""
    arr = np.asarray(ids, dtype=np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > 0xFFFF):
        raise ValueError("token ids must fit in uint16")
    header: Dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": "uint16",
        "tokenizer": "gpt2",
        "vocabSize": vocab_size,
        "tokens": int(arr.size),
        "documents": documents,
        "meanCaptionTokens": mean_caption_tokens,
        "tags": tags,
        "source": source,
    }
    header.update(header_overrides or {})
    encoded = json.dumps(header).encode("utf-8")
    encoded += b" " * (-(8 + len(encoded)) % 8)
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<I", len(encoded)))
        f.write(encoded)
        f.write(arr.astype("<u2").tobytes())
