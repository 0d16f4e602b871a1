import json
import os

import numpy as np
import pytest
import torch

import finetune
from checkpoint import load_pretrained
from gpt2 import GPT2LMHeadModel, preset
from tokens import write_token_file

TAGS = {"start": "<|startoftext|>", "end": "<|endoftext|>"}


def make_data(directory, seed=0):
    """Random 'captions' over a small set of ids, each closed with 50256: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    vocab = rng.choice(50000, size=40, replace=False)

    def docs(n):
        out = []
        for _ in range(n):
            out += list(rng.choice(vocab, size=rng.integers(4, 9))) + [50256]
        return out

    os.makedirs(directory, exist_ok=True)
    for name, n in (("train.tokens", 300), ("eval.tokens", 40)):
        write_token_file(os.path.join(directory, name), docs(n), documents=n, mean_caption_tokens=6.0, tags=TAGS, source="synthetic")


def args_for(tmp_path, *extra):
    return finetune.build_parser().parse_args(
        ["--init", "tiny", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
         "--batch-size", "4", "--block-size", "16", "--lr", "1e-2", "--eval-batches", "2", "--eval-every", "0",
         "--log-every", "100", "--device", "cpu", "--seed", "3", *extra]
    )


def test_a_few_steps_lower_the_loss_and_save_an_hf_checkpoint(tmp_path):
    make_data(tmp_path / "data")
    lines = []
    report = finetune.train(args_for(tmp_path, "--max-steps", "15"), log=lines.append)
    assert report["finalEvalLoss"] < report["initialEvalLoss"] - 1.0
    assert any("tok/s" in line for line in lines)
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["checkpoint-last", "config.json", "model.safetensors", "training.json"]
    with open(out / "training.json") as f:
        tj = json.load(f)
    assert tj["tags"] == TAGS and tj["meanCaptionTokens"] == 6.0 and tj["steps"] == 15 and tj["frozenBlocks"] == 0
    assert tj["data"]["source"] == "synthetic" and tj["baseModel"] == "random:tiny (seed 3)"
    load_pretrained(str(out))  # loadable as Hugging Face layout


def test_freeze_leaves_embeddings_tied_head_and_first_blocks_bit_identical(tmp_path):
    make_data(tmp_path / "data")
    torch.manual_seed(3)  # finetune seeds with --seed before building the model
    initial = GPT2LMHeadModel(preset("tiny")).state_dict()
    report = finetune.train(args_for(tmp_path, "--max-steps", "5", "--freeze", "1"), log=lambda _: None)
    trained = load_pretrained(str(tmp_path / "out")).state_dict()
    frozen_prefixes = ("transformer.wte.", "transformer.wpe.", "transformer.h.0.", "lm_head.")
    for name, before in initial.items():
        if name.startswith(frozen_prefixes):
            assert torch.equal(before, trained[name]), f"{name} changed although frozen"
        else:
            assert not torch.equal(before, trained[name]), f"{name} did not train"
    assert report["frozenBlocks"] == 1
    assert "transformer.wte.weight" in report["frozenParameters"]


def test_base_checkpoint_continues_and_records_lineage(tmp_path):
    make_data(tmp_path / "data")
    finetune.train(args_for(tmp_path, "--max-steps", "2"), log=lambda _: None)
    args = args_for(tmp_path, "--max-steps", "2")
    args.init, args.base, args.out = None, str(tmp_path / "out"), str(tmp_path / "out2")
    report = finetune.train(args, log=lambda _: None)
    assert report["baseModel"] == "random:tiny (seed 3) + out"


def test_epochs_set_the_step_count_and_bad_freeze_is_refused(tmp_path):
    make_data(tmp_path / "data")
    report = finetune.train(args_for(tmp_path, "--epochs", "0.1"), log=lambda _: None)
    train_tokens = report["data"]["trainTokens"]
    assert report["steps"] == int(np.ceil(0.1 * train_tokens / (4 * 16)))
    with pytest.raises(SystemExit, match="--freeze 5 is outside 0..2"):
        finetune.train(args_for(tmp_path, "--max-steps", "1", "--freeze", "5"), log=lambda _: None)


def test_lr_schedule_warms_up_and_decays_to_the_floor():
    lrs = [finetune.lr_at(s, 100, 10, 1.0, 0.1, "cosine") for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)
    assert finetune.lr_at(55, 100, 10, 1.0, 0.1, "linear") == pytest.approx(0.55)
