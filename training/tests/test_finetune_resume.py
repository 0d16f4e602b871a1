"""Resumable checkpoints, perplexity and --export of finetune.py, on the tiny preset (a few steps)."""

import json
import math
import os

import onnx
import numpy as np
import pytest
import torch

import finetune
from checkpoint import load_pretrained, load_safetensors
from tokens import write_token_file

TAGS = {"start": "<|startoftext|>", "end": "<|endoftext|>"}


class Interrupted(Exception):
    """Stands in for a killed process: raised from the progress log right after a checkpoint."""


def make_data(directory, seed=0):
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


def args_for(data, out, *extra):
    return finetune.build_parser().parse_args(
        ["--init", "tiny", "--data", str(data), "--out", str(out),
         "--batch-size", "4", "--grad-accum", "2", "--block-size", "16", "--lr", "1e-2", "--eval-batches", "2",
         "--eval-every", "2", "--log-every", "1", "--device", "cpu", "--seed", "3", "--freeze", "1", *extra]
    )


def interrupt_after_checkpoint(step):
    def log(line):
        if line.startswith(f"step {step}/") and "saved checkpoint" in line:
            raise Interrupted(line)

    return log


def weights(directory):
    return load_pretrained(str(directory)).state_dict()


@pytest.fixture
def data(tmp_path):
    make_data(tmp_path / "data")
    return tmp_path / "data"


def test_an_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, data):
    straight = finetune.train(args_for(data, tmp_path / "a", "--max-steps", "6"), log=lambda _: None)

    with pytest.raises(Interrupted):
        finetune.train(args_for(data, tmp_path / "b", "--max-steps", "6", "--save-every", "3"), log=interrupt_after_checkpoint(3))
    assert not (tmp_path / "b" / "training.json").exists()  # it really stopped half way
    with open(tmp_path / "b" / "checkpoint-last" / "trainer_state.json") as f:
        state = json.load(f)
    assert state["step"] == 3
    # The batch windows come from a numpy Generator: at step 3 it is far from its seeded start, and
    # only restoring this exact state lets the resumed run draw the windows the straight run drew.
    assert state["numpyRng"] != np.random.default_rng(3).bit_generator.state

    lines = []
    torch.manual_seed(12345)  # whatever the process's RNG holds, the checkpoint's state wins
    resumed = finetune.train(args_for(data, tmp_path / "b", "--max-steps", "6", "--save-every", "3", "--resume"), log=lines.append)
    assert any(line.startswith("resuming from") and "at step 3/6" in line for line in lines)
    assert not any(line.startswith("step 1/") for line in lines)

    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resuming"
    assert resumed["finalEvalLoss"] == straight["finalEvalLoss"]
    assert resumed["finalTrainLoss"] == straight["finalTrainLoss"]
    assert resumed["history"] == straight["history"]
    assert [r["step"] for r in resumed["resumed"]] == [3] and straight["resumed"] == []


def test_the_checkpoint_holds_model_optimizer_schedule_step_rng_and_args(tmp_path, data):
    out = tmp_path / "out"
    finetune.train(args_for(data, out, "--max-steps", "4", "--save-every", "2"), log=lambda _: None)
    ckpt = out / "checkpoint-last"
    assert sorted(os.listdir(ckpt)) == ["config.json", "model.safetensors", "trainer_state.json", "trainer_state.safetensors"]
    assert sorted(os.listdir(out)) == ["checkpoint-last", "config.json", "model.safetensors", "training.json"]  # no temp folders

    final, saved = weights(out), weights(ckpt)  # HF layout, loadable on its own
    for name in final:
        assert torch.equal(final[name], saved[name])

    with open(ckpt / "trainer_state.json") as f:
        state = json.load(f)
    assert state["format"] == "imagine-bot/trainer-state" and state["step"] == 4 and state["totalSteps"] == 4
    assert state["args"]["lr"] == 1e-2 and state["args"]["freeze"] == 1 and state["args"]["batch_size"] == 4
    assert state["lrScheduler"]["totalSteps"] == 4 and state["lrScheduler"]["lastStep"] == 3
    assert state["lrScheduler"]["schedule"] == "cosine" and state["lrScheduler"]["baseLr"] == 1e-2
    assert state["numpyRng"]["bit_generator"] == "PCG64"
    assert state["baseModel"] == "random:tiny (seed 3)"

    restored = finetune.join_state(state["tensorState"], load_safetensors(str(ckpt / "trainer_state.safetensors")))
    opt = restored["optimizer"]
    trainable = [n for n, _ in load_pretrained(str(ckpt)).named_parameters()
                 if not n.startswith(("transformer.wte.", "transformer.wpe.", "transformer.h.0."))]
    assert len(opt["state"]) == len(trainable)  # moments for trainable parameters only
    assert all(isinstance(s["exp_avg"], torch.Tensor) and "exp_avg_sq" in s for s in opt["state"].values())
    assert opt["param_groups"][0]["betas"] == (0.9, 0.95) and opt["param_groups"][0]["weight_decay"] == 0.1
    assert restored["scaler"] == {}  # loss scaling is for fp16 on cuda only
    assert restored["rng"]["torch"].dtype == torch.uint8


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, data, monkeypatch):
    out = tmp_path / "out"
    real_save = finetune.save_safetensors
    calls = {"n": 0}

    def failing_save(tensors, path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint (step 4) dies half written
            raise Interrupted("disk full")
        return real_save(tensors, path, *a, **k)

    monkeypatch.setattr(finetune, "save_safetensors", failing_save)
    with pytest.raises(Interrupted):
        finetune.train(args_for(data, out, "--max-steps", "6", "--save-every", "2"), log=lambda _: None)
    monkeypatch.setattr(finetune, "save_safetensors", real_save)
    assert (out / ".checkpoint-last.tmp").exists()  # the half-written one, never under the real name
    with open(out / "checkpoint-last" / "trainer_state.json") as f:
        assert json.load(f)["step"] == 2  # the complete one is still in place
    lines = []
    finetune.train(args_for(data, out, "--max-steps", "6", "--save-every", "2", "--resume"), log=lines.append)
    assert any("at step 2/6" in line for line in lines)
    assert not (out / ".checkpoint-last.tmp").exists()


def test_resume_without_a_checkpoint_starts_fresh_and_refuses_changed_settings(tmp_path, data):
    out = tmp_path / "out"
    lines = []
    finetune.train(args_for(data, out, "--max-steps", "2", "--resume"), log=lines.append)
    assert any("no checkpoint" in line and "starting fresh" in line for line in lines)
    with pytest.raises(SystemExit, match="--lr"):
        finetune.train(args_for(data, out, "--max-steps", "4", "--resume", "--lr", "5e-3"), log=lambda _: None)
    lines = []
    finetune.train(args_for(data, out, "--max-steps", "2"), log=lines.append)
    assert any("will be replaced; pass --resume" in line for line in lines)


def test_eval_loss_and_perplexity_are_reported(tmp_path, data):
    lines = []
    report = finetune.train(args_for(data, tmp_path / "out", "--max-steps", "4"), log=lines.append)
    evals = [line for line in lines if line.startswith("step") and "eval loss" in line]
    assert evals and all("| ppl " in line for line in evals)
    assert report["finalEvalPerplexity"] == pytest.approx(math.exp(report["finalEvalLoss"]))
    assert report["initialEvalPerplexity"] == pytest.approx(math.exp(report["initialEvalLoss"]))
    with open(tmp_path / "out" / "training.json") as f:
        tj = json.load(f)
    assert tj["finalEvalPerplexity"] == pytest.approx(math.exp(tj["finalEvalLoss"]))
    assert [h["step"] for h in tj["history"]] == [2, 4]
    assert all(h["evalPerplexity"] == pytest.approx(math.exp(h["evalLoss"])) for h in tj["history"])
    assert finetune.perplexity(1000.0) is None  # overflow → null in JSON, not Infinity


def test_export_writes_a_loadable_model_directory_with_provenance(tmp_path, data):
    model_dir = tmp_path / "model"
    report = finetune.train(args_for(data, tmp_path / "out", "--max-steps", "3", "--export", str(model_dir)), log=lambda _: None)
    assert {"model.onnx", "imagine-model.json"} <= set(os.listdir(model_dir))
    graph = onnx.load(str(model_dir / "model.onnx"))
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input][:3] == ["input_ids", "attention_mask", "position_ids"]
    with open(model_dir / "imagine-model.json") as f:
        meta = json.load(f)
    assert meta["format"] == "imagine-bot/model" and meta["architecture"]["nLayer"] == 2
    assert meta["tags"] == TAGS and meta["meanCaptionTokens"] == 6.0
    prov = meta["provenance"]
    assert prov["baseModel"] == "random:tiny (seed 3)"
    assert prov["data"]["source"] == "synthetic" and prov["data"]["trainTokens"] == report["data"]["trainTokens"]
    assert prov["frozenBlocks"] == 1 and prov["steps"] == 3
    assert prov["finalEvalLoss"] == pytest.approx(report["finalEvalLoss"])
