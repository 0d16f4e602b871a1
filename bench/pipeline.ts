/**
 * The imagine pipeline's own cost and its throughput, with a fake image backend.
 *
 * 1. Overhead: what a request costs beyond writing its prompt and the backend's render —
 *    subject checks, queue hand-offs, explicit-text checks, saving the PNG with its parameters
 *    (atomic write + fsync), reading it back, and appending the record:
 *      overhead = total − prompt − render      (one request at a time, so no queueing)
 *    with renders of 0 ms and of 2 s. Goal: p95 under 50 ms.
 * 2. Throughput with a backend that takes 2 s per image at concurrency 2: jobs per minute when
 *    prompts overlap renders. Expected ≈ 60. Run with the tiny model's fast prompts and with
 *    500 ms prompts (where, without the overlap, it would be 2 / 2.5 s = 48 per minute).
 *
 * Prompts come from the shipped tiny model through PromptArms (or a fixed-time generator), the
 * real explicit-text filter, the real image store (src/core/image/store.ts) and the JSON-lines
 * generation store, in a temporary data directory. The fake backend returns a 768×768 PNG of
 * noise (about the size Stable Diffusion returns).
 *
 *   npx tsx bench/pipeline.ts [--requests 200] [--slow-requests 8] [--jobs 20]
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { type Config, configSchema, DEFAULT_CONFIG_FILE } from "../src/core/config.js";
import { saveImage } from "../src/core/image/store.js";
import { createLogger } from "../src/core/logger.js";
import { type ArmSource, createPipeline, type ImagineResult } from "../src/core/pipeline.js";
import { PromptArms } from "../src/core/prompt/arms.js";
import { loadExplicitFilter } from "../src/core/safety/index.js";
import type { ImageBackend, PromptGenerator, RenderedImage } from "../src/core/types.js";
import { openVoteStore } from "../src/core/votes/index.js";

const { values: flags } = parseArgs({
  options: {
    requests: { type: "string", default: "200" },
    "slow-requests": { type: "string", default: "8" },
    jobs: { type: "string", default: "20" },
  },
});

const ROOT = resolve(import.meta.dirname, "..");
const MODEL_DIR = join(ROOT, "models", "tiny-caption-gpt2");
const OVERHEAD_GOAL_MS = 50;
const RENDER_MS = 2000;
const logger = createLogger({ level: "silent" });
const filter = loadExplicitFilter({});

/** config/default.json with the bench's settings: the shipped tiny model, one prompt per job. */
function config(dataDir: string, concurrency: number): Config {
  const defaults = JSON.parse(readFileSync(DEFAULT_CONFIG_FILE, "utf8")) as Record<string, object>;
  return configSchema.parse({
    ...defaults,
    dataDir,
    defaultArm: "ft-tags",
    arms: { "ft-tags": { kind: "onnx", modelDir: MODEL_DIR } },
    prompt: { count: 1, maxSubjectLength: 200, threads: 1 },
    image: { ...defaults.image, retries: 0 },
    queue: { concurrency, perUserCap: 3, globalCap: 1000, deadlineMs: 600_000 },
    log: { level: "silent" },
  });
}

async function noisePng(size: number): Promise<Buffer> {
  const pixels = Buffer.alloc(size * size * 3);
  let x = 12345;
  for (let i = 0; i < pixels.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    pixels[i] = x >>> 24;
  }
  return sharp(pixels, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toBuffer();
}

function fakeBackend(png: Buffer, renderMs: number): ImageBackend {
  return {
    name: "fake",
    async render(request): Promise<RenderedImage> {
      if (renderMs > 0) await new Promise((resolve) => setTimeout(resolve, renderMs));
      return {
        png,
        width: 768,
        height: 768,
        model: "fake/sd-2",
        sampler: "Euler a",
        seed: request.seed,
      };
    },
    async close() {},
  };
}

/** A prompt generator that takes a fixed time (a larger model's prompt stage). */
function fixedTimeArms(ms: number): ArmSource {
  const generator: PromptGenerator = {
    description: `fixed ${ms} ms`,
    async generate(request) {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return Array.from({ length: request.count }, (_, i) => ({
        text: `${request.subject}, oil painting, detailed ${request.seed + i}`,
        tokens: 6,
        complete: true,
      }));
    },
    async close() {},
  };
  return { get: async () => generator, forModelDir: async () => generator };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] as number;
}

const SUBJECTS = ["a lighthouse", "a red fox", "London", "a bowl of fruit", "a mountain lake"];

async function overhead(png: Buffer, renderMs: number, requests: number): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "imagine-bench-"));
  const cfg = config(dataDir, 2);
  const arms = new PromptArms(cfg, {}, logger);
  const pipeline = createPipeline({
    config: cfg,
    arms,
    backend: fakeBackend(png, renderMs),
    filter,
    // The store a deployment uses by default: SQLite in the data directory.
    store: await openVoteStore("sqlite://votes.sqlite", { dataDir }),
    saveImage,
    logger,
  });
  try {
    // Warm-up: model load, first file writes, JIT.
    for (let i = 0; i < 3; i++) {
      await pipeline.imagine({
        subject: "a warm-up",
        requester: "bench",
        platform: "bench",
        seed: i,
      });
    }
    const overheads: number[] = [];
    const prompts: number[] = [];
    const saves: number[] = [];
    for (let i = 0; i < requests; i++) {
      const result = await pipeline.imagine({
        subject: SUBJECTS[i % SUBJECTS.length] as string,
        requester: "bench",
        platform: "bench",
        seed: i,
      });
      const t = result.timings;
      overheads.push(t.totalMs - t.promptMs - t.renderMs);
      prompts.push(t.promptMs);
      saves.push(t.saveMs);
    }
    const sorted = [...overheads].sort((a, b) => a - b);
    const p95 = percentile(sorted, 95);
    const median = (values: number[]) =>
      percentile(
        [...values].sort((a, b) => a - b),
        50,
      );
    console.log(
      `overhead, ${renderMs} ms renders (${requests} requests, one at a time): ` +
        `p50 ${percentile(sorted, 50).toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${(sorted.at(-1) ?? 0).toFixed(1)} ms ` +
        `(of which saving PNG + record p50 ${median(saves).toFixed(1)} ms; prompt itself p50 ${median(prompts).toFixed(1)} ms)` +
        `   goal p95 < ${OVERHEAD_GOAL_MS} ms: ${p95 < OVERHEAD_GOAL_MS ? "met" : "NOT met"}`,
    );
  } finally {
    await pipeline.close();
    await arms.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function throughput(png: Buffer, jobs: number, arms: ArmSource | "tiny", label: string) {
  const dataDir = mkdtempSync(join(tmpdir(), "imagine-bench-"));
  const cfg = config(dataDir, 2);
  const promptArms = arms === "tiny" ? new PromptArms(cfg, {}, logger) : undefined;
  const pipeline = createPipeline({
    config: cfg,
    arms: promptArms ?? (arms as ArmSource),
    backend: fakeBackend(png, RENDER_MS),
    filter,
    // The store a deployment uses by default: SQLite in the data directory.
    store: await openVoteStore("sqlite://votes.sqlite", { dataDir }),
    saveImage,
    logger,
  });
  try {
    if (promptArms) await (await promptArms.get()).generate({ subject: "warm", count: 1, seed: 0 });
    const started = performance.now();
    const results: ImagineResult[] = await Promise.all(
      Array.from({ length: jobs }, (_, i) =>
        pipeline.imagine({
          subject: SUBJECTS[i % SUBJECTS.length] as string,
          requester: `user${i}`,
          platform: "bench",
          seed: i,
        }),
      ),
    );
    const minutes = (performance.now() - started) / 60_000;
    const rate = results.length / minutes;
    const ideal = (60_000 / RENDER_MS) * cfg.queue.concurrency;
    console.log(
      `throughput, ${RENDER_MS / 1000} s renders at concurrency ${cfg.queue.concurrency}, ${label}: ` +
        `${jobs} jobs in ${(minutes * 60).toFixed(1)} s = ${rate.toFixed(1)} jobs/min ` +
        `(expected ≈ ${ideal} with overlap; ${((rate / ideal) * 100).toFixed(0)}% of it)`,
    );
  } finally {
    await pipeline.close();
    await promptArms?.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const png = await noisePng(768);
console.log(`fake backend PNG: 768×768 noise, ${(png.length / 2 ** 20).toFixed(2)} MiB`);
await overhead(png, 0, Number(flags.requests));
await overhead(png, RENDER_MS, Number(flags["slow-requests"]));
await throughput(png, Number(flags.jobs), "tiny", "tiny-model prompts");
await throughput(png, Number(flags.jobs), fixedTimeArms(500), "500 ms prompts");
