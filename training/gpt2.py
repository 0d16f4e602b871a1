"""GPT-2 in plain PyTorch, in one readable file (after nanoGPT's model.py).

Parameter names and shapes equal Hugging Face's GPT2LMHeadModel state dict, so a Hugging Face
checkpoint loads without renaming and our checkpoints load in anything that reads Hugging Face
GPT-2. Two consequences of that choice are visible below:

- Linear layers are HF's ``Conv1D``: the weight is stored ``[in, out]`` (transposed relative to
  ``nn.Linear``) and applied as ``x @ W + b``.
- ``lm_head.weight`` is the same Parameter as ``transformer.wte.weight`` (tied embeddings).

The forward pass takes and returns a key/value cache in the layout of Hugging Face's ONNX
exports (per layer ``(key, value)``, each ``[batch, n_head, seq, head_dim]``), which is what
training/export_onnx.py exposes as ``past_key_values.N.key|value`` / ``present.N.key|value``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

KeyValue = Tuple[torch.Tensor, torch.Tensor]


@dataclass
class GPT2Config:
    """Architecture, with the field names of Hugging Face's GPT-2 config.json."""

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "GPT2Config":
        """Reads a Hugging Face config.json dict; fields this model does not use are ignored."""
        activation = d.get("activation_function", "gelu_new")
        if activation not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(
                f"config.json asks for activation_function={activation!r}; this GPT-2 implements "
                "only the tanh GELU ('gelu_new') that GPT-2 uses"
            )
        if d.get("n_inner") not in (None, 4 * d.get("n_embd", 768)):
            raise ValueError("config.json sets n_inner; this GPT-2 supports only n_inner = 4 * n_embd")
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in fields}
        if "n_positions" not in values and "n_ctx" in d:  # very old HF configs
            values["n_positions"] = d["n_ctx"]
        return cls(**values)

    def to_hf_dict(self) -> Dict[str, Any]:
        """A complete Hugging Face config.json for GPT2LMHeadModel with this architecture."""
        return {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": self.vocab_size,
            "n_positions": self.n_positions,
            "n_ctx": self.n_positions,
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_inner": None,
            "activation_function": "gelu_new",
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "resid_pdrop": 0.1,
            "embd_pdrop": 0.1,
            "attn_pdrop": 0.1,
            "initializer_range": 0.02,
            "scale_attn_weights": True,
            "tie_word_embeddings": True,
            "bos_token_id": 50256,
            "eos_token_id": 50256,
            "torch_dtype": "float32",
        }


PRESETS: Dict[str, GPT2Config] = {
    "gpt2": GPT2Config(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": GPT2Config(n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": GPT2Config(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": GPT2Config(n_layer=48, n_head=25, n_embd=1600),  # 1558M, the paper's model
    # Test fixture: full GPT-2 vocabulary (so real token files fit) but tiny everywhere else;
    # the embedding matrix dominates, 50257 x 32 float32 = 6.4 MB.
    "tiny": GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64),
    # The shipped default prompt model (models/caption-gpt2-small): small enough to commit (~22 MB
    # of ONNX) and to train from scratch on 2 CPU cores in under half an hour; 128 positions hold
    # a tagged caption of up to ~100 tokens.
    "caption-small": GPT2Config(n_layer=4, n_head=4, n_embd=96, n_positions=128),
}


def preset(name: str) -> GPT2Config:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name])


class Conv1D(nn.Module):
    """Hugging Face's GPT-2 'Conv1D': a linear layer whose weight is stored [in, out]."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.weight) + self.bias


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation, written out exactly as HF's NewGELUActivation (and GPT-2's TF code)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


# A reshape target: a tuple of ints in PyTorch, a 1-D int64 tensor while exporting (see batch_shape).
ShapeLike = Union[Tuple[int, ...], torch.Tensor]


def batch_shape(input_ids: torch.Tensor, *tail: int) -> ShapeLike:
    """``(batch, seq, *tail)`` for a forward on ``input_ids``.

    In PyTorch a tuple of ints. Under ``torch.onnx.export`` a 1-D int64 tensor, ``Shape(input_ids) ++
    tail``, that the model computes once per forward and every block reuses: batch and sequence
    stay dynamic, and the graph has one Shape + Concat instead of a Shape -> Gather -> Unsqueeze ->
    Concat chain in front of every Reshape (what tracing ``x.size()`` records).
    """
    if torch.onnx.is_in_onnx_export():
        with warnings.catch_warnings():  # the tail is a constant, which is what the warning is about
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return torch.cat([torch._shape_as_tensor(input_ids), torch.tensor(tail, dtype=torch.long)])
    return (input_ids.size(0), input_ids.size(1), *tail)


def reshape(x: torch.Tensor, shape: ShapeLike) -> torch.Tensor:
    """``x.reshape(shape)``; exports as a single Reshape when ``shape`` is a batch_shape tensor."""
    if isinstance(shape, torch.Tensor):
        return _ReshapeTo.apply(x, shape)
    return x.reshape(shape)


class _ReshapeTo(torch.autograd.Function):
    """Export-only (no backward): Reshape against a shape tensor computed elsewhere in the graph."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        with warnings.catch_warnings():  # runs only while tracing; symbolic() records the real op
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return x.reshape([int(n) for n in shape])

    @staticmethod
    def symbolic(g: Any, x: Any, shape: Any) -> Any:
        with warnings.catch_warnings():  # torch 1.13 flags g.op as deprecated; it is the documented API
            warnings.simplefilter("ignore", FutureWarning)
            return g.op("Reshape", x, shape)


class Attention(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.head_dim = config.head_dim
        self.n_embd = config.n_embd  # Python constants, so tracing does not read them from a shape
        self.c_attn = Conv1D(config.n_embd, 3 * config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.n_embd)
        # Set by training/export_onnx.py --fused-attention: export the attention core (cache
        # append, scores, softmax, weighted sum) as one com.microsoft MultiHeadAttention node.
        self.fused_export = False
        # Set by training/export_onnx.py --kv-cache buffer: take the past as a buffer the engine
        # appends to (unused positions masked out) and return only this step's keys and values.
        self.step_kv_export = False

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor, qkv_shape: ShapeLike, past: Optional[KeyValue]
    ) -> Tuple[torch.Tensor, KeyValue]:
        """x [b * t, n_embd] (rows: the model runs its dense layers on 2-D activations);
        bias [b or 1, 1, t, past + t], additive (0 = attend, finfo.min = masked), and
        qkv_shape (b, t, 3 * n_head, head_dim), both computed once per forward by the model."""
        if self.fused_export and past is not None and torch.onnx.is_in_onnx_export():
            y, pk, pv = _FusedAttention.apply(self.c_attn(x), qkv_shape, bias, past[0], past[1], self.n_head, self.head_dim)
            return self.c_proj(y), (pk, pv)
        # One reshape + one transpose + one split for q, k and v: [b * t, 3E] -> [b, t, 3h, d] ->
        # [b, 3h, t, d] -> three [b, h, t, d] (c_attn's columns are q | k | v, each head-major).
        qkv = reshape(self.c_attn(x), qkv_shape).transpose(1, 2)
        q, k, v = qkv.split(self.n_head, dim=1)
        if self.step_kv_export and past is not None:
            return self._attend_past_buffer(q, k, v, bias, past)
        if past is not None:
            # An empty past ([b, h, 0, d]) concatenates to a no-op, so the first step of cached
            # decoding and a cache-less forward are the same computation.
            # (.to only when needed, e.g. under autocast: tracing would record a no-op Cast otherwise.)
            pk, pv = past
            k = torch.cat([pk if pk.dtype == k.dtype else pk.to(k.dtype), k], dim=2)
            v = torch.cat([pv if pv.dtype == v.dtype else pv.to(v.dtype), v], dim=2)
        present = (k, v)

        att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        # Masked entries get finfo.min / 2 added, which swamps any score (in float32 the sum rounds
        # to exactly that value) without overflowing to -inf in half precision. A row with every key
        # masked (a left-padding query) gets a uniform softmax instead of NaN, and allowed keys are
        # unaffected (exp(min / 2 - max) == 0): the result equals masked_fill(finfo.min).
        att = F.softmax(att + bias, dim=-1)
        y = torch.matmul(att, v)  # [b, h, t, d]
        y = y.transpose(1, 2).reshape(-1, self.n_embd)  # rows [b * t, E]; constant target shape
        return self.c_proj(y), present

    def _attend_past_buffer(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, past: KeyValue
    ) -> Tuple[torch.Tensor, KeyValue]:
        """forward() for a past that the caller keeps: scores against the past and against this
        step's keys side by side (the numbers one matmul against their concatenation gives), the
        weighted sum in the same two parts, and only this step's keys and values returned. The
        exported graph then never copies the cache: no Concat, and nothing of the past in its outputs."""
        pk, pv = past
        # Against this step's own keys and values, products summed over an axis rather than
        # MatMuls: at a decode step (t = 1) those are b x h one-element matrix products, for which
        # onnxruntime's batched MatMul spent ~40 us a layer waking its threads; two small
        # elementwise ops do not. The price is O(t^2 d) memory at the first step, whose t is the
        # prefix: a few dozen tokens.
        own = (q.unsqueeze(3) * k.unsqueeze(2)).sum(-1)  # [b, h, t, t]
        scores = torch.cat([torch.matmul(q, pk.transpose(-1, -2)), own], dim=-1)
        att = F.softmax(scores / math.sqrt(self.head_dim) + bias, dim=-1)
        # From the bias [b or 1, 1, t, past + t], which every block shares: the exported graph reads
        # the length once for all blocks (from pk it would be a Shape -> Gather chain per block).
        n_past = bias.size(-1) - bias.size(-2)
        y = torch.matmul(att[..., :n_past], pv) + (att[..., n_past:].unsqueeze(-1) * v.unsqueeze(2)).sum(3)
        y = y.transpose(1, 2).reshape(-1, self.n_embd)
        return self.c_proj(y), (k, v)


class _FusedAttention(torch.autograd.Function):
    """Export-only (no backward): rows [b * t, 3E] of c_attn's output, the shared head shape
    (b, t, 3h, d), the additive bias [b or 1, 1, t, past + t] and the past key/value [b, h, past, d]
    -> rows [b * t, E] and the present key/value [b, h, past + t, d]. forward() is the reference
    computation (what Attention.forward does) so tracing sees the right shapes; symbolic() records
    onnxruntime's MultiHeadAttention, which appends to the cache and attends in one kernel."""

    @staticmethod
    def forward(ctx: Any, qkv_rows, qkv_shape, bias, past_k, past_v, n_head: int, head_dim: int):  # type: ignore[override]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            qkv = qkv_rows.reshape([int(n) for n in qkv_shape]).transpose(1, 2)
        q, k, v = qkv.split(n_head, dim=1)
        k = torch.cat([past_k, k], dim=2)
        v = torch.cat([past_v, v], dim=2)
        att = F.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(head_dim) + bias, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(-1, n_head * head_dim)
        return y, k, v

    @staticmethod
    def symbolic(g: Any, qkv_rows, qkv_shape, bias, past_k, past_v, n_head: int, head_dim: int):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            embd = n_head * head_dim
            qkv = g.op("Reshape", qkv_rows, qkv_shape)  # [b, t, 3h, d]
            heads = g.op("Constant", value_t=torch.tensor([n_head] * 3, dtype=torch.long))
            q, k, v = g.op("Split", qkv, heads, axis_i=2, outputs=3)
            # [b, t, h, d] -> [b, t, E]: Reshape's 0 keeps batch and sequence as they are.
            bte = g.op("Constant", value_t=torch.tensor([0, 0, embd], dtype=torch.long))
            q, k, v = (g.op("Reshape", t, bte) for t in (q, k, v))
            none = g.op("prim::Constant").setType(torch._C.OptionalType.ofTensor())
            y, pk, pv = g.op(
                "com.microsoft::MultiHeadAttention",
                q, k, v, none, none, bias, past_k, past_v,
                num_heads_i=n_head,
                outputs=3,
            )
            rows = g.op("Constant", value_t=torch.tensor([-1, embd], dtype=torch.long))
            return g.op("Reshape", y, rows), pk, pv


class MLP(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.c_fc = Conv1D(config.n_embd, 4 * config.n_embd)
        self.c_proj = Conv1D(4 * config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(gelu_new(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = Attention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor, qkv_shape: ShapeLike, past: Optional[KeyValue]
    ) -> Tuple[torch.Tensor, KeyValue]:
        a, present = self.attn(self.ln_1(x), bias, qkv_shape, past)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, present


class Transformer(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)


class GPT2LMHeadModel(nn.Module):
    """GPT-2 language model. Dropout is omitted: finetuning here follows the paper's recipe of
    freezing most blocks, and no dropout keeps training and the exported graph identical."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.config = config
        self.transformer = Transformer(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as in GPT-2
        self.init_weights()

    def init_weights(self) -> None:
        """GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer)."""
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                nn.init.ones_(p)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            elif name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.config.n_layer))
            else:
                nn.init.normal_(p, 0.0, std)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights counted once

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        past_key_values: Optional[Sequence[KeyValue]] = None,
    ) -> Tuple[torch.Tensor, Tuple[KeyValue, ...]]:
        """
        input_ids       [batch, seq] int64
        attention_mask  [batch, past + seq], 1 = attend, 0 = padding; combined with the causal mask
        position_ids    [batch, seq]; defaults to past .. past + seq - 1 (pass them for left padding)
        past_key_values per layer (key, value), each [batch, n_head, past, head_dim], or None
        returns         (logits [batch, seq, vocab], presents: per layer (key, value) incl. this step)
        """
        t = input_ids.size(1)
        past_len = 0 if past_key_values is None else past_key_values[0][0].size(2)
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + t, dtype=torch.long, device=input_ids.device)
            position_ids = position_ids.unsqueeze(0)
        c = self.config
        x = self.transformer.wte(input_ids) + self.transformer.wpe(position_ids)
        bias = self.attention_bias(attention_mask, t, past_len, x.dtype, x.device)
        # The blocks run on rows [b * t, E]: the same arithmetic as [b, t, E] (matmul folds leading
        # dims anyway), and in the exported graph every dense layer is a 2-D MatMul + Add, which
        # onnxruntime fuses into one Gemm. lm_head gets [b, t, E] back, so logits keep a static
        # vocabulary axis in the graph's declared output shape.
        x = x.reshape(-1, c.n_embd)
        qkv_shape = batch_shape(input_ids, 3 * c.n_head, c.head_dim)

        presents: List[KeyValue] = []
        for i, block in enumerate(self.transformer.h):
            x, present = block(x, bias, qkv_shape, None if past_key_values is None else past_key_values[i])
            presents.append(present)
        x = reshape(self.transformer.ln_f(x), batch_shape(input_ids, c.n_embd))
        logits = self.lm_head(x)
        return logits, tuple(presents)

    @staticmethod
    def attention_bias(
        attention_mask: Optional[torch.Tensor], t: int, past_len: int, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """The additive attention bias every block uses: [b or 1, 1, t, past_len + t], 0 where query i
        (absolute position past_len + i) may attend key j — j <= past_len + i and, with a mask,
        attention_mask[:, j] != 0 — and finfo(dtype).min / 2 elsewhere. Computed once per forward
        (in the exported graph: once per step, not once per layer)."""
        s = past_len + t
        keys = torch.arange(s, device=device)
        queries = torch.arange(t, device=device) + past_len
        allowed = keys[None, :] <= queries[:, None]  # [t, s]
        if attention_mask is not None:
            allowed = allowed & attention_mask.to(torch.bool)[:, None, None, :]  # [b, 1, t, s]
        else:
            allowed = allowed[None, None]
        zero = torch.zeros((), dtype=dtype, device=device)
        return torch.where(allowed, zero, torch.full((), torch.finfo(dtype).min / 2, dtype=dtype, device=device))

    def empty_past(self, batch: int, device: Optional[torch.device] = None) -> Tuple[KeyValue, ...]:
        """Zero-length cache, what the Node engine passes on its first call."""
        c = self.config
        shape = (batch, c.n_head, 0, c.head_dim)
        return tuple(
            (torch.zeros(shape, device=device), torch.zeros(shape, device=device)) for _ in range(c.n_layer)
        )
