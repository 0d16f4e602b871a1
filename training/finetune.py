"""Finetune GPT-2 on token files written by the TypeScript data pipeline.

    /usr/bin/python3 training/finetune.py --base checkpoints/gpt2-xl --data data/laion \
        --out checkpoints/gpt2-xl-laion-tags --freeze 42 --max-steps 2000 --save-every 200 --resume \
        --export models/gpt2-xl-laion-tags

--base loads a Hugging Face-layout directory (config.json + model.safetensors | pytorch_model.bin);
--init PRESET starts from seeded random weights instead (for tests and the tiny fixture model).
The output directory is again Hugging Face layout, plus training.json with the provenance that
export_onnx.py copies into the model directory.

Freezing (--freeze N) follows the paper (gpt2-xl: first 42 of 48 blocks frozen): the token and
position embeddings and the first N blocks get no gradient. GPT-2 ties lm_head.weight to the token
embedding, so freezing the embeddings freezes the output projection too; ln_f and the last blocks
remain trainable.

Checkpoints: every --save-every steps and at the end, OUT/checkpoint-last/ is replaced atomically
(written to a temporary folder, then renamed). It holds the model in Hugging Face layout, the
optimizer, loss-scaler and LR-schedule state, the step, the torch and numpy RNG states and the
arguments. --resume continues from it (or starts fresh, saying so, when there is none); a run
interrupted and resumed ends with the same weights as an uninterrupted one on the same device.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import shutil
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checkpoint import CheckpointError, load_pretrained, load_safetensors, save_pretrained, save_safetensors  # noqa: E402
from gpt2 import GPT2LMHeadModel, preset  # noqa: E402
from tokens import TokenFile, TokenFileError, read_data_dir  # noqa: E402

CHECKPOINT_DIR = "checkpoint-last"
STATE_FILE = "trainer_state.json"  # written last: a checkpoint folder without it is incomplete
TENSORS_FILE = "trainer_state.safetensors"  # optimizer moments and RNG states
STATE_FORMAT = "imagine-bot/trainer-state"

# Arguments that shape the training trajectory: a resumed run must use the same values, or it would
# silently become a different experiment. (Steps, logging, eval, device and outputs may change.)
RESUME_FIXED = (
    "init", "freeze", "lr", "min_lr_ratio", "schedule", "warmup", "weight_decay", "grad_clip",
    "batch_size", "grad_accum", "block_size", "seed", "fp16", "bf16",
)


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
    p.add_argument(
        "--save-every", type=int, default=0,
        help=f"steps between resumable checkpoints in OUT/{CHECKPOINT_DIR} (0: only at the end)",
    )
    p.add_argument(
        "--resume", action="store_true",
        help=f"continue from OUT/{CHECKPOINT_DIR} if it exists (else start fresh)",
    )
    p.add_argument(
        "--export", metavar="DIR", default=None,
        help="after training, export a model directory (model.onnx + imagine-model.json) with export_onnx.py",
    )
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


class LRSchedule:
    """Linear warmup, then cosine or linear decay to min_ratio × base_lr. A pure function of the step,
    so its state is its parameters plus the last step it set; kept in the checkpoint so a resumed run
    can say whether its schedule is the one the run started with."""

    def __init__(self, base_lr: float, total: int, warmup: int, min_ratio: float, schedule: str) -> None:
        self.base_lr, self.total, self.warmup, self.min_ratio, self.schedule = base_lr, total, warmup, min_ratio, schedule
        self.last_step = -1

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = lr_at(step, self.total, self.warmup, self.base_lr, self.min_ratio, self.schedule)
        for g in optimizer.param_groups:
            g["lr"] = lr
        self.last_step = step
        return lr

    def state_dict(self) -> Dict[str, Any]:
        return {"baseLr": self.base_lr, "totalSteps": self.total, "warmup": self.warmup,
                "minLrRatio": self.min_ratio, "schedule": self.schedule, "lastStep": self.last_step}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.last_step = int(state.get("lastStep", -1))


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
    """Mean token cross-entropy over fixed eval windows. Uses no random numbers (the model has no
    dropout), so evaluating never changes what training does next."""
    model.eval()
    total, count = 0.0, 0
    for x, y in fixed_batches(np.asarray(data.ids), args.eval_batches, args.batch_size, block, device):
        with autocast():
            total += loss_fn(model, x, y).item() * x.size(0)
        count += x.size(0)
    model.train()
    return total / max(1, count)


def perplexity(loss: Optional[float]) -> Optional[float]:
    """exp(mean token cross-entropy); None where it overflows (JSON has no infinity)."""
    if loss is None:
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return None


def _fmt_ppl(loss: float) -> str:
    ppl = perplexity(loss)
    return "inf" if ppl is None else f"{ppl:.2f}"


def _log(line: str) -> None:
    print(line, flush=True)  # progress must show up promptly when stdout is a file or a pipe


def make_grad_scaler(enabled: bool):
    """Loss scaling, for float16 only (bfloat16 has float32's exponent range). torch ≥ 2.3 has
    torch.amp.GradScaler("cuda") and deprecates torch.cuda.amp.GradScaler; 1.13-2.2 have only the latter."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def split_state(state: Any, prefix: str = "") -> Any:
    """Splits a state dict into tensors (for safetensors) and a JSON skeleton in which each tensor is
    replaced by {"$tensor": name}. Checkpoints then hold no pickles: nothing executable, nothing that
    depends on torch's unpickler (torch 1.13's weights_only mode cannot even read floats)."""
    tensors: Dict[str, torch.Tensor] = {}

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            tensors[path] = value
            return {"$tensor": path}
        if isinstance(value, dict):
            return {"$dict": [[k, walk(v, f"{path}.{k}")] for k, v in value.items()]}  # keeps int keys
        if isinstance(value, (list, tuple)):
            return {"$list": [walk(v, f"{path}.{i}") for i, v in enumerate(value)], "tuple": isinstance(value, tuple)}
        return value

    return walk(state, prefix), tensors


def join_state(skeleton: Any, tensors: Dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if "$tensor" in skeleton:
            return tensors[skeleton["$tensor"]]
        if "$dict" in skeleton:
            return {k: join_state(v, tensors) for k, v in skeleton["$dict"]}
        if "$list" in skeleton:
            items = [join_state(v, tensors) for v in skeleton["$list"]]
            return tuple(items) if skeleton.get("tuple") else items
    return skeleton


# ---------------------------------------------------------------------------- checkpoints


def checkpoint_path(out: str) -> str:
    return os.path.join(out, CHECKPOINT_DIR)


def _tmp_paths(out: str):
    return os.path.join(out, f".{CHECKPOINT_DIR}.tmp"), os.path.join(out, f".{CHECKPOINT_DIR}.old")


def find_checkpoint(out: str) -> Optional[str]:
    """OUT/checkpoint-last if complete; else the previous one if a crash came between the two renames
    of save_checkpoint (the old folder moved aside, the new one not yet in place)."""
    current = checkpoint_path(out)
    if os.path.isfile(os.path.join(current, STATE_FILE)):
        return current
    _, old = _tmp_paths(out)
    if os.path.isfile(os.path.join(old, STATE_FILE)):
        return old
    return None


def _fsync_file(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def save_checkpoint(out: str, model: GPT2LMHeadModel, optimizer, scaler, state: Dict[str, Any], device: torch.device) -> str:
    """Writes OUT/checkpoint-last atomically: everything goes into a temporary folder first, which then
    replaces the previous checkpoint by rename, so an interruption never leaves a half-written one."""
    final = checkpoint_path(out)
    tmp, old = _tmp_paths(out)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    save_pretrained(model, tmp)  # HF layout: config.json + model.safetensors (copied to cpu, float32)
    rng: Dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state_all()
    skeleton, tensors = split_state({"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "rng": rng}, "s")
    save_safetensors(tensors, os.path.join(tmp, TENSORS_FILE), {"format": STATE_FORMAT})
    state = {**state, "tensorState": skeleton}
    with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2)
        f.write("\n")
    for name in os.listdir(tmp):
        _fsync_file(os.path.join(tmp, name))
    if os.path.isdir(final):
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _data_fingerprint(train_data: TokenFile, eval_data: TokenFile) -> Dict[str, Any]:
    h = train_data.header
    return {"trainTokens": len(train_data), "evalTokens": len(eval_data), "documents": h.get("documents"),
            "source": h.get("source"), "tags": h.get("tags")}


def _check_resumable(saved: Dict[str, Any], args: argparse.Namespace, fingerprint: Dict[str, Any], where: str) -> None:
    if saved.get("format") != STATE_FORMAT:
        raise SystemExit(f"{where}/{STATE_FILE} is not a finetune.py checkpoint (format {saved.get('format')!r})")
    saved_args = saved.get("args", {})
    current = vars(args)
    diffs = [
        f"--{k.replace('_', '-')} {saved_args.get(k)!r} → {current.get(k)!r}"
        for k in RESUME_FIXED
        if saved_args.get(k) != current.get(k)
    ]
    if bool(saved_args.get("base")) != bool(args.base):
        diffs.append("--base/--init changed")
    if saved.get("data") != fingerprint:
        diffs.append(f"the token files differ (checkpoint: {saved.get('data')}, now: {fingerprint})")
    if diffs:
        raise SystemExit(
            f"cannot resume from {where}: it was trained with other settings ({'; '.join(diffs)}). "
            "Use the original flags, or a new --out to start another run."
        )


# ---------------------------------------------------------------------------- training


def train(args: argparse.Namespace, log: Callable[[str], None] = _log) -> Dict[str, object]:
    device = resolve_device(args.device)
    if args.save_every < 0:
        raise SystemExit("--save-every must be ≥ 0")

    data = read_data_dir(args.data)
    train_data, eval_data = data["train"], data["eval"]
    fingerprint = _data_fingerprint(train_data, eval_data)

    resume_dir: Optional[str] = None
    saved: Dict[str, Any] = {}
    if args.resume:
        resume_dir = find_checkpoint(args.out)
        if resume_dir is None:
            log(f"--resume: no checkpoint in {checkpoint_path(args.out)}; starting fresh")
        else:
            with open(os.path.join(resume_dir, STATE_FILE), encoding="utf-8") as f:
                saved = json.load(f)
            _check_resumable(saved, args, fingerprint, resume_dir)
    elif find_checkpoint(args.out) is not None:
        log(f"note: {checkpoint_path(args.out)} exists and will be replaced; pass --resume to continue from it")

    torch.manual_seed(args.seed)
    np_rng = np.random.default_rng(args.seed)

    if resume_dir is not None:
        model = load_pretrained(resume_dir)  # the weights of the step it was saved at
        base_name = saved["baseModel"]
    elif args.base:
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
    schedule = LRSchedule(args.lr, total_steps, warmup, args.min_lr_ratio, args.schedule)

    use_cuda = device.type == "cuda"
    amp_dtype = torch.float16 if args.fp16 else torch.bfloat16 if args.bf16 else None
    if amp_dtype is not None and not use_cuda:
        log("note: --fp16/--bf16 apply on cuda only; training in float32 on cpu")
        amp_dtype = None

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=amp_dtype)

    scaler = make_grad_scaler(amp_dtype == torch.float16)

    start_step = 0
    history: List[Dict[str, Any]] = []
    resumed: List[Dict[str, Any]] = []
    running: Optional[float] = None
    elapsed_before = 0.0
    if resume_dir is not None:
        start_step = int(saved["step"])
        if start_step > total_steps:
            raise SystemExit(
                f"{resume_dir} is at step {start_step}, beyond this run's {total_steps} steps; raise --max-steps/--epochs"
            )
        restored = join_state(saved["tensorState"], load_safetensors(os.path.join(resume_dir, TENSORS_FILE)))
        optimizer.load_state_dict(restored["optimizer"])
        if restored.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(restored["scaler"])
        rng = restored["rng"]
        torch.set_rng_state(rng["torch"])
        if use_cuda and rng.get("cuda") and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
        # The batch windows come from this Generator: restoring its exact bit-generator state is what
        # makes the resumed run draw the same windows an uninterrupted one would have drawn next.
        np_rng.bit_generator.state = saved["numpyRng"]
        schedule.load_state_dict(saved["lrScheduler"])
        if saved["lrScheduler"].get("totalSteps") != total_steps or saved["lrScheduler"].get("warmup") != warmup:
            log(
                f"note: the LR schedule now spans {total_steps} steps (warmup {warmup}) instead of "
                f"{saved['lrScheduler'].get('totalSteps')} (warmup {saved['lrScheduler'].get('warmup')}); "
                "the result will differ from an uninterrupted run with the original step count"
            )
        history = list(saved.get("history", []))
        resumed = list(saved.get("resumed", []))
        running = saved.get("runningLoss")
        elapsed_before = float(saved.get("seconds", 0.0))
        resumed.append({"step": start_step, "at": _now()})
        log(f"resuming from {resume_dir} at step {start_step}/{total_steps}")

    n_trainable = sum(p.numel() for p in params)
    frozen_what = f"embeddings + tied lm_head + {args.freeze} blocks" if frozen else "nothing"
    log(f"model {base_name}: {model.num_parameters() / 1e6:.2f}M params, {n_trainable / 1e6:.2f}M trainable (frozen: {frozen_what})")
    log(
        f"data: {len(train_data)} train / {len(eval_data)} eval tokens; {total_steps} steps x {tokens_per_step} tokens "
        f"(batch {args.batch_size} x accum {args.grad_accum} x block {block}) on {device}"
    )

    if resume_dir is None:
        initial_eval = evaluate(model, eval_data, args, block, device, autocast)
        eval_loss = initial_eval
        log(f"step 0/{total_steps} | eval loss {initial_eval:.4f} | ppl {_fmt_ppl(initial_eval)}")
    else:
        initial_eval = saved["initialEvalLoss"]
        eval_loss = saved["evalLoss"]

    def trainer_state(step: int, seconds: float) -> Dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "version": 1,
            "step": step,
            "totalSteps": total_steps,
            "baseModel": base_name,
            "args": vars(args),
            "data": fingerprint,
            "lrScheduler": schedule.state_dict(),
            "numpyRng": np_rng.bit_generator.state,
            "runningLoss": running,
            "initialEvalLoss": initial_eval,
            "evalLoss": eval_loss,
            "history": history,
            "resumed": resumed,
            "seconds": seconds,
            "device": str(device),
            "torch": torch.__version__,
            "savedAt": _now(),
        }

    train_ids = np.asarray(train_data.ids)
    t0 = time.time()
    window_t, window_tokens = time.time(), 0
    for step in range(start_step, total_steps):
        lr = schedule.apply(optimizer, step)
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
            history.append({"step": done, "trainLoss": running, "evalLoss": eval_loss, "evalPerplexity": perplexity(eval_loss)})
            log(f"step {done}/{total_steps} | eval loss {eval_loss:.4f} | ppl {_fmt_ppl(eval_loss)}")
        if args.save_every and done % args.save_every == 0 and done < total_steps:
            where = save_checkpoint(args.out, model, optimizer, scaler, trainer_state(done, elapsed_before + time.time() - t0), device)
            log(f"step {done}/{total_steps} | saved checkpoint {where}")
    elapsed = elapsed_before + time.time() - t0

    os.makedirs(args.out, exist_ok=True)
    where = save_checkpoint(args.out, model, optimizer, scaler, trainer_state(total_steps, elapsed), device)
    log(f"step {total_steps}/{total_steps} | saved checkpoint {where}")

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
        "initialEvalPerplexity": perplexity(initial_eval),
        "finalTrainLoss": running,
        "finalEvalLoss": eval_loss,
        "finalEvalPerplexity": perplexity(eval_loss),
        "history": history,
        "resumed": resumed,
        "checkpoint": CHECKPOINT_DIR,
        "seconds": round(elapsed, 2),
        "device": str(device),
        "torch": torch.__version__,
        "finishedAt": _now(),
    }
    with open(os.path.join(args.out, "training.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    log(
        f"saved {args.out} ({elapsed:.1f}s): train loss {running:.4f}, eval loss {eval_loss:.4f}, "
        f"eval ppl {_fmt_ppl(eval_loss)}"
    )
    if args.export:
        export_model_dir(args.out, args.export, log)
    return report


def export_model_dir(checkpoint: str, out: str, log: Callable[[str], None] = _log) -> None:
    """The model directory for the Node engine, by export_onnx.py's own entry point, so a model
    exported here is exactly what `export_onnx.py --checkpoint CHECKPOINT --out OUT` writes: it reads
    training.json for tags, meanCaptionTokens and the provenance (base model, data, frozen blocks,
    steps, final losses)."""
    import export_onnx  # noqa: E402  (imported late: only --export needs the ONNX exporter)

    log(f"exporting {checkpoint} → {out}")
    code = export_onnx.main(["--checkpoint", checkpoint, "--out", out])
    if code:
        raise SystemExit(f"export to {out} failed (export_onnx.py exit code {code})")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def main(argv: Optional[List[str]] = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # the exporter's lines too, when piped
    args = build_parser().parse_args(argv)
    try:
        train(args)
    except (CheckpointError, TokenFileError) as e:
        print(f"error: {e}", file=sys.stderr)  # the message already says what to fix; no traceback
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
