"""Does a tag-trained model close its captions? Samples continuations of "start tag + subject" and
reports the fraction that emit the end tag within 2x the mean caption length.

    /usr/bin/python3 training/sample_check.py --checkpoint checkpoints/tiny --data data/tiny [--min-fraction 0.9]

Prompts come from eval.tokens (Python never tokenizes): each eval document starts with the start
tag's ids followed by the caption, so "start tag + subject" is the tag ids plus the caption's first
--subject-tokens ids (GPT-2 spends 2-3 ids on a subject like "a lighthouse" or "a red fox").
Sampling: temperature 0.9, top-k 50, through the KV cache, as the bot does. Exits 1 when the
fraction is below --min-fraction, so make_tiny_model.sh fails on a model that never stops.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import List, Optional

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checkpoint import load_pretrained  # noqa: E402
from gpt2 import GPT2LMHeadModel  # noqa: E402
from tokens import EVAL_FILE, read_token_file  # noqa: E402

END_OF_TEXT = 50256  # GPT-2's <|endoftext|>, the end tag the data pipeline encodes as one special id


def split_documents(ids: np.ndarray, end_id: int) -> List[np.ndarray]:
    cuts = np.flatnonzero(ids == end_id)
    docs, start = [], 0
    for c in cuts:
        docs.append(np.asarray(ids[start : c + 1]))
        start = c + 1
    return docs


def common_prefix(docs: List[np.ndarray]) -> List[int]:
    prefix = list(docs[0])
    for d in docs[1:]:
        n = 0
        while n < min(len(prefix), len(d)) and prefix[n] == d[n]:
            n += 1
        prefix = prefix[:n]
    return [int(i) for i in prefix]


@torch.no_grad()
def sample(
    model: GPT2LMHeadModel,
    prompts: List[List[int]],
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    end_id: int,
    generator: torch.Generator,
) -> List[List[int]]:
    """Samples one continuation per prompt (prompts of equal length, decoded as one batch with the
    KV cache). Each continuation stops after the end id, which it includes."""
    model.eval()
    x = torch.tensor(prompts, dtype=torch.long)
    b, n = x.shape
    past = model.empty_past(b)
    mask = torch.ones(b, n, dtype=torch.long)
    pos = torch.arange(n).unsqueeze(0).expand(b, n)
    out: List[List[int]] = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool)
    for _ in range(max_new_tokens):
        if n >= model.config.n_positions:
            break
        logits, past = model(x, mask, pos, past)
        logits = logits[:, -1, :] / temperature
        if top_k > 0:
            kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(1)
        for i in range(b):
            if not done[i]:
                out[i].append(int(nxt[i]))
        done |= nxt == end_id
        if bool(done.all()):
            break
        n += 1
        x = nxt.unsqueeze(1)
        mask = torch.ones(b, n, dtype=torch.long)
        pos = torch.full((b, 1), n - 1, dtype=torch.long)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="directory with eval.tokens (tagged)")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--subject-tokens", type=int, default=3)
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--min-fraction", type=float, default=0.9)
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)

    tf = read_token_file(os.path.join(args.data, EVAL_FILE))
    tags = tf.tags
    if not tags:
        raise SystemExit("eval.tokens has no tags; the end-tag check needs data tokenized with --tags")
    if tags["end"] != "<|endoftext|>":
        raise SystemExit(f"end tag {tags['end']!r} is not GPT-2's <|endoftext|>; this check knows only id {END_OF_TEXT}")
    docs = split_documents(np.asarray(tf.ids), END_OF_TEXT)
    start_ids = common_prefix(docs)
    usable = [d for d in docs if len(d) > len(start_ids) + args.subject_tokens + 1]
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(usable), size=args.samples, replace=len(usable) < args.samples)
    prompts = [[int(i) for i in usable[j][: len(start_ids) + args.subject_tokens]] for j in chosen]

    model = load_pretrained(args.checkpoint)
    mean = tf.mean_caption_tokens
    max_new = math.ceil(2 * mean)
    gen = torch.Generator().manual_seed(args.seed)
    outs = sample(model, prompts, max_new, args.temperature, args.top_k, END_OF_TEXT, gen)
    closed = [o for o in outs if o and o[-1] == END_OF_TEXT]
    fraction = len(closed) / len(outs)
    mean_new = float(np.mean([len(o) for o in closed])) if closed else float("nan")
    result = {
        "samples": len(outs),
        "closed": len(closed),
        "fraction": fraction,
        "maxNewTokens": max_new,
        "meanCaptionTokens": mean,
        "meanNewTokensWhenClosed": mean_new,
        "promptTokens": len(prompts[0]),
        "temperature": args.temperature,
        "topK": args.top_k,
        "seed": args.seed,
    }
    print(
        f"end tag reached in {len(closed)}/{len(outs)} samples ({fraction:.1%}) within {max_new} new tokens "
        f"(2 x mean caption length {mean:.2f}); mean length when closed {mean_new:.1f}"
    )
    print("first samples (prompt ids | continuation ids):")
    for pr, o in list(zip(prompts, outs))[:3]:
        print(f"  {pr[len(start_ids):]} | {o}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0 if fraction >= args.min_fraction else 1


if __name__ == "__main__":
    sys.exit(main())
