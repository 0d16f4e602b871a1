/**
 * The `local` image backend (IMAGE_BACKEND=local): Stable Diffusion in this process on
 * onnxruntime-node, from a diffusers ONNX export (SD_MODEL_DIR / image.local.modelDir).
 *
 * The directory is checked when the backend is created (a ConfigError naming SD_MODEL_DIR);
 * the sessions load on the first render and stay loaded. Renders take a process-wide slot
 * (image.local.concurrency, default 1): one UNet's activations at 768×768 are gigabytes, and
 * two renders at once on the same cores finish no sooner than one after the other. There is
 * nothing remote to retry; the request's signal (the queue's deadline) stops a render between
 * denoising steps.
 */
import sharp from "sharp";
import { BotError, ConfigError, UserError } from "../../errors.js";
import type { ImageBackend, ImageRequest, Logger, RenderedImage } from "../../types.js";
import { readSdModelDirectory, type SdModelDirectory } from "./modelDir.js";
import { type Device, StableDiffusionPipeline } from "./pipeline.js";
import { type SchedulerConfig, type SchedulerKind, schedulerConfigFrom } from "./schedulers.js";

export interface LocalBackendOptions {
  /** A diffusers ONNX export (SD_MODEL_DIR). */
  modelDir?: string;
  /** Replaces scheduler_config.json's class (SD_SCHEDULER). */
  scheduler?: SchedulerKind;
  /** Replace the request's values (SD-Turbo wants 1–4 steps, no guidance, 512×512). */
  steps?: number;
  guidance?: number;
  width?: number;
  height?: number;
  device?: Device;
  threads?: number;
  /** Renders at once in this process. */
  concurrency?: number;
  logger?: Logger;
}

/** Names shown in the PNG's parameters, as AUTOMATIC1111 names these samplers. */
const SAMPLER_NAMES: Record<SchedulerKind, string> = {
  euler: "Euler",
  euler_a: "Euler a",
  ddim: "DDIM",
  turbo: "Euler (trailing)",
};

/** A process-wide gate: every local backend's renders share it. */
class RenderSlots {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  limit = 1;

  async take(signal: AbortSignal | undefined): Promise<() => void> {
    if (this.running >= this.limit) {
      await new Promise<void>((resolve, reject) => {
        const ready = () => {
          signal?.removeEventListener("abort", aborted);
          resolve();
        };
        const aborted = () => {
          const at = this.waiting.indexOf(ready);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(abortError(signal));
        };
        this.waiting.push(ready);
        signal?.addEventListener("abort", aborted, { once: true });
      });
    } else {
      this.running++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter; running stays the same.
      if (next) next();
      else this.running--;
    };
  }
}

const slots = new RenderSlots();

function abortError(signal: AbortSignal | undefined): BotError {
  const reason: unknown = signal?.reason;
  return reason instanceof BotError
    ? reason
    : new BotError("ABORTED", "The render was cancelled while waiting for the local model", {
        cause: reason,
      });
}

export function createLocalImageBackend(options: LocalBackendOptions): ImageBackend {
  const model = readModel(options.modelDir);
  const scheduler = readScheduler(model, options.scheduler);
  const concurrency = options.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new ConfigError(`image.local.concurrency must be a whole number ≥ 1, got ${concurrency}`);
  }
  slots.limit = concurrency;
  const logger = options.logger?.child({ component: "image", backend: "local" });
  let pipeline: Promise<StableDiffusionPipeline> | undefined;
  let closed = false;

  const load = (): Promise<StableDiffusionPipeline> => {
    pipeline ??= StableDiffusionPipeline.load(model, scheduler, {
      device: options.device ?? "auto",
      threads: options.threads ?? 0,
      logger,
    }).then((loaded) => {
      logger?.info(
        { model: model.name, scheduler: scheduler.kind, provider: loaded.provider },
        "local Stable Diffusion loaded",
      );
      return loaded;
    });
    // A failed load is retried by the next render rather than remembered.
    pipeline.catch(() => {
      pipeline = undefined;
    });
    return pipeline;
  };

  return {
    name: "local",
    async render(request: ImageRequest): Promise<RenderedImage> {
      if (closed) throw new BotError("ABORTED", "The local image backend was closed");
      const release = await slots.take(request.signal);
      try {
        const loaded = await load();
        if (closed) throw new BotError("ABORTED", "The local image backend was closed");
        const settings = {
          width: options.width ?? request.width,
          height: options.height ?? request.height,
          steps: options.steps ?? request.steps,
          guidance: options.guidance ?? request.guidance,
        };
        const started = performance.now();
        const result = await loaded.generate({
          prompt: request.prompt,
          negativePrompt: request.negativePrompt,
          seed: request.seed,
          signal: request.signal,
          onStep: request.onStep,
          ...settings,
        });
        const png = await encodePng(result.rgb, result.width, result.height);
        logger?.debug(
          { ...settings, ms: Math.round(performance.now() - started), modelMs: result.modelMs },
          "local render done",
        );
        return {
          png,
          width: result.width,
          height: result.height,
          model: model.name,
          sampler: SAMPLER_NAMES[scheduler.kind],
          seed: request.seed,
        };
      } finally {
        release();
      }
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      const loading = pipeline;
      pipeline = undefined;
      if (loading) await (await loading.catch(() => undefined))?.close();
    },
  };
}

/** Deterministic for the same pixels: sharp's PNG encoder with fixed settings. */
export function encodePng(rgb: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 6, adaptiveFiltering: false })
    .toBuffer();
}

function readModel(modelDir: string | undefined): SdModelDirectory {
  if (!modelDir?.trim()) {
    throw new ConfigError(
      "IMAGE_BACKEND=local needs a Stable Diffusion ONNX directory: set SD_MODEL_DIR (or image.local.modelDir), e.g. to the folder `imagine-bot models pull sd-turbo` writes",
    );
  }
  try {
    return readSdModelDirectory(modelDir);
  } catch (error) {
    if (error instanceof UserError) {
      throw new ConfigError(`SD_MODEL_DIR (image.local.modelDir): ${error.message}`, {
        cause: error,
      });
    }
    throw error;
  }
}

function readScheduler(model: SdModelDirectory, kind: SchedulerKind | undefined): SchedulerConfig {
  try {
    return schedulerConfigFrom(
      model.scheduler,
      `${model.dir}/scheduler/scheduler_config.json`,
      kind,
    );
  } catch (error) {
    if (error instanceof UserError) {
      throw new ConfigError(`SD_MODEL_DIR (image.local.modelDir): ${error.message}`, {
        cause: error,
      });
    }
    throw error;
  }
}
