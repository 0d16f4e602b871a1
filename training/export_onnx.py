"""Export a GPT-2 checkpoint to the model directory that the Node prompt engine loads.

    /usr/bin/python3 training/export_onnx.py --checkpoint checkpoints/gpt2-xl-laion-tags --out models/laion-tags
    /usr/bin/python3 training/export_onnx.py --random gpt2 --seed 1 --out /tmp/gpt2-random   # 124M benchmark model
    /usr/bin/python3 training/export_onnx.py --random gpt2 --quant int4 --out /tmp/gpt2-int4  # weight-only int4
    /usr/bin/python3 training/export_onnx.py --from-onnx models/caption-gpt2-small --quant int8 --out /tmp/small-int8

Writes:
  model.onnx           decoder with KV cache: input_ids, attention_mask, position_ids,
                       past_key_values.N.key|value -> logits, new_key_values.N.key|value (this step's
                       keys and values, which the engine appends to the past it keeps: --kv-cache
                       buffer, the default for models 768 wide or more) or present.N.key|value (past
                       + this step, Hugging Face's names and layout: --kv-cache concat, the default
                       below that width). Batch, sequence and past length are
                       dynamic; the engine's first call passes zero-length past tensors.
  model.onnx.data      its weights, as ONNX external data (one file). onnxruntime maps the file
                       instead of parsing the weights out of the graph's protobuf: GPT-2 small loads
                       in ~1.2 s instead of 4-6 s with 0.61 instead of 0.81 GB resident, and gpt2-xl
                       at int4 needs 1.6 instead of 2.5 GB (the weights it prepacks are not also kept
                       as protobuf copies); no 2 GB protobuf limit either.
  imagine-model.json   architecture, tags, mean caption length, provenance
  golden.json          reference logits from PyTorch (full forward and a cached greedy run) that the
                       TypeScript tests compare against onnxruntime-node (not for --quant: a
                       quantized model is checked by bench/prompt-quality.ts against its fp32 source)

--quant int8|int4 stores every dense weight (the blocks' MatMuls and lm_head) as block-quantized
integers (blocks of 256 with zero points) for onnxruntime's com.microsoft MatMulNBits, which
dequantizes inside the matmul: a decode step streams ~3.8x (int8) or ~6-7x (int4, lm_head kept at
int8) fewer weight bytes. The token embedding's Gather becomes com.microsoft GatherBlockQuantized
over int8 rows (lm_head gets its own quantized copy of the tied matrix). Activations, LayerNorm,
biases and the position embedding stay float32. --quant-block-size, --quant-symmetric,
--quant-head-bits, --quant-accuracy-level and --quant-embedding-bits change that (the constants
below say what each measured).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime
import inspect
import json
import os
import shutil
import sys
import tempfile
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checkpoint import CheckpointError, load_pretrained  # noqa: E402
from gpt2 import GPT2Config, GPT2LMHeadModel, preset  # noqa: E402

# GPT-2 BPE ids of "<|startoftext|>a lighthouse on a cliff" (the start tag as plain text, as the
# TypeScript tokenizer encodes it): a realistic prompt for the golden fixture, 12 ids.
DEFAULT_GOLDEN_IDS = [27, 91, 9688, 1659, 5239, 91, 29, 64, 46371, 319, 257, 19516]
GOLDEN_STEPS = 16
GOLDEN_VOCAB_STRIDE = 97
MAX_OPSET = 17
# Initializers at least this large go to model.onnx.data (smaller ones, shapes and constants, stay
# in the graph).
EXTERNAL_DATA_THRESHOLD = 1024
QUANT_BITS = {"int8": 8, "int4": 4}
# Elements per scale (at most: narrow rows get smaller blocks, fitted_block_size). onnxruntime
# 1.30's AVX-512 VNNI int4 kernel is compute-bound here (it rescales every block of every row), so
# fewer, larger blocks pay. gpt2-xl, in one process (bench/decode-compare.ts, 2026-12-07, load
# 1.5-2.5): int4 blocks of 128 vs 32 ran 23.1 vs 17.1 steps/s at batch 1 and 10.5 vs 8.4 at batch 5,
# 256 vs 128 25.5 vs 22.1 and 11.9 vs 10.5 (padding 1600-wide rows to 1792 included); int8 128 vs 32
# 18.0 vs 13.1 and 9.4 vs 7.7, 256 vs 128 the same at batch 1, 9.7 vs 9.0 at batch 5. Resident
# memory of int4: 1.19 GB at 256, 1.22 at 128, 1.65 at 32 (bench/model-memory.ts: scales and MLAS's
# per-block sums shrink). Quality on the shipped model stays within the goals: at 256 int4 98.6% top-1
# and int8 99.5%, loss within 0.1% (at 128 97.8% / 99.3%, at 32 98.5% / 99.7%: differences this
# size are within the benchmark's noise).
QUANT_BLOCK_SIZE = 256
# lm_head decides every token: int4 blocks elsewhere, int8 there (as llama.cpp's Q4_K_M keeps its
# output matrix at 6 bits). It is ~5% of gpt2-xl's weights; at 4 bits it ran no faster (10.8 vs
# 11.0 steps/s at batch 5).
QUANT_HEAD_BITS = {"int8": 8, "int4": 8}
# MatMulNBits' accuracy_level 4 multiplies int8-quantized activations with the int codes (MLAS's
# fast kernels). Level 0 (float32 arithmetic) has no fast 8-bit kernel in onnxruntime 1.30's CPU
# provider: it dequantizes the whole weight every step, 10-20x slower than float32 (measured on
# GPT-2 small: int8 0.8-1 steps/s vs fp32 12-25); for int4 at blocks of 128, levels 0 and 1 ran
# gpt2-xl at 2-3 steps/s (batch 1) vs 17-22 at level 4.
QUANT_ACCURACY_LEVEL = 4
# Symmetric blocks (no zero-point input; MatMulNBits' implied zero point 2^(bits-1)) run no faster:
# the VNNI kernel folds zero points into per-block sums either way (gpt2-xl int4 batch 5 11.0 vs
# 10.5 steps/s, within noise), and the shipped model's int4 top-1 agreement was lower (97.4 vs 97.8%).
QUANT_SYMMETRIC = False
# The token embedding's Gather reads int8 rows (GatherBlockQuantized) instead of a float32 table,
# which only a few rows a step are read from: gpt2-xl int4's files shrink from 1.22 to 0.99 GB.
# Resident memory is about the same (1.23 vs 1.21 GB, bench/model-memory.ts: the float32 table is
# mapped and only the pages read count), top-1 agreement too (logits move 0.1 where int4 moves 1).
# None keeps it float32.
QUANT_EMBEDDING_BITS: Optional[int] = 8

# How the exported graph hands the KV cache back. "concat" (Hugging Face's layout): present.N.key|value
# = past + this step, so every step concatenates the whole cache inside onnxruntime and then copies
# it out into JavaScript (onnxruntime-node copies every output). "buffer": the graph returns only
# new_key_values.N.key|value (this step's), the engine writes them into a buffer it keeps and passes
# that buffer back as the past, unused positions masked out through attention_mask. It has ~50% more
# (small) nodes, so it pays only where the cache copies are large: "auto" picks buffer from
# KV_BUFFER_MIN_EMBD up. Buffer vs concat, random weights, interleaved (bench/decode-compare.ts,
# 2026-12-07, steps/s at batch 1 / 5): 96 wide x 4 layers (the shipped model's size) x0.88 / x0.94,
# 384 x 6 x0.98 / x0.98, 768 x 12 (GPT-2 small) x1.03-1.07 / x1.14-1.17, gpt2-xl int4 x1.03-1.05 /
# x1.16-1.34.
KV_CACHE = "auto"
KV_BUFFER_MIN_EMBD = 768


def kv_cache_layout(config: GPT2Config, requested: Optional[str] = None, fused_attention: bool = False) -> str:
    """The layout an export gets: `requested` (default KV_CACHE); "auto" is concat with fused
    attention (MultiHeadAttention appends to the cache itself), else by the model's width."""
    choice = requested or KV_CACHE
    if choice != "auto":
        return choice
    if fused_attention:
        return "concat"
    return "buffer" if config.n_embd >= KV_BUFFER_MIN_EMBD else "concat"


def input_names(n_layer: int) -> List[str]:
    names = ["input_ids", "attention_mask", "position_ids"]
    for i in range(n_layer):
        names += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
    return names


def output_names(n_layer: int, kv_cache: str = "concat") -> List[str]:
    """present.N.* hold past + this step (Hugging Face's layout); new_key_values.N.* this step only."""
    prefix = "new_key_values" if kv_cache == "buffer" else "present"
    names = ["logits"]
    for i in range(n_layer):
        names += [f"{prefix}.{i}.key", f"{prefix}.{i}.value"]
    return names


class OnnxDecoder(torch.nn.Module):
    """Flat-argument wrapper: ONNX inputs/outputs are a flat list, the model takes (key, value) pairs."""

    def __init__(self, model: GPT2LMHeadModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        logits, presents = self.model(input_ids, attention_mask, position_ids, past)
        flat = [logits]
        for k, v in presents:
            flat += [k, v]
        return tuple(flat)


def choose_opset(requested: Optional[int]) -> int:
    """Opset 17 has a native LayerNormalization; torch 1.13's exporter goes up to 17."""
    try:
        from torch.onnx import _constants

        supported = getattr(_constants, "ONNX_MAX_OPSET", getattr(_constants, "onnx_main_opset", 14))
    except ImportError:  # pragma: no cover - very old torch
        supported = 14
    if requested is None:
        return min(MAX_OPSET, supported) if supported >= 14 else 14
    if requested > supported:
        raise SystemExit(f"--opset {requested} is newer than this torch ({torch.__version__}) can export (max {supported})")
    return requested


def export_onnx(model: GPT2LMHeadModel, path: str, opset: Optional[int] = None, trace_shape=(2, 3, 4),
                fused_attention: bool = False, kv_cache: Optional[str] = None) -> int:
    """Traces the decoder with a non-empty past (so concatenation and the causal ranges are recorded as
    shape-dependent ops rather than skipped) and marks every batch/sequence/past axis dynamic.
    trace_shape = (batch, seq, past) of the dummy inputs; the graph must not depend on it (tested).
    kv_cache "buffer": the outputs are this step's keys and values only; "auto" or None: see
    kv_cache_layout()."""
    model = model.eval().float().cpu()
    c = model.config
    kv_cache = kv_cache_layout(c, kv_cache, fused_attention)
    if fused_attention and kv_cache != "concat":
        raise ValueError("fused attention appends to the cache inside MultiHeadAttention: it needs kv_cache concat")
    opset = choose_opset(opset)
    batch, seq, past = trace_shape
    input_ids = torch.randint(0, c.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))
    attention_mask = torch.ones(batch, past + seq, dtype=torch.long)
    position_ids = torch.arange(past, past + seq, dtype=torch.long).unsqueeze(0).expand(batch, seq).contiguous()
    past_flat = []
    for _ in range(c.n_layer):
        past_flat += [torch.zeros(batch, c.n_head, past, c.head_dim), torch.zeros(batch, c.n_head, past, c.head_dim)]

    dynamic: Dict[str, Dict[int, str]] = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "past_sequence_length + sequence_length"},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    for i in range(c.n_layer):
        for kv in ("key", "value"):
            dynamic[f"past_key_values.{i}.{kv}"] = {0: "batch_size", 2: "past_sequence_length"}
            if kv_cache == "buffer":
                dynamic[f"new_key_values.{i}.{kv}"] = {0: "batch_size", 2: "sequence_length"}
            else:
                dynamic[f"present.{i}.{kv}"] = {0: "batch_size", 2: "past_sequence_length + sequence_length"}

    kwargs: Dict[str, Any] = dict(
        input_names=input_names(c.n_layer),
        output_names=output_names(c.n_layer, kv_cache),
        dynamic_axes=dynamic,
        opset_version=opset,
        # Constant folding would materialise lm_head's transposed copy of the tied embedding
        # matrix, doubling the file; onnxruntime folds what it needs when it loads the model.
        do_constant_folding=False,
    )
    if fused_attention:
        kwargs["custom_opsets"] = {"com.microsoft": 1}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # torch 2.x: keep the TorchScript exporter this code is tested with
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    for block in model.transformer.h:
        block.attn.fused_export = fused_attention
        block.attn.step_kv_export = kv_cache == "buffer"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch cannot infer a contrib op's output shapes; onnxruntime does at load.
            warnings.filterwarnings("ignore", message="The shape inference of (com.microsoft|prim::Constant)")
            torch.onnx.export(OnnxDecoder(model), (input_ids, attention_mask, position_ids, *past_flat), path, **kwargs)
    finally:
        for block in model.transformer.h:
            block.attn.fused_export = False
            block.attn.step_kv_export = False
    return opset


# ---------------------------------------------------------------------------- weight-only quantization


def quantize_blocks(weight_nk: np.ndarray, bits: int, block_size: int,
                    symmetric: bool = False) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Block quantization of a [N, K] float weight along K, in MatMulNBits' layout: codes uint8
    [N, k_blocks, block_size * bits / 8] (two 4-bit codes a byte, low nibble first), scales float32
    [N * k_blocks], zero points uint8 [N * ceil(k_blocks * bits / 8)] (packed the same way).
    Asymmetric: each block maps [min(0, lo), max(0, hi)] onto 0 .. 2^bits - 1 so zero stays exact;
    the weight is (code - zero_point) * scale. Symmetric (zero points None): the zero point is
    MatMulNBits' default 2^(bits-1) and the scale maps the block's largest-magnitude value onto
    code 0 (-2^(bits-1) steps, as llama.cpp's Q4_0), so the full code range is used."""
    n, k = weight_nk.shape
    k_blocks = -(-k // block_size)
    padded = np.zeros((n, k_blocks * block_size), dtype=np.float32)
    padded[:, :k] = weight_nk
    blocks = padded.reshape(n, k_blocks, block_size)
    top = (1 << bits) - 1
    if symmetric:
        mid = 1 << (bits - 1)
        rows = np.arange(n)[:, None]
        cols = np.arange(k_blocks)[None, :]
        extreme = blocks[rows, cols, np.abs(blocks).argmax(axis=2)]  # signed value of largest magnitude
        scale = extreme / -mid
        scale[scale == 0] = 1.0  # an all-zero block: any scale reproduces it
        zero = np.full((n, k_blocks), mid, dtype=np.uint8)
    else:
        lo = np.minimum(blocks.min(axis=2), 0.0)
        hi = np.maximum(blocks.max(axis=2), 0.0)
        scale = (hi - lo) / top
        scale[scale == 0] = 1.0  # an all-zero block: any scale reproduces it
        zero = np.clip(np.round(-lo / scale), 0, top).astype(np.uint8)
    codes = np.clip(np.round(blocks / scale[:, :, None]) + zero[:, :, None], 0, top).astype(np.uint8)
    if bits == 4:
        codes = codes[:, :, 0::2] | (codes[:, :, 1::2] << 4)
        if k_blocks % 2:
            zero = np.concatenate([zero, np.zeros((n, 1), dtype=np.uint8)], axis=1)
        zero = zero[:, 0::2] | (zero[:, 1::2] << 4)
    zeros = None if symmetric else np.ascontiguousarray(zero).reshape(-1)
    return np.ascontiguousarray(codes), scale.astype(np.float32).reshape(-1), zeros


def dequantize_blocks(codes: np.ndarray, scales: np.ndarray, zeros: Optional[np.ndarray], bits: int,
                      k: int) -> np.ndarray:
    """The [N, K] float weight that MatMulNBits computes with (the inverse of quantize_blocks);
    zeros None: symmetric, every zero point 2^(bits-1)."""
    n, k_blocks, _ = codes.shape
    if bits == 4:
        codes = np.stack([codes & 0x0F, codes >> 4], axis=3).reshape(n, k_blocks, -1)
    if zeros is None:
        zeros = np.full((n, k_blocks), 1 << (bits - 1), dtype=np.uint8)
    elif bits == 4:
        zeros = np.stack([zeros & 0x0F, zeros >> 4], axis=1).reshape(n, -1)[:, :k_blocks]
    else:
        zeros = zeros.reshape(n, k_blocks)
    values = (codes.astype(np.float32) - zeros[:, :, None].astype(np.float32)) * scales.reshape(n, k_blocks, 1)
    return values.reshape(n, -1)[:, :k]


@dataclasses.dataclass(frozen=True)
class QuantOptions:
    """How quantize_onnx writes the weights; the defaults are the exporter's (see the constants)."""
    block_size: int = QUANT_BLOCK_SIZE
    head_bits: Optional[int] = None  # None: QUANT_HEAD_BITS[quant]
    accuracy_level: int = QUANT_ACCURACY_LEVEL
    symmetric: bool = QUANT_SYMMETRIC
    embedding_bits: Optional[int] = QUANT_EMBEDDING_BITS  # None: the token embedding stays float32

    def __post_init__(self) -> None:
        # onnxruntime 1.30's CPU MatMulNBits refuses any other size when the session loads.
        if self.block_size not in (16, 32, 64, 128, 256):
            raise SystemExit(f"block size {self.block_size}: MatMulNBits takes 16, 32, 64, 128 or 256")
        for name in ("head_bits", "embedding_bits"):
            if getattr(self, name) not in (None, 4, 8):
                raise SystemExit(f"{name.replace('_', ' ')} {getattr(self, name)}: 4 or 8")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise SystemExit(f"accuracy level {self.accuracy_level}: 0 to 4")


def quantize_onnx(model: "onnx.ModelProto", quant: str, options: QuantOptions = QuantOptions()) -> Dict[str, int]:
    """Rewrites every MatMul whose right-hand side is a float weight (an initializer [K, N], or a
    Transpose of one [N, K], as lm_head reads the tied embedding) into com.microsoft MatMulNBits,
    and (options.embedding_bits) the token embedding's Gather into GatherBlockQuantized.
    lm_head (the MatMul that writes `logits`) gets options.head_bits, default QUANT_HEAD_BITS[quant].
    Initializers left unused are dropped. Returns counts for the log."""
    import onnx
    from onnx import helper, numpy_helper

    block_bits = QUANT_BITS[quant]
    head_bits = QUANT_HEAD_BITS[quant] if options.head_bits is None else options.head_bits
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    new_nodes = []
    quantized = 0
    embeddings = 0
    for node in graph.node:
        if (options.embedding_bits is not None and node.op_type == "Gather" and node.domain in ("", "ai.onnx")
                and node.input[1] == "input_ids" and node.input[0] in inits
                and len(inits[node.input[0]].dims) == 2
                and inits[node.input[0]].data_type == onnx.TensorProto.FLOAT
                and not any(a.name == "axis" and a.i != 0 for a in node.attribute)):
            new_nodes.append(_quantized_gather(node, numpy_helper.to_array(inits[node.input[0]]),
                                               options.embedding_bits, options, graph))
            embeddings += 1
            continue
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx"):
            new_nodes.append(node)
            continue
        b = node.input[1]
        weight_nk = None
        if b in inits and len(inits[b].dims) == 2:
            weight_nk = numpy_helper.to_array(inits[b]).T  # Conv1D stores [in, out] = [K, N]
            source = b
        elif b in producers and producers[b].op_type == "Transpose" and producers[b].input[0] in inits:
            perm = next((list(a.ints) for a in producers[b].attribute if a.name == "perm"), [1, 0])
            source = producers[b].input[0]
            if perm == [1, 0] and len(inits[source].dims) == 2:
                weight_nk = numpy_helper.to_array(inits[source])  # already [N, K]
        if weight_nk is None or inits[source].data_type != onnx.TensorProto.FLOAT:
            new_nodes.append(node)
            continue
        n, k = weight_nk.shape
        bits = head_bits if "logits" in node.output else block_bits
        block_size = fitted_block_size(options.block_size, k)
        codes, scales, zeros = quantize_blocks(np.asarray(weight_nk, dtype=np.float32), bits, block_size,
                                               options.symmetric)
        prefix = f"{source}_q{bits}"
        graph.initializer.extend([
            numpy_helper.from_array(codes, f"{prefix}.codes"),
            numpy_helper.from_array(scales, f"{prefix}.scales"),
        ])
        inputs = [node.input[0], f"{prefix}.codes", f"{prefix}.scales"]
        if zeros is not None:
            graph.initializer.append(numpy_helper.from_array(zeros, f"{prefix}.zero_points"))
            inputs.append(f"{prefix}.zero_points")
        new_nodes.append(helper.make_node(
            "MatMulNBits",
            inputs,
            list(node.output),
            name=(node.name or prefix) + "_nbits",
            domain="com.microsoft",
            K=k, N=n, bits=bits, block_size=block_size, accuracy_level=options.accuracy_level,
        ))
        quantized += 1
    # Drop what nothing reads any more (the float weights, lm_head's Transpose).
    del graph.node[:]
    graph.node.extend(new_nodes)
    dropped = _drop_unused(graph)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return {"quantized": quantized, "embeddings": embeddings, "dropped": dropped}


def fitted_block_size(block_size: int, k: int) -> int:
    """The largest power of 2 up to `block_size` (at least 16, MatMulNBits' minimum) whose blocks
    pad a K-wide row by at most K / 4: padding is stored and computed like weights, so a 32-wide
    row gets blocks of 32 rather than 256 zeros a block, while gpt2-xl's 1600-wide rows keep 256
    (padded 12%, still faster than 128)."""
    size = block_size
    while size > 16 and -(-k // size) * size - k > k / 4:
        size //= 2
    return size


def _quantized_gather(node: "onnx.NodeProto", table: np.ndarray, bits: int, options: QuantOptions,
                      graph: "onnx.GraphProto") -> "onnx.NodeProto":
    """com.microsoft GatherBlockQuantized in place of Gather(table [V, K], input_ids): the rows are
    stored as MatMulNBits stores a weight (uint8 codes [V, K * bits / 8], scales [V, k_blocks],
    zero points as quantize_blocks packs them) and dequantized after the gather, so the float32
    table (0.32 GB of gpt2-xl's file) is not stored."""
    from onnx import helper, numpy_helper

    v, k = table.shape
    block_size = fitted_block_size(options.block_size, k)
    codes, scales, zeros = quantize_blocks(np.asarray(table, dtype=np.float32), bits, block_size, options.symmetric)
    k_blocks = codes.shape[1]
    prefix = f"{node.input[0]}_gather_q{bits}"
    graph.initializer.extend([
        # A ragged last block: the output is as wide as the data, so the padding codes go.
        numpy_helper.from_array(np.ascontiguousarray(codes.reshape(v, -1)[:, :k * bits // 8]), f"{prefix}.codes"),
        numpy_helper.from_array(scales.reshape(v, k_blocks), f"{prefix}.scales"),
    ])
    inputs = [f"{prefix}.codes", node.input[1], f"{prefix}.scales"]
    if zeros is not None:
        graph.initializer.append(numpy_helper.from_array(zeros.reshape(v, -1), f"{prefix}.zero_points"))
        inputs.append(f"{prefix}.zero_points")
    return helper.make_node("GatherBlockQuantized", inputs, list(node.output), name=(node.name or prefix) + "_q",
                            domain="com.microsoft", bits=bits, block_size=block_size,
                            gather_axis=0, quantize_axis=1)


def unmerge_onnx(model: "onnx.ModelProto") -> bool:
    """A Hugging Face "merged" decoder (decoder_model_merged.onnx) picks between a with-past and a
    no-past copy of the decoder with an If on its use_cache_branch input. onnxruntime prepacks
    and folds the weights once per branch, which costs ~560 MB more resident memory than a plain
    export for GPT-2 small. The with-past branch alone also runs the first step (an empty past
    concatenates to nothing), so this inlines it into the main graph and drops the If and the
    use_cache_branch input. Returns False when the model is not a merged decoder."""
    from onnx import helper

    graph = model.graph
    if_nodes = [n for n in graph.node if n.op_type == "If" and n.input[0] == "use_cache_branch"]
    if not if_nodes:
        return False
    if len(if_nodes) != 1:
        raise SystemExit("a merged decoder has one If on use_cache_branch; this model has several")
    if_node = if_nodes[0]
    branch = next(a.g for a in if_node.attribute if a.name == "then_branch")
    nodes = []
    for node in graph.node:
        if node is not if_node:
            nodes.append(node)
            continue
        nodes.extend(branch.node)
        # The branch's outputs become the If's outputs (the graph's output names).
        for inner, outer in zip(branch.output, if_node.output):
            nodes.append(helper.make_node("Identity", [inner.name], [outer], name=f"unmerged/{outer}"))
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(branch.initializer)
    kept_inputs = [i for i in graph.input if i.name != "use_cache_branch"]
    del graph.input[:]
    graph.input.extend(kept_inputs)
    _drop_unused(graph)
    return True


def _drop_unused(graph: "onnx.GraphProto") -> int:
    """Removes nodes whose outputs nothing reads and initializers no node reads; returns how many
    initializers went."""
    nodes = list(graph.node)
    while True:
        used = {name for node in nodes for name in node.input} | {o.name for o in graph.output}
        kept = [node for node in nodes if any(o in used for o in node.output)]
        if len(kept) == len(nodes):
            break
        nodes = kept
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    return len(unused)


def save_with_external_weights(model: "onnx.ModelProto", path: str) -> None:
    """Writes `model` to `path` with its weights in one external-data file beside it, `<name>.data`
    (see the module docstring for why). The folder must not hold an older `<name>.data`: onnx
    appends to it."""
    import onnx

    location = os.path.basename(path) + ".data"
    data_path = os.path.join(os.path.dirname(os.path.abspath(path)), location)
    if os.path.exists(data_path):
        os.remove(data_path)
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=EXTERNAL_DATA_THRESHOLD)


def write_quantized(source: str, target: str, quant: str, options: QuantOptions = QuantOptions()) -> Dict[str, int]:
    """Writes a quantized copy of the ONNX file `source` to `target` (they may be the same path),
    its weights as external data."""
    import onnx

    model = onnx.load(source)
    counts = quantize_onnx(model, quant, options)
    if counts["quantized"] == 0:
        raise SystemExit(f"{source} has no MatMul with a float weight in its main graph to quantize "
                         "(a merged decoder keeps them inside If branches: quantize our own export instead)")
    save_with_external_weights(model, target)
    return counts


# ---------------------------------------------------------------------------- golden fixture


def _b64_float32(values: torch.Tensor) -> str:
    return base64.b64encode(values.detach().cpu().numpy().astype("<f4").tobytes()).decode("ascii")


@torch.no_grad()
def make_golden(model: GPT2LMHeadModel, input_ids: Sequence[int], steps: int = GOLDEN_STEPS) -> Dict[str, Any]:
    """Reference outputs for the TypeScript ONNX test (tolerance 1e-4)."""
    model = model.eval().float().cpu()
    c = model.config
    ids = [int(i) % c.vocab_size for i in input_ids]
    n = len(ids)
    x = torch.tensor([ids], dtype=torch.long)
    mask = torch.ones(1, n, dtype=torch.long)
    pos = torch.arange(n, dtype=torch.long).unsqueeze(0)
    logits, _ = model(x, mask, pos, model.empty_past(1))
    positions = sorted({0, n // 2, n - 1})
    vocab_ids = list(range(0, c.vocab_size, GOLDEN_VOCAB_STRIDE))
    values = [[float(logits[0, p, v]) for v in vocab_ids] for p in positions]

    # Greedy continuation through the cache, one token per step, exactly as the engine decodes:
    # first call with the whole prompt and an empty past, then one id at a time.
    past = model.empty_past(1)
    step_ids, step_mask, step_pos = x, mask, pos
    tokens: List[int] = []
    chosen: List[float] = []
    for _ in range(steps):
        out, past = model(step_ids, step_mask, step_pos, past)
        last = out[0, -1]
        token = int(torch.argmax(last))
        tokens.append(token)
        chosen.append(float(last[token]))
        total = step_mask.size(1) + 1
        if total > c.n_positions:
            break
        step_ids = torch.tensor([[token]], dtype=torch.long)
        step_mask = torch.ones(1, total, dtype=torch.long)
        step_pos = torch.tensor([[total - 1]], dtype=torch.long)
    return {
        "inputIds": ids,
        "logits": {"positions": positions, "tokenIds": vocab_ids, "values": values},
        "lastLogitsBase64": _b64_float32(logits[0, -1]),
        "greedy": {"steps": len(tokens), "tokens": tokens, "logits": chosen},
        "tolerance": 1e-4,
    }


# ---------------------------------------------------------------------------- model directory


def model_metadata(model: GPT2LMHeadModel, training: Optional[Dict[str, Any]], args: argparse.Namespace) -> Dict[str, Any]:
    c = model.config
    training = training or {}
    tags = training.get("tags")
    if args.tags is not None:
        start, sep, end = args.tags.partition(",")
        if not sep or not start or not end:
            raise SystemExit("--tags takes 'START,END', e.g. --tags '<|startoftext|>,<|endoftext|>'")
        tags = {"start": start, "end": end}
    if args.no_tags:
        tags = None
    mean = args.mean_caption_tokens if args.mean_caption_tokens is not None else training.get("meanCaptionTokens")
    if mean is None:
        # The engine uses this as its default generation cap; without training data to measure it, say so.
        print("note: no training.json and no --mean-caption-tokens; meanCaptionTokens set to 0", file=sys.stderr)
        mean = 0
    if args.checkpoint:
        base = training.get("baseModel", os.path.basename(os.path.normpath(args.checkpoint)))
    else:
        base = f"random:{args.random} (seed {args.seed})"
    data = training.get("data")
    return {
        "format": "imagine-bot/model",
        "version": 1,
        "onnx": "model.onnx",
        "architecture": {
            "type": "gpt2",
            "vocabSize": c.vocab_size,
            "nPositions": c.n_positions,
            "nEmbd": c.n_embd,
            "nLayer": c.n_layer,
            "nHead": c.n_head,
        },
        "tags": tags,
        "meanCaptionTokens": float(mean),
        **({"maxNewTokens": args.max_new_tokens} if args.max_new_tokens is not None else {}),
        "provenance": {
            "baseModel": base,
            "data": None if not data else {k: data.get(k) for k in ("source", "trainTokens", "evalTokens", "trainDocuments")},
            "frozenBlocks": training.get("frozenBlocks", 0),
            "steps": training.get("steps", 0),
            "finalTrainLoss": training.get("finalTrainLoss"),
            "finalEvalLoss": training.get("finalEvalLoss"),
            "exportedAt": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "exporter": "training/export_onnx.py",
            "torch": torch.__version__,
        },
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="Hugging Face-layout checkpoint directory (ours or Hugging Face's)")
    src.add_argument("--random", metavar="PRESET", help="random weights of a preset (e.g. gpt2 for a 124M benchmark model)")
    src.add_argument("--from-onnx", metavar="DIR",
                     help="an existing model directory to convert: a merged decoder is unmerged, --quant quantizes; DIR is not modified")
    p.add_argument("--seed", type=int, default=1, help="seed for --random")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--opset", type=int, default=None, help=f"ONNX opset (default {MAX_OPSET}, or 14 on an older torch)")
    p.add_argument("--tags", default=None, help="override tags: 'START,END'")
    p.add_argument("--no-tags", action="store_true", help="the model was trained without tags")
    p.add_argument("--mean-caption-tokens", type=float, default=None, help="override the mean caption length")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="default cap on new tokens written to imagine-model.json (else the engine uses the mean caption length)",
    )
    p.add_argument("--golden-ids", default=None, help="comma-separated prompt ids for golden.json (default: 12 fixed ids)")
    p.add_argument("--no-golden", action="store_true", help="skip golden.json (e.g. for a large benchmark model)")
    p.add_argument("--fused-attention", action="store_true",
                   help="export each block's attention core with its KV cache as one com.microsoft MultiHeadAttention node")
    p.add_argument("--kv-cache", choices=["auto", "buffer", "concat"], default=None,
                   help=f"buffer: the graph returns only each step's keys and values, the engine keeps the past; "
                        f"concat: present = past + this step, Hugging Face's layout; auto (the default): buffer "
                        f"for models {KV_BUFFER_MIN_EMBD} wide or more, concat below (and with --fused-attention)")
    p.add_argument("--quant", choices=sorted(QUANT_BITS), default=None,
                   help=f"weight-only quantization of the dense weights (MatMulNBits, blocks of {QUANT_BLOCK_SIZE}); implies --no-golden")
    # How --quant writes the weights (defaults: the constants above, chosen by measurement).
    p.add_argument("--quant-block-size", type=int, default=QUANT_BLOCK_SIZE, help="elements per scale: 16, 32, 64, 128 or 256 (what onnxruntime's MatMulNBits runs)")
    p.add_argument("--quant-head-bits", type=int, choices=[4, 8], default=None,
                   help="lm_head's bits (default: 8 for int8 and int4)")
    p.add_argument("--quant-accuracy-level", type=int, choices=range(5), default=QUANT_ACCURACY_LEVEL,
                   help="MatMulNBits accuracy_level (4: int8 activations)")
    p.add_argument("--quant-symmetric", action=argparse.BooleanOptionalAction, default=QUANT_SYMMETRIC,
                   help="symmetric blocks without zero points")
    p.add_argument("--quant-embedding-bits", type=int, choices=[4, 8, 32],
                   default=QUANT_EMBEDDING_BITS or 32,
                   help="the token embedding's Gather: GatherBlockQuantized at 4 or 8 bits, or 32 (float32)")
    return p


def quant_options(args: argparse.Namespace) -> QuantOptions:
    return QuantOptions(block_size=args.quant_block_size, head_bits=args.quant_head_bits,
                        accuracy_level=args.quant_accuracy_level, symmetric=args.quant_symmetric,
                        embedding_bits=None if args.quant_embedding_bits == 32 else args.quant_embedding_bits)


def quantization_note(args: argparse.Namespace, counts: Dict[str, int]) -> Dict[str, Any]:
    options = quant_options(args)
    return {"weights": args.quant, "op": "com.microsoft.MatMulNBits", "blockSize": options.block_size,
            "lmHeadBits": options.head_bits or QUANT_HEAD_BITS[args.quant], "zeroPoints": not options.symmetric,
            "accuracyLevel": options.accuracy_level, "matmuls": counts["quantized"],
            "embeddingBits": options.embedding_bits if counts["embeddings"] else 32}


# What the Node engine looks for when imagine-model.json names no file (src/core/prompt/modelDir.ts).
ONNX_CANDIDATES = ["model.onnx", "decoder_model_merged.onnx", "onnx/decoder_model_merged.onnx",
                   "decoder_with_past_model.onnx", "onnx/decoder_with_past_model.onnx"]


def model_from_onnx(path: str, architecture: Dict[str, Any]) -> GPT2LMHeadModel:
    """The PyTorch model back from a float32 graph this exporter wrote: its initializers carry the
    state dict's names (model.transformer.h.0.attn.c_attn.weight, ...). Anything else — a quantized
    graph, a Hugging Face export — is refused by name."""
    import onnx
    from onnx import numpy_helper

    config = GPT2Config(vocab_size=architecture["vocabSize"], n_positions=architecture["nPositions"],
                        n_embd=architecture["nEmbd"], n_layer=architecture["nLayer"], n_head=architecture["nHead"])
    model = GPT2LMHeadModel(config)
    graph = onnx.load(path).graph
    weights = {t.name[len("model."):]: t for t in graph.initializer if t.name.startswith("model.")}
    state = model.state_dict()
    tied = "lm_head.weight"  # the same tensor as transformer.wte.weight, stored once
    loaded = {}
    for name, tensor in state.items():
        found = weights.get(name if name != tied else "transformer.wte.weight")
        if found is None and name != tied and "transformer.wte.weight" in weights:
            # Ours, but torch stored equal initializers once (an untrained model's zero biases):
            # which one a weight became is only in the graph's wiring.
            raise SystemExit(f"{path} holds some weights only as copies of equal ones (model.{name} is one): "
                             "export it again from its checkpoint (or --random) with --kv-cache instead")
        if found is None or found.data_type != onnx.TensorProto.FLOAT or list(found.dims) != list(tensor.shape):
            raise SystemExit(f"{path} is not a float32 graph written by training/export_onnx.py (no float32 "
                             f"model.{name} of shape {list(tensor.shape)}): --kv-cache re-exports only those; "
                             "quantize after re-exporting (--from-onnx NEW --quant int8|int4)")
        loaded[name] = torch.from_numpy(numpy_helper.to_array(found).copy())
    model.load_state_dict(loaded)
    return model.eval()


def reexport_model_dir(args: argparse.Namespace, source: str, meta: Dict[str, Any]) -> int:
    """--from-onnx DIR --kv-cache LAYOUT: one of our float32 exports written again with that KV-cache
    layout, from the same weights, and with a golden.json from them (the source's prompt ids)."""
    model = model_from_onnx(source, meta["architecture"])
    golden_path = os.path.join(args.from_onnx, "golden.json")
    ids = DEFAULT_GOLDEN_IDS
    if os.path.isfile(golden_path):
        with open(golden_path, encoding="utf-8") as f:
            ids = json.load(f)["inputIds"]
    layout = kv_cache_layout(model.config, args.kv_cache)
    meta.setdefault("provenance", {})["reexported"] = {"source": os.path.abspath(source), "kvCache": layout}
    meta["onnx"] = "model.onnx"
    with staged_output(args.out) as out:
        _, size = write_model_dir(model, meta, args, out, ids)
    print(f"wrote {args.out}: model.onnx + model.onnx.data {size / 1e6:.2f} MB (--kv-cache {layout}"
          + (f", {args.quant}" if args.quant else ", golden.json") + "), imagine-model.json")
    return 0


def convert_model_dir(args: argparse.Namespace) -> int:
    """--from-onnx DIR [--quant Q] [--kv-cache L]: a converted copy of a model directory (ours or a
    pulled one) in --out: a merged decoder is unmerged (unmerge_onnx), --quant quantizes the dense
    weights, and --kv-cache re-exports one of our float32 exports in that layout (reexport_model_dir)."""
    import onnx

    meta_path = os.path.join(args.from_onnx, "imagine-model.json")
    if not os.path.isfile(meta_path):
        print(f"error: {meta_path} is missing: --from-onnx takes a model directory", file=sys.stderr)
        return 2
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    names = [meta["onnx"]] if meta.get("onnx") else ONNX_CANDIDATES
    source = next((os.path.join(args.from_onnx, n) for n in names if os.path.isfile(os.path.join(args.from_onnx, n))), None)
    if source is None:
        print(f"error: no ONNX decoder in {args.from_onnx} (looked for {', '.join(names)})", file=sys.stderr)
        return 2
    if os.path.abspath(args.out) == os.path.abspath(args.from_onnx):
        raise SystemExit("--out must differ from --from-onnx: the source model stays as it is")
    if args.kv_cache:
        return reexport_model_dir(args, source, meta)
    model = onnx.load(source)
    unmerged = unmerge_onnx(model)
    if not unmerged and not args.quant:
        raise SystemExit(f"{source} is a plain decoder: converting it needs --quant int8|int4")
    provenance = meta.setdefault("provenance", {})
    if unmerged:
        provenance["unmerged"] = {"source": os.path.abspath(source)}
    if args.quant:
        counts = quantize_onnx(model, args.quant, quant_options(args))
        if counts["quantized"] == 0:
            raise SystemExit(f"{source} has no MatMul with a float weight to quantize")
        provenance["quantization"] = {**quantization_note(args, counts), "source": os.path.abspath(source)}
    meta["onnx"] = "model.onnx"
    with staged_output(args.out) as out:
        save_with_external_weights(model, os.path.join(out, "model.onnx"))
        size = onnx_bytes(os.path.join(out, "model.onnx"))
        with open(os.path.join(out, "imagine-model.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
    done = ", ".join(filter(None, ["unmerged" if unmerged else "",
                                   f"{args.quant}, {counts['quantized']} MatMuls" if args.quant else ""]))
    print(f"wrote {args.out}: model.onnx + model.onnx.data {size / 1e6:.2f} MB ({done}), imagine-model.json")
    return 0


@contextlib.contextmanager
def staged_output(out: str):
    """Writes a model directory's files into a staging folder beside `out` and moves them in only
    once every file is written, the metadata last: an export that fails or is killed midway leaves
    the earlier model in `out` as it was (a kill -9 leaves a `.NAME.export-*` sibling behind).
    Files already in `out` that this export does not write (a pull's downloaded weights, a
    checkpoint) stay where they are."""
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out)}.export-")
    try:
        yield staging
        os.makedirs(out, exist_ok=True)
        # The weights first, then the graph that names them, imagine-model.json last: until it
        # moves, the directory still describes the old model.
        order = lambda n: (n == "imagine-model.json", n.endswith(".onnx"))  # noqa: E731
        for name in sorted(os.listdir(staging), key=order):
            if not name.startswith("."):
                os.replace(os.path.join(staging, name), os.path.join(out, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.quant:
        given = [f"--{name.replace('_', '-')}" for name in ("quant_block_size", "quant_head_bits", "quant_accuracy_level",
                                                            "quant_symmetric", "quant_embedding_bits")
                 if getattr(args, name) != parser.get_default(name)]
        if given:
            parser.error(f"{', '.join(given)} only applies with --quant int8|int4")
    else:
        quant_options(args)  # refuses a block size MatMulNBits cannot run before any export work
    if args.from_onnx:
        if args.fused_attention:
            parser.error("--fused-attention shapes a new export; --from-onnx keeps the source graph's attention")
        return convert_model_dir(args)
    if args.fused_attention and args.kv_cache == "buffer":  # auto gives concat with it
        parser.error("--fused-attention appends to the cache inside MultiHeadAttention: it needs --kv-cache concat")
    training = None
    if args.checkpoint:
        try:
            model = load_pretrained(args.checkpoint)
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        tj = os.path.join(args.checkpoint, "training.json")
        if os.path.isfile(tj):
            with open(tj, encoding="utf-8") as f:
                training = json.load(f)
    else:
        torch.manual_seed(args.seed)
        model = GPT2LMHeadModel(preset(args.random))
    model.eval()
    ids = None
    if not (args.no_golden or args.quant):
        ids = DEFAULT_GOLDEN_IDS if args.golden_ids is None else [int(s) for s in args.golden_ids.split(",")]
    with staged_output(args.out) as out:
        opset, size = write_model_dir(model, model_metadata(model, training, args), args, out, ids)
    print(f"wrote {args.out}: model.onnx + model.onnx.data {size / 1e6:.2f} MB (opset {opset}), imagine-model.json"
          + ("" if ids is None else ", golden.json"))
    return 0


def write_model_dir(model: GPT2LMHeadModel, meta: Dict[str, Any], args: argparse.Namespace, out: str,
                    golden_ids: Optional[Sequence[int]]) -> Tuple[int, int]:
    """model.onnx (--kv-cache, --quant as `args` say), imagine-model.json (`meta`, its provenance
    completed) and, given golden_ids, golden.json into `out`; returns (opset, ONNX size). golden.json
    holds float32 PyTorch logits: a quantized model gets none (bench/prompt-quality.ts checks it)."""
    import onnx

    onnx_path = os.path.join(out, "model.onnx")
    # torch writes the graph to a scratch folder first: above 2 GB (gpt2-large, gpt2-xl) it stores
    # the weights as one external file per tensor, which must not stay beside model.onnx; the graph
    # is then saved again with every weight in model.onnx.data.
    with tempfile.TemporaryDirectory(dir=out, prefix=".torch-") as scratch:
        torch_path = os.path.join(scratch, "model.onnx")
        opset = export_onnx(model, torch_path, args.opset, fused_attention=args.fused_attention,
                            kv_cache=args.kv_cache)
        if args.quant:
            counts = write_quantized(torch_path, onnx_path, args.quant, quant_options(args))
            meta["provenance"]["quantization"] = quantization_note(args, counts)
        else:
            save_with_external_weights(onnx.load(torch_path), onnx_path)
    meta["provenance"]["opset"] = opset
    with open(os.path.join(out, "imagine-model.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    if golden_ids is not None and not args.quant:
        with open(os.path.join(out, "golden.json"), "w", encoding="utf-8") as f:
            json.dump(make_golden(model, golden_ids), f)
            f.write("\n")
    return opset, onnx_bytes(onnx_path)


def onnx_bytes(path: str) -> int:
    """The graph and its external-data file together."""
    data = path + ".data"
    return os.path.getsize(path) + (os.path.getsize(data) if os.path.exists(data) else 0)


if __name__ == "__main__":
    sys.exit(main())
