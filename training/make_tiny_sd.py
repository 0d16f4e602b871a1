"""Writes a stand-in Stable Diffusion model directory in the diffusers ONNX layout that the Hub's
exports have (model_index.json, scheduler/, tokenizer/, text_encoder/, unet/, vae_decoder/), with
random weights from a fixed seed, so the TypeScript pipeline can be tested without downloads.

    /usr/bin/python3 training/make_tiny_sd.py --out test/fixtures/tiny-sd/sd1
    /usr/bin/python3 training/make_tiny_sd.py --out /tmp/sd2 --family sd2 --dtype fp16 --timestep-dtype float32 \
        --prediction v_prediction --external-data weights.pb
    /usr/bin/python3 training/make_tiny_sd.py --preset bench --out .cache/sd-bench     # 98M-parameter UNet, heads 64 wide
    /usr/bin/python3 training/make_tiny_sd.py --preset bench --fused-attention --out .cache/sd-bench-fused
    /usr/bin/python3 training/make_tiny_sd.py --preset bench --flops                   # JSON: FLOPs of one UNet call at 512×512

The same arguments give the same bytes (the tests regenerate the committed fixtures and compare).
--dtype fp16 stores every weight as float16 and declares float16 inputs and outputs (as fp16 Hub
exports do); inside the graph the arithmetic stays float32 (Cast after each weight), so the PyTorch
reference with the same fp16-rounded weights matches it to float32 rounding.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sd_tokenizer  # noqa: E402
from make_hf_style_fixture import write_json  # noqa: E402
from sd_models import (  # noqa: E402
    MAX_TEXT_LENGTH, ClipTextEncoder, Preset, UNet, VaeDecoder, build_models, count_unet_flops, fused_attention_export,
    parameter_count, preset,
)

OPSET = 17
DIFFUSERS_VERSION = "0.27.2"
SCALING_FACTOR = 0.18215

# Prompt-like text the stand-in vocabulary's merges are learnt from (words outside it still
# tokenize, character by character).
BPE_CORPUS = [
    "a lighthouse on a cliff at sunset, oil painting",
    "a photograph of an astronaut riding a horse",
    "a cat sitting on a windowsill, watercolor, soft light",
    "portrait of an old fisherman, highly detailed, 4k",
    "a castle in the mountains, fantasy art, trending on artstation",
    "a red sports car on a rainy street at night, neon lights",
    "a bowl of fruit on a wooden table, still life painting",
    "an owl in a snowy forest, digital art",
    "the city skyline at dawn, cinematic lighting",
    "a small boat on a calm lake, morning mist, photograph",
    "a dragon flying over the sea, dramatic clouds",
    "a cozy cabin in the woods, winter, warm light",
]

SCHEDULERS = {
    # SD 1.x's Euler configuration (the Hub's EulerDiscreteScheduler configs for SD 1.5 / 2.x).
    "euler": ("EulerDiscreteScheduler", "leading"),
    "euler_a": ("EulerAncestralDiscreteScheduler", "leading"),
    "ddim": ("DDIMScheduler", "leading"),
    # SD-Turbo's scheduler: Euler with trailing spacing (the first step starts at t = 999).
    "turbo": ("EulerDiscreteScheduler", "trailing"),
}


def scheduler_config(kind: str, prediction: str) -> Dict:
    if kind not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {kind!r} (one of {', '.join(SCHEDULERS)})")
    class_name, spacing = SCHEDULERS[kind]
    return {
        "_class_name": class_name,
        "_diffusers_version": DIFFUSERS_VERSION,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "interpolation_type": "linear",
        "num_train_timesteps": 1000,
        "prediction_type": prediction,
        "rescale_betas_zero_snr": False,
        "sample_max_value": 1.0,
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "timestep_spacing": spacing,
        "trained_betas": None,
        "use_karras_sigmas": False,
    }


def _dump_json(path: str, value: Dict) -> None:
    # Keys sorted as diffusers writes configs; laid out as biome formats JSON (`npm run lint` covers test/fixtures).
    write_json(path, dict(sorted(value.items())))


def _export(model: torch.nn.Module, args: Tuple, inputs: List[str], outputs: List[str], axes: Dict,
            fused_attention: bool = False) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), (fused_attention_export() if fused_attention else contextlib.nullcontext()):
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic; the graph is checked by the tests
        torch.onnx.export(
            model, args, buffer, input_names=inputs, output_names=outputs, dynamic_axes=axes,
            opset_version=OPSET, do_constant_folding=True, custom_opsets={"com.microsoft": 1} if fused_attention else None,
        )
    return onnx.load_from_string(buffer.getvalue())


def _declare_dims(model: onnx.ModelProto, dims: Dict[str, List]) -> onnx.ModelProto:
    """Writes the contract's shapes onto the graph's inputs and outputs (ints fixed, strings named
    dynamic axes): the exporter names output axes after internal nodes, or fixes ones that are dynamic."""
    for value in [*model.graph.input, *model.graph.output]:
        shape = value.type.tensor_type.shape
        del shape.dim[:]
        for d in dims[value.name]:
            dim = shape.dim.add()
            if isinstance(d, int):
                dim.dim_value = d
            else:
                dim.dim_param = d
    return model


def to_float16_boundary(model: onnx.ModelProto) -> onnx.ModelProto:
    """fp16 weights and fp16 inputs/outputs, float32 arithmetic: each float initializer whose values
    are exactly representable in fp16 (all weights, which were rounded before export) is stored as
    fp16 and Cast back; float inputs are Cast up and float outputs Cast down. Constants the exporter
    folded (e.g. the timestep frequencies) stay float32 so nothing else is rounded."""
    g = model.graph
    head: List[onnx.NodeProto] = []
    tail: List[onnx.NodeProto] = []
    inits = []
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT:
            arr = numpy_helper.to_array(init)
            half = arr.astype(np.float16)
            if np.array_equal(half.astype(np.float32), arr):
                inits.append(numpy_helper.from_array(half, init.name + "_fp16"))
                head.append(helper.make_node("Cast", [init.name + "_fp16"], [init.name], to=TensorProto.FLOAT, name=init.name + "_to_fp32"))
                continue
        inits.append(init)
    del g.initializer[:]
    g.initializer.extend(inits)

    def rename_uses(old: str, new: str) -> None:
        for node in g.node:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new

    for inp in g.input:
        if inp.type.tensor_type.elem_type == TensorProto.FLOAT:
            rename_uses(inp.name, inp.name + "_fp32")
            inp.type.tensor_type.elem_type = TensorProto.FLOAT16
            head.append(helper.make_node("Cast", [inp.name], [inp.name + "_fp32"], to=TensorProto.FLOAT, name=inp.name + "_to_fp32"))
    for out in g.output:
        if out.type.tensor_type.elem_type == TensorProto.FLOAT:
            for node in g.node:
                for i, name in enumerate(node.output):
                    if name == out.name:
                        node.output[i] = out.name + "_fp32"
            rename_uses(out.name, out.name + "_fp32")
            out.type.tensor_type.elem_type = TensorProto.FLOAT16
            tail.append(helper.make_node("Cast", [out.name + "_fp32"], [out.name], to=TensorProto.FLOAT16, name=out.name + "_to_fp16"))
    nodes = head + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


# Operators the float16 conversion was written for (what these three models export to); another one
# might need special inputs kept float32, like Resize's scales.
FP16_GRAPH_OPS = {
    "Add", "ArgMax", "Cast", "Concat", "Constant", "ConstantOfShape", "Conv", "Cos", "Div", "Equal", "Erf", "Expand",
    "Flatten", "Gather", "Gemm", "InstanceNormalization", "LayerNormalization", "MatMul", "Mul", "Range", "Reshape",
    "Resize", "Shape", "Sigmoid", "Sin", "Slice", "Softmax", "Split", "Transpose", "Unsqueeze", "Where",
}


def to_float16_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 model as fp16 Hub exports are: weights, activations and float inputs/outputs in float16.
    Kept float32, as diffusers' fp16 UNet keeps them: the timestep embedding (every float tensor that
    depends on the timestep input alone: sinusoids of t ≈ 999 lose their phase in float16) and
    Resize's roi/scales inputs (float32 by the operator's definition). For the benchmarks: the
    reference cannot follow float16 arithmetic (PyTorch 1.13 has no float16 convolution on CPU)."""
    g = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    unknown = {n.op_type for n in g.node} - FP16_GRAPH_OPS
    if unknown:
        raise ValueError(f"to_float16_graph has not been checked with {sorted(unknown)}")
    elem = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    for init in g.initializer:
        elem[init.name] = init.data_type
    constants = {init.name: init for init in g.initializer}
    for node in g.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            constants[node.output[0]] = node
            elem[node.output[0]] = node.attribute[0].t.data_type

    # Which graph inputs each tensor's data depends on (a Shape output carries no data dependency).
    deps: Dict[str, frozenset] = {i.name: frozenset([i.name]) for i in g.input}
    for node in g.node:
        d = frozenset() if node.op_type in ("Shape", "Constant") else frozenset().union(*(deps.get(i, frozenset()) for i in node.input if i))
        for o in node.output:
            deps[o] = d
    is_float = lambda name: elem.get(name) == TensorProto.FLOAT  # noqa: E731
    keep32 = {n for n, d in deps.items() if d == frozenset(["timestep"]) and is_float(n) and n not in constants}

    fp16_copies: Dict[str, str] = {}
    new_inits: List[onnx.TensorProto] = []
    head: List[onnx.NodeProto] = []
    casts: Dict[str, str] = {}

    def as_fp16(name: str) -> str:
        """The float16 version of a float32 tensor a float16 node consumes."""
        if name in constants:
            if name not in fp16_copies:
                c = constants[name]
                t = c if isinstance(c, onnx.TensorProto) else c.attribute[0].t
                arr = numpy_helper.to_array(t).astype(np.float16)
                fp16_copies[name] = name + "_fp16"
                new_inits.append(numpy_helper.from_array(arr, name + "_fp16"))
            return fp16_copies[name]
        if name not in casts:  # a float32 activation (the timestep embedding) entering float16 arithmetic
            casts[name] = name + "_fp16"
            head.append(helper.make_node("Cast", [name], [name + "_fp16"], to=TensorProto.FLOAT16, name=name + "_to_fp16"))
        return casts[name]

    nodes: List[onnx.NodeProto] = []
    for node in g.node:
        if node.op_type == "Constant":
            nodes.append(node)  # consumers take a float16 copy where they need one
            continue
        float_outputs = [o for o in node.output if is_float(o)]
        half_node = any(o not in keep32 for o in float_outputs) or (
            not float_outputs and any(is_float(i) and i not in keep32 and i not in constants for i in node.input))
        if half_node:
            for k, name in enumerate(node.input):
                if not name or not is_float(name):
                    continue
                if node.op_type == "Resize" and k in (1, 2):
                    continue
                if name in keep32 or name in constants:
                    node.input[k] = as_fp16(name)
            for a in node.attribute:
                if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
                if node.op_type == "ConstantOfShape" and a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
        # The Casts this node needs go right before it (their inputs are produced earlier).
        nodes.extend(head)
        head.clear()
        nodes.append(node)

    used = {i for n in nodes for i in n.input}
    kept_inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept_inits + new_inits)
    del g.node[:]
    g.node.extend(n for n in nodes if n.op_type != "Constant" or n.output[0] in used)
    for v in [*g.input, *g.output]:
        if v.type.tensor_type.elem_type == TensorProto.FLOAT and v.name not in keep32 and v.name != "timestep":
            v.type.tensor_type.elem_type = TensorProto.FLOAT16
    del g.value_info[:]
    onnx.checker.check_model(model)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)  # every operator's input types agree
    return model


def _save(model: onnx.ModelProto, path: str, external_data: Optional[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if external_data:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=external_data, size_threshold=1024)
    else:
        onnx.save_model(model, path)


def round_weights_to_fp16(*models: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in models:
            for t in m.parameters():
                t.copy_(t.half().float())


def make_models(p: Preset, seed: int, fp16: bool) -> Tuple[ClipTextEncoder, UNet, VaeDecoder]:
    """The three modules exactly as exported (fp16: weights already rounded to fp16)."""
    text, unet, vae = build_models(p, seed)
    if fp16:
        round_weights_to_fp16(text, unet, vae)
    return text, unet, vae


def family_preset(name: str, family: str, vocab_size: int) -> Preset:
    p = preset(name, vocab_size)
    if family == "sd2":  # SD 2.x projects into its transformers with Linear layers
        from dataclasses import replace
        p = replace(p, unet=replace(p.unet, linear_projection=True))
    elif family != "sd1":
        raise ValueError(f"unknown family {family!r} (sd1 or sd2)")
    return p


def learn_merges(p_name: str) -> List[Tuple[str, str]]:
    return sd_tokenizer.train_bpe(BPE_CORPUS, preset(p_name, 0).num_merges)


def write_model_dir(
    out: str, preset_name: str = "tiny", family: str = "sd1", dtype: str = "fp32", timestep_dtype: str = "int64",
    input_ids_dtype: str = "int32", scheduler: str = "euler", prediction: str = "epsilon",
    external_data: Optional[str] = None, seed: int = 0, tokenizer_json: bool = False, fp16_arithmetic: bool = False,
    fused_attention: bool = False,
) -> None:
    if dtype not in ("fp32", "fp16"):
        raise ValueError(f"--dtype must be fp32 or fp16, not {dtype!r}")
    if timestep_dtype not in ("int64", "float32"):
        raise ValueError(f"--timestep-dtype must be int64 or float32, not {timestep_dtype!r}")
    if input_ids_dtype not in ("int32", "int64"):
        raise ValueError(f"--input-ids-dtype must be int32 or int64, not {input_ids_dtype!r}")
    if prediction not in ("epsilon", "v_prediction", "sample"):
        raise ValueError(f"--prediction must be epsilon, v_prediction or sample, not {prediction!r}")
    if fp16_arithmetic and dtype != "fp16":
        raise ValueError("--fp16-arithmetic needs --dtype fp16")
    if fused_attention and fp16_arithmetic:
        # onnxruntime's CPU MultiHeadAttention kernel is float32 (as the fp16-boundary models compute).
        raise ValueError("--fused-attention cannot be combined with --fp16-arithmetic")
    sched = scheduler_config(scheduler, prediction)
    merges = learn_merges(preset_name)
    vocab_size = len(sd_tokenizer.build_vocab(merges))
    p = family_preset(preset_name, family, vocab_size)
    fp16 = dtype == "fp16"
    text, unet, vae = make_models(p, seed, fp16)

    staging = out.rstrip("/") + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    pad = sd_tokenizer.EOS if family == "sd1" else "!"
    sd_tokenizer.write_tokenizer_dir(os.path.join(staging, "tokenizer"), merges, pad, tokenizer_json=tokenizer_json)
    os.makedirs(os.path.join(staging, "scheduler"))
    _dump_json(os.path.join(staging, "scheduler", "scheduler_config.json"), sched)

    latent = p.image_size // 8
    d = p.text.hidden
    ids = torch.zeros(2, MAX_TEXT_LENGTH, dtype=torch.int32 if input_ids_dtype == "int32" else torch.int64)
    t = torch.tensor([999], dtype=torch.int64) if timestep_dtype == "int64" else torch.tensor([999.0])
    graphs = {
        "text_encoder": _export(text, (ids,), ["input_ids"], ["last_hidden_state", "pooler_output"],
                                {"input_ids": {0: "batch"}, "last_hidden_state": {0: "batch"}, "pooler_output": {0: "batch"}}),
        "unet": _export(unet, (torch.zeros(2, 4, latent, latent), t, torch.zeros(2, MAX_TEXT_LENGTH, d)),
                        ["sample", "timestep", "encoder_hidden_states"], ["out_sample"],
                        {"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "timestep_batch"},
                         "encoder_hidden_states": {0: "batch", 1: "sequence"}, "out_sample": {0: "batch", 2: "height", 3: "width"}},
                        fused_attention),
        "vae_decoder": _export(vae, (torch.zeros(1, 4, latent, latent),), ["latent_sample"], ["sample"],
                               {"latent_sample": {0: "batch", 2: "height", 3: "width"}, "sample": {0: "batch", 2: "image_height", 3: "image_width"}},
                               fused_attention),
    }
    io_dims = {
        "text_encoder": {"input_ids": ["batch", MAX_TEXT_LENGTH], "last_hidden_state": ["batch", MAX_TEXT_LENGTH, d], "pooler_output": ["batch", d]},
        "unet": {"sample": ["batch", 4, "height", "width"], "timestep": ["timestep_batch"],
                 "encoder_hidden_states": ["batch", "sequence", d], "out_sample": ["batch", 4, "height", "width"]},
        "vae_decoder": {"latent_sample": ["batch", 4, "height", "width"], "sample": ["batch", 3, "image_height", "image_width"]},
    }
    for name, graph in graphs.items():
        graph = _declare_dims(graph, io_dims[name])
        if fp16:
            graph = to_float16_graph(graph) if fp16_arithmetic else to_float16_boundary(graph)
        _save(graph, os.path.join(staging, name, "model.onnx"), external_data if name == "unet" else None)

    _dump_json(os.path.join(staging, "text_encoder", "config.json"), {
        "_class_name": "CLIPTextModel", "hidden_size": d, "num_hidden_layers": p.text.layers,
        "num_attention_heads": p.text.heads, "max_position_embeddings": MAX_TEXT_LENGTH, "vocab_size": vocab_size,
        "hidden_act": "quick_gelu", "torch_dtype": "float16" if fp16 else "float32",
    })
    _dump_json(os.path.join(staging, "unet", "config.json"), {
        "_class_name": "UNet2DConditionModel", "_diffusers_version": DIFFUSERS_VERSION, "in_channels": 4, "out_channels": 4,
        "sample_size": latent, "block_out_channels": list(p.unet.block_out_channels), "layers_per_block": p.unet.layers_per_block,
        # diffusers' name for the head count (SD 2.x: one per level, [5, 10, 20, 20]).
        "attention_head_dim": p.unet.heads if p.unet.head_dim is None
        else [p.unet.heads_at(c) for c in p.unet.block_out_channels], "cross_attention_dim": p.unet.cross_attention_dim,
        "norm_num_groups": p.unet.norm_groups, "use_linear_projection": p.unet.linear_projection,
    })
    _dump_json(os.path.join(staging, "vae_decoder", "config.json"), {
        "_class_name": "AutoencoderKL", "_diffusers_version": DIFFUSERS_VERSION, "in_channels": 3, "out_channels": 3,
        "latent_channels": 4, "block_out_channels": list(p.vae.block_out_channels), "layers_per_block": p.vae.layers_per_block,
        "norm_num_groups": p.vae.norm_groups, "sample_size": p.image_size, "scaling_factor": SCALING_FACTOR,
    })
    _dump_json(os.path.join(staging, "model_index.json"), {
        "_class_name": "OnnxStableDiffusionPipeline",
        "_diffusers_version": DIFFUSERS_VERSION,
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", sched["_class_name"]],
        "text_encoder": ["diffusers", "OnnxRuntimeModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "OnnxRuntimeModel"],
        "vae_decoder": ["diffusers", "OnnxRuntimeModel"],
    })
    # Replace the old directory only once the new one is complete.
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.replace(staging, out)


def flops_report(preset_name: str, family: str, size: int) -> Dict:
    merges = learn_merges(preset_name)
    p = family_preset(preset_name, family, len(sd_tokenizer.build_vocab(merges)))
    text, unet, vae = build_models(p, 0)
    latent = size // 8
    flops = count_unet_flops(unet, latent, latent, batch=1)
    return {
        "preset": preset_name, "family": family, "image_size": size, "latent_size": latent, "batch": 1,
        "unet_flops": flops, "unet_gflops": round(flops / 1e9, 3),
        "unet_parameters": parameter_count(unet), "text_encoder_parameters": parameter_count(text),
        "vae_decoder_parameters": parameter_count(vae),
        "counted": "2 FLOPs per multiply-add of every Conv2d, Linear and attention matmul; norms and element-wise ops excluded",
        "note": "classifier-free guidance runs the UNet on a batch of 2: twice these FLOPs per step",
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="model directory to write (replaced when complete)")
    ap.add_argument("--preset", default="tiny", choices=["tiny", "bench"])
    ap.add_argument("--family", default="sd1", choices=["sd1", "sd2"], help="sd2: pad token '!' and linear transformer projections")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"])
    ap.add_argument("--timestep-dtype", default="int64", choices=["int64", "float32"], help="float32 becomes float16 with --dtype fp16")
    ap.add_argument("--input-ids-dtype", default="int32", choices=["int32", "int64"])
    ap.add_argument("--scheduler", default="euler", choices=sorted(SCHEDULERS))
    ap.add_argument("--prediction", default="epsilon", choices=["epsilon", "v_prediction", "sample"])
    ap.add_argument("--external-data", default=None, help="store the UNet's weights in this file next to unet/model.onnx (bench default: model.onnx_data)")
    ap.add_argument("--fp16-arithmetic", action="store_true",
                    help="with --dtype fp16: float16 activations too (as fp16 Hub exports; for the memory benchmark), not float32 between Casts")
    ap.add_argument("--fused-attention", action="store_true",
                    help="UNet and VAE attention as onnxruntime's com.microsoft MultiHeadAttention (one node, no score matrix in memory)")
    ap.add_argument("--tokenizer-json", action="store_true", help="also write tokenizer/tokenizer.json (the fast-tokenizer file)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flops", action="store_true", help="print the FLOPs of one UNet evaluation as JSON (no --out needed)")
    ap.add_argument("--flops-size", type=int, default=512, help="image size for --flops (latent = size / 8)")
    args = ap.parse_args(argv)
    if args.flops:
        if args.flops_size % 8:
            ap.error("--flops-size must be a multiple of 8")
        print(json.dumps(flops_report(args.preset, args.family, args.flops_size), indent=2))
        if not args.out:
            return
    if not args.out:
        ap.error("--out is required (or --flops)")
    external = args.external_data if args.external_data is not None else ("model.onnx_data" if args.preset == "bench" else None)
    write_model_dir(
        args.out, preset_name=args.preset, family=args.family, dtype=args.dtype, timestep_dtype=args.timestep_dtype,
        input_ids_dtype=args.input_ids_dtype, scheduler=args.scheduler, prediction=args.prediction,
        external_data=external or None, seed=args.seed, tokenizer_json=args.tokenizer_json,
        fp16_arithmetic=args.fp16_arithmetic, fused_attention=args.fused_attention,
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
