/**
 * The TypeScript pipeline against the Python reference (test/fixtures/tiny-sd/reference.json,
 * written by training/sd_reference.py in float64 PyTorch on the exported weights): the same
 * token ids, the latents after every step, the final latents and the decoded pixels, for each
 * scheduler (Euler, Euler ancestral, DDIM, Turbo), with and without guidance, fp32 and fp16
 * exports, epsilon and v-prediction. The reference's noise is fed in, so no RNG has to match.
 *
 * Tolerance: every latent (after each step and final) within 1e-4 + 1e-4·|reference|
 * (onnxruntime computes in float32 against the reference's float64; the measured worst is
 * 2.4e-4 absolute in the linear-beta case, whose latents start at σ ≈ 157, and ≤ 4e-5
 * elsewhere); every pixel channel within 1 level of 255 (a float32 value next to a .5 rounding
 * boundary can land on the other side). Each case logs its measured worst.
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

interface Reference {
  variants: Record<string, { dir: string }>;
  cases: ReferenceCase[];
}

const reference = JSON.parse(readFileSync(join(FIXTURES, "reference.json"), "utf8")) as Reference;

const LATENT_ABS = 1e-4;
const LATENT_REL = 1e-4;

/** Largest |a − b| and how many elements break |a − b| ≤ abs + rel·|b|. */
function compare(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
): { max: number; outside: number } {
  expect(actual.length).toBe(expected.length);
  let max = 0;
  let outside = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] as number;
    const difference = Math.abs((actual[i] as number) - e);
    max = Math.max(max, difference);
    if (!(difference <= LATENT_ABS + LATENT_REL * Math.abs(e))) outside++;
  }
  return { max, outside };
}

function maxPixelDifference(actual: Uint8Array, expected: number[]): number {
  expect(actual.length).toBe(expected.length);
  let max = 0;
  for (let i = 0; i < expected.length; i++) {
    max = Math.max(max, Math.abs((actual[i] as number) - (expected[i] as number)));
  }
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
      const comparisons = [
        ...item.latents_after_each_step.map((expected, i) =>
          compare(latents[i] as Float32Array, expected),
        ),
        compare(result.latents, item.final_latents),
      ];
      const pixels = maxPixelDifference(result.rgb, item.pixels);
      console.log(
        `${item.name}: latents max |Δ| ${Math.max(...comparisons.map((c) => c.max)).toExponential(2)}, pixels max |Δ| ${pixels}`,
      );
      for (const { outside } of comparisons) expect(outside).toBe(0);
      expect(pixels).toBeLessThanOrEqual(1);
    });
  }
});
