"""Reference implementations of the Stable Diffusion schedulers the TypeScript pipeline supports,
written by hand after diffusers' formulas (diffusers itself is not installed here), with the same
float32 schedule tables diffusers builds (torch float32 betas / alphas_cumprod, numpy interpolation):

  EulerDiscreteScheduler            (SD 1.x/2.x "Euler"; SD-Turbo: the same with timestep_spacing "trailing")
  EulerAncestralDiscreteScheduler   ("Euler a": noise injected each step; the noise is passed in, never drawn)
  DDIMScheduler                     (eta = 0: deterministic)

Honoured config fields: num_train_timesteps, beta_start, beta_end, beta_schedule (linear |
scaled_linear), prediction_type (epsilon | v_prediction | sample), timestep_spacing (leading |
trailing | linspace), steps_offset, set_alpha_to_one and clip_sample / clip_sample_range (DDIM),
interpolation_type (linear). Anything that would change the result and is not implemented
(karras sigmas, zero-SNR rescaling, other beta schedules, trained_betas) is refused with a clear error.

Step arithmetic is done in float64 on float64 arrays; the schedule tables are float32 values as diffusers has them.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch

SUPPORTED_CLASSES = ("EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DDIMScheduler")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
SPACINGS = ("leading", "trailing", "linspace")

DEFAULTS: Dict = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "prediction_type": "epsilon",
    "timestep_spacing": "linspace",  # EulerDiscrete's default; DDIM's is "leading" (set below)
    "steps_offset": 0,
    "set_alpha_to_one": True,
    "clip_sample": True,
    "clip_sample_range": 1.0,
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
    "rescale_betas_zero_snr": False,
    "trained_betas": None,
}


class SchedulerError(ValueError):
    pass


def _config(config: Dict) -> Dict:
    cls = config.get("_class_name")
    if cls not in SUPPORTED_CLASSES:
        raise SchedulerError(f"unsupported scheduler {cls!r}: supported are {', '.join(SUPPORTED_CLASSES)}")
    merged = dict(DEFAULTS)
    if cls == "DDIMScheduler":
        merged["timestep_spacing"] = "leading"
    else:
        merged["clip_sample"] = False  # the Euler schedulers have no clipping
    merged.update({k: v for k, v in config.items() if v is not None or k == "trained_betas"})
    if merged["prediction_type"] not in PREDICTION_TYPES:
        raise SchedulerError(f"prediction_type {merged['prediction_type']!r} is not one of {', '.join(PREDICTION_TYPES)}")
    if merged["timestep_spacing"] not in SPACINGS:
        raise SchedulerError(f"timestep_spacing {merged['timestep_spacing']!r} is not one of {', '.join(SPACINGS)}")
    if merged["beta_schedule"] not in ("linear", "scaled_linear"):
        raise SchedulerError(f"beta_schedule {merged['beta_schedule']!r} is not supported (linear or scaled_linear)")
    if merged.get("trained_betas") is not None:
        raise SchedulerError("trained_betas is not supported")
    for flag in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "rescale_betas_zero_snr", "thresholding"):
        if merged.get(flag):
            raise SchedulerError(f"{flag} is not supported")
    if merged.get("final_sigmas_type", "zero") != "zero" or merged.get("timestep_type", "discrete") != "discrete":
        raise SchedulerError("only final_sigmas_type 'zero' and timestep_type 'discrete' are supported")
    if merged["interpolation_type"] != "linear":
        raise SchedulerError(f"interpolation_type {merged['interpolation_type']!r} is not supported (linear)")
    return merged


def alphas_cumprod(config: Dict) -> np.ndarray:
    """ᾱ_t for t = 0..N-1, float32, as diffusers computes it (torch float32 linspace and cumprod)."""
    c = config
    n = int(c["num_train_timesteps"])
    if c["beta_schedule"] == "linear":
        betas = torch.linspace(c["beta_start"], c["beta_end"], n, dtype=torch.float32)
    else:  # scaled_linear: linear in sqrt(beta), latent diffusion's schedule
        betas = torch.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, n, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0).numpy()


def spaced_timesteps(config: Dict, steps: int, dtype) -> np.ndarray:
    """Inference timesteps, descending (diffusers' three spacings, Table 2 of arXiv:2305.08891)."""
    n = int(config["num_train_timesteps"])
    if steps < 1 or steps > n:
        raise SchedulerError(f"steps must be between 1 and {n}, not {steps}")
    spacing = config["timestep_spacing"]
    if spacing == "linspace":
        if dtype == np.int64:  # DDIM rounds
            return np.linspace(0, n - 1, steps).round()[::-1].copy().astype(np.int64)
        return np.linspace(0, n - 1, steps, dtype=np.float32)[::-1].copy()
    if spacing == "leading":
        ratio = n // steps
        t = (np.arange(0, steps) * ratio).round()[::-1].copy().astype(dtype)
        return t + dtype(config["steps_offset"])
    ratio = n / steps  # trailing
    t = np.round(np.arange(n, 0, -ratio)).astype(dtype)
    return t - dtype(1)


class Scheduler:
    """One denoising run: `timesteps`, `init_noise_sigma`, `scale_model_input(x, i)`, `step(model_output, i, x, noise)`."""

    def __init__(self, config: Dict, steps: int):
        self.config = _config(config)
        self.kind = self.config["_class_name"]
        self.steps = steps
        self.alphas_cumprod = alphas_cumprod(self.config)
        self.prediction = self.config["prediction_type"]
        if self.kind == "DDIMScheduler":
            self.timesteps = spaced_timesteps(self.config, steps, np.int64)
            self.sigmas: Optional[np.ndarray] = None
            self.init_noise_sigma = 1.0
            self.final_alpha_cumprod = 1.0 if self.config["set_alpha_to_one"] else float(self.alphas_cumprod[0])
        else:
            self.timesteps = spaced_timesteps(self.config, steps, np.float32)
            # torch float32 arithmetic for the full table, numpy float64 interpolation, then float32 (as diffusers).
            ac = torch.from_numpy(self.alphas_cumprod)
            full = np.array(((1 - ac) / ac) ** 0.5)
            sigmas = np.interp(self.timesteps, np.arange(0, len(full)), full)
            self.sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)
            max_sigma = float(self.sigmas.max())
            # "leading" starts below t = N-1, where x_T ~ N(0, σ² + 1); diffusers uses σ_max alone otherwise.
            self.init_noise_sigma = max_sigma if self.config["timestep_spacing"] in ("linspace", "trailing") else (max_sigma**2 + 1) ** 0.5

    def scale_model_input(self, sample: np.ndarray, i: int) -> np.ndarray:
        if self.sigmas is None:
            return sample
        sigma = float(self.sigmas[i])
        return sample / ((sigma**2 + 1) ** 0.5)

    def _sigma_space_x0(self, model_output: np.ndarray, sample: np.ndarray, sigma: float) -> np.ndarray:
        if self.prediction == "epsilon":
            return sample - sigma * model_output
        if self.prediction == "v_prediction":
            return model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
        return model_output

    def step(self, model_output: np.ndarray, i: int, sample: np.ndarray, noise: Optional[np.ndarray] = None) -> np.ndarray:
        """The sample for the next timestep. `noise` (standard normal, the sample's shape) is required
        by Euler ancestral and ignored by the others."""
        model_output = np.asarray(model_output, dtype=np.float64)
        sample = np.asarray(sample, dtype=np.float64)
        if self.kind == "DDIMScheduler":
            return self._ddim_step(model_output, i, sample)
        sigma = float(self.sigmas[i])
        sigma_next = float(self.sigmas[i + 1])
        x0 = self._sigma_space_x0(model_output, sample, sigma)
        derivative = (sample - x0) / sigma
        if self.kind == "EulerDiscreteScheduler":
            return sample + derivative * (sigma_next - sigma)
        if noise is None:
            raise SchedulerError("Euler ancestral needs the step's noise")
        sigma_up = (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5
        sigma_down = (sigma_next**2 - sigma_up**2) ** 0.5
        return sample + derivative * (sigma_down - sigma) + np.asarray(noise, dtype=np.float64) * sigma_up

    def _ddim_step(self, model_output: np.ndarray, i: int, sample: np.ndarray) -> np.ndarray:
        t = int(self.timesteps[i])
        prev_t = t - int(self.config["num_train_timesteps"]) // self.steps
        a_t = float(self.alphas_cumprod[t])
        a_prev = float(self.alphas_cumprod[prev_t]) if prev_t >= 0 else self.final_alpha_cumprod
        b_t = 1 - a_t
        if self.prediction == "epsilon":
            x0 = (sample - b_t**0.5 * model_output) / a_t**0.5
            eps = model_output
        elif self.prediction == "sample":
            x0 = model_output
            eps = (sample - a_t**0.5 * x0) / b_t**0.5
        else:  # v_prediction
            x0 = a_t**0.5 * sample - b_t**0.5 * model_output
            eps = a_t**0.5 * model_output + b_t**0.5 * sample
        if self.config["clip_sample"]:
            r = float(self.config["clip_sample_range"])
            x0 = np.clip(x0, -r, r)
        # eta = 0: no noise, the direction term uses the full remaining variance.
        return a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps


def classifier_free_guidance(uncond: np.ndarray, cond: np.ndarray, guidance_scale: float) -> np.ndarray:
    return uncond + guidance_scale * (cond - uncond)
