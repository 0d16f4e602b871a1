/**
 * The denoising schedulers, after diffusers' formulas (EulerDiscreteScheduler,
 * EulerAncestralDiscreteScheduler, DDIMScheduler with eta 0), configured from the export's
 * scheduler/scheduler_config.json: beta schedule (linear | scaled_linear), prediction type
 * (epsilon | v_prediction | sample), timestep spacing (leading | trailing | linspace),
 * steps_offset, set_alpha_to_one, clip_sample. "turbo" is Euler with trailing spacing, which is
 * what SD-Turbo's own config asks for (one step starts at t = 999, not at t = 0).
 *
 * Arithmetic is in float64 on the host; latents stay Float32Array. Settings this code does not
 * implement (Karras sigmas, thresholding, zero-SNR rescaling) are refused with their name
 * rather than silently ignored.
 */
import { UserError } from "../../errors.js";

export type SchedulerKind = "euler" | "euler_a" | "ddim" | "turbo";
export const SCHEDULER_KINDS: readonly SchedulerKind[] = ["euler", "euler_a", "ddim", "turbo"];

export type PredictionType = "epsilon" | "v_prediction" | "sample";
export type TimestepSpacing = "leading" | "trailing" | "linspace";

export interface SchedulerConfig {
  kind: SchedulerKind;
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: "linear" | "scaled_linear";
  predictionType: PredictionType;
  timestepSpacing: TimestepSpacing;
  stepsOffset: number;
  setAlphaToOne: boolean;
  clipSample: boolean;
  clipSampleRange: number;
}

/** diffusers class → our kind. PNDM and LMS (SD 1.x exports' defaults) run as Euler on the same betas. */
const CLASS_KINDS: Record<string, SchedulerKind> = {
  EulerDiscreteScheduler: "euler",
  EulerAncestralDiscreteScheduler: "euler_a",
  DDIMScheduler: "ddim",
  PNDMScheduler: "euler",
  LMSDiscreteScheduler: "euler",
};

/** diffusers' default timestep_spacing per class, when the config predates the field. */
const DEFAULT_SPACING: Record<SchedulerKind, TimestepSpacing> = {
  euler: "linspace",
  euler_a: "linspace",
  ddim: "leading",
  turbo: "trailing",
};

const UNSUPPORTED_FLAGS = [
  "use_karras_sigmas",
  "use_exponential_sigmas",
  "use_beta_sigmas",
  "thresholding",
  "rescale_betas_zero_snr",
];

/** Reads scheduler_config.json; `override` (image.local.scheduler) replaces its class. */
export function schedulerConfigFrom(
  raw: Record<string, unknown>,
  where: string,
  override?: SchedulerKind,
): SchedulerConfig {
  const bad = (why: string) => new UserError("MODEL_DIR_INVALID", `${where}: ${why}.`);
  const className = String(raw._class_name ?? "");
  let kind = override ?? CLASS_KINDS[className];
  if (kind === undefined) {
    throw bad(
      `scheduler ${className || "(no _class_name)"} is not supported; use one of ${Object.keys(CLASS_KINDS).join(", ")}, or set image.local.scheduler (SD_SCHEDULER) to ${SCHEDULER_KINDS.join(" | ")}`,
    );
  }
  for (const flag of UNSUPPORTED_FLAGS) {
    if (raw[flag] === true) throw bad(`${flag}: true is not supported`);
  }
  // Settings whose non-default values would change the schedule; refused rather than ignored.
  if (raw.trained_betas !== undefined && raw.trained_betas !== null) {
    throw bad("trained_betas is not supported (use beta_start, beta_end and beta_schedule)");
  }
  for (const [key, supported] of [
    ["timestep_type", "discrete"],
    ["final_sigmas_type", "zero"],
  ] as const) {
    if (raw[key] !== undefined && raw[key] !== supported) {
      throw bad(`${key} "${String(raw[key])}" is not supported (${supported})`);
    }
  }
  const number = (key: string, fallback: number): number => {
    const value = raw[key] ?? fallback;
    if (typeof value !== "number" || !Number.isFinite(value)) throw bad(`${key} must be a number`);
    return value;
  };
  const oneOf = <T extends string>(key: string, allowed: readonly T[], fallback: T): T => {
    const value = raw[key] ?? fallback;
    if (!allowed.includes(value as T)) {
      throw bad(`${key} "${String(value)}" is not one of ${allowed.join(", ")}`);
    }
    return value as T;
  };
  const interpolation = raw.interpolation_type ?? "linear";
  if (interpolation !== "linear")
    throw bad(`interpolation_type "${String(interpolation)}" is not supported (linear)`);
  const numTrainTimesteps = number("num_train_timesteps", 1000);
  if (!Number.isInteger(numTrainTimesteps) || numTrainTimesteps < 2) {
    throw bad("num_train_timesteps must be a whole number ≥ 2");
  }
  const spacing =
    kind === "turbo"
      ? "trailing"
      : oneOf("timestep_spacing", ["leading", "trailing", "linspace"], DEFAULT_SPACING[kind]);
  // An Euler config with trailing spacing is the Turbo schedule; keep the kind honest for logs.
  if (kind === "euler" && spacing === "trailing") kind = "turbo";
  return {
    kind,
    numTrainTimesteps,
    betaStart: number("beta_start", 0.00085),
    betaEnd: number("beta_end", 0.012),
    betaSchedule: oneOf("beta_schedule", ["linear", "scaled_linear"], "scaled_linear"),
    predictionType: oneOf("prediction_type", ["epsilon", "v_prediction", "sample"], "epsilon"),
    timestepSpacing: spacing,
    stepsOffset: number("steps_offset", 0),
    setAlphaToOne: raw.set_alpha_to_one !== false,
    clipSample: kind === "ddim" && raw.clip_sample === true,
    clipSampleRange: number("clip_sample_range", 1),
  };
}

/** One prepared schedule for a given number of steps. */
export interface Schedule {
  readonly config: SchedulerConfig;
  /** The UNet's timestep for each step (float for Euler, whole numbers for DDIM). */
  readonly timesteps: number[];
  /** Euler family: sigmas per step plus the final 0; DDIM: empty. */
  readonly sigmas: number[];
  /** Multiplies the unit Gaussian initial noise. */
  readonly initNoiseSigma: number;
  /** Whether step() draws fresh noise (Euler ancestral). */
  readonly ancestral: boolean;
  /** The UNet's input for step i: sample ÷ sqrt(σ² + 1) for Euler, the sample itself for DDIM. */
  scaleModelInput(sample: Float32Array, step: number): Float32Array;
  /** The next sample from the model's output; `noise` (unit Gaussian) only for ancestral. */
  step(
    modelOutput: Float32Array,
    step: number,
    sample: Float32Array,
    noise?: Float32Array,
  ): Float32Array;
}

export function alphasCumprod(config: SchedulerConfig): Float64Array {
  const n = config.numTrainTimesteps;
  const out = new Float64Array(n);
  let product = 1;
  for (let i = 0; i < n; i++) {
    const fraction = i / (n - 1);
    const beta =
      config.betaSchedule === "linear"
        ? config.betaStart + (config.betaEnd - config.betaStart) * fraction
        : (Math.sqrt(config.betaStart) +
            (Math.sqrt(config.betaEnd) - Math.sqrt(config.betaStart)) * fraction) **
          2;
    product *= 1 - beta;
    out[i] = product;
  }
  return out;
}

function spacedTimesteps(config: SchedulerConfig, steps: number, integer: boolean): number[] {
  const n = config.numTrainTimesteps;
  const out: number[] = [];
  switch (config.timestepSpacing) {
    case "linspace":
      for (let i = steps - 1; i >= 0; i--) {
        const t = steps === 1 ? 0 : ((n - 1) * i) / (steps - 1);
        out.push(integer ? roundHalfEven(t) : t);
      }
      break;
    case "leading": {
      const ratio = Math.floor(n / steps);
      for (let i = steps - 1; i >= 0; i--) out.push(i * ratio + config.stepsOffset);
      break;
    }
    case "trailing": {
      const ratio = n / steps;
      // np.arange(n, 0, -ratio): start + i·step, not repeated subtraction.
      for (let i = 0; i < steps && n - i * ratio > 0; i++)
        out.push(roundHalfEven(n - i * ratio) - 1);
      break;
    }
  }
  return out;
}

/** numpy's round: halves to even. */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

export function createSchedule(config: SchedulerConfig, steps: number): Schedule {
  if (!Number.isInteger(steps) || steps < 1 || steps > config.numTrainTimesteps) {
    throw new UserError(
      "USAGE",
      `steps must be a whole number from 1 to ${config.numTrainTimesteps}, got ${steps}`,
    );
  }
  const alphas = alphasCumprod(config);
  return config.kind === "ddim" ? ddim(config, steps, alphas) : euler(config, steps, alphas);
}

/** x₀ from the model output at noise level sigma (Euler family, diffusers' step()). */
function eulerOriginal(
  type: PredictionType,
  output: number,
  sample: number,
  sigma: number,
): number {
  switch (type) {
    case "epsilon":
      return sample - sigma * output;
    case "v_prediction":
      return output * (-sigma / Math.sqrt(sigma * sigma + 1)) + sample / (sigma * sigma + 1);
    case "sample":
      return output;
  }
}

function euler(config: SchedulerConfig, steps: number, alphas: Float64Array): Schedule {
  const trainSigmas = Array.from(alphas, (a) => Math.sqrt((1 - a) / a));
  const timesteps = spacedTimesteps(config, steps, false);
  const sigmas = timesteps.map((t) => {
    // np.interp over the training timesteps 0…n-1.
    const low = Math.min(Math.max(Math.floor(t), 0), trainSigmas.length - 1);
    const high = Math.min(low + 1, trainSigmas.length - 1);
    const w = t - low;
    return (trainSigmas[low] as number) * (1 - w) + (trainSigmas[high] as number) * w;
  });
  sigmas.push(0);
  const maxSigma = Math.max(...sigmas);
  const ancestral = config.kind === "euler_a";
  return {
    config,
    timesteps,
    sigmas,
    ancestral,
    initNoiseSigma:
      config.timestepSpacing === "linspace" || config.timestepSpacing === "trailing"
        ? maxSigma
        : Math.sqrt(maxSigma * maxSigma + 1),
    scaleModelInput(sample, step) {
      const sigma = sigmas[step] as number;
      const scale = 1 / Math.sqrt(sigma * sigma + 1);
      return sample.map((x) => x * scale);
    },
    step(output, step, sample, noise) {
      const sigma = sigmas[step] as number;
      const next = sigmas[step + 1] as number;
      let sigmaDown = next;
      let sigmaUp = 0;
      if (ancestral) {
        sigmaUp = Math.sqrt((next * next * (sigma * sigma - next * next)) / (sigma * sigma));
        sigmaDown = Math.sqrt(next * next - sigmaUp * sigmaUp);
        if (!noise) throw new Error("Euler ancestral needs noise for each step");
      }
      const dt = sigmaDown - sigma;
      const out = new Float32Array(sample.length);
      for (let i = 0; i < sample.length; i++) {
        const x = sample[i] as number;
        const x0 = eulerOriginal(config.predictionType, output[i] as number, x, sigma);
        const derivative = (x - x0) / sigma;
        out[i] = x + derivative * dt + (noise ? (noise[i] as number) * sigmaUp : 0);
      }
      return out;
    },
  };
}

function ddim(config: SchedulerConfig, steps: number, alphas: Float64Array): Schedule {
  const timesteps = spacedTimesteps(config, steps, true);
  const ratio = Math.floor(config.numTrainTimesteps / steps);
  const finalAlpha = config.setAlphaToOne ? 1 : (alphas[0] as number);
  return {
    config,
    timesteps,
    sigmas: [],
    ancestral: false,
    initNoiseSigma: 1,
    scaleModelInput: (sample) => sample,
    step(output, step, sample) {
      const t = timesteps[step] as number;
      const previous = t - ratio;
      const alpha = alphas[t] as number;
      const alphaPrev = previous >= 0 ? (alphas[previous] as number) : finalAlpha;
      const sqrtAlpha = Math.sqrt(alpha);
      const sqrtBeta = Math.sqrt(1 - alpha);
      const sqrtAlphaPrev = Math.sqrt(alphaPrev);
      const direction = Math.sqrt(1 - alphaPrev);
      const range = config.clipSampleRange;
      const out = new Float32Array(sample.length);
      for (let i = 0; i < sample.length; i++) {
        const x = sample[i] as number;
        const m = output[i] as number;
        let x0: number;
        let eps: number;
        switch (config.predictionType) {
          case "epsilon":
            x0 = (x - sqrtBeta * m) / sqrtAlpha;
            eps = m;
            break;
          case "sample":
            x0 = m;
            eps = (x - sqrtAlpha * x0) / sqrtBeta;
            break;
          case "v_prediction":
            x0 = sqrtAlpha * x - sqrtBeta * m;
            eps = sqrtAlpha * m + sqrtBeta * x;
            break;
        }
        // diffusers clips x₀ but keeps the unclipped ε (use_clipped_model_output false).
        if (config.clipSample) x0 = Math.min(Math.max(x0, -range), range);
        out[i] = sqrtAlphaPrev * x0 + direction * eps;
      }
      return out;
    },
  };
}
