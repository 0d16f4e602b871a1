import json
import struct

import numpy as np
import pytest

from tokens import TokenFileError, read_data_dir, read_token_file, write_token_file

TAGS = {"start": "<|startoftext|>", "end": "<|endoftext|>"}


def typescript_layout(path, ids, header_slot=4088):
    """The exact bytes src/core/data/tokenFile.ts writes: a fixed 4088-byte space-padded header slot."""
    header = {
        "format": "imagine-bot/tokens", "version": 1, "dtype": "uint16", "tokenizer": "gpt2", "vocabSize": 50257,
        "tokens": len(ids), "documents": 2, "meanCaptionTokens": 2.5, "tags": TAGS, "source": "captions.txt",
    }
    js = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(b"IMTK" + struct.pack("<I", header_slot) + js + b" " * (header_slot - len(js)))
        f.write(np.asarray(ids, dtype="<u2").tobytes())


def test_reads_the_typescript_layout(tmp_path):
    ids = [27, 91, 64, 46371, 50256, 27, 91, 64, 2266, 50256]
    typescript_layout(tmp_path / "train.tokens", ids)
    tf = read_token_file(str(tmp_path / "train.tokens"))
    assert tf.ids.dtype == np.uint16 and list(tf.ids) == ids
    assert tf.tags == TAGS and tf.mean_caption_tokens == 2.5 and len(tf) == 10


def test_writer_round_trip_and_data_dir(tmp_path):
    write_token_file(str(tmp_path / "train.tokens"), [1, 2, 3, 65535 % 50257], documents=1, tags=None)
    write_token_file(str(tmp_path / "eval.tokens"), [], documents=0)
    data = read_data_dir(str(tmp_path))
    assert list(data["train"].ids) == [1, 2, 3, 15278]
    assert data["train"].tags is None and len(data["eval"]) == 0
    raw = (tmp_path / "train.tokens").read_bytes()
    (h,) = struct.unpack("<I", raw[4:8])
    assert (8 + h) % 8 == 0 and len(raw) == 8 + h + 8


def test_rejects_bad_magic(tmp_path):
    p = tmp_path / "x.tokens"
    p.write_bytes(b"NOPE" + b"\0" * 20)
    with pytest.raises(TokenFileError, match="does not start with the magic bytes 'IMTK'"):
        read_token_file(str(p))


def test_rejects_truncated_files(tmp_path):
    p = tmp_path / "x.tokens"
    write_token_file(str(p), list(range(100)))
    raw = p.read_bytes()
    p.write_bytes(raw[:-2])  # one id short
    with pytest.raises(TokenFileError, match="holds 99 token ids but its header says 100"):
        read_token_file(str(p))
    p.write_bytes(raw[:-1])  # half an id
    with pytest.raises(TokenFileError, match="not a whole number of uint16 ids"):
        read_token_file(str(p))
    p.write_bytes(raw[:20])  # cut inside the header
    with pytest.raises(TokenFileError, match="truncated: its header claims"):
        read_token_file(str(p))


def test_rejects_ids_outside_the_vocabulary(tmp_path):
    p = tmp_path / "x.tokens"
    write_token_file(str(p), [5, 50256, 50257, 7])
    with pytest.raises(TokenFileError, match=r"token id 50257 is outside the vocabulary \(vocabSize 50257\); first bad id at index 2"):
        read_token_file(str(p))


def test_rejects_wrong_header_fields(tmp_path):
    p = tmp_path / "x.tokens"
    write_token_file(str(p), [1], header_overrides={"format": "something/else"})
    with pytest.raises(TokenFileError, match="header format is 'something/else'"):
        read_token_file(str(p))
    write_token_file(str(p), [1], header_overrides={"version": 2})
    with pytest.raises(TokenFileError, match="version 2 is not supported"):
        read_token_file(str(p))
    p.write_bytes(b"IMTK" + struct.pack("<I", 8) + b"{no}    ")
    with pytest.raises(TokenFileError, match="JSON header cannot be parsed"):
        read_token_file(str(p))


def test_missing_split_names_the_file_and_the_fix(tmp_path):
    write_token_file(str(tmp_path / "train.tokens"), [1, 2])
    with pytest.raises(TokenFileError, match=r"eval.tokens is missing.*data tokenize"):
        read_data_dir(str(tmp_path))
