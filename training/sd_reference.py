"""Makes the tiny Stable Diffusion fixture: the stand-in model directories and reference.json, the
full pipeline (tokenizer → text encoder → scheduler loop with optional classifier-free guidance →
VAE decoder → uint8 pixels) run in PyTorch/NumPy on the same weights the ONNX files hold.

    /usr/bin/python3 training/sd_reference.py --out test/fixtures/tiny-sd

Writes OUT/<variant>/ (make_tiny_sd.py model directories) and OUT/reference.json. Everything is
deterministic: running it again gives the same bytes (training/tests/test_sd_fixture.py checks).

The reference runs the models in float64 (weights are the float32 — or, for fp16 variants,
fp16-rounded — values of the export) and stores float32 values: it is the exact result the
TypeScript pipeline approximates, not one float32 rounding path. Where a model declares float16
inputs/outputs the reference rounds to float16 at exactly those boundaries, as a pipeline must.
reference.json's "layout" block documents every field.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import make_tiny_sd  # noqa: E402
from make_hf_style_fixture import write_json  # noqa: E402
from sd_schedulers import Scheduler, classifier_free_guidance  # noqa: E402
from sd_tokenizer import ClipTokenizer, build_vocab  # noqa: E402

# The committed model variants: SD 1.x-like fp32 (int32 input_ids, int64 timestep, weights inside
# the .onnx), and SD 2.x-like fp16 with v-prediction (int64 input_ids, float16 timestep, "!" pad,
# linear transformer projections, the UNet's weights in an external data file, and a tokenizer.json
# besides vocab.json/merges.txt: the Hub's exports come both ways).
VARIANTS: Dict[str, Dict] = {
    "sd1": dict(family="sd1", dtype="fp32", timestep_dtype="int64", input_ids_dtype="int32", scheduler="euler", prediction="epsilon", external_data=None),
    "sd2-fp16-v": dict(family="sd2", dtype="fp16", timestep_dtype="float32", input_ids_dtype="int64", scheduler="euler", prediction="v_prediction", external_data="weights.pb", tokenizer_json=True),
}

# What a float32 pipeline is held to (the tests check that a float32 PyTorch run meets it; measured:
# ≤ 2.4e-6 relative, pixels ±1). fp16 models round their inputs to float16, so a float32 pipeline can
# flip a value by one float16 unit where the float64 reference did not: a looser bound.
TOLERANCE = {
    "sd1": {"latents_relative": 1e-4, "pixels_max_abs_diff": 1, "pixels_fraction_off": 0.01},
    "sd2-fp16-v": {"latents_relative": 2e-3, "pixels_max_abs_diff": 1, "pixels_fraction_off": 0.01},
}
TOLERANCE_RULE = ("per case: max |latent - reference| over latents_after_each_step <= latents_relative * max(1, max |reference latent|); "
                  "every pixel within pixels_max_abs_diff, and at most pixels_fraction_off of them different at all")

EULER_A = {"_class_name": "EulerAncestralDiscreteScheduler"}
DDIM = {"_class_name": "DDIMScheduler"}
CASES: List[Dict] = [
    dict(name="sd1-euler-no-cfg", model="sd1", scheduler={}, prompt="a lighthouse on a cliff at sunset", steps=4, guidance_scale=1.0, seed=1),
    dict(name="sd1-euler-cfg", model="sd1", scheduler={}, prompt="A photograph of an astronaut riding a horse", steps=3, guidance_scale=7.5, seed=2),
    dict(name="sd1-euler-ancestral-cfg", model="sd1", scheduler=EULER_A, prompt="a cat sitting on a windowsill, watercolor", steps=4, guidance_scale=5.0, seed=3,
         width=32, height=32),
    dict(name="sd1-ddim-cfg", model="sd1", scheduler=DDIM, prompt="portrait of an old fisherman, highly detailed", steps=4, guidance_scale=7.5, seed=4,
         width=48, height=32),
    dict(name="sd1-turbo-1-step", model="sd1", scheduler={"timestep_spacing": "trailing"}, prompt="a red sports car at night", steps=1, guidance_scale=1.0, seed=5),
    dict(name="sd1-turbo-2-steps", model="sd1", scheduler={"timestep_spacing": "trailing"}, prompt="an owl in a snowy forest", steps=2, guidance_scale=1.0, seed=6,
         width=32, height=32),
    # Words outside the learnt merges, digits, punctuation, upper case and extra spaces; linear betas;
    # linspace spacing gives a non-integer timestep (499.5), which the int64 UNet input truncates.
    dict(name="sd1-euler-linspace-linear-betas", model="sd1",
         scheduler={"timestep_spacing": "linspace", "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02},
         prompt="  Quokka   selfie!!  42 Zebras, 8K  ", steps=3, guidance_scale=1.0, seed=7, width=32, height=32),
    dict(name="sd2-fp16-v-euler-cfg-64x48", model="sd2-fp16-v", scheduler={}, prompt="a castle in the mountains, fantasy art",
         steps=3, guidance_scale=7.5, seed=8, width=64, height=48),
    dict(name="sd2-fp16-v-ddim-trailing-cfg", model="sd2-fp16-v", scheduler=dict(DDIM, timestep_spacing="trailing"),
         prompt="a small boat on a calm lake", steps=2, guidance_scale=3.0, seed=9, width=32, height=48),
    dict(name="sd2-fp16-v-euler-ancestral-linspace", model="sd2-fp16-v", scheduler=dict(EULER_A, timestep_spacing="linspace"),
         prompt="a dragon flying over the sea", steps=3, guidance_scale=1.0, seed=10, width=32, height=32),
]

LAYOUT = {
    "tensors": "flat lists in row-major (C) order; latents are [1, 4, height/8, width/8] (NCHW); float values are float32",
    "input_ids": "[77] ids as the reference tokenizer (training/sd_tokenizer.py, CLIP BPE) makes them from the variant's tokenizer/ files; negative_input_ids: the empty prompt's",
    "text": "encoder_hidden_states = text_encoder(input_ids).last_hidden_state; with guidance_scale > 1 the UNet gets the batch [negative, prompt] (diffusers' order)",
    "initial_latents": "initial_noise * init_noise_sigma",
    "loop": "for step i: x = scale_model_input(latents, i) (Euler: latents / sqrt(sigmas[i]^2 + 1); DDIM: latents); "
            "noise_pred = unet(x, unet_timesteps[i], encoder_hidden_states); with CFG noise_pred = uncond + guidance_scale * (cond - uncond); "
            "latents = scheduler step (Euler ancestral adds ancestral_noise[i] * sigma_up); latents_after_each_step[i] = latents",
    "timesteps": "the scheduler's timesteps (float32 for Euler, integers for DDIM); unet_timesteps: the value fed to the UNet after conversion to its "
                 "declared timestep type (int64: truncated toward zero, as numpy's astype; float16: rounded)",
    "sigmas": "Euler schedulers: steps + 1 float32 values ending in 0; null for DDIM",
    "pixels": "uint8 RGB, [height, width, 3] (interleaved), from vae_decoder(final_latents / scaling_factor): round(clamp(sample / 2 + 0.5, 0, 1) * 255)",
    "fp16": "models that declare float16 inputs/outputs get their inputs rounded to float16 and their outputs read back as float16 values",
    "components": "one call of each model per variant on fixed inputs, for checking a model runner separately from the loop",
}


def _f32(values) -> List[float]:
    """float32 values as the shortest decimal that parses back to the same float32 (JSON-safe)."""
    return [float(str(v)) for v in np.asarray(values, dtype=np.float32).reshape(-1)]


class Runner:
    """A variant's three models with the variant's boundary dtypes. The reference computes in float64;
    `compute=torch.float32` gives a float32 pipeline, which the tests use to check that the tolerance
    reference.json states is met by an honest float32 implementation. Tensors go in and come out as float64."""

    def __init__(self, model_dir: str, variant: Dict, seed: int = 0, compute: torch.dtype = torch.float64):
        self.variant = variant
        self.fp16 = variant["dtype"] == "fp16"
        self.timestep_dtype = variant["timestep_dtype"]
        self.compute = compute
        merges = make_tiny_sd.learn_merges("tiny")
        self.preset = make_tiny_sd.family_preset("tiny", variant["family"], len(build_vocab(merges)))
        text, unet, vae = make_tiny_sd.make_models(self.preset, seed, self.fp16)
        self.text, self.unet, self.vae = text.to(compute), unet.to(compute), vae.to(compute)
        self.tokenizer = ClipTokenizer(os.path.join(model_dir, "tokenizer"))
        with open(os.path.join(model_dir, "vae_decoder", "config.json")) as f:
            self.scaling_factor = float(json.load(f).get("scaling_factor", 0.18215))
        with open(os.path.join(model_dir, "scheduler", "scheduler_config.json")) as f:
            self.scheduler_config = json.load(f)

    def boundary(self, x: torch.Tensor) -> torch.Tensor:
        """A value crossing a model's input or output: float16 for fp16 models."""
        return x.half().to(self.compute) if self.fp16 else x.to(self.compute)

    def fed_timestep(self, t: float) -> torch.Tensor:
        if self.timestep_dtype == "int64":
            return torch.tensor([int(np.array([t], dtype=np.float32).astype(np.int64)[0])], dtype=torch.int64)
        return self.boundary(torch.tensor([float(t)], dtype=torch.float64))

    @torch.no_grad()
    def encode(self, ids: Sequence[Sequence[int]]):
        hidden, pooled = self.text(torch.tensor(ids, dtype=torch.int64))
        return self.boundary(hidden).double(), self.boundary(pooled).double()

    @torch.no_grad()
    def denoise(self, sample: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.boundary(self.unet(self.boundary(sample), t, self.boundary(context))).double()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.boundary(self.vae(self.boundary(latents))).double()


def pixels_of(image: torch.Tensor) -> List[int]:
    """[1, 3, H, W] in [-1, 1] → uint8 HWC, as diffusers' numpy_to_pil."""
    x = (image[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy()
    return (x * 255).round().astype(np.uint8).reshape(-1).tolist()


def run_case(runner: Runner, case: Dict) -> Dict:
    width, height = case.get("width", 64), case.get("height", 64)
    config = dict(runner.scheduler_config, **case["scheduler"])
    sched = Scheduler(config, case["steps"])
    cfg = case["guidance_scale"] > 1.0
    ids = runner.tokenizer(case["prompt"])
    negative = runner.tokenizer("") if cfg else None
    context, _ = runner.encode([negative, ids] if cfg else [ids])

    g = torch.Generator().manual_seed(case["seed"])
    shape = (1, 4, height // 8, width // 8)
    noise = torch.randn(shape, generator=g, dtype=torch.float32)
    ancestral = [torch.randn(shape, generator=g, dtype=torch.float32) for _ in range(case["steps"])] if sched.kind == "EulerAncestralDiscreteScheduler" else None
    latents = noise.double().numpy() * sched.init_noise_sigma
    initial = latents
    after = []
    fed = []
    for i, t in enumerate(sched.timesteps):
        x = torch.from_numpy(sched.scale_model_input(latents, i))
        tt = runner.fed_timestep(float(t))
        fed.append(tt.item())
        pred = runner.denoise(torch.cat([x, x]) if cfg else x, tt, context).numpy()
        if cfg:
            pred = classifier_free_guidance(pred[:1], pred[1:], case["guidance_scale"])
        latents = sched.step(pred, i, latents, None if ancestral is None else ancestral[i].double().numpy())
        after.append(_f32(latents))
    image = runner.decode(torch.from_numpy(latents) / runner.scaling_factor)
    return {
        "name": case["name"],
        "model": case["model"],
        "scheduler_overrides": case["scheduler"],
        "scheduler_class": sched.kind,
        "prediction_type": sched.prediction,
        "timestep_spacing": sched.config["timestep_spacing"],
        "prompt": case["prompt"],
        "negative_prompt": "" if cfg else None,
        "input_ids": ids,
        "negative_input_ids": negative,
        "steps": case["steps"],
        "guidance_scale": case["guidance_scale"],
        "width": width,
        "height": height,
        "seed": case["seed"],
        "init_noise_sigma": float(np.float32(sched.init_noise_sigma)),
        "initial_noise": _f32(noise.numpy()),
        "initial_latents": _f32(initial),
        "ancestral_noise": None if ancestral is None else [_f32(a.numpy()) for a in ancestral],
        "timesteps": [float(t) if sched.sigmas is not None else int(t) for t in sched.timesteps],
        "unet_timesteps": [int(v) if runner.timestep_dtype == "int64" else float(v) for v in fed],
        "sigmas": None if sched.sigmas is None else _f32(sched.sigmas),
        "latents_after_each_step": after,
        "final_latents": after[-1],
        "pixels": pixels_of(image),
    }


def components(runner: Runner, seed: int) -> Dict:
    g = torch.Generator().manual_seed(seed)
    prompt = "a lighthouse"
    ids = runner.tokenizer(prompt)
    hidden, pooled = runner.encode([ids])
    latent = 4  # 32×32 pixels: small enough for the file, two levels of down/upsampling still apply
    sample = runner.boundary(torch.randn(1, 4, latent, latent, generator=g).double())
    t = runner.fed_timestep(999.0)
    out = runner.denoise(sample, t, hidden)
    latent_sample = runner.boundary(torch.randn(1, 4, latent, latent, generator=g).double())
    image = runner.decode(latent_sample)
    return {
        "prompt": prompt,
        "input_ids": ids,
        "last_hidden_state": _f32(hidden.numpy()),
        "pooler_output": _f32(pooled.numpy()),
        "unet": {"sample": _f32(sample.numpy()), "sample_dims": list(sample.shape), "timestep": t.item(),
                 "encoder_hidden_states": "last_hidden_state above", "out_sample": _f32(out.numpy())},
        "vae_decoder": {"latent_sample": _f32(latent_sample.numpy()), "latent_dims": list(latent_sample.shape), "sample": _f32(image.numpy())},
    }


def make_fixture(out: str, cases: Optional[List[Dict]] = None) -> Dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one summation order, so a rerun gives the same bytes
    try:
        return _make_fixture(out, cases)
    finally:
        torch.set_num_threads(threads)


def _make_fixture(out: str, cases: Optional[List[Dict]]) -> Dict:
    os.makedirs(out, exist_ok=True)
    runners = {}
    for name, variant in VARIANTS.items():
        make_tiny_sd.write_model_dir(os.path.join(out, name), preset_name="tiny", **variant)
        runners[name] = Runner(os.path.join(out, name), variant)
    reference = {
        "generator": "training/sd_reference.py (float64 PyTorch on the exported weights; see training/README.md)",
        "layout": LAYOUT,
        "tolerance_rule": TOLERANCE_RULE,
        "variants": {name: dict(v, dir=name, tolerance=TOLERANCE[name]) for name, v in VARIANTS.items()},
        "components": {name: components(r, 100 + i) for i, (name, r) in enumerate(runners.items())},
        "cases": [run_case(runners[c["model"]], c) for c in (cases or CASES)],
    }
    # Laid out as biome formats JSON, so `npm run lint` passes on the committed file; biome also
    # writes exponents without padding zeros or "+" (1e-5, not Python's 1e-05).
    path = os.path.join(out, "reference.json")
    write_json(path, reference)
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"(\d)e(-?)\+?0*(\d)", r"\1e\2\3", f.read())
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return reference


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="test/fixtures/tiny-sd", help="fixture directory (default: %(default)s)")
    args = ap.parse_args(argv)
    make_fixture(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
