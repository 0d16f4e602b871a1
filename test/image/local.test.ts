/**
 * The local backend (IMAGE_BACKEND=local) on the committed stand-in model
 * (test/fixtures/tiny-sd/sd1: a 64×64 Stable Diffusion in the diffusers ONNX layout): the core
 * image contract, seeded byte-for-byte reproducibility, progress per step through the imagine
 * pipeline, cancellation between steps, one render at a time, and configuration errors that
 * name the variable. The numbers themselves are checked against the Python reference in
 * local/pipeline.test.ts.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import sharp from "sharp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/core/config.js";
import { BotError, ConfigError } from "../../src/core/errors.js";
import { createLocalImageBackend } from "../../src/core/image/local/backend.js";
import { createImageBackend } from "../../src/core/image/registry.js";
import { createLogger } from "../../src/core/logger.js";
import { createPipeline, type ImagineProgress } from "../../src/core/pipeline.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import type { ImageBackend, ImageRequest } from "../../src/core/types.js";
import {
  armsOf,
  inTestSaveImage,
  MemoryGenerationStore,
  ScriptedGenerator,
  testConfig,
} from "../pipeline/fakes.js";
import { imageConfig } from "./config.js";
import { imageBackendCoreContract } from "./contract.js";

const MODEL_DIR = resolve(import.meta.dirname, "..", "fixtures", "tiny-sd", "sd1");

const REQUEST: ImageRequest = {
  prompt: "a lighthouse at dusk, oil painting",
  negativePrompt: "blurry",
  width: 64,
  height: 64,
  steps: 3,
  guidance: 7.5,
  seed: 42,
};

imageBackendCoreContract("local", async () => ({
  backend: createImageBackend(
    imageConfig({ backend: "local", local: { modelDir: MODEL_DIR } }),
    {},
  ),
  willRender: () => {},
  willRunLong: () => {},
  request: REQUEST,
  stop: async () => {},
}));

describe("local Stable Diffusion backend", () => {
  let backends: ImageBackend[];

  beforeEach(() => {
    backends = [];
  });

  afterEach(async () => {
    await Promise.all(backends.map((backend) => backend.close()));
  });

  function local(options: Partial<Parameters<typeof createLocalImageBackend>[0]> = {}) {
    const backend = createLocalImageBackend({ modelDir: MODEL_DIR, device: "cpu", ...options });
    backends.push(backend);
    return backend;
  }

  it("renders the same PNG bytes for the same prompt, seed and settings, and other bytes for another seed", async () => {
    const first = await local().render(REQUEST);
    // A second backend: nothing cached in the first one may be what makes them equal.
    const second = await local().render(REQUEST);
    expect(second.png.equals(first.png)).toBe(true);
    const other = await local().render({ ...REQUEST, seed: 43 });
    expect(other.png.equals(first.png)).toBe(false);
    const prompt = await local().render({ ...REQUEST, prompt: "a red fox" });
    expect(prompt.png.equals(first.png)).toBe(false);
    expect(first).toMatchObject({
      width: 64,
      height: 64,
      seed: 42,
      model: "sd1",
      sampler: "Euler",
    });
    const { data, info } = await sharp(first.png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([64, 64, 3]);
    // Not a flat image: the VAE's output varies across the picture.
    expect(new Set(data).size).toBeGreaterThan(10);
  });

  it("reports every denoising step, in order", async () => {
    const steps: string[] = [];
    await local().render({
      ...REQUEST,
      steps: 4,
      onStep: (step, of) => steps.push(`${step}/${of}`),
    });
    expect(steps).toEqual(["1/4", "2/4", "3/4", "4/4"]);
  });

  it("uses image.local's steps, guidance, size and scheduler over the request's", async () => {
    const steps: number[] = [];
    const backend = local({ steps: 2, guidance: 0, width: 48, height: 32, scheduler: "euler_a" });
    const image = await backend.render({ ...REQUEST, onStep: (step) => steps.push(step) });
    expect(steps).toEqual([1, 2]);
    expect([image.width, image.height, image.sampler]).toEqual([48, 32, "Euler a"]);
    expect((await sharp(image.png).metadata()).width).toBe(48);
  });

  it("stops between steps when the deadline passes, with the deadline's own error", async () => {
    const controller = new AbortController();
    const deadline = new BotError("DEADLINE", "past the deadline");
    const steps: number[] = [];
    const error = await local()
      .render({
        ...REQUEST,
        steps: 5,
        signal: controller.signal,
        onStep: (step) => {
          steps.push(step);
          if (step === 2) controller.abort(deadline);
        },
      })
      .catch((caught: unknown) => caught);
    expect(error).toBe(deadline);
    expect(steps).toEqual([1, 2]);
  });

  it("renders one image at a time per process; a waiting render can be cancelled", async () => {
    const a = local();
    const b = local();
    const order: string[] = [];
    const first = a.render({ ...REQUEST, onStep: (step) => order.push(`a${step}`) });
    const second = b.render({ ...REQUEST, onStep: (step) => order.push(`b${step}`) });
    await Promise.all([first, second]);
    expect(order).toEqual(["a1", "a2", "a3", "b1", "b2", "b3"]);

    // Cancelled while waiting for the slot: it never starts, and the slot is not lost.
    const controller = new AbortController();
    const running = a.render({
      ...REQUEST,
      onStep: (step) => {
        if (step === 1) controller.abort();
      },
    });
    const waiting = b.render({
      ...REQUEST,
      signal: controller.signal,
      onStep: () => order.push("never"),
    });
    expect(((await waiting.catch((caught: unknown) => caught)) as BotError).code).toBe("ABORTED");
    await running;
    await b.render(REQUEST);
    expect(order).not.toContain("never");
  });

  it("closing mid-render stops the render at its next step and only then releases the sessions", async () => {
    const backend = local();
    let closing: Promise<void> | undefined;
    const error = await backend
      .render({
        ...REQUEST,
        steps: 4,
        onStep: (step) => {
          if (step === 1) closing = backend.close();
        },
      })
      .catch((caught: unknown) => caught);
    expect((error as BotError).code).toBe("ABORTED");
    await closing;
    await expect(backend.render(REQUEST)).rejects.toThrow(/closed/);
  });

  it("rejects a size that is not a multiple of 8", async () => {
    await expect(local().render({ ...REQUEST, width: 60 })).rejects.toThrow(
      /width must be a positive multiple of 8/,
    );
  });

  it("names SD_MODEL_DIR when the model directory is missing or incomplete", () => {
    const config = (local: Record<string, unknown>) => imageConfig({ backend: "local", local });
    expect(() => createImageBackend(config({}), {})).toThrow(ConfigError);
    expect(() => createImageBackend(config({}), {})).toThrow(/SD_MODEL_DIR/);
    const dir = mkdtempSync(join(tmpdir(), "imagine-sd-"));
    try {
      expect(() => createImageBackend(config({ modelDir: dir }), {})).toThrow(
        /SD_MODEL_DIR \(image.local.modelDir\): .* lacks model_index.json/,
      );
      cpSync(MODEL_DIR, join(dir, "sd"), { recursive: true });
      writeFileSync(
        join(dir, "sd", "scheduler", "scheduler_config.json"),
        JSON.stringify({ _class_name: "DPMSolverMultistepScheduler" }),
      );
      expect(() => createImageBackend(config({ modelDir: join(dir, "sd") }), {})).toThrow(
        /DPMSolverMultistepScheduler is not supported.*SD_SCHEDULER/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads SD_MODEL_DIR (resolved), SD_SCHEDULER and SD_DEVICE, naming the variable when one is wrong", () => {
    const env = {
      IMAGE_BACKEND: "local",
      SD_MODEL_DIR: "test/fixtures/tiny-sd/sd1",
      SD_SCHEDULER: "ddim",
    };
    const { config } = loadConfig(env);
    expect(config.image.backend).toBe("local");
    expect(config.image.local).toMatchObject({
      modelDir: resolve("test/fixtures/tiny-sd/sd1"),
      scheduler: "ddim",
      device: "auto",
      concurrency: 1,
    });
    expect(() => loadConfig({ ...env, SD_SCHEDULER: "dpm++" })).toThrow(
      /image.local.scheduler.*set by SD_SCHEDULER/,
    );
    expect(() => loadConfig({ ...env, SD_DEVICE: "tpu" })).toThrow(
      /image.local.device.*set by SD_DEVICE/,
    );
  });

  it("emits 'rendering' progress with the step through the imagine pipeline", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "imagine-local-pipeline-"));
    const base = testConfig(dataDir);
    const config = {
      ...base,
      image: { ...base.image, width: 64, height: 64, steps: 2, guidance: 1 },
    };
    const pipeline = createPipeline({
      config,
      arms: armsOf(new ScriptedGenerator()),
      backend: local(),
      filter: loadExplicitFilter({}),
      store: new MemoryGenerationStore(),
      saveImage: inTestSaveImage([]),
      logger: createLogger({ level: "silent" }),
    });
    try {
      const events: ImagineProgress[] = [];
      await pipeline.imagine(
        { subject: "a lighthouse", requester: "u1", platform: "cli", count: 1, seed: 7 },
        (event) => events.push(event),
      );
      expect(events.filter((event) => event.kind === "rendering")).toEqual([
        { kind: "rendering", index: 1, of: 1 },
        { kind: "rendering", index: 1, of: 1, step: 1, steps: 2 },
        { kind: "rendering", index: 1, of: 1, step: 2, steps: 2 },
      ]);
    } finally {
      await pipeline.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
