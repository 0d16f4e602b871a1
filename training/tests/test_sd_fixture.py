"""The committed Stable Diffusion fixture (test/fixtures/tiny-sd): it regenerates byte-identically,
its ONNX files equal the PyTorch models through onnxruntime-node (the bot's runtime; within 1e-5),
reference.json is consistent with the schedulers and tokenizer, and its stated tolerance is met by an
honest float32 pipeline (so a TypeScript pipeline that misses it has a bug, not a rounding excuse)."""

import filecmp
import json
import os
import shutil
import subprocess

import numpy as np
import onnx
import pytest
import torch

import make_tiny_sd
import sd_reference
from sd_schedulers import Scheduler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "test", "fixtures", "tiny-sd")


@pytest.fixture(scope="module")
def reference():
    with open(os.path.join(FIXTURE, "reference.json"), encoding="utf-8") as f:
        return json.load(f)


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_fixture_regenerates_byte_identically(tmp_path):
    out = tmp_path / "tiny-sd"
    sd_reference.main(["--out", str(out)])
    committed = [f for f in _files(FIXTURE) if f != "README.md"]
    assert _files(out) == committed
    _, mismatch, errors = filecmp.cmpfiles(FIXTURE, out, committed, shallow=False)
    assert mismatch == [] and errors == []


def test_fixture_is_small():
    total = sum(os.path.getsize(os.path.join(FIXTURE, f)) for f in _files(FIXTURE))
    assert total < 3_000_000
    for variant in ("sd1", "sd2-fp16-v"):
        models = sum(os.path.getsize(os.path.join(FIXTURE, variant, f)) for f in _files(os.path.join(FIXTURE, variant)))
        assert models < 1_000_000


def _verify_onnx(fixture, *extra):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the ONNX check runs onnxruntime-node (install Node ≥ 20 and run `npm ci`)")
    if not os.path.isdir(os.path.join(ROOT, "node_modules", "onnxruntime-node")):
        pytest.fail(f"{ROOT}/node_modules/onnxruntime-node is missing: run `npm ci` in the repository root first")
    run = subprocess.run([node, os.path.join("training", "verify_sd_onnx.mjs"), str(fixture), *extra],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


def test_onnx_equals_pytorch_through_onnxruntime_node():
    report = _verify_onnx(FIXTURE)
    checked = {k: v for k, v in report.items() if not k.endswith("/types")}
    assert len(checked) == 2 * 2 * 4 and all(v["ok"] for v in checked.values())
    assert all(v["maxAbsDiff"] <= 1e-5 for k, v in checked.items() if k.startswith("sd1/"))
    assert report["sd2-fp16-v/types"]["unet"] == ["sample:float16", "timestep:float16", "encoder_hidden_states:float16", "out_sample:float16"]


def test_reference_cases_are_consistent(reference):
    names = [c["name"] for c in reference["cases"]]
    assert len(set(names)) == len(names) >= 8
    seen = set()
    for case in reference["cases"]:
        variant = reference["variants"][case["model"]]
        with open(os.path.join(FIXTURE, variant["dir"], "scheduler", "scheduler_config.json")) as f:
            config = dict(json.load(f), **case["scheduler_overrides"])
        s = Scheduler(config, case["steps"])
        seen.add((s.kind, s.config["timestep_spacing"], s.prediction, case["guidance_scale"] > 1))
        assert case["timesteps"] == [float(t) if s.sigmas is not None else int(t) for t in s.timesteps]
        if s.sigmas is None:
            assert case["sigmas"] is None
        else:
            np.testing.assert_array_equal(np.array(case["sigmas"], dtype=np.float32), s.sigmas)
        h, w = case["height"] // 8, case["width"] // 8
        noise = np.array(case["initial_noise"], dtype=np.float32)
        assert noise.shape == (4 * h * w,)
        np.testing.assert_allclose(case["initial_latents"], noise.astype(np.float64) * s.init_noise_sigma, rtol=1e-7)
        assert len(case["latents_after_each_step"]) == case["steps"] and case["final_latents"] == case["latents_after_each_step"][-1]
        assert len(case["pixels"]) == case["height"] * case["width"] * 3 and 0 <= min(case["pixels"]) and max(case["pixels"]) <= 255
        assert len(set(case["pixels"])) > 50  # an image, not a flat colour
        assert len(case["input_ids"]) == 77 and (case["negative_input_ids"] is not None) == (case["guidance_scale"] > 1)
        assert (case["ancestral_noise"] is not None) == (s.kind == "EulerAncestralDiscreteScheduler")
    # Every scheduler, each spacing, each prediction type used by the variants, with and without CFG.
    kinds = {k for k, *_ in seen}
    assert kinds == {"EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DDIMScheduler"}
    assert {sp for _, sp, *_ in seen} == {"leading", "trailing", "linspace"}
    assert {p for _, _, p, _ in seen} == {"epsilon", "v_prediction"} and {c for *_, c in seen} == {True, False}


def _float32_run(case, runners):
    return sd_reference.run_case(runners[case["model"]], case)


def test_a_float32_pipeline_meets_the_stated_tolerance(reference):
    runners = {name: sd_reference.Runner(os.path.join(FIXTURE, v["dir"]), sd_reference.VARIANTS[name], compute=torch.float32)
               for name, v in reference["variants"].items()}
    cases = {c["name"]: c for c in sd_reference.CASES}
    for want in reference["cases"]:
        got = _float32_run(cases[want["name"]], runners)
        tol = reference["variants"][want["model"]]["tolerance"]
        ref = np.array(want["latents_after_each_step"])
        diff = np.abs(np.array(got["latents_after_each_step"]) - ref).max()
        assert diff <= tol["latents_relative"] * max(1.0, np.abs(ref).max()), want["name"]
        px = np.abs(np.array(got["pixels"]) - np.array(want["pixels"]))
        assert px.max() <= tol["pixels_max_abs_diff"] and (px > 0).mean() <= tol["pixels_fraction_off"], want["name"]
        assert got["input_ids"] == want["input_ids"] and got["unet_timesteps"] == want["unet_timesteps"]


def test_tolerance_catches_a_wrong_pipeline(reference, monkeypatch):
    # The tolerance is tight enough to see a plausible mistake: Euler's leading init_noise_sigma
    # taken as σ_max instead of √(σ_max² + 1).
    runners = {"sd1": sd_reference.Runner(os.path.join(FIXTURE, "sd1"), sd_reference.VARIANTS["sd1"], compute=torch.float32)}
    case = next(c for c in sd_reference.CASES if c["name"] == "sd1-euler-no-cfg")
    want = next(c for c in reference["cases"] if c["name"] == case["name"])
    original = Scheduler.__init__

    def wrong_init(self, config, steps):
        original(self, config, steps)
        self.init_noise_sigma = float(self.sigmas.max())

    monkeypatch.setattr(Scheduler, "__init__", wrong_init)
    got = _float32_run(case, runners)
    ref = np.array(want["latents_after_each_step"])
    tol = reference["variants"]["sd1"]["tolerance"]["latents_relative"]
    assert np.abs(np.array(got["latents_after_each_step"]) - ref).max() > tol * max(1.0, np.abs(ref).max())


def test_unet_timesteps_follow_the_declared_type(reference):
    linspace = next(c for c in reference["cases"] if c["name"] == "sd1-euler-linspace-linear-betas")
    assert linspace["timesteps"] == [999.0, 499.5, 0.0] and linspace["unet_timesteps"] == [999, 499, 0]  # int64 truncates
    fp16 = next(c for c in reference["cases"] if c["name"] == "sd2-fp16-v-euler-ancestral-linspace")
    assert fp16["unet_timesteps"] == [999.0, 499.5, 0.0]  # exactly representable in float16


def test_float16_arithmetic_export_runs_and_stays_close(tmp_path):
    # --fp16-arithmetic (the memory benchmark's kind of model): float16 activations, except the
    # timestep embedding. The reference cannot follow float16 arithmetic; it must stay close to it.
    variant = dict(family="sd1", dtype="fp16", timestep_dtype="int64", input_ids_dtype="int32")
    make_tiny_sd.write_model_dir(str(tmp_path / "m"), fp16_arithmetic=True, **variant)
    m = onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "m" / "unet" / "model.onnx")))
    types = {v.name: v.type.tensor_type.elem_type for v in m.graph.value_info}
    sinusoid = [n for n in m.graph.node if n.op_type in ("Sin", "Cos")]
    assert len(sinusoid) == 2 and all(types[n.input[0]] == onnx.TensorProto.FLOAT for n in sinusoid)
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    assert convs and all(types.get(n.output[0]) == onnx.TensorProto.FLOAT16 for n in convs if n.output[0] in types)
    runner = sd_reference.Runner(str(tmp_path / "m"), variant)
    with open(tmp_path / "reference.json", "w") as f:
        json.dump({"variants": {"m": {"dir": "m"}}, "components": {"m": sd_reference.components(runner, 100)}}, f)
    report = _verify_onnx(tmp_path, "--atol", "0.01")
    assert all(v["ok"] for k, v in report.items() if not k.endswith("/types"))
    assert max(v["maxAbsDiff"] for k, v in report.items() if not k.endswith("/types")) > 1e-4  # it really is float16 arithmetic
    with pytest.raises(ValueError, match="needs --dtype fp16"):
        make_tiny_sd.write_model_dir(str(tmp_path / "x"), fp16_arithmetic=True)


def test_fused_attention_export_equals_the_reference(tmp_path):
    # --fused-attention: every unmasked attention (UNet self/cross, VAE) is one onnxruntime
    # MultiHeadAttention node, and the committed reference's components still hold at 1e-5 (the
    # weights are the same; only the attention arithmetic moved into onnxruntime's kernel).
    shutil.copy(os.path.join(FIXTURE, "reference.json"), tmp_path / "reference.json")
    for name, variant in sd_reference.VARIANTS.items():
        make_tiny_sd.write_model_dir(str(tmp_path / name), preset_name="tiny", fused_attention=True, **variant)
        for component, attentions in (("unet", 8), ("vae_decoder", 1)):
            ops = [n.op_type for n in onnx.load(str(tmp_path / name / component / "model.onnx")).graph.node]
            assert ops.count("MultiHeadAttention") == attentions and "Softmax" not in ops
        text_ops = [n.op_type for n in onnx.load(str(tmp_path / name / "text_encoder" / "model.onnx")).graph.node]
        assert "MultiHeadAttention" not in text_ops  # CLIP's causal mask keeps the plain form
    report = _verify_onnx(tmp_path)
    checked = {k: v for k, v in report.items() if not k.endswith("/types")}
    assert len(checked) == 2 * 2 * 4 and all(v["ok"] for v in checked.values())
    assert all(v["maxAbsDiff"] <= 1e-5 for k, v in checked.items() if k.startswith("sd1/"))
    with pytest.raises(ValueError, match="--fused-attention cannot be combined"):
        make_tiny_sd.write_model_dir(str(tmp_path / "x"), dtype="fp16", fp16_arithmetic=True, fused_attention=True)
