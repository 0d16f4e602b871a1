"""The whole offline chain at toy scale, through the real command lines:

    captions.txt ─(node: imagine-bot data prepare)─▶ train/eval.tokens
        ─(finetune.py --freeze 1 --export)─▶ checkpoint + model dir
        ─(node: imagine-bot prompt --model)─▶ prompts

Node runs the TypeScript CLI from source (`node --import tsx src/adapters/cli/main.ts`). A few steps
of training cannot write complete captions, so only the shape of the result is asserted: the
prompts parse and start with the subject, frozen weights are untouched and trained ones moved.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

from checkpoint import load_pretrained, save_pretrained
from gpt2 import GPT2LMHeadModel, preset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAINING = os.path.join(ROOT, "training")
FIXTURE = os.path.join(TRAINING, "fixtures", "captions.txt")
TAGS = {"start": "<|startoftext|>", "end": "<|endoftext|>"}
SUBJECT = "a lighthouse"


def node_cli() -> list:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the end-to-end test drives the TypeScript CLI (install Node ≥ 20.12 and run `npm ci`)")
    if not os.path.isdir(os.path.join(ROOT, "node_modules", "tsx")):
        pytest.fail(f"{ROOT}/node_modules/tsx is missing: run `npm ci` in the repository root first")
    return [node, "--import", "tsx", os.path.join("src", "adapters", "cli", "main.ts")]


def run(cmd, timeout=120):
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGINE_CONFIG", "IMAGINE_MODEL_DIR")}
    started = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc.stdout, time.time() - started


def test_captions_to_prompts_through_prepare_finetune_export_and_the_engine(tmp_path):
    cli = node_cli()
    captions = tmp_path / "captions.txt"
    with open(FIXTURE, encoding="utf-8") as f:
        captions.write_text("".join(f.readlines()[:300]), encoding="utf-8")

    # 1. data prepare: clean, filter, tag, split 90/10, tokenize.
    data = tmp_path / "data"
    run(cli + ["data", "prepare", "--input", str(captions), "--out", str(data), "--tags", "--eval-fraction", "0.1",
               "--seed", "1", "--workers", "1", "--no-limit"])
    with open(data / "report.json", encoding="utf-8") as f:
        prepared = json.load(f)
    assert prepared["kept"] == 300 and prepared["tags"] == TAGS
    assert {"train.tokens", "eval.tokens", "train.txt", "eval.txt"} <= set(os.listdir(data))

    # 2. A random tiny "base model" in Hugging Face layout, so frozen weights can be compared exactly.
    base = tmp_path / "base"
    torch.manual_seed(7)
    save_pretrained(GPT2LMHeadModel(preset("tiny")), str(base))
    before = load_pretrained(str(base)).state_dict()

    # 3. finetune with block 0 of 2 (and the embeddings, hence the tied head) frozen, then export.
    out, model_dir = tmp_path / "ckpt", tmp_path / "model"
    stdout, _ = run([sys.executable, os.path.join(TRAINING, "finetune.py"), "--base", str(base), "--data", str(data),
                     "--out", str(out), "--freeze", "1", "--max-steps", "6", "--batch-size", "4", "--block-size", "32",
                     "--lr", "1e-2", "--eval-batches", "2", "--eval-every", "3", "--log-every", "3", "--device", "cpu",
                     "--seed", "1", "--export", str(model_dir)])
    assert "| ppl " in stdout and "exporting" in stdout

    after = load_pretrained(str(out)).state_dict()
    frozen = ("transformer.wte.", "transformer.wpe.", "transformer.h.0.", "lm_head.")
    for name, tensor in before.items():
        if name.startswith(frozen):
            assert torch.equal(tensor, after[name]), f"{name} is frozen but changed"
        else:
            assert not torch.equal(tensor, after[name]), f"{name} should have trained"

    with open(model_dir / "imagine-model.json", encoding="utf-8") as f:
        meta = json.load(f)
    assert meta["tags"] == TAGS
    assert meta["meanCaptionTokens"] == pytest.approx(prepared["train"]["meanCaptionTokens"])
    prov = meta["provenance"]
    assert prov["baseModel"] == "base" and prov["frozenBlocks"] == 1 and prov["steps"] == 6
    assert prov["data"]["source"] == "captions.txt" and prov["data"]["trainTokens"] == prepared["train"]["tokens"]
    assert isinstance(prov["finalEvalLoss"], float)

    # 4. The TypeScript engine loads the exported directory and writes prompts from the subject.
    stdout, _ = run(cli + ["prompt", SUBJECT, "-n", "3", "--model", str(model_dir), "--seed", "1", "--json"])
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["subject"] == SUBJECT and result["seed"] == 1
    assert len(result["prompts"]) == 3
    for prompt in result["prompts"]:
        assert prompt["text"].startswith(SUBJECT)
        assert "<|endoftext|>" not in prompt["text"] and "<|startoftext|>" not in prompt["text"]
