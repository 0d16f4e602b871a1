"""Stand-in Stable Diffusion components in plain PyTorch, with the structure, input/output names,
shapes and dtypes of the diffusers ONNX exports (random weights: they make noise, not pictures):

  ClipTextEncoder   input_ids [B, 77] → last_hidden_state [B, 77, D], pooler_output [B, D]
                    (CLIP text transformer: causal self-attention, quick-GELU MLP, final LayerNorm;
                    pooled = the hidden state at the end-of-text token, CLIP's argmax(input_ids) rule)
  UNet              sample [B, 4, h, w], timestep [1] or [B], encoder_hidden_states [B, 77, D] → out_sample
                    (diffusers UNet2DConditionModel layout: sinusoidal timestep embedding (flip_sin_to_cos,
                    shift 0) + MLP, ResNet blocks with GroupNorm and the time embedding, spatial transformers
                    with self-attention, cross-attention to the text and a GEGLU feed-forward, strided-conv
                    downsampling, nearest ×2 + conv upsampling, skip connections)
  VaeDecoder        latent_sample [B, 4, h, w] → sample [B, 3, 8h, 8w] (AutoencoderKL's decoder: post-quant
                    conv, mid block with self-attention, three ×2 up blocks, GroupNorm + SiLU + conv out)

Presets: `tiny` (64×64 images, D = 32, ≈ 0.6 MB in all as fp32) and `bench` (a UNet of tens of
millions of parameters for the CPU benchmark). `count_unet_flops` counts one UNet evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_TEXT_LENGTH = 77


@dataclass(frozen=True)
class TextConfig:
    vocab_size: int
    hidden: int
    layers: int
    heads: int


@dataclass(frozen=True)
class UNetConfig:
    block_out_channels: Tuple[int, ...]
    layers_per_block: int
    heads: int  # attention heads in every transformer, unless head_dim is set
    cross_attention_dim: int
    norm_groups: int
    # Which down blocks (and mirrored up blocks) have spatial transformers; SD has all but the deepest.
    attention: Tuple[bool, ...]
    linear_projection: bool  # SD 2.x projects into the transformer with Linear, SD 1.x with a 1×1 conv
    # Fixed head width, heads = channels / head_dim at each level (SD 2.x: 64; SD 1.x has 8 heads of 40 at 320).
    head_dim: Optional[int] = None

    def heads_at(self, channels: int) -> int:
        if self.head_dim is None:
            return self.heads
        if channels % self.head_dim:
            raise ValueError(f"{channels} channels are not a whole number of {self.head_dim}-wide heads")
        return channels // self.head_dim


@dataclass(frozen=True)
class VaeConfig:
    block_out_channels: Tuple[int, ...]  # from the top (image side) down; 4 entries → 3 upsamplings (×8)
    layers_per_block: int
    norm_groups: int


@dataclass(frozen=True)
class Preset:
    name: str
    image_size: int
    text: TextConfig
    unet: UNetConfig
    vae: VaeConfig
    num_merges: int = field(default=200)


def preset(name: str, vocab_size: int) -> Preset:
    if name == "tiny":
        return Preset(
            name="tiny",
            image_size=64,
            text=TextConfig(vocab_size=vocab_size, hidden=32, layers=2, heads=2),
            unet=UNetConfig(
                block_out_channels=(8, 16), layers_per_block=1, heads=2, cross_attention_dim=32,
                norm_groups=4, attention=(True, False), linear_projection=False,
            ),
            vae=VaeConfig(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_groups=4),
        )
    if name == "bench":
        # SD's attention where the time goes: 320 channels at the 64×64 level (4096 tokens) as in
        # SD 1.x/2.x, heads 64 wide as in SD 2.x (5 at 320, 10 at 640), 768-wide text. Within a
        # ≈ 100M-parameter budget the deeper levels are narrower than SD's (320, 640 vs 640, 1280,
        # 1280), with one ResNet per level and three levels: 98.4M UNet parameters, 259 GFLOP per
        # call at 512×512 (SD 2.x: 866M, ≈ 800 GFLOP).
        return Preset(
            name="bench",
            image_size=512,
            text=TextConfig(vocab_size=vocab_size, hidden=768, layers=2, heads=12),
            unet=UNetConfig(
                block_out_channels=(320, 320, 640), layers_per_block=1, heads=8, cross_attention_dim=768,
                norm_groups=32, attention=(True, True, False), linear_projection=False, head_dim=64,
            ),
            vae=VaeConfig(block_out_channels=(32, 64, 64, 64), layers_per_block=1, norm_groups=32),
        )
    raise ValueError(f"unknown preset {name!r} (tiny or bench)")


class FlopCounter:
    """Multiply-add FLOPs (2 per MAC) of convolutions, linear layers and attention matmuls; norms,
    activations and element-wise ops are left out (a few % of the total, memory-bound anyway)."""

    def __init__(self) -> None:
        self.flops = 0


_COUNTER: List[FlopCounter] = []
# Non-empty while exporting with --fused-attention (see fused_attention_export).
_FUSED: List[bool] = []


class _MultiHeadAttention(torch.autograd.Function):
    """softmax(q kᵀ / √d) v over [B, N, C] projections, exported as one onnxruntime
    com.microsoft MultiHeadAttention node (its CPU kernel tiles keys flash-attention style, so the
    N × M score matrix is never written out)."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:  # type: ignore[override]
        return _attend(q, k, v, heads)

    @staticmethod
    def symbolic(g, q, k, v, heads: int):  # type: ignore[no-untyped-def]
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=heads)
        out.setType(q.type())
        return out


class fused_attention_export:
    """Within this block, unmasked attention traces as _MultiHeadAttention (same arithmetic in PyTorch)."""

    def __enter__(self) -> None:
        _FUSED.append(True)

    def __exit__(self, *exc) -> None:
        _FUSED.pop()


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = q.shape
    m = k.shape[1]
    qh = q.reshape(b, n, heads, c // heads).transpose(1, 2)
    kh = k.reshape(b, m, heads, c // heads).transpose(1, 2)
    vh = v.reshape(b, m, heads, c // heads).transpose(1, 2)
    scores = torch.matmul(qh, kh.transpose(-1, -2)) * (1.0 / math.sqrt(c // heads))
    return torch.matmul(scores.softmax(dim=-1), vh).transpose(1, 2).reshape(b, n, c)


def _count(flops: int) -> None:
    if _COUNTER:
        _COUNTER[-1].flops += int(flops)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, context_dim: Optional[int] = None, qkv_bias: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        context_dim = context_dim or dim
        self.to_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.to_k = nn.Linear(context_dim, dim, bias=qkv_bias)
        self.to_v = nn.Linear(context_dim, dim, bias=qkv_bias)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        context = x if context is None else context
        b, n, c = x.shape
        m = context.shape[1]
        h = self.heads
        _count(2 * 2 * b * n * m * c)
        if _FUSED and mask is None:
            return self.to_out(_MultiHeadAttention.apply(self.to_q(x), self.to_k(context), self.to_v(context), h))
        # (Operation order as first exported: the committed fixtures regenerate byte-identically.)
        q = self.to_q(x).reshape(b, n, h, c // h).transpose(1, 2)
        k = self.to_k(context).reshape(b, m, h, c // h).transpose(1, 2)
        v = self.to_v(context).reshape(b, m, h, c // h).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(c // h))
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        out = torch.matmul(scores.softmax(dim=-1), v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, c))


# ---------------------------------------------------------------- text encoder (CLIP)


class ClipLayer(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.hidden)
        self.self_attn = Attention(cfg.hidden, cfg.heads, qkv_bias=True)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden)
        self.fc1 = nn.Linear(cfg.hidden, 4 * cfg.hidden)
        self.fc2 = nn.Linear(4 * cfg.hidden, cfg.hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), mask=mask)
        h = self.fc1(self.layer_norm2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))  # CLIP's quick GELU


class ClipTextEncoder(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.position_embedding = nn.Embedding(MAX_TEXT_LENGTH, cfg.hidden)
        self.layers = nn.ModuleList(ClipLayer(cfg) for _ in range(cfg.layers))
        self.final_layer_norm = nn.LayerNorm(cfg.hidden)
        self.register_buffer("causal", torch.ones(MAX_TEXT_LENGTH, MAX_TEXT_LENGTH, dtype=torch.bool).triu(1), persistent=False)

    def forward(self, input_ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        ids = input_ids.long()  # exports declare int32 or int64
        n = ids.shape[1]
        x = self.token_embedding(ids) + self.position_embedding.weight[:n]
        mask = self.causal[:n, :n]
        for layer in self.layers:
            x = layer(x, mask)
        x = self.final_layer_norm(x)
        # CLIP pools at the end-of-text token, which has the largest id in the vocabulary.
        pooled = x[torch.arange(x.shape[0]), ids.argmax(dim=-1)]
        return x, pooled


# ---------------------------------------------------------------- UNet


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int, temb: Optional[int]):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5 if temb else 1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout) if temb else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5 if temb else 1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor, temb: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class SpatialTransformer(nn.Module):
    """diffusers' Transformer2DModel with one BasicTransformerBlock."""

    def __init__(self, channels: int, cfg: UNetConfig):
        super().__init__()
        self.norm = nn.GroupNorm(cfg.norm_groups, channels, eps=1e-6)
        self.linear = cfg.linear_projection
        self.proj_in = nn.Linear(channels, channels) if self.linear else nn.Conv2d(channels, channels, 1)
        self.norm1 = nn.LayerNorm(channels)
        self.attn1 = Attention(channels, cfg.heads_at(channels))
        self.norm2 = nn.LayerNorm(channels)
        self.attn2 = Attention(channels, cfg.heads_at(channels), context_dim=cfg.cross_attention_dim)
        self.norm3 = nn.LayerNorm(channels)
        self.ff_in = nn.Linear(channels, 8 * channels)  # GEGLU: value and gate
        self.ff_out = nn.Linear(4 * channels, channels)
        self.proj_out = nn.Linear(channels, channels) if self.linear else nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        residual = x
        x = self.norm(x)
        if not self.linear:
            x = self.proj_in(x)
        x = x.reshape(b, c, h * w).transpose(1, 2)
        if self.linear:
            x = self.proj_in(x)
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        value, gate = self.ff_in(self.norm3(x)).chunk(2, dim=-1)
        x = x + self.ff_out(value * F.gelu(gate))
        if self.linear:
            x = self.proj_out(x)
        x = x.transpose(1, 2).reshape(b, c, h, w)
        if not self.linear:
            x = self.proj_out(x)
        return x + residual


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """diffusers' Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0): [cos | sin]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None, :].to(t.device)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.block_out_channels
        g = cfg.norm_groups
        temb = 4 * ch[0]
        self.time_linear_1 = nn.Linear(ch[0], temb)
        self.time_linear_2 = nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(4, ch[0], 3, padding=1)

        skips = [ch[0]]
        self.down = nn.ModuleList()
        cin = ch[0]
        for level, cout in enumerate(ch):
            block = nn.Module()
            block.resnets = nn.ModuleList()
            block.attentions = nn.ModuleList()
            for _ in range(cfg.layers_per_block):
                block.resnets.append(ResnetBlock(cin, cout, g, temb))
                if cfg.attention[level]:
                    block.attentions.append(SpatialTransformer(cout, cfg))
                cin = cout
                skips.append(cout)
            block.downsample = nn.Conv2d(cout, cout, 3, stride=2, padding=1) if level < len(ch) - 1 else None
            if block.downsample is not None:
                skips.append(cout)
            self.down.append(block)

        self.mid_resnet_1 = ResnetBlock(ch[-1], ch[-1], g, temb)
        self.mid_attention = SpatialTransformer(ch[-1], cfg)
        self.mid_resnet_2 = ResnetBlock(ch[-1], ch[-1], g, temb)

        self.up = nn.ModuleList()
        cin = ch[-1]
        for level in reversed(range(len(ch))):
            cout = ch[level]
            block = nn.Module()
            block.resnets = nn.ModuleList()
            block.attentions = nn.ModuleList()
            for _ in range(cfg.layers_per_block + 1):
                block.resnets.append(ResnetBlock(cin + skips.pop(), cout, g, temb))
                if cfg.attention[level]:
                    block.attentions.append(SpatialTransformer(cout, cfg))
                cin = cout
            block.upsample = nn.Conv2d(cout, cout, 3, padding=1) if level > 0 else None
            self.up.append(block)
        assert not skips

        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=1e-5)
        self.conv_out = nn.Conv2d(ch[0], 4, 3, padding=1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        # The pipelines pass timestep as [1] (one value for the whole batch) or [batch].
        t = timestep.reshape(-1).to(sample.dtype).expand(sample.shape[0])
        emb = timestep_embedding(t, self.cfg.block_out_channels[0]).to(sample.dtype)
        temb = self.time_linear_2(F.silu(self.time_linear_1(emb)))

        x = self.conv_in(sample)
        skips = [x]
        for block in self.down:
            for i, resnet in enumerate(block.resnets):
                x = resnet(x, temb)
                if len(block.attentions):
                    x = block.attentions[i](x, encoder_hidden_states)
                skips.append(x)
            if block.downsample is not None:
                x = block.downsample(x)
                skips.append(x)

        x = self.mid_resnet_1(x, temb)
        x = self.mid_attention(x, encoder_hidden_states)
        x = self.mid_resnet_2(x, temb)

        for block in self.up:
            for i, resnet in enumerate(block.resnets):
                x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
                if len(block.attentions):
                    x = block.attentions[i](x, encoder_hidden_states)
            if block.upsample is not None:
                x = block.upsample(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.conv_norm_out(x)))


# ---------------------------------------------------------------- VAE decoder


class VaeAttention(nn.Module):
    """AutoencoderKL's single-head self-attention over pixels."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.attn = Attention(channels, 1, qkv_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.group_norm(x).reshape(b, c, h * w).transpose(1, 2)
        return x + self.attn(y).transpose(1, 2).reshape(b, c, h, w)


class VaeDecoder(nn.Module):
    def __init__(self, cfg: VaeConfig):
        super().__init__()
        ch = list(reversed(cfg.block_out_channels))  # deepest first
        g = cfg.norm_groups
        self.post_quant_conv = nn.Conv2d(4, 4, 1)
        self.conv_in = nn.Conv2d(4, ch[0], 3, padding=1)
        self.mid_resnet_1 = ResnetBlock(ch[0], ch[0], g, None)
        self.mid_attention = VaeAttention(ch[0], g)
        self.mid_resnet_2 = ResnetBlock(ch[0], ch[0], g, None)
        self.up = nn.ModuleList()
        cin = ch[0]
        for i, cout in enumerate(ch):
            block = nn.Module()
            block.resnets = nn.ModuleList(ResnetBlock(cin if j == 0 else cout, cout, g, None) for j in range(cfg.layers_per_block + 1))
            block.upsample = nn.Conv2d(cout, cout, 3, padding=1) if i < len(ch) - 1 else None
            self.up.append(block)
            cin = cout
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], 3, 3, padding=1)

    def forward(self, latent_sample: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(self.post_quant_conv(latent_sample))
        x = self.mid_resnet_2(self.mid_attention(self.mid_resnet_1(x)))
        for block in self.up:
            for resnet in block.resnets:
                x = resnet(x)
            if block.upsample is not None:
                x = block.upsample(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.conv_norm_out(x)))


# ---------------------------------------------------------------- construction


def _calibrate_output(model: nn.Module, out_conv: nn.Conv2d, run, target_std: float) -> None:
    """Scales the last convolution by a power of two so the output's spread is near target_std.
    Random weights otherwise give near-constant outputs (a UNet that predicts ~0 noise, a VAE whose
    pixels are all mid-grey), which would make the reference a weak test. A power of two keeps the
    result bit-identical whatever rounding the measurement had."""
    with torch.no_grad():
        std = float(run().std())
        scale = 2.0 ** round(math.log2(target_std / std))
        out_conv.weight.mul_(scale)
        out_conv.bias.mul_(scale)


def build_models(p: Preset, seed: int) -> Tuple[ClipTextEncoder, UNet, VaeDecoder]:
    """Deterministic random weights (CPU RNG, fixed seed, fixed construction order)."""
    torch.manual_seed(seed)
    text = ClipTextEncoder(p.text).eval()
    unet = UNet(p.unet).eval()
    vae = VaeDecoder(p.vae).eval()
    # Norm layers start at weight 1 / bias 0; jitter them so a wrong scale/shift wiring shows.
    with torch.no_grad():
        for m in [*text.modules(), *unet.modules(), *vae.modules()]:
            if isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
                m.weight.add_(torch.randn_like(m.weight) * 0.1)
                m.bias.add_(torch.randn_like(m.bias) * 0.1)
    g = torch.Generator().manual_seed(seed + 1)
    if p.name == "tiny":  # the bench only times the models; its outputs need no spread
        latent = p.image_size // 8
        ids = torch.randint(0, p.text.vocab_size, (1, MAX_TEXT_LENGTH), generator=g)
        with torch.no_grad():
            context = text(ids)[0]
        sample = torch.randn(1, 4, latent, latent, generator=g)
        _calibrate_output(unet, unet.conv_out, lambda: unet(sample, torch.tensor([500]), context), 1.0)
        _calibrate_output(vae, vae.conv_out, lambda: vae(sample / 0.18215), 0.6)
    return text, unet, vae


def parameter_count(model: nn.Module) -> int:
    return sum(t.numel() for t in model.parameters())


def count_unet_flops(unet: UNet, latent_h: int, latent_w: int, batch: int = 1) -> int:
    """FLOPs (2 per multiply-add) of one UNet evaluation: every Conv2d and Linear, plus the attention
    score and weighted-sum matmuls, from a real forward pass at the given latent size."""
    counter = FlopCounter()
    hooks = []

    def conv_hook(m: nn.Conv2d, inputs, output) -> None:
        _count(2 * output.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])

    def linear_hook(m: nn.Linear, inputs, output) -> None:
        _count(2 * output.numel() * m.in_features)

    for m in unet.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    _COUNTER.append(counter)
    try:
        with torch.no_grad():
            d = unet.cfg.cross_attention_dim
            unet(torch.zeros(batch, 4, latent_h, latent_w), torch.tensor([999]), torch.zeros(batch, MAX_TEXT_LENGTH, d))
    finally:
        _COUNTER.pop()
        for h in hooks:
            h.remove()
    return counter.flops
