"""Checkpoint I/O in Hugging Face's layout: a directory with config.json and model.safetensors
(or the older pytorch_model.bin).

We read whatever Hugging Face writes (with or without the "transformer." prefix, fp16/bf16/fp32,
with its "attn.bias"/"attn.masked_bias" buffers) and write what GPT2LMHeadModel.from_pretrained
reads, so checkpoints move freely between this code and the Hugging Face ecosystem.

There is no safetensors package on the training machines, so the format is implemented here:
8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}}
(plus an optional "__metadata__" of strings), then the raw little-endian tensor bytes.
"""

from __future__ import annotations

import inspect
import json
import os
import struct
from typing import Dict, Mapping, Optional

import numpy as np
import torch

from gpt2 import GPT2Config, GPT2LMHeadModel

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
PYTORCH_NAME = "pytorch_model.bin"

# safetensors dtype names ↔ torch dtypes.
_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


class CheckpointError(Exception):
    """A checkpoint directory or file that cannot be used; the message says what to do."""


# ---------------------------------------------------------------------------- safetensors


def save_safetensors(tensors: Mapping[str, torch.Tensor], path: str, metadata: Optional[Dict[str, str]] = None) -> None:
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _NAMES:
            raise CheckpointError(f"cannot store tensor {name} of dtype {t.dtype} in safetensors")
        # bfloat16 has no numpy dtype; its bytes are moved as int16.
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()
        data = raw.astype(raw.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # keep tensor data 8-byte aligned, as the reference writer does
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for data in blobs:
            f.write(data)
    os.replace(tmp, path)  # never leave a half-written checkpoint under the real name


def load_safetensors(path: str) -> Dict[str, torch.Tensor]:
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise CheckpointError(f"{path} is not a safetensors file (shorter than its 8-byte header length)")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise CheckpointError(f"{path} is truncated: header length {n} exceeds the file size {len(raw)}")
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} has an unreadable safetensors header: {e}") from e
    header.pop("__metadata__", None)
    data = memoryview(raw)[8 + n :]
    out: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise CheckpointError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        if end > len(data):
            raise CheckpointError(f"{path} is truncated: tensor {name} ends past the end of the file")
        if dtype == torch.bfloat16:
            arr = np.frombuffer(data[start:end], dtype="<i2")
            t = torch.from_numpy(arr.copy()).view(torch.bfloat16)
        elif dtype == torch.bool:
            t = torch.from_numpy(np.frombuffer(data[start:end], dtype=np.uint8).copy()).to(torch.bool)
        else:
            np_dtype = torch.empty(0, dtype=dtype).numpy().dtype.newbyteorder("<")
            t = torch.from_numpy(np.frombuffer(data[start:end], dtype=np_dtype).astype(np_dtype.newbyteorder("="))).clone()
        out[name] = t.reshape(info["shape"])
    return out


# ---------------------------------------------------------------------------- state dicts

# Buffers Hugging Face stores in older GPT-2 checkpoints; they are derived (causal mask), not weights.
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def hf_to_model_state(hf_state: Mapping[str, torch.Tensor], model: GPT2LMHeadModel, source: str) -> Dict[str, torch.Tensor]:
    """Maps a Hugging Face GPT-2 state dict onto our parameter names, checking every name and shape."""
    expected = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    mapped: Dict[str, torch.Tensor] = {}
    unexpected = []
    for key, tensor in hf_state.items():
        if key.endswith(_IGNORED_SUFFIXES):
            continue
        if key == "lm_head.weight":
            continue  # tied to transformer.wte.weight, which carries the same values
        name = key if key.startswith("transformer.") else "transformer." + key  # GPT2Model saves without the prefix
        if name not in expected:
            unexpected.append(key)
            continue
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"{source}: {key} has shape {list(tensor.shape)} but config.json implies {list(expected[name].shape)}; "
                "is config.json from the same model?"
            )
        mapped[name] = tensor.to(torch.float32)
    if "transformer.wte.weight" not in mapped and "lm_head.weight" in hf_state:
        mapped["transformer.wte.weight"] = hf_state["lm_head.weight"].to(torch.float32)
    missing = sorted(set(expected) - set(mapped))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} weights (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected weights (e.g. {', '.join(sorted(unexpected)[:3])})")
        raise CheckpointError(f"{source} is not a GPT-2 checkpoint matching its config.json: " + "; ".join(parts))
    return mapped


def model_to_hf_state(model: GPT2LMHeadModel) -> Dict[str, torch.Tensor]:
    """Our state dict as HF's save_pretrained writes it: lm_head.weight left out because it is tied."""
    return {k: v.detach().to(torch.float32) for k, v in model.state_dict().items() if k != "lm_head.weight"}


# ---------------------------------------------------------------------------- directories


def _torch_load(path: str) -> Dict[str, torch.Tensor]:
    kwargs = {"map_location": "cpu"}
    # weights_only refuses pickled code in untrusted checkpoints (torch >= 1.13; default in 2.6).
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = True
    state = torch.load(path, **kwargs)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict")
    return state


def load_config(directory: str) -> GPT2Config:
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isdir(directory):
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    if not os.path.isfile(path):
        raise CheckpointError(
            f"{path} is missing: a checkpoint directory needs Hugging Face's config.json next to the "
            f"weights (save it with save_pretrained, or copy config.json from the model's hub page)"
        )
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if d.get("model_type", "gpt2") != "gpt2":
        raise CheckpointError(f"{path} describes a {d.get('model_type')!r} model; only GPT-2 is supported")
    return GPT2Config.from_dict(d)


def load_pretrained(directory: str) -> GPT2LMHeadModel:
    """Loads a Hugging Face-layout GPT-2 directory (ours or theirs) as a float32 model."""
    config = load_config(directory)
    st_path = os.path.join(directory, SAFETENSORS_NAME)
    bin_path = os.path.join(directory, PYTORCH_NAME)
    if os.path.isfile(st_path):
        state, source = load_safetensors(st_path), st_path
    elif os.path.isfile(bin_path):
        state, source = _torch_load(bin_path), bin_path
    elif os.path.isfile(os.path.join(directory, SAFETENSORS_NAME + ".index.json")):
        raise CheckpointError(
            f"{directory} holds a sharded checkpoint (model.safetensors.index.json); re-save it unsharded "
            "with save_pretrained(dir, max_shard_size='100GB')"
        )
    else:
        raise CheckpointError(
            f"{directory} has no weights: expected {SAFETENSORS_NAME} or {PYTORCH_NAME} next to config.json "
            "(download them from the model's hub page, or save with save_pretrained)"
        )
    model = GPT2LMHeadModel(config)
    # strict=False only because the tied lm_head.weight is absent from the mapped dict; every other
    # name was checked in hf_to_model_state.
    model.load_state_dict(hf_to_model_state(state, model, source), strict=False)
    return model


def save_pretrained(model: GPT2LMHeadModel, directory: str) -> None:
    """Writes config.json + model.safetensors so GPT2LMHeadModel.from_pretrained(directory) loads it."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, CONFIG_NAME), "w", encoding="utf-8") as f:
        json.dump(model.config.to_hf_dict(), f, indent=2)
        f.write("\n")
    # metadata format=pt is what transformers checks before trusting a safetensors file.
    save_safetensors(model_to_hf_state(model), os.path.join(directory, SAFETENSORS_NAME), {"format": "pt"})
