"""Hugging Face compatibility and a gpt2-xl-sized finetuning run, for a GPU machine that has
PyTorch and Hugging Face transformers (neither this repository's CI nor its training machines
need transformers; this script is run by hand, e.g. before a paper-scale run on new hardware).

    python training/hf_compat_gpu.py --work /scratch/hf-compat            # everything, ~10 GB GPU, ~35 GB disk
    python training/hf_compat_gpu.py --work /scratch/hf-compat --skip-export --steps 10

1. For the gpt2 and gpt2-xl configurations: builds a randomly initialised
   transformers.GPT2LMHeadModel, save_pretrained()s it (safetensors, unsharded), loads the folder
   with training/checkpoint.py's load_pretrained into training/gpt2.py's model and compares the
   logits in float32 (TF32 off): the full forward pass, and one cached decoding step of ours
   against Hugging Face's full pass (max |Δ| ≤ 1e-4). For gpt2 also the other way round: our
   save_pretrained() read by transformers' from_pretrained().
2. Finetunes the gpt2-xl-sized model for --steps steps through finetune.py's API with the paper's
   --freeze 42 (of 48 blocks) in bfloat16 autocast on random token data, with one mid-run
   resumable checkpoint; reports tokens/s and peak GPU memory.
3. Exports the result with finetune.export_model_dir (what --export runs): model.onnx (with external
   data: gpt2-xl in float32 is over 2 GB) + imagine-model.json.
4. Prints one JSON object (also written to WORK/hf_compat.json); exit code 1 if a comparison fails.

transformers is imported inside main(), so `--help` and importing this file work without it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import finetune  # noqa: E402
from checkpoint import load_pretrained, save_pretrained  # noqa: E402
from gpt2 import preset  # noqa: E402
from tokens import write_token_file  # noqa: E402

TOLERANCE = 1e-4
TAGS = {"start": "<|startoftext|>", "end": "<|endoftext|>"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="scratch folder for checkpoints, token files and the export (~35 GB)")
    p.add_argument("--configs", default="gpt2,gpt2-xl", help="configurations to compare (comma-separated presets)")
    p.add_argument("--steps", type=int, default=30, help="finetuning steps for the gpt2-xl-sized model")
    p.add_argument("--freeze", type=int, default=42)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--seq", type=int, default=64, help="sequence length of the logits comparison")
    p.add_argument("--skip-finetune", action="store_true")
    p.add_argument("--skip-export", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    return p


def write_random_data(directory: str, train_tokens: int, eval_tokens: int, seed: int = 0) -> None:
    """Random GPT-2 ids with the token-file layout of `data prepare` (20-token 'captions' ending in
    <|endoftext|>): no learning signal, but the same shapes and code paths as real data."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    for name, n in (("train.tokens", train_tokens), ("eval.tokens", eval_tokens)):
        ids = rng.integers(0, 50256, size=n)
        ids[20::21] = 50256
        write_token_file(os.path.join(directory, name), ids, documents=n // 21, mean_caption_tokens=20.0, tags=TAGS, source="random")


def steady_tokens_per_second(lines: List[str]) -> Optional[float]:
    """Median of the progress windows' tok/s after the first (which includes CUDA warm-up)."""
    rates = []
    for line in lines:
        if line.endswith("tok/s"):
            rates.append(float(line.rsplit("|", 1)[1].split()[0].replace(",", "")))
    if not rates:
        return None
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def hf_config(transformers: Any, name: str):
    config = transformers.GPT2Config.from_dict(preset(name).to_hf_dict())  # our config.json, read by HF
    try:
        config._attn_implementation = "eager"  # the reference math; SDPA differs only by rounding
    except Exception:  # noqa: BLE001 - older transformers: eager is the only implementation
        pass
    return config


@torch.no_grad()
def compare(transformers: Any, name: str, work: str, device: torch.device, seq: int, seed: int, both_ways: bool) -> Dict[str, Any]:
    torch.manual_seed(seed)
    t = time.time()
    try:
        with torch.device(device):  # torch >= 2.0: initialise directly on the GPU (gpt2-xl on CPU is slow)
            hf = transformers.GPT2LMHeadModel(hf_config(transformers, name))
    except (TypeError, AttributeError):
        hf = transformers.GPT2LMHeadModel(hf_config(transformers, name))
    hf = hf.to(device).float().eval()
    hf_dir = os.path.join(work, f"hf-{name}")
    try:  # unsharded safetensors: load_pretrained refuses sharded folders (gpt2-xl in float32 is 6.2 GB)
        hf.save_pretrained(hf_dir, safe_serialization=True, max_shard_size="100GB")
    except TypeError:  # transformers versions that always write safetensors
        hf.save_pretrained(hf_dir, max_shard_size="100GB")

    ours = load_pretrained(hf_dir).to(device).eval()
    g = torch.Generator(device="cpu").manual_seed(seed)
    ids = torch.randint(0, 50257, (2, seq), generator=g).to(device)
    ref = hf(input_ids=ids).logits
    full, _ = ours(ids)
    # Our KV cache: the prompt minus its last token, then that token alone, against HF's full pass.
    _, past = ours(ids[:, :-1])
    step, _ = ours(ids[:, -1:], None, None, past)
    result: Dict[str, Any] = {
        "config": name,
        "parameters": ours.num_parameters(),
        "hfDir": hf_dir,
        "maxAbsDiffLogits": max_abs_diff(full, ref),
        "maxAbsDiffCachedStep": max_abs_diff(step[:, -1], ref[:, -1]),
        "logitScale": float(ref.abs().max()),
    }
    if both_ways:
        ours_dir = os.path.join(work, f"ours-{name}")
        save_pretrained(ours.cpu(), ours_dir)
        back = transformers.GPT2LMHeadModel.from_pretrained(ours_dir).to(device).float().eval()
        result["maxAbsDiffOursToHf"] = max_abs_diff(back(input_ids=ids).logits, ref)
        del back
    result["ok"] = all(v <= TOLERANCE for k, v in result.items() if k.startswith("maxAbsDiff"))
    result["seconds"] = round(time.time() - t, 1)
    del hf, ours
    torch.cuda.empty_cache()
    return result


def finetune_xl(base_dir: str, args: argparse.Namespace, device: torch.device) -> Dict[str, Any]:
    data = os.path.join(args.work, "data-random")
    per_step = args.batch_size * args.block_size
    write_random_data(data, train_tokens=max(200_000, 4 * per_step * args.steps), eval_tokens=20_000, seed=args.seed)
    out = os.path.join(args.work, "gpt2-xl-ft")
    ft_args = finetune.build_parser().parse_args([
        "--base", base_dir, "--data", data, "--out", out, "--freeze", str(args.freeze),
        "--max-steps", str(args.steps), "--batch-size", str(args.batch_size), "--block-size", str(args.block_size),
        "--lr", "1e-4", "--device", "cuda", "--bf16", "--eval-every", "0", "--eval-batches", "4",
        "--log-every", "5", "--save-every", str(max(1, args.steps // 2)), "--seed", str(args.seed),
    ])
    lines: List[str] = []

    def log(line: str) -> None:
        lines.append(line)
        print(line, file=sys.stderr, flush=True)

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    report = finetune.train(ft_args, log=log)
    return {
        "out": out,
        "steps": report["steps"],
        "frozenBlocks": report["frozenBlocks"],
        "precision": report["hyperparameters"]["precision"],
        "tokensPerStep": per_step,
        "tokensPerSecond": steady_tokens_per_second(lines),
        "tokensPerSecondOverall": report["tokensSeen"] / max(report["seconds"], 1e-9),
        "peakGpuMemoryGiB": round(torch.cuda.max_memory_allocated(device) / 2**30, 2),
        "initialEvalLoss": report["initialEvalLoss"],
        "finalEvalLoss": report["finalEvalLoss"],
        "finalEvalPerplexity": report["finalEvalPerplexity"],
        "seconds": report["seconds"],
    }


def export(out: str, work: str) -> Dict[str, Any]:
    model_dir = os.path.join(work, "gpt2-xl-ft-model")
    t = time.time()
    finetune.export_model_dir(out, model_dir, log=lambda line: print(line, file=sys.stderr, flush=True))
    with open(os.path.join(model_dir, "imagine-model.json"), encoding="utf-8") as f:
        meta = json.load(f)
    files = sorted(os.listdir(model_dir))
    return {
        "dir": model_dir,
        "seconds": round(time.time() - t, 1),
        "files": len(files),
        "bytes": sum(os.path.getsize(os.path.join(model_dir, n)) for n in files),
        "provenance": {k: meta["provenance"].get(k) for k in ("baseModel", "frozenBlocks", "steps", "finalEvalLoss")},
    }


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import transformers  # noqa: PLC0415 - lazily, so --help and imports work without it
    except ImportError:
        print("error: this check needs Hugging Face transformers (pip install transformers)", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("error: this check needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32 for the comparison
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(args.work, exist_ok=True)

    result: Dict[str, Any] = {
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tolerance": TOLERANCE,
        "compat": [],
    }
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    for name in names:
        result["compat"].append(compare(transformers, name, args.work, device, args.seq, args.seed, both_ways=name == "gpt2"))
        print(json.dumps(result["compat"][-1]), file=sys.stderr, flush=True)
    ok = all(c["ok"] for c in result["compat"])

    if not args.skip_finetune:
        if "gpt2-xl" not in names:
            print("error: finetuning uses the gpt2-xl folder written by the comparison; keep gpt2-xl in --configs", file=sys.stderr)
            return 2
        torch.backends.cuda.matmul.allow_tf32 = True  # training as it would run for real
        result["finetune"] = finetune_xl(os.path.join(args.work, "hf-gpt2-xl"), args, device)
        if not args.skip_export:
            result["export"] = export(result["finetune"]["out"], args.work)
    result["ok"] = ok
    text = json.dumps(result, indent=2)
    with open(os.path.join(args.work, "hf_compat.json"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(text, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
