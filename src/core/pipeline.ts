/**
 * imagine(): the one path from a subject someone typed to stored images.
 *
 *   subject gate (safety/subject.ts: invisible characters, links, mentions and markup, the
 *   explicit filter) → queue ─▶ prompt stage: the arm writes `count` prompts; each is checked,
 *              and a blocked one is rewritten with a new derived seed up to 3 times, then
 *              refused (safety/prompts.ts, shared with the `prompt` command)
 *            ─▶ render stage: one image per prompt → PNG saved with its A1111 parameters
 *              (never the arm) → generation record stored → the PNG to upload (for a study:
 *              stripped of all metadata)
 *
 * Refusals are UserErrors whose messages are safe to show. Every failure is reported to the
 * progress listener with a short reference that is also logged with the error.
 */
import { randomBytes, randomInt, randomUUID } from "node:crypto";
import { resolve } from "node:path";
import type { Config } from "./config.js";
import { BotError, isBotError, UserError } from "./errors.js";
import { type PngParameters, withoutMetadata } from "./image/png.js";
import type { SavedPng } from "./image/store.js";
import type { PromptArms } from "./prompt/arms.js";
import { JobQueue } from "./queue.js";
import type { TextFilter } from "./safety/index.js";
import { noCleanPromptError, type PromptRefusal, writeCheckedPrompts } from "./safety/prompts.js";
import { gateSubject } from "./safety/subject.js";
import type {
  Generation,
  GenerationStore,
  ImageBackend,
  Logger,
  PromptGenerator,
  RenderedImage,
} from "./types.js";

export { derivedSeed, PROMPT_RESAMPLES } from "./safety/prompts.js";

const MAX_SEED = 2 ** 32 - 1;

/** One /imagine as a platform-neutral request. */
export interface ImagineRequest {
  /** What the person typed; mentions and markup are stripped before anything else. */
  subject: string;
  /** Platform user id; the queue's per-user cap counts by it. */
  requester: string;
  /** "discord" | "slack" | "cli". */
  platform: string;
  server?: string;
  channel?: string;
  /** A configured arm; the default arm when absent (a study assigns one). */
  arm?: string;
  /** Developer option (CLI --model): a model directory instead of an arm. */
  modelDir?: string;
  /** Images to make, one per prompt; default 1. */
  count?: number;
  /** Seeds the prompts; image i is rendered with seed + i. Random (and reported) when absent. */
  seed?: number;
  studyId?: string;
  /** A batch study's plan item id ("s1-007"), stored on the generation for its survey. */
  studyItem?: string;
}

/**
 * What the person is told while they wait. `index` counts from 1. A job's prompt is written
 * while it waits for a render slot, so "queued" updates may follow "writing-prompt"; they stop
 * once it renders.
 */
export type ImagineProgress =
  | { kind: "queued"; position: number }
  | { kind: "writing-prompt" }
  /** `step`/`steps`: the denoising step just finished, from backends that report steps (local). */
  | { kind: "rendering"; index: number; of: number; step?: number; steps?: number }
  | { kind: "done" }
  | { kind: "failed"; reason: string; reference: string };

export interface ImagineTimings {
  /** Waiting in the queue: before the prompt stage and between the stages. */
  queuedMs: number;
  promptMs: number;
  /** The backend's time, summed over the images. */
  renderMs: number;
  /** Saving PNGs and records, summed. */
  saveMs: number;
  /** From the call to the result. */
  totalMs: number;
}

export interface ImagineImage {
  generation: Generation;
  /**
   * The PNG to upload. For a generation in a study (generation.studyId set) it carries no
   * metadata at all (image/png.ts withoutMetadata: no text chunk, no prompt, model or settings),
   * so the file cannot tell arms apart; otherwise it is the PNG as saved, with its A1111
   * parameters chunk. The file at `path` always keeps the parameters chunk.
   */
  png: Buffer;
  /** Where it was saved, relative to the data directory. */
  path: string;
}

export interface ImagineResult {
  subject: string;
  seed: number;
  generations: ImagineImage[];
  /** Prompts refused after every resample was blocked (index counts from 1). */
  refused: PromptRefusal[];
  timings: ImagineTimings;
}

/**
 * Saves a PNG with its parameters (image/store.ts's saveImage); the parameters type has no arm
 * field, so the arm cannot reach the file.
 */
export type SaveImage = (
  dataDir: string,
  meta: { id: string; createdAt: string },
  png: Buffer,
  parameters: PngParameters,
) => Promise<SavedPng>;

export interface Clock {
  /** Monotonic milliseconds, for timings. */
  monotonic(): number;
  /** Wall-clock time, for createdAt. */
  now(): Date;
}

const systemClock: Clock = { monotonic: () => performance.now(), now: () => new Date() };

/** Where prompt generators come from: PromptArms, or a test's own. */
export type ArmSource = Pick<PromptArms, "get" | "forModelDir">;

export interface PipelineOptions {
  config: Config;
  arms: ArmSource;
  backend: ImageBackend;
  filter: TextFilter;
  store: GenerationStore;
  saveImage: SaveImage;
  logger: Logger;
  clock?: Clock;
  /** Prompt stages at once (default 1). */
  promptConcurrency?: number;
}

export interface Pipeline {
  imagine(
    request: ImagineRequest,
    onProgress?: (event: ImagineProgress) => void,
  ): Promise<ImagineResult>;
  /** Fails unfinished jobs ("QUEUE_CLOSED") and waits for running stages. Owns nothing else. */
  close(): Promise<void>;
  /** The queue's counts, for tests and status commands. */
  readonly queue: JobQueue;
}

const references = new WeakMap<object, string>();

/** The short reference an imagine() failure was logged under, for "failed (ref abc123)". */
export function failureReference(error: unknown): string | undefined {
  return typeof error === "object" && error !== null ? references.get(error) : undefined;
}

/**
 * The error one failed job throws, as an object of its own so that it carries this job's
 * reference: a thrown primitive is wrapped (the original kept as its cause), and an error that
 * already carries another job's reference (the queue fails every unfinished job with one shared
 * error when it closes) is copied, keeping its class, code and message.
 */
function ownFailure(error: unknown): object {
  if (typeof error !== "object" || error === null) {
    return new BotError("GENERATION_FAILED", `imagine failed: ${String(error)}`, { cause: error });
  }
  if (!references.has(error)) return error;
  const copy = Object.assign(Object.create(Object.getPrototypeOf(error)) as object, error);
  if (error instanceof Error) {
    Object.defineProperties(copy, {
      message: { value: error.message, writable: true, configurable: true },
      stack: { value: error.stack, writable: true, configurable: true },
      cause: { value: error, writable: true, configurable: true },
    });
  }
  return copy;
}

/** What a person may be told about a failure. */
export function failureReason(error: unknown): string {
  if (error instanceof UserError) return error.message;
  if (isBotError(error) && (error.code === "DEADLINE" || error.code === "QUEUE_CLOSED")) {
    return error.message;
  }
  return "Something went wrong while making the image.";
}

interface Prepared {
  prompts: { index: number; text: string; complete: boolean }[];
  refused: ImagineResult["refused"];
  arm: string;
}

export function createPipeline(options: PipelineOptions): Pipeline {
  const { config, arms, backend, filter, store, saveImage } = options;
  const clock = options.clock ?? systemClock;
  const queue = new JobQueue({
    concurrency: config.queue.concurrency,
    perUserCap: config.queue.perUserCap,
    globalCap: config.queue.globalCap,
    deadlineMs: config.queue.deadlineMs,
    promptConcurrency: options.promptConcurrency ?? 1,
  });

  async function imagine(
    request: ImagineRequest,
    onProgress?: (event: ImagineProgress) => void,
  ): Promise<ImagineResult> {
    const reference = randomBytes(4).toString("hex");
    const logger = options.logger.child({ reference });
    const emit = (event: ImagineProgress) => {
      try {
        onProgress?.(event);
      } catch (error) {
        logger.warn({ err: error }, "progress listener failed");
      }
    };
    const started = clock.monotonic();
    try {
      const result = await run(request, logger, emit, started);
      emit({ kind: "done" });
      logger.info(
        { images: result.generations.length, refused: result.refused.length, ...result.timings },
        "imagine done",
      );
      return result;
    } catch (thrown) {
      const error = ownFailure(thrown);
      references.set(error, reference);
      const reason = failureReason(error);
      if (error instanceof UserError && error.code === "BACKEND_BUSY") {
        // The server's own answer (status, Retry-After) is in the cause.
        logger.warn({ err: error, requester: request.requester }, "image server busy");
      } else if (error instanceof UserError) {
        logger.info({ code: error.code, reason }, "imagine refused");
      } else if (isBotError(error) && error.code === "DEADLINE") {
        logger.warn({ code: error.code, requester: request.requester }, "imagine past deadline");
      } else {
        logger.error({ err: error }, "imagine failed");
      }
      emit({ kind: "failed", reason, reference });
      throw error;
    }
  }

  async function run(
    request: ImagineRequest,
    logger: Logger,
    emit: (event: ImagineProgress) => void,
    started: number,
  ): Promise<ImagineResult> {
    // Everything that can be refused without work is refused before queuing.
    const subject = gateSubject(request.subject, {
      maxLength: config.prompt.maxSubjectLength,
      filter,
    });
    const count = request.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > 16) {
      throw new UserError("USAGE", `count must be a whole number from 1 to 16, got ${count}`);
    }
    if (
      request.seed !== undefined &&
      (!Number.isInteger(request.seed) || request.seed < 0 || request.seed > MAX_SEED)
    ) {
      throw new UserError("USAGE", `seed must be a whole number from 0 to ${MAX_SEED}`);
    }
    const seed = request.seed ?? randomInt(MAX_SEED);
    const arm = request.modelDir
      ? `model:${resolve(request.modelDir)}`
      : (request.arm ?? config.defaultArm);
    // Throws ARM_UNKNOWN now; otherwise starts loading the model while the job waits.
    const generator = request.modelDir ? arms.forModelDir(request.modelDir) : arms.get(arm);
    generator.catch(() => {});

    let promptStart = 0;
    let promptEnd = 0;
    let renderStart = 0;

    const job = queue.submit<Prepared, ImagineResult>({
      user: request.requester,
      onPosition: (position) => emit({ kind: "queued", position }),
      prepare: async (signal) => {
        promptStart = clock.monotonic();
        emit({ kind: "writing-prompt" });
        const prepared = await writePrompts(await generator, subject, count, seed, arm, signal);
        promptEnd = clock.monotonic();
        for (const refusal of prepared.refused) {
          // A study's arm never reaches the info log: an operator who rates could read it there.
          logger.info(
            { index: refusal.index, ...(request.studyId === undefined ? { arm } : {}) },
            "prompt refused after resamples",
          );
        }
        if (prepared.prompts.length === 0) throw noCleanPromptError(count);
        return prepared;
      },
      render: async (prepared, signal) => {
        renderStart = clock.monotonic();
        const images: ImagineImage[] = [];
        let renderMs = 0;
        let saveMs = 0;
        const of = prepared.prompts.length;
        for (const [i, prompt] of prepared.prompts.entries()) {
          emit({ kind: "rendering", index: i + 1, of });
          const before = clock.monotonic();
          const image = await backend.render({
            prompt: prompt.text,
            negativePrompt: config.image.negativePrompt || undefined,
            width: config.image.width,
            height: config.image.height,
            steps: config.image.steps,
            guidance: config.image.guidance,
            seed: (seed + prompt.index - 1) % (MAX_SEED + 1),
            signal,
            onStep: (step, steps) => emit({ kind: "rendering", index: i + 1, of, step, steps }),
          });
          const rendered = clock.monotonic();
          if (signal.aborted) throw signal.reason;
          renderMs += rendered - before;
          const saved = await saveOne(
            request,
            subject,
            prepared.arm,
            prompt,
            image,
            {
              queuedMs: promptStart - started + (renderStart - promptEnd),
              promptMs: promptEnd - promptStart,
              renderMs: rendered - before,
              started,
            },
            signal,
          );
          saveMs += clock.monotonic() - rendered;
          images.push(saved);
        }
        const totalMs = clock.monotonic() - started;
        return {
          subject,
          seed,
          generations: images,
          refused: prepared.refused,
          timings: {
            queuedMs: round(promptStart - started + (renderStart - promptEnd)),
            promptMs: round(promptEnd - promptStart),
            renderMs: round(renderMs),
            saveMs: round(saveMs),
            totalMs: round(totalMs),
          },
        };
      },
    });
    return job.result;
  }

  async function writePrompts(
    generator: PromptGenerator,
    subject: string,
    count: number,
    seed: number,
    arm: string,
    signal: AbortSignal,
  ): Promise<Prepared> {
    const checked = await writeCheckedPrompts(generator, filter, { subject, count, seed, signal });
    const prompts = checked.prompts.map(({ index, prompt }) => ({
      index,
      text: prompt.text,
      complete: prompt.complete,
    }));
    return { prompts, refused: checked.refused, arm };
  }

  async function saveOne(
    request: ImagineRequest,
    subject: string,
    arm: string,
    prompt: Prepared["prompts"][number],
    image: RenderedImage,
    timing: { queuedMs: number; promptMs: number; renderMs: number; started: number },
    signal: AbortSignal,
  ): Promise<ImagineImage> {
    const id = randomUUID();
    const createdAt = clock.now().toISOString();
    const negativePrompt = config.image.negativePrompt || undefined;
    const { path, png } = await saveImage(config.dataDir, { id, createdAt }, image.png, {
      prompt: prompt.text,
      ...(negativePrompt ? { negativePrompt } : {}),
      steps: config.image.steps,
      ...(image.sampler ? { sampler: image.sampler } : {}),
      cfgScale: config.image.guidance,
      seed: image.seed,
      width: image.width,
      height: image.height,
      model: image.model,
    });
    const generation: Generation = {
      id,
      createdAt,
      platform: request.platform,
      ...(request.server !== undefined ? { server: request.server } : {}),
      ...(request.channel !== undefined ? { channel: request.channel } : {}),
      requester: request.requester,
      subject,
      arm,
      prompt: prompt.text,
      promptComplete: prompt.complete,
      seed: image.seed,
      image: {
        backend: image.backend ?? backend.name,
        model: image.model,
        width: image.width,
        height: image.height,
        steps: config.image.steps,
        guidance: config.image.guidance,
        ...(image.sampler ? { sampler: image.sampler } : {}),
        ...(negativePrompt ? { negativePrompt } : {}),
        path,
      },
      timings: {
        queuedMs: round(timing.queuedMs),
        promptMs: round(timing.promptMs),
        renderMs: round(timing.renderMs),
        totalMs: round(clock.monotonic() - timing.started),
      },
      ...(request.studyId !== undefined ? { studyId: request.studyId } : {}),
      ...(request.studyItem !== undefined ? { studyItem: request.studyItem } : {}),
    };
    // Past the deadline the person has been told it failed: leave no record of it.
    if (signal.aborted) throw signal.reason;
    await store.saveGeneration(generation);
    // Study uploads are blind: the saved copy keeps its parameters, the posted one has none.
    return { generation, png: generation.studyId === undefined ? png : withoutMetadata(png), path };
  }

  return {
    imagine,
    close: () => queue.close(),
    queue,
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
