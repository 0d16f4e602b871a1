import { describe, expect, it } from "vitest";
import { UserError } from "../../../src/core/errors.js";
import {
  alphasCumprod,
  createSchedule,
  type PredictionType,
  type SchedulerConfig,
  schedulerConfigFrom,
} from "../../../src/core/image/local/schedulers.js";

/** SD 1.x/2.x's scheduler_config.json fields (the Hub's EulerDiscreteScheduler config). */
const SD_CONFIG = {
  _class_name: "EulerDiscreteScheduler",
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  num_train_timesteps: 1000,
  prediction_type: "epsilon",
  steps_offset: 1,
  timestep_spacing: "leading",
  set_alpha_to_one: false,
  clip_sample: false,
};

function config(overrides: Record<string, unknown> = {}): SchedulerConfig {
  return schedulerConfigFrom({ ...SD_CONFIG, ...overrides }, "scheduler_config.json");
}

const close = (actual: number[], expected: number[], digits = 4) => {
  expect(actual).toHaveLength(expected.length);
  for (const [i, value] of actual.entries())
    expect(value).toBeCloseTo(expected[i] as number, digits);
};

describe("scheduler configuration", () => {
  it("maps diffusers classes to kinds; PNDM and LMS run as Euler; trailing Euler is Turbo", () => {
    expect(config().kind).toBe("euler");
    expect(config({ _class_name: "EulerAncestralDiscreteScheduler" }).kind).toBe("euler_a");
    expect(config({ _class_name: "DDIMScheduler" }).kind).toBe("ddim");
    expect(config({ _class_name: "PNDMScheduler" }).kind).toBe("euler");
    expect(config({ _class_name: "LMSDiscreteScheduler" }).kind).toBe("euler");
    expect(config({ timestep_spacing: "trailing" }).kind).toBe("turbo");
  });

  it("uses diffusers' default spacing when the config predates timestep_spacing", () => {
    const { timestep_spacing: _, ...old } = SD_CONFIG;
    expect(schedulerConfigFrom(old, "x").timestepSpacing).toBe("linspace");
    expect(schedulerConfigFrom({ ...old, _class_name: "DDIMScheduler" }, "x").timestepSpacing).toBe(
      "leading",
    );
  });

  it("lets the override replace the class; turbo forces trailing spacing", () => {
    const turbo = schedulerConfigFrom(SD_CONFIG, "x", "turbo");
    expect([turbo.kind, turbo.timestepSpacing]).toEqual(["turbo", "trailing"]);
    expect(schedulerConfigFrom(SD_CONFIG, "x", "ddim").kind).toBe("ddim");
  });

  it("refuses what it does not implement, naming the field", () => {
    expect(() => config({ _class_name: "DPMSolverMultistepScheduler" })).toThrow(UserError);
    expect(() => config({ _class_name: "DPMSolverMultistepScheduler" })).toThrow(/SD_SCHEDULER/);
    expect(() => config({ use_karras_sigmas: true })).toThrow(/use_karras_sigmas/);
    expect(() => config({ rescale_betas_zero_snr: true })).toThrow(/rescale_betas_zero_snr/);
    expect(() => config({ prediction_type: "flow" })).toThrow(/prediction_type "flow"/);
    expect(() => config({ beta_schedule: "squaredcos_cap_v2" })).toThrow(/beta_schedule/);
    expect(() => config({ timestep_spacing: "karras" })).toThrow(/timestep_spacing/);
    expect(() => config({ beta_start: "0.1" })).toThrow(/beta_start must be a number/);
    expect(() => config({ trained_betas: [0.1, 0.2] })).toThrow(/trained_betas/);
    expect(() => config({ timestep_type: "continuous" })).toThrow(/timestep_type "continuous"/);
    expect(() => config({ final_sigmas_type: "sigma_min" })).toThrow(/final_sigmas_type/);
    // The defaults, as the Hub's configs spell them, are accepted.
    expect(
      config({ trained_betas: null, timestep_type: "discrete", final_sigmas_type: "zero" }).kind,
    ).toBe("euler");
  });
});

describe("timesteps and sigmas", () => {
  it("computes SD's alphas_cumprod (scaled_linear betas)", () => {
    const alphas = alphasCumprod(config());
    expect(alphas[0]).toBeCloseTo(1 - 0.00085, 8);
    // The well-known sigma range of SD 1.x/2.x: 0.0292 … 14.6146.
    expect(Math.sqrt((1 - (alphas[0] as number)) / (alphas[0] as number))).toBeCloseTo(0.029168, 5);
    expect(Math.sqrt((1 - (alphas[999] as number)) / (alphas[999] as number))).toBeCloseTo(
      14.6146,
      3,
    );
    const linear = alphasCumprod(
      config({ beta_schedule: "linear", beta_start: 0.0001, beta_end: 0.02 }),
    );
    expect(linear[1]).toBeCloseTo((1 - 0.0001) * (1 - (0.0001 + 0.0199 / 999)), 10);
  });

  it("spaces timesteps leading, trailing and linspace as diffusers does", () => {
    expect(createSchedule(config(), 4).timesteps).toEqual([751, 501, 251, 1]);
    expect(createSchedule(config({ timestep_spacing: "trailing" }), 4).timesteps).toEqual([
      999, 749, 499, 249,
    ]);
    expect(createSchedule(config({ timestep_spacing: "trailing" }), 3).timesteps).toEqual([
      999, 666, 332,
    ]);
    expect(createSchedule(config({ timestep_spacing: "linspace" }), 3).timesteps).toEqual([
      999, 499.5, 0,
    ]);
    const ddim = createSchedule(config({ _class_name: "DDIMScheduler" }), 50).timesteps;
    expect([ddim[0], ddim[1], ddim.at(-1), ddim.length]).toEqual([981, 961, 1, 50]);
    expect(
      createSchedule(config({ _class_name: "DDIMScheduler", timestep_spacing: "linspace" }), 4)
        .timesteps,
    ).toEqual([999, 666, 333, 0]);
  });

  it("starts a one-step Turbo schedule at t = 999, σ = 14.6146, and ends every Euler schedule at σ = 0", () => {
    const turbo = createSchedule(config({ timestep_spacing: "trailing" }), 1);
    expect(turbo.timesteps).toEqual([999]);
    close(turbo.sigmas, [14.6146, 0], 3);
    expect(turbo.initNoiseSigma).toBeCloseTo(14.6146, 3);
  });

  it("interpolates sigmas at fractional timesteps and scales the initial noise by the spacing's rule", () => {
    const linspace = createSchedule(config({ timestep_spacing: "linspace" }), 3);
    const alphas = alphasCumprod(config());
    const sigma = (t: number) => Math.sqrt((1 - (alphas[t] as number)) / (alphas[t] as number));
    close(linspace.sigmas, [sigma(999), (sigma(499) + sigma(500)) / 2, sigma(0), 0], 6);
    expect(linspace.initNoiseSigma).toBeCloseTo(sigma(999), 6);
    const leading = createSchedule(config(), 4);
    expect(leading.initNoiseSigma).toBeCloseTo(Math.sqrt(sigma(751) ** 2 + 1), 6);
    const scaled = leading.scaleModelInput(Float32Array.of(2), 0);
    expect(scaled[0]).toBeCloseTo(2 / Math.sqrt(sigma(751) ** 2 + 1), 6);
  });

  it("refuses a step count outside 1 … num_train_timesteps", () => {
    expect(() => createSchedule(config(), 0)).toThrow(/steps must be/);
    expect(() => createSchedule(config(), 1001)).toThrow(/steps must be/);
    expect(() => createSchedule(config(), 2.5)).toThrow(/steps must be/);
  });
});

/**
 * Every scheduler, given the exact model output for a known clean sample x₀ and noise ε, lands
 * on x₀ when its last step goes to σ = 0 / ᾱ = 1: the prediction-type algebra is right.
 */
describe("steps recover x₀ from an exact prediction", () => {
  const x0 = Float32Array.of(0.5, -1.25, 2, 0);
  const eps = Float32Array.of(1, 0.3, -0.7, -2);
  const predictions: PredictionType[] = ["epsilon", "v_prediction", "sample"];

  for (const kind of ["EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler"]) {
    for (const prediction of predictions) {
      it(`${kind}, ${prediction}`, () => {
        const schedule = createSchedule(
          config({ _class_name: kind, prediction_type: prediction, timestep_spacing: "trailing" }),
          1,
        );
        const sigma = schedule.sigmas[0] as number;
        const sample = x0.map((x, i) => x + sigma * (eps[i] as number));
        // The UNet sees sample / sqrt(σ² + 1): in those units x_t = α x₀ + s ε, v = α ε − s x₀.
        const alpha = 1 / Math.sqrt(sigma * sigma + 1);
        const s = sigma * alpha;
        const output =
          prediction === "epsilon"
            ? eps
            : prediction === "sample"
              ? x0
              : eps.map((e, i) => alpha * e - s * (x0[i] as number));
        const next = schedule.step(
          output,
          0,
          sample,
          schedule.ancestral ? Float32Array.of(9, 9, 9, 9) : undefined,
        );
        close(Array.from(next), Array.from(x0), 4);
      });
    }
  }

  for (const prediction of predictions) {
    it(`DDIMScheduler, ${prediction}`, () => {
      const cfg = config({
        _class_name: "DDIMScheduler",
        prediction_type: prediction,
        set_alpha_to_one: true,
      });
      const schedule = createSchedule(cfg, 1);
      const alpha = alphasCumprod(cfg)[schedule.timesteps[0] as number] as number;
      const [a, b] = [Math.sqrt(alpha), Math.sqrt(1 - alpha)];
      const sample = x0.map((x, i) => a * x + b * (eps[i] as number));
      const output =
        prediction === "epsilon"
          ? eps
          : prediction === "sample"
            ? x0
            : eps.map((e, i) => a * e - b * (x0[i] as number));
      close(Array.from(schedule.step(output, 0, sample)), Array.from(x0), 4);
    });
  }
});

describe("step arithmetic", () => {
  it("Euler moves along the derivative to the next sigma", () => {
    const schedule = createSchedule(config(), 4);
    const [s0, s1] = schedule.sigmas as [number, number];
    const next = schedule.step(Float32Array.of(0.5), 0, Float32Array.of(3));
    expect(next[0]).toBeCloseTo(3 + 0.5 * (s1 - s0), 5);
  });

  it("Euler ancestral splits the next sigma into a deterministic part and fresh noise", () => {
    const schedule = createSchedule(config({ _class_name: "EulerAncestralDiscreteScheduler" }), 4);
    const [s0, s1] = schedule.sigmas as [number, number];
    const up = Math.sqrt((s1 * s1 * (s0 * s0 - s1 * s1)) / (s0 * s0));
    const down = Math.sqrt(s1 * s1 - up * up);
    const next = schedule.step(Float32Array.of(0.5), 0, Float32Array.of(3), Float32Array.of(-1.5));
    expect(next[0]).toBeCloseTo(3 + 0.5 * (down - s0) - 1.5 * up, 4);
    expect(() => schedule.step(Float32Array.of(0.5), 0, Float32Array.of(3))).toThrow(/noise/);
  });

  it("DDIM with eta 0 uses ᾱ of the previous timestep, else the final alpha, and clips x₀ when asked", () => {
    const cfg = config({ _class_name: "DDIMScheduler", clip_sample: true });
    const alphas = alphasCumprod(cfg);
    const schedule = createSchedule(cfg, 2); // timesteps 501, 1
    expect(schedule.timesteps).toEqual([501, 1]);
    const [a, ap] = [alphas[501] as number, alphas[1] as number];
    const x = 4;
    const e = 0.25;
    const x0 = Math.min(Math.max((x - Math.sqrt(1 - a) * e) / Math.sqrt(a), -1), 1);
    expect(schedule.step(Float32Array.of(e), 0, Float32Array.of(x))[0]).toBeCloseTo(
      Math.sqrt(ap) * x0 + Math.sqrt(1 - ap) * e,
      5,
    );
    // Last step: t = 1 − 500 < 0, so ᾱ_prev is alphas_cumprod[0] (set_alpha_to_one false).
    const last = schedule.step(Float32Array.of(e), 1, Float32Array.of(0.5))[0] as number;
    const [a1, final] = [alphas[1] as number, alphas[0] as number];
    const x01 = Math.min(Math.max((0.5 - Math.sqrt(1 - a1) * e) / Math.sqrt(a1), -1), 1);
    expect(last).toBeCloseTo(Math.sqrt(final) * x01 + Math.sqrt(1 - final) * e, 5);
  });
});
