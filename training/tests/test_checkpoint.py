import json
import math
import os
import struct

import pytest
import torch

from checkpoint import CheckpointError, load_pretrained, load_safetensors, save_pretrained, save_safetensors
from gpt2 import GPT2Config, GPT2LMHeadModel

CFG = GPT2Config(vocab_size=53, n_positions=16, n_embd=12, n_layer=2, n_head=3)


def hf_state_dict(cfg: GPT2Config, prefix: str = "transformer.") -> dict:
    """A state dict laid out as Hugging Face saves GPT-2: Conv1D weights [in, out], the causal-mask
    buffers, and (with prefix) the tied lm_head.weight."""
    g = torch.Generator().manual_seed(7)
    r = lambda *s: torch.randn(*s, generator=g) * 0.3  # noqa: E731
    e = cfg.n_embd
    sd = {f"{prefix}wte.weight": r(cfg.vocab_size, e), f"{prefix}wpe.weight": r(cfg.n_positions, e)}
    for i in range(cfg.n_layer):
        p = f"{prefix}h.{i}."
        sd.update(
            {
                p + "ln_1.weight": 1 + r(e), p + "ln_1.bias": r(e),
                p + "attn.c_attn.weight": r(e, 3 * e), p + "attn.c_attn.bias": r(3 * e),
                p + "attn.c_proj.weight": r(e, e), p + "attn.c_proj.bias": r(e),
                p + "ln_2.weight": 1 + r(e), p + "ln_2.bias": r(e),
                p + "mlp.c_fc.weight": r(e, 4 * e), p + "mlp.c_fc.bias": r(4 * e),
                p + "mlp.c_proj.weight": r(4 * e, e), p + "mlp.c_proj.bias": r(e),
                p + "attn.bias": torch.tril(torch.ones(cfg.n_positions, cfg.n_positions)).view(1, 1, cfg.n_positions, cfg.n_positions),
                p + "attn.masked_bias": torch.tensor(-1e4),
            }
        )
    sd[f"{prefix}ln_f.weight"] = 1 + r(e)
    sd[f"{prefix}ln_f.bias"] = r(e)
    if prefix:
        sd["lm_head.weight"] = sd[f"{prefix}wte.weight"]
    return sd


def reference_logits(sd: dict, cfg: GPT2Config, ids: torch.Tensor, prefix: str = "transformer.") -> torch.Tensor:
    """GPT-2 written independently of gpt2.py, straight from the HF weights: Conv1D is x @ W + b."""
    w = lambda k: sd[prefix + k].float()  # noqa: E731
    t = ids.size(1)
    hd = cfg.n_embd // cfg.n_head

    def ln(x, k):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + cfg.layer_norm_epsilon) * w(k + ".weight") + w(k + ".bias")

    x = w("wte.weight")[ids] + w("wpe.weight")[torch.arange(t)]
    for i in range(cfg.n_layer):
        p = f"h.{i}."
        qkv = ln(x, p + "ln_1") @ w(p + "attn.c_attn.weight") + w(p + "attn.c_attn.bias")
        q, k, v = [z.view(1, t, cfg.n_head, hd).transpose(1, 2) for z in qkv.split(cfg.n_embd, dim=-1)]
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(1, t, cfg.n_embd)
        x = x + a @ w(p + "attn.c_proj.weight") + w(p + "attn.c_proj.bias")
        h = ln(x, p + "ln_2") @ w(p + "mlp.c_fc.weight") + w(p + "mlp.c_fc.bias")
        h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
        x = x + h @ w(p + "mlp.c_proj.weight") + w(p + "mlp.c_proj.bias")
    return ln(x, "ln_f") @ w("wte.weight").T


def write_config(directory, cfg: GPT2Config) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(cfg.to_hf_dict(), f)


IDS = torch.tensor([[3, 17, 52, 0, 9, 9, 41]])


def test_loads_pytorch_model_bin_with_transposed_conv1d_weights(tmp_path):
    sd = hf_state_dict(CFG)
    write_config(tmp_path, CFG)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    model = load_pretrained(str(tmp_path)).eval()
    with torch.no_grad():
        got, _ = model(IDS)
    assert torch.allclose(got, reference_logits(sd, CFG, IDS), atol=1e-5)


def test_loads_safetensors_without_prefix_in_float16(tmp_path):
    # The hub's gpt2 model.safetensors has no "transformer." prefix; fp16 weights are cast to fp32.
    sd = {k: v.half() for k, v in hf_state_dict(CFG, prefix="").items()}
    write_config(tmp_path, CFG)
    save_safetensors(sd, str(tmp_path / "model.safetensors"), {"format": "pt"})
    model = load_pretrained(str(tmp_path)).eval()
    assert model.transformer.wte.weight.dtype == torch.float32
    with torch.no_grad():
        got, _ = model(IDS)
    assert torch.allclose(got, reference_logits(sd, CFG, IDS, prefix=""), atol=1e-4)


def test_save_pretrained_round_trip_is_hf_layout(tmp_path):
    model = GPT2LMHeadModel(CFG).eval()
    save_pretrained(model, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]
    with open(tmp_path / "config.json") as f:
        cfg = json.load(f)
    assert cfg["model_type"] == "gpt2" and cfg["architectures"] == ["GPT2LMHeadModel"] and cfg["n_layer"] == 2
    raw = load_safetensors(str(tmp_path / "model.safetensors"))
    assert "lm_head.weight" not in raw  # tied: HF's save_pretrained leaves it out as well
    assert raw["transformer.h.0.attn.c_attn.weight"].shape == (12, 36)
    loaded = load_pretrained(str(tmp_path)).eval()
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    with torch.no_grad():
        assert torch.equal(model(IDS)[0], loaded(IDS)[0])


def test_safetensors_format_details(tmp_path):
    tensors = {"a": torch.arange(6, dtype=torch.float32).view(2, 3), "b": torch.tensor([1.5, -2.0]).to(torch.bfloat16), "c": torch.tensor([7], dtype=torch.int64)}
    path = str(tmp_path / "x.safetensors")
    save_safetensors(tensors, path, {"format": "pt"})
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert (8 + n) % 8 == 0
    assert header["__metadata__"] == {"format": "pt"}
    assert header["a"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    assert header["b"]["dtype"] == "BF16"
    back = load_safetensors(path)
    for k in tensors:
        assert back[k].dtype == tensors[k].dtype and torch.equal(back[k], tensors[k])


def test_clear_errors_for_missing_files_and_mismatched_weights(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pretrained(str(tmp_path / "nope"))
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_pretrained(str(tmp_path))
    write_config(tmp_path, CFG)
    with pytest.raises(CheckpointError, match="expected model.safetensors or pytorch_model.bin"):
        load_pretrained(str(tmp_path))
    sd = hf_state_dict(CFG)
    del sd["transformer.h.1.mlp.c_fc.bias"]
    torch.save(sd, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"missing 1 weights \(e.g. transformer.h.1.mlp.c_fc.bias\)"):
        load_pretrained(str(tmp_path))
    write_config(tmp_path, GPT2Config(vocab_size=53, n_positions=16, n_embd=12, n_layer=2, n_head=3, ))
    sd = hf_state_dict(GPT2Config(vocab_size=60, n_positions=16, n_embd=12, n_layer=2, n_head=3))
    torch.save(sd, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"wte.weight has shape \[60, 12\] but config.json implies \[53, 12\]"):
        load_pretrained(str(tmp_path))
