/**
 * Fakes for the pipeline tests: a config builder, a PNG made with sharp, an instrumented image
 * backend, scripted prompt generators and an in-test image store (PNG + A1111 parameters chunk).
 */
import { EventEmitter } from "node:events";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import type { Config } from "../../src/core/config.js";
import type { PngParameters } from "../../src/core/image/png.js";
import { formatA1111Parameters, withParametersChunk } from "../../src/core/image/png.js";
import type { ArmSource, SaveImage } from "../../src/core/pipeline.js";
import type {
  GeneratedPrompt,
  GenerateRequest,
  Generation,
  GenerationStore,
  ImageBackend,
  ImageRequest,
  PromptGenerator,
  RenderedImage,
} from "../../src/core/types.js";
import { testConfig as baseTestConfig, TINY_MODEL_DIR } from "../helpers/config.js";

export const MODEL_DIR = TINY_MODEL_DIR;

export function testConfig(
  dataDir: string,
  queue: Partial<Config["queue"]> = {},
  image: Partial<Config["image"]> = {},
): Config {
  return baseTestConfig({
    dataDir,
    image: {
      width: 64,
      height: 64,
      steps: 20,
      guidance: 7,
      negativePrompt: "blurry",
      timeoutMs: 1000,
      retries: 0,
      ...image,
    },
    queue: { concurrency: 2, perUserCap: 3, globalCap: 100, deadlineMs: 30_000, ...queue },
    remote: { timeoutMs: 1000, retries: 0 },
  });
}

let cachedPng: Promise<Buffer> | undefined;
/** A real 8×8 PNG. */
export function smallPng(): Promise<Buffer> {
  cachedPng ??= sharp({
    create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 80, b: 40 } },
  })
    .png()
    .toBuffer();
  return cachedPng;
}

export interface RenderCall {
  request: ImageRequest;
  /** Settles this render (for backends in manual mode). */
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * An image backend that records every call and how many run at once. In "auto" mode a render
 * finishes after `delay` (a macrotask by default); in "manual" mode it waits for the test to
 * settle it (events: "render" with the RenderCall, "abort" when a signal fires).
 */
export class FakeBackend extends EventEmitter implements ImageBackend {
  readonly name = "fake";
  readonly calls: ImageRequest[] = [];
  readonly finished: ImageRequest[] = [];
  running = 0;
  maxRunning = 0;
  /** Called at the start of every render, to check invariants at that moment. */
  onStart?: (request: ImageRequest) => void;

  constructor(
    private readonly mode: "auto" | "manual" | "hang" = "auto",
    private readonly delay: (request: ImageRequest) => Promise<void> = () =>
      new Promise((resolve) => setImmediate(resolve)),
  ) {
    super();
  }

  async render(request: ImageRequest): Promise<RenderedImage> {
    this.calls.push(request);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    this.onStart?.(request);
    try {
      if (this.mode === "auto") {
        await this.delay(request);
      } else if (this.mode === "manual") {
        await new Promise<void>((resolve, reject) => {
          this.emit("render", { request, resolve, reject } satisfies RenderCall);
        });
      } else {
        // Hangs until aborted, as a stuck server would if the client did not give up.
        await new Promise<void>((_resolve, reject) => {
          const abort = () => {
            this.emit("abort", request);
            reject(request.signal?.reason);
          };
          if (request.signal?.aborted) abort();
          else request.signal?.addEventListener("abort", abort, { once: true });
          this.emit("render", { request });
        });
      }
      this.finished.push(request);
      return {
        png: await smallPng(),
        width: request.width,
        height: request.height,
        model: "fake/sd-2",
        sampler: "Euler a",
        seed: request.seed,
      };
    } finally {
      this.running--;
      this.emit("end", request);
    }
  }

  async close(): Promise<void> {}
}

/** A prompt generator that follows a script: each call gets the texts the script returns. */
export class ScriptedGenerator extends EventEmitter implements PromptGenerator {
  readonly description = "scripted";
  readonly requests: GenerateRequest[] = [];
  running = 0;
  maxRunning = 0;

  constructor(
    private readonly script: (request: GenerateRequest, call: number) => string[] = (r) =>
      Array.from({ length: r.count }, (_, i) => `${r.subject}, picture ${r.seed}-${i}`),
    private readonly gate?: (request: GenerateRequest) => Promise<void>,
  ) {
    super();
  }

  async generate(request: GenerateRequest): Promise<GeneratedPrompt[]> {
    const call = this.requests.push(request) - 1;
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    this.emit("start", request);
    try {
      await (this.gate?.(request) ?? Promise.resolve());
      return this.script(request, call).map((text) => ({ text, tokens: 5, complete: true }));
    } finally {
      this.running--;
      this.emit("end", request);
    }
  }

  async close(): Promise<void> {}
}

export function armsOf(generator: PromptGenerator): ArmSource {
  return { get: async () => generator, forModelDir: async () => generator };
}

export interface SavedImage {
  path: string;
  parameters: PngParameters;
}

/**
 * An image store like src/core/image/store.ts: the PNG with an A1111 parameters chunk, written
 * under <dataDir>/images/<id>.png.
 */
export function inTestSaveImage(saved: SavedImage[] = []): SaveImage {
  return async (dataDir, meta, png, parameters) => {
    const path = join("images", `${meta.id}.png`);
    await mkdir(join(dataDir, "images"), { recursive: true });
    const bytes = withParametersChunk(png, formatA1111Parameters(parameters));
    await writeFile(join(dataDir, path), bytes);
    saved.push({ path, parameters });
    return { path, png: bytes };
  };
}

/** Resolves on the next `event` of `emitter` for which `match` holds. */
export function nextEvent<T>(
  emitter: EventEmitter,
  event: string,
  match: (value: T) => boolean = () => true,
): Promise<T> {
  return new Promise((resolve) => {
    const listener = (value: T) => {
      if (!match(value)) return;
      emitter.off(event, listener);
      resolve(value);
    };
    emitter.on(event, listener);
  });
}

/** Keeps generations in memory, in the order saved. */
export class MemoryGenerationStore implements GenerationStore {
  readonly generations: Generation[] = [];

  async saveGeneration(generation: Generation): Promise<void> {
    this.generations.push(structuredClone(generation));
  }
}
