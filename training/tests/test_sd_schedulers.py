"""sd_schedulers.py against values computed independently: the scaled_linear noise levels published
for Stable Diffusion (σ_max ≈ 14.6146, σ_min ≈ 0.0292), the timestep grids of Table 2 of
"Common Diffusion Noise Schedules and Sample Steps are Flawed" (arXiv:2305.08891), and each step
checked through the identity every sampler must satisfy: given the true noise (or v, or x0) of a
sample built from a known x0, a deterministic step lands exactly on the same x0 at the next noise
level (DDIM: √ᾱ_prev·x0 + √(1-ᾱ_prev)·ε; Euler: x0 + σ_next·ε)."""

import math

import numpy as np
import pytest

from sd_schedulers import Scheduler, SchedulerError, alphas_cumprod, classifier_free_guidance

SD = {
    "_class_name": "EulerDiscreteScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "prediction_type": "epsilon", "timestep_spacing": "leading", "steps_offset": 1,
    "set_alpha_to_one": False, "clip_sample": False,
}


def cfg(**overrides):
    return dict(SD, **overrides)


def float64_alphas_cumprod(beta_start, beta_end, n, scaled):
    # Written from the definitions (β_t linear in t, or in √β_t for "scaled_linear"; ᾱ_t = Π(1-β)), in float64.
    if scaled:
        betas = np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), n, dtype=np.float64) ** 2
    else:
        betas = np.linspace(beta_start, beta_end, n, dtype=np.float64)
    return np.cumprod(1 - betas)


@pytest.mark.parametrize("schedule", ["scaled_linear", "linear"])
def test_alphas_cumprod_follow_the_beta_schedule(schedule):
    c = cfg(beta_schedule=schedule) if schedule == "scaled_linear" else cfg(beta_schedule="linear", beta_start=0.0001, beta_end=0.02)
    got = alphas_cumprod(c)
    want = float64_alphas_cumprod(c["beta_start"], c["beta_end"], 1000, schedule == "scaled_linear")
    assert got.dtype == np.float32 and got.shape == (1000,)
    np.testing.assert_allclose(got, want, rtol=2e-5)  # float32 cumprod over 1000 terms


def test_stable_diffusion_sigma_range_is_the_published_one():
    s = Scheduler(cfg(timestep_spacing="trailing"), 1000)
    assert s.sigmas[0] == pytest.approx(14.6146, abs=1e-4)
    assert s.sigmas[-2] == pytest.approx(0.0292, abs=1e-4)
    assert s.sigmas[-1] == 0.0
    ac = float64_alphas_cumprod(0.00085, 0.012, 1000, True)
    np.testing.assert_allclose(s.sigmas[:-1], np.sqrt((1 - ac) / ac)[::-1], rtol=2e-5)


@pytest.mark.parametrize("spacing,steps,offset,want", [
    ("leading", 4, 1, [751, 501, 251, 1]),
    ("leading", 50, 1, list(range(981, 0, -20))),  # SD 1.x's familiar 50-step grid
    ("leading", 4, 0, [750, 500, 250, 0]),
    ("trailing", 4, 1, [999, 749, 499, 249]),  # steps_offset does not apply to trailing
    ("trailing", 1, 1, [999]),  # SD-Turbo's single step starts at pure noise
    ("linspace", 4, 1, [999, 666, 333, 0]),
])
def test_timestep_spacings(spacing, steps, offset, want):
    for cls in ("EulerDiscreteScheduler", "DDIMScheduler"):
        s = Scheduler(cfg(_class_name=cls, timestep_spacing=spacing, steps_offset=offset), steps)
        assert [float(t) for t in s.timesteps] == want


def test_linspace_keeps_fractions_for_euler_and_rounds_for_ddim():
    assert list(Scheduler(cfg(timestep_spacing="linspace"), 3).timesteps) == [999.0, 499.5, 0.0]
    assert list(Scheduler(cfg(_class_name="DDIMScheduler", timestep_spacing="linspace"), 3).timesteps) == [999, 500, 0]


def test_euler_sigmas_interpolate_between_training_steps():
    s = Scheduler(cfg(timestep_spacing="linspace"), 3)
    ac = float64_alphas_cumprod(0.00085, 0.012, 1000, True)
    full = np.sqrt((1 - ac) / ac)
    assert s.sigmas[1] == pytest.approx((full[499] + full[500]) / 2, rel=1e-5)


def test_init_noise_sigma_depends_on_spacing():
    leading = Scheduler(cfg(), 4)
    assert leading.init_noise_sigma == pytest.approx(math.sqrt(float(leading.sigmas[0]) ** 2 + 1))
    trailing = Scheduler(cfg(timestep_spacing="trailing"), 4)
    assert trailing.init_noise_sigma == pytest.approx(14.6146, abs=1e-4)
    assert Scheduler(cfg(_class_name="DDIMScheduler"), 4).init_noise_sigma == 1.0


def _known_sample(shape=(1, 4, 3, 3), seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal(shape), r.standard_normal(shape)


def _sigma_space_truth(prediction, x0, eps, sigma):
    """What a perfect network predicts for x = x0 + σ·ε. It sees the variance-preserving input
    x / √(σ²+1) = α·x0 + β·ε with α = 1/√(σ²+1), β = σ·α, and v is defined as α·ε − β·x0."""
    alpha, beta = 1 / math.sqrt(sigma**2 + 1), sigma / math.sqrt(sigma**2 + 1)
    return {"epsilon": eps, "v_prediction": alpha * eps - beta * x0, "sample": x0}[prediction]


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_euler_step_lands_on_the_next_noise_level_given_the_true_prediction(prediction, spacing):
    x0, eps = _known_sample()
    s = Scheduler(cfg(prediction_type=prediction, timestep_spacing=spacing), 4)
    for i in range(len(s.timesteps)):  # the last step reaches σ = 0: the clean sample
        sigma, sigma_next = float(s.sigmas[i]), float(s.sigmas[i + 1])
        x = x0 + sigma * eps
        np.testing.assert_allclose(s.scale_model_input(x, i), (x0 + sigma * eps) / math.sqrt(sigma**2 + 1))
        got = s.step(_sigma_space_truth(prediction, x0, eps, sigma), i, x)
        np.testing.assert_allclose(got, x0 + sigma_next * eps, atol=1e-9)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_euler_ancestral_splits_the_next_noise_level(prediction):
    x0, eps = _known_sample()
    fresh = np.random.default_rng(1).standard_normal(x0.shape)
    s = Scheduler(cfg(_class_name="EulerAncestralDiscreteScheduler", prediction_type=prediction), 4)
    sigma, sigma_next = float(s.sigmas[0]), float(s.sigmas[1])
    truth = _sigma_space_truth(prediction, x0, eps, sigma)
    # σ_up² = σ_next²(σ² − σ_next²)/σ², σ_down² = σ_next² − σ_up²: deterministic part to σ_down, fresh noise × σ_up.
    up = math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2)
    down = math.sqrt(sigma_next**2 - up**2)
    got = s.step(truth, 0, x0 + sigma * eps, noise=fresh)
    np.testing.assert_allclose(got, x0 + down * eps + up * fresh, atol=1e-12)
    with pytest.raises(SchedulerError, match="noise"):
        s.step(truth, 0, x0 + sigma * eps)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_ddim_step_is_the_deterministic_ddim_update(prediction, spacing):
    x0, eps = _known_sample(seed=2)
    x0 = np.clip(x0, -1, 1)  # inside clip_sample's range, so clipping cannot interfere
    s = Scheduler(cfg(_class_name="DDIMScheduler", prediction_type=prediction, timestep_spacing=spacing, clip_sample=True), 4)
    ac = float64_alphas_cumprod(0.00085, 0.012, 1000, True)
    for i, t in enumerate(s.timesteps):
        a = float(s.alphas_cumprod[t])
        prev = int(t) - 1000 // 4
        a_prev = float(s.alphas_cumprod[prev]) if prev >= 0 else float(s.alphas_cumprod[0])  # set_alpha_to_one False
        assert a == pytest.approx(ac[t], rel=2e-5)
        x = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
        truth = {"epsilon": eps, "v_prediction": math.sqrt(a) * eps - math.sqrt(1 - a) * x0, "sample": x0}[prediction]
        np.testing.assert_allclose(s.step(truth, i, x), math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps, atol=1e-10)
    assert s.scale_model_input(x, 0) is x


def test_ddim_clip_sample_and_set_alpha_to_one():
    s = Scheduler(cfg(_class_name="DDIMScheduler", clip_sample=True, set_alpha_to_one=True), 2)
    a = float(s.alphas_cumprod[s.timesteps[-1]])
    x0 = np.full((1, 4, 2, 2), 3.0)  # outside [-1, 1]
    eps = np.ones_like(x0)
    # The last step goes to ᾱ_prev = 1: the output is the (clipped) x0 itself.
    out = s.step(eps, 1, math.sqrt(a) * x0 + math.sqrt(1 - a) * eps)
    np.testing.assert_allclose(out, np.ones_like(x0), atol=1e-12)


def test_classifier_free_guidance():
    u, c = np.array([1.0, 2.0]), np.array([2.0, 0.0])
    np.testing.assert_allclose(classifier_free_guidance(u, c, 7.5), [8.5, -13.0])
    np.testing.assert_allclose(classifier_free_guidance(u, c, 1.0), c)


@pytest.mark.parametrize("overrides,message", [
    ({"_class_name": "PNDMScheduler"}, "unsupported scheduler 'PNDMScheduler'"),
    ({"prediction_type": "flow"}, "prediction_type"),
    ({"timestep_spacing": "karras"}, "timestep_spacing"),
    ({"beta_schedule": "squaredcos_cap_v2"}, "beta_schedule"),
    ({"use_karras_sigmas": True}, "use_karras_sigmas"),
    ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr"),
    ({"trained_betas": [0.1, 0.2]}, "trained_betas"),
])
def test_unsupported_configs_are_refused_by_name(overrides, message):
    with pytest.raises(SchedulerError, match=message):
        Scheduler(cfg(**overrides), 4)


def test_steps_out_of_range():
    with pytest.raises(SchedulerError, match="between 1 and 1000"):
        Scheduler(cfg(), 0)
