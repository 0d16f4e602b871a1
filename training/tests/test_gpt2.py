import dataclasses

import pytest
import torch

from gpt2 import PRESETS, GPT2Config, GPT2LMHeadModel, preset

SMALL = GPT2Config(vocab_size=101, n_positions=32, n_embd=16, n_layer=2, n_head=4)


def small_model(**overrides) -> GPT2LMHeadModel:
    model = GPT2LMHeadModel(dataclasses.replace(SMALL, **overrides))
    # Non-trivial LayerNorm/bias values, so a bias or gain applied wrongly shows up.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


# Hugging Face GPT2LMHeadModel(GPT2Config(n_layer=2)).state_dict(), minus the attn.bias /
# attn.masked_bias buffers, written out by hand so the test needs no download.
HF_GPT2_2_LAYERS = [("transformer.wte.weight", [50257, 768]), ("transformer.wpe.weight", [1024, 768])]
for _i in range(2):
    HF_GPT2_2_LAYERS += [
        (f"transformer.h.{_i}.ln_1.weight", [768]),
        (f"transformer.h.{_i}.ln_1.bias", [768]),
        (f"transformer.h.{_i}.attn.c_attn.weight", [768, 2304]),
        (f"transformer.h.{_i}.attn.c_attn.bias", [2304]),
        (f"transformer.h.{_i}.attn.c_proj.weight", [768, 768]),
        (f"transformer.h.{_i}.attn.c_proj.bias", [768]),
        (f"transformer.h.{_i}.ln_2.weight", [768]),
        (f"transformer.h.{_i}.ln_2.bias", [768]),
        (f"transformer.h.{_i}.mlp.c_fc.weight", [768, 3072]),
        (f"transformer.h.{_i}.mlp.c_fc.bias", [3072]),
        (f"transformer.h.{_i}.mlp.c_proj.weight", [3072, 768]),
        (f"transformer.h.{_i}.mlp.c_proj.bias", [768]),
    ]
HF_GPT2_2_LAYERS += [("transformer.ln_f.weight", [768]), ("transformer.ln_f.bias", [768]), ("lm_head.weight", [50257, 768])]


def test_state_dict_matches_hugging_face_names_and_shapes():
    model = GPT2LMHeadModel(dataclasses.replace(preset("gpt2"), n_layer=2))
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert got == HF_GPT2_2_LAYERS
    assert model.lm_head.weight is model.transformer.wte.weight  # tied


def test_gpt2_preset_has_124m_parameters():
    # Counted from shapes (no 124M-parameter model needed): HF reports 124,439,808 for gpt2.
    c = preset("gpt2")
    block = sum(v[0] * (v[1] if len(v) > 1 else 1) for k, v in HF_GPT2_2_LAYERS if k.startswith("transformer.h.0."))
    total = c.vocab_size * c.n_embd + c.n_positions * c.n_embd + c.n_layer * block + 2 * c.n_embd
    assert total == 124_439_808
    assert {n: (p.n_layer, p.n_head, p.n_embd) for n, p in PRESETS.items() if n.startswith("gpt2")} == {
        "gpt2": (12, 12, 768),
        "gpt2-medium": (24, 16, 1024),
        "gpt2-large": (36, 20, 1280),
        "gpt2-xl": (48, 25, 1600),
    }
    assert all(p.layer_norm_epsilon == 1e-5 for p in PRESETS.values())


def test_forward_shapes():
    model = small_model()
    logits, presents = model(torch.randint(0, 101, (3, 5)))
    assert logits.shape == (3, 5, 101)
    assert len(presents) == 2
    for k, v in presents:
        assert k.shape == v.shape == (3, 4, 5, 4)


def test_config_from_hf_dict_ignores_unused_fields_and_rejects_unsupported_ones():
    c = GPT2Config.from_dict({"n_layer": 3, "n_head": 2, "n_embd": 8, "n_ctx": 16, "resid_pdrop": 0.1, "model_type": "gpt2"})
    assert (c.n_layer, c.n_positions, c.vocab_size) == (3, 16, 50257)
    with pytest.raises(ValueError, match="activation_function"):
        GPT2Config.from_dict({"activation_function": "relu"})
    assert GPT2Config.from_dict(c.to_hf_dict()) == c


def test_incremental_decoding_with_cache_equals_full_forward():
    model = small_model()
    ids = torch.randint(0, 101, (2, 9))
    with torch.no_grad():
        full, _ = model(ids)
        # Prefix of 4 with an empty (length 0) past, as the engine's first call, then one token at a time.
        logits, past = model(ids[:, :4], torch.ones(2, 4, dtype=torch.long), torch.arange(4).expand(2, 4), model.empty_past(2))
        steps = [logits]
        for t in range(4, 9):
            mask = torch.ones(2, t + 1, dtype=torch.long)
            logits, past = model(ids[:, t : t + 1], mask, torch.full((2, 1), t), past)
            steps.append(logits)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    assert past[0][0].shape == (2, 4, 9, 4)


def test_empty_past_equals_no_past_and_default_positions():
    model = small_model()
    ids = torch.randint(0, 101, (1, 6))
    with torch.no_grad():
        a, pa = model(ids)
        b, pb = model(ids, torch.ones(1, 6, dtype=torch.long), torch.arange(6)[None], model.empty_past(1))
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(pa[1][1], pb[1][1], atol=1e-6)


def test_left_padding_with_attention_mask_matches_unpadded_sequence():
    model = small_model()
    ids = torch.randint(1, 101, (1, 5))
    pad = 3
    padded = torch.cat([torch.zeros(1, pad, dtype=torch.long), ids], dim=1)
    mask = torch.cat([torch.zeros(1, pad, dtype=torch.long), torch.ones(1, 5, dtype=torch.long)], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        plain, _ = model(ids)
        full, _ = model(padded, mask, positions)
        assert torch.allclose(full[:, pad:], plain, atol=1e-5)
        assert torch.isfinite(full).all()  # fully masked padding rows must not produce NaN

        # Cached decoding of the padded batch: first 5 positions, then the rest one by one.
        logits, past = model(padded[:, :5], mask[:, :5], positions[:, :5], model.empty_past(1))
        outs = [logits]
        for t in range(5, pad + 5):
            logits, past = model(padded[:, t : t + 1], mask[:, : t + 1], positions[:, t : t + 1], past)
            outs.append(logits)
    cached = torch.cat(outs, dim=1)
    assert torch.allclose(cached[:, pad:], plain, atol=1e-5)


def test_batch_with_different_padding_matches_single_sequences():
    model = small_model()
    a, b = torch.randint(1, 101, (1, 6)), torch.randint(1, 101, (1, 3))
    batch = torch.cat([a, torch.cat([torch.zeros(1, 3, dtype=torch.long), b], dim=1)])
    mask = torch.tensor([[1] * 6, [0, 0, 0, 1, 1, 1]])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out, _ = model(batch, mask, positions)
        la, _ = model(a)
        lb, _ = model(b)
    assert torch.allclose(out[0], la[0], atol=1e-5)
    assert torch.allclose(out[1, 3:], lb[0], atol=1e-5)


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="unknown preset 'gpt3'"):
        preset("gpt3")
