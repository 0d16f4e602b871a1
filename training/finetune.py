"""Finetune GPT-2 on token files written by the TypeScript data pipeline.

    /usr/bin/python3 training/finetune.py --base checkpoints/gpt2-xl --data data/laion \
        --out checkpoints/gpt2-xl-laion-tags --freeze 42 --max-steps 2000

--base loads a Hugging Face-layout directory (config.json + model.safetensors | pytorch_model.bin);
--init PRESET starts from seeded random weights instead (for tests and the tiny fixture model).
The output directory is again Hugging Face layout, plus training.json with the provenance that
export_onnx.py copies into the model directory.

Freezing (--freeze N) follows the paper (gpt2-xl: first 42 of 48 blocks frozen): the token and
position embeddings and the first N blocks get no gradient. GPT-2 ties lm_head.weight to the token
embedding, so freezing the embeddings freezes the output projection too; ln_f and the last blocks
remain trainable.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checkpoint import CheckpointError, load_pretrained, save_pretrained  # noqa: E402
from gpt2 import GPT2LMHeadModel, preset  # noqa: E402
from tokens import TokenFile, TokenFileError, read_data_dir  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--base", help="Hugging Face-layout checkpoint directory to finetune")
    src.add_argument("--init", metavar="PRESET", help="start from random weights of a preset (tiny, gpt2, ...)")
    p.add_argument("--data", required=True, help="directory with train.tokens and eval.tokens")
    p.add_argument("--out", required=True, help="output directory (Hugging Face layout + training.json)")
    p.add_argument("--freeze", type=int, default=0, help="freeze embeddings (and the tied lm_head) and the first N blocks")
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps (caps --epochs if both are given)")
    p.add_argument("--epochs", type=float, default=None, help="passes over train.tokens, in tokens seen (default 1)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--min-lr-ratio", type=float, default=0.1, help="final lr as a fraction of --lr")
    p.add_argument("--schedule", choices=("cosine", "linear"), default="cosine")
    p.add_argument("--warmup", type=int, default=None, help="warmup steps (default: 5%% of steps, at most 100)")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--block-size", type=int, default=128, help="tokens per training window (capped at n_positions)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--fp16", action="store_true", help="float16 autocast + loss scaling (cuda only)")
    prec.add_argument("--bf16", action="store_true", help="bfloat16 autocast (cuda only)")
    p.add_argument("--eval-every", type=int, default=100, help="steps between eval-loss reports (0: only at the end)")
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--log-every", type=int, default=10)
    return p


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


def freeze(model: GPT2LMHeadModel, n_blocks: int) -> List[str]:
    """Freezes wte/wpe (hence the tied lm_head) and blocks [0, n_blocks). Returns the frozen names."""
    if n_blocks < 0 or n_blocks > model.config.n_layer:
        raise SystemExit(f"--freeze {n_blocks} is outside 0..{model.config.n_layer} (the model's n_layer)")
    if n_blocks == 0:
        return []
    prefixes = ["transformer.wte.", "transformer.wpe."] + [f"transformer.h.{i}." for i in range(n_blocks)]
    frozen = []
    for name, p in model.named_parameters():  # tied lm_head.weight is the wte Parameter, listed once
        if any(name.startswith(pre) for pre in prefixes):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def lr_at(step: int, total: int, warmup: int, base_lr: float, min_ratio: float, schedule: str) -> float:
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        factor = min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        factor = 1 - (1 - min_ratio) * progress
    return base_lr * factor


def random_batch(ids: np.ndarray, batch: int, block: int, rng: np.random.Generator, device: torch.device):
    """Random windows (nanoGPT style): documents are concatenated, and with tags each one ends with
    the end tag, so windows spanning a boundary teach the model to close a caption."""
    starts = rng.integers(0, len(ids) - block - 1, size=batch, endpoint=True)
    x = np.stack([ids[s : s + block] for s in starts]).astype(np.int64)
    y = np.stack([ids[s + 1 : s + block + 1] for s in starts]).astype(np.int64)
    return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


def fixed_batches(ids: np.ndarray, n_batches: int, batch: int, block: int, device: torch.device):
    """Evenly spaced eval windows, the same ones every time, so eval losses are comparable."""
    n_windows = min(n_batches * batch, max(1, (len(ids) - 1) // block))
    starts = np.linspace(0, len(ids) - block - 1, num=n_windows).astype(np.int64)
    for i in range(0, len(starts), batch):
        chunk = starts[i : i + batch]
        x = np.stack([ids[s : s + block] for s in chunk]).astype(np.int64)
        y = np.stack([ids[s + 1 : s + block + 1] for s in chunk]).astype(np.int64)
        yield torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


def loss_fn(model: GPT2LMHeadModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits, _ = model(x)
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1))


@torch.no_grad()
def evaluate(model, data: TokenFile, args, block: int, device, autocast) -> float:
    model.eval()
    total, count = 0.0, 0
    for x, y in fixed_batches(np.asarray(data.ids), args.eval_batches, args.batch_size, block, device):
        with autocast():
            total += loss_fn(model, x, y).item() * x.size(0)
        count += x.size(0)
    model.train()
    return total / max(1, count)


def _log(line: str) -> None:
    print(line, flush=True)  # progress must show up promptly when stdout is a file or a pipe


def train(args: argparse.Namespace, log=_log) -> Dict[str, object]:
    torch.manual_seed(args.seed)
    np_rng = np.random.default_rng(args.seed)
    device = resolve_device(args.device)

    data = read_data_dir(args.data)
    train_data, eval_data = data["train"], data["eval"]

    if args.base:
        model = load_pretrained(args.base)
        base_name = os.path.basename(os.path.normpath(args.base))
        prior = os.path.join(args.base, "training.json")
        if os.path.isfile(prior):  # finetuning our own checkpoint again: keep its lineage
            with open(prior, encoding="utf-8") as f:
                base_name = json.load(f).get("baseModel", base_name) + f" + {base_name}"
    else:
        model = GPT2LMHeadModel(preset(args.init))  # seeded above
        base_name = f"random:{args.init} (seed {args.seed})"
    model.to(device)
    model.train()
    config = model.config

    header = train_data.header
    if header["vocabSize"] > config.vocab_size:
        raise SystemExit(f"token files use vocabSize {header['vocabSize']} but the model has {config.vocab_size}")
    block = min(args.block_size, config.n_positions)
    for split, tf in (("train", train_data), ("eval", eval_data)):
        if len(tf) < block + 2:
            raise SystemExit(f"{split}.tokens holds {len(tf)} tokens, fewer than one window of {block + 1}; lower --block-size")

    frozen = freeze(model, args.freeze)
    params = [p for p in model.parameters() if p.requires_grad]
    # Decay matrices only; biases and LayerNorm gains are not decayed (GPT-2/nanoGPT practice).
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8)

    tokens_per_step = args.batch_size * args.grad_accum * block
    if args.max_steps is None:
        epochs = 1.0 if args.epochs is None else args.epochs
        total_steps = max(1, math.ceil(epochs * len(train_data) / tokens_per_step))
    else:
        total_steps = args.max_steps
        if args.epochs is not None:
            total_steps = min(total_steps, max(1, math.ceil(args.epochs * len(train_data) / tokens_per_step)))
    warmup = args.warmup if args.warmup is not None else min(100, max(1, total_steps // 20))

    use_cuda = device.type == "cuda"
    amp_dtype = torch.float16 if args.fp16 else torch.bfloat16 if args.bf16 else None
    if amp_dtype is not None and not use_cuda:
        log("note: --fp16/--bf16 apply on cuda only; training in float32 on cpu")
        amp_dtype = None

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=amp_dtype)

    # Loss scaling is needed for float16 only (bfloat16 has float32's exponent range).
    # torch.amp.GradScaler replaces the deprecated torch.cuda.amp one on torch 2.x; 1.13 has only the latter.
    if hasattr(torch.amp, "GradScaler"):
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    else:
        scaler = torch.cuda.amp.GradScaler(enabled=amp_dtype == torch.float16)

    n_trainable = sum(p.numel() for p in params)
    frozen_what = f"embeddings + tied lm_head + {args.freeze} blocks" if frozen else "nothing"
    log(f"model {base_name}: {model.num_parameters() / 1e6:.2f}M params, {n_trainable / 1e6:.2f}M trainable (frozen: {frozen_what})")
    log(
        f"data: {len(train_data)} train / {len(eval_data)} eval tokens; {total_steps} steps x {tokens_per_step} tokens "
        f"(batch {args.batch_size} x accum {args.grad_accum} x block {block}) on {device}"
    )

    history = []
    initial_eval = evaluate(model, eval_data, args, block, device, autocast)
    log(f"step 0/{total_steps} | eval loss {initial_eval:.4f}")
    train_ids = np.asarray(train_data.ids)
    t0 = time.time()
    window_t, window_tokens = time.time(), 0
    running = None
    eval_loss = initial_eval
    for step in range(total_steps):
        lr = lr_at(step, total_steps, warmup, args.lr, args.min_lr_ratio, args.schedule)
        for g in optimizer.param_groups:
            g["lr"] = lr
        step_loss = 0.0
        for _ in range(args.grad_accum):
            x, y = random_batch(train_ids, args.batch_size, block, np_rng, device)
            with autocast():
                loss = loss_fn(model, x, y) / args.grad_accum
            scaler.scale(loss).backward()
            step_loss += loss.item()
        if args.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

        running = step_loss if running is None else 0.9 * running + 0.1 * step_loss
        window_tokens += tokens_per_step
        done = step + 1
        if done % args.log_every == 0 or done == total_steps:
            now = time.time()
            log(
                f"step {done}/{total_steps} | loss {step_loss:.4f} (avg {running:.4f}) | lr {lr:.2e} | "
                f"{window_tokens / max(now - window_t, 1e-9):,.0f} tok/s"
            )
            window_t, window_tokens = now, 0
        if (args.eval_every and done % args.eval_every == 0) or done == total_steps:
            eval_loss = evaluate(model, eval_data, args, block, device, autocast)
            history.append({"step": done, "trainLoss": running, "evalLoss": eval_loss})
            log(f"step {done}/{total_steps} | eval loss {eval_loss:.4f}")
    elapsed = time.time() - t0

    model.to("cpu")
    save_pretrained(model, args.out)
    report = {
        "format": "imagine-bot/training",
        "version": 1,
        "baseModel": base_name,
        "architecture": model.config.to_hf_dict(),
        "data": {
            "dir": os.path.abspath(args.data),
            "source": header.get("source"),
            "trainTokens": len(train_data),
            "evalTokens": len(eval_data),
            "trainDocuments": header.get("documents"),
            "evalDocuments": eval_data.header.get("documents"),
            "header": header,
        },
        "tags": header.get("tags"),
        "meanCaptionTokens": train_data.mean_caption_tokens,
        "frozenBlocks": args.freeze,
        "frozenParameters": frozen,
        "steps": total_steps,
        "tokensSeen": total_steps * tokens_per_step,
        "hyperparameters": {
            "lr": args.lr,
            "schedule": args.schedule,
            "minLrRatio": args.min_lr_ratio,
            "warmup": warmup,
            "weightDecay": args.weight_decay,
            "gradClip": args.grad_clip,
            "batchSize": args.batch_size,
            "gradAccum": args.grad_accum,
            "blockSize": block,
            "seed": args.seed,
            "precision": "fp16" if amp_dtype == torch.float16 else "bf16" if amp_dtype == torch.bfloat16 else "fp32",
        },
        "initialEvalLoss": initial_eval,
        "finalTrainLoss": running,
        "finalEvalLoss": eval_loss,
        "history": history,
        "seconds": round(elapsed, 2),
        "device": str(device),
        "torch": torch.__version__,
        "finishedAt": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with open(os.path.join(args.out, "training.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    log(f"saved {args.out} ({elapsed:.1f}s): train loss {running:.4f}, eval loss {eval_loss:.4f}")
    return report


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        train(args)
    except (CheckpointError, TokenFileError) as e:
        print(f"error: {e}", file=sys.stderr)  # the message already says what to fix; no traceback
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
