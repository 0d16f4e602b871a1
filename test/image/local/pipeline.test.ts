/**
 * The TypeScript pipeline against the Python reference (test/fixtures/tiny-sd/reference.json,
 * written by training/sd_reference.py in float64 PyTorch on the exported weights): the same
 * token ids, the latents after every step, the final latents and the decoded pixels, for each
 * scheduler (Euler, Euler ancestral, DDIM, Turbo), with and without guidance, fp32 and fp16
 * exports, epsilon and v-prediction. The reference's noise is fed in, so no RNG has to match.
 *
 * Tolerance: reference.json's rule, per variant (the contract with training/): after every step,
 * max |latent − reference| ≤ latents_relative · max(1, max |reference latent|) (1e-4 for the
 * fp32 export, 2e-3 for the fp16 one, whose outputs are rounded to float16); every pixel
 * channel within pixels_max_abs_diff (1) and at most pixels_fraction_off (1%) of them off at
 * all. Each case logs its measured worst.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSdModelDirectory } from "../../../src/core/image/local/modelDir.js";
import { StableDiffusionPipeline } from "../../../src/core/image/local/pipeline.js";
import { schedulerConfigFrom } from "../../../src/core/image/local/schedulers.js";

const FIXTURES = resolve(import.meta.dirname, "..", "..", "fixtures", "tiny-sd");

interface ReferenceCase {
  name: string;
  model: string;
  scheduler_overrides: Record<string, unknown>;
  prompt: string;
  negative_prompt: string | null;
  input_ids: number[];
  negative_input_ids: number[] | null;
  steps: number;
  guidance_scale: number;
  width: number;
  height: number;
  seed: number;
  init_noise_sigma: number;
  initial_noise: number[];
  ancestral_noise: number[][] | null;
  timesteps: number[];
  sigmas: number[] | null;
  latents_after_each_step: number[][];
  final_latents: number[];
  pixels: number[];
}

interface Tolerance {
  latents_relative: number;
  pixels_max_abs_diff: number;
  pixels_fraction_off: number;
}

interface Reference {
  variants: Record<string, { dir: string; tolerance: Tolerance }>;
  cases: ReferenceCase[];
}

const reference = JSON.parse(readFileSync(join(FIXTURES, "reference.json"), "utf8")) as Reference;

function maxAbsDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let max = 0;
  for (let i = 0; i < expected.length; i++) {
    max = Math.max(max, Math.abs((actual[i] as number) - (expected[i] as number)));
  }
  return max;
}

function maxAbs(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i] as number));
  return max;
}

const pipelines = new Map<string, StableDiffusionPipeline>();

async function pipelineFor(item: ReferenceCase): Promise<StableDiffusionPipeline> {
  const key = `${item.model}:${JSON.stringify(item.scheduler_overrides)}`;
  let pipeline = pipelines.get(key);
  if (!pipeline) {
    const variant = reference.variants[item.model];
    if (!variant) throw new Error(`reference.json has no variant ${item.model}`);
    const model = readSdModelDirectory(join(FIXTURES, variant.dir));
    const scheduler = schedulerConfigFrom(
      { ...model.scheduler, ...item.scheduler_overrides },
      item.name,
    );
    pipeline = await StableDiffusionPipeline.load(model, scheduler, { device: "cpu", threads: 1 });
    pipelines.set(key, pipeline);
  }
  return pipeline;
}

afterAll(async () => {
  await Promise.all([...pipelines.values()].map((pipeline) => pipeline.close()));
});

describe("local pipeline vs the Python reference", () => {
  beforeAll(() => {
    expect(reference.cases.length).toBeGreaterThanOrEqual(8);
  });

  for (const item of reference.cases) {
    it(`${item.name}: token ids, latents after each step, final latents and pixels`, async () => {
      const pipeline = await pipelineFor(item);
      expect(pipeline.tokenizer.encode(item.prompt)).toEqual(item.input_ids);
      if (item.negative_input_ids) {
        expect(pipeline.tokenizer.encode(item.negative_prompt ?? "")).toEqual(
          item.negative_input_ids,
        );
      }
      const latents: Float32Array[] = [];
      const result = await pipeline.generate({
        prompt: item.prompt,
        negativePrompt: item.negative_prompt ?? undefined,
        width: item.width,
        height: item.height,
        steps: item.steps,
        guidance: item.guidance_scale,
        seed: item.seed,
        initialNoise: Float32Array.from(item.initial_noise),
        stepNoise: item.ancestral_noise?.map((noise) => Float32Array.from(noise)),
        onLatents: (_, step) => latents.push(step),
      });
      expect(latents).toHaveLength(item.steps);
      const tolerance = reference.variants[item.model]?.tolerance as Tolerance;
      const steps = [...item.latents_after_each_step.entries()].map(([i, expected]) => ({
        difference: maxAbsDifference(latents[i] as Float32Array, expected),
        allowed: tolerance.latents_relative * Math.max(1, maxAbs(expected)),
      }));
      steps.push({
        difference: maxAbsDifference(result.latents, item.final_latents),
        allowed: tolerance.latents_relative * Math.max(1, maxAbs(item.final_latents)),
      });
      const pixelDifferences = Array.from(result.rgb, (value, i) =>
        Math.abs(value - (item.pixels[i] as number)),
      );
      const pixelsOff = pixelDifferences.filter((d) => d > 0).length / pixelDifferences.length;
      console.log(
        `${item.name}: latents max |Δ| ${Math.max(...steps.map((s) => s.difference)).toExponential(2)} ` +
          `(allowed ${Math.min(...steps.map((s) => s.allowed)).toExponential(2)}…), pixels max |Δ| ` +
          `${Math.max(...pixelDifferences)}, ${(100 * pixelsOff).toFixed(2)}% off`,
      );
      for (const { difference, allowed } of steps) expect(difference).toBeLessThanOrEqual(allowed);
      expect(result.rgb.length).toBe(item.pixels.length);
      expect(Math.max(...pixelDifferences)).toBeLessThanOrEqual(tolerance.pixels_max_abs_diff);
      expect(pixelsOff).toBeLessThanOrEqual(tolerance.pixels_fraction_off);
    });
  }
});

describe("session settings", () => {
  it("spinning, memory pattern and arena change no latent, and each model's CPU time is reported", async () => {
    const item = reference.cases[0] as ReferenceCase;
    const variant = reference.variants[item.model];
    if (!variant) throw new Error(`reference.json has no variant ${item.model}`);
    const model = readSdModelDirectory(join(FIXTURES, variant.dir));
    const scheduler = schedulerConfigFrom(
      { ...model.scheduler, ...item.scheduler_overrides },
      item.name,
    );
    const request = {
      prompt: item.prompt,
      width: item.width,
      height: item.height,
      steps: item.steps,
      guidance: item.guidance_scale,
      seed: item.seed,
      initialNoise: Float32Array.from(item.initial_noise),
      stepNoise: item.ancestral_noise?.map((noise) => Float32Array.from(noise)),
    };
    const results = [];
    for (const settings of [
      { spinning: false, memoryPattern: true, memoryArena: false },
      { spinning: true, memoryPattern: false, memoryArena: true },
    ]) {
      const pipeline = await StableDiffusionPipeline.load(model, scheduler, {
        device: "cpu",
        threads: 1,
        ...settings,
      });
      try {
        results.push(await pipeline.generate(request));
      } finally {
        await pipeline.close();
      }
    }
    const [plain, tuned] = results as [
      Awaited<ReturnType<StableDiffusionPipeline["generate"]>>,
      Awaited<ReturnType<StableDiffusionPipeline["generate"]>>,
    ];
    expect(tuned.latents).toEqual(plain.latents);
    expect(tuned.rgb).toEqual(plain.rgb);
    for (const key of ["textEncoder", "unet", "vae"] as const) {
      expect(plain.modelCpuMs[key]).toBeGreaterThan(0);
    }
  });
});
