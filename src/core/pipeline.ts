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
 * The stages (createImagineProcessor) run on plain job data, in this process (the in-process
 * queue, the default) or in an `imagine-bot worker` (the shared BullMQ queue); either way the
 * outcome is published once, by whoever wins the job's delivery claim.
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
import type { JobProcessor, RenderQueue, ResultCodec, SubmittedJob } from "./queue/contract.js";
import { LocalRenderQueue } from "./queue/local.js";
import type { QueueSnapshot } from "./queue.js";
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
  /**
   * The chat platform's handle for answering the command from another process (the shared
   * queue carries it so that a restarted chat process can still edit the original reply).
   */
  replyHandle?: string;
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
  /** Renders the in-process queue's jobs; not needed with a renderQueue (workers render). */
  backend?: ImageBackend;
  filter: TextFilter;
  store: GenerationStore;
  saveImage: SaveImage;
  logger: Logger;
  clock?: Clock;
  /** Prompt stages at once (default 1; the in-process queue). */
  promptConcurrency?: number;
  /**
   * Where jobs run instead of the in-process queue: the BullMQ queue (config queue.url), whose
   * jobs `imagine-bot worker` processes run with createImagineProcessor.
   */
  renderQueue?: RenderQueue<ImagineJob, ImagineResult>;
  /** The chat process's id (IMAGINE_CHAT_ID), under which the render queue lists its jobs. */
  owner?: string;
}

export interface Pipeline {
  imagine(
    request: ImagineRequest,
    onProgress?: (event: ImagineProgress) => void,
  ): Promise<ImagineResult>;
  /**
   * In-process: fails unfinished jobs ("QUEUE_CLOSED") and waits for running stages. BullMQ:
   * stops listening and closes the queue's connections (the jobs go on; a restart under the
   * same owner recovers them). Owns nothing else.
   */
  close(): Promise<void>;
  /** The render queue jobs go through (recover() for a restarted chat process). */
  readonly jobs: RenderQueue<ImagineJob, ImagineResult>;
  /** The queue's counts, for tests and status commands. */
  readonly queue: { snapshot(): QueueSnapshot };
}

const references = new WeakMap<object, string>();

/** The short reference an imagine() failure was logged under, for "failed (ref abc123)". */
export function failureReference(error: unknown): string | undefined {
  return typeof error === "object" && error !== null ? references.get(error) : undefined;
}

/**
 * The failure of a job recovered from the render queue (a chat process restarted mid-job), as
 * an error of its own that carries the job's reference, so that the reply names the reference
 * its original process logged the request under.
 */
export function recoveredFailure(error: unknown, reference: string): object {
  const own = ownFailure(error);
  references.set(own, reference);
  return own;
}

/**
 * How an imagine() outcome is confirmed posted (SubmittedJob.confirmDelivery): keyed by the
 * failure it threw or by its result's generations array (an array the imagine command's images
 * result shares, being a copy of the result's fields).
 */
const deliveries = new WeakMap<object, () => Promise<void>>();

function deliveryKey(outcome: unknown): object | undefined {
  if (typeof outcome !== "object" || outcome === null) return undefined;
  const generations = (outcome as Partial<ImagineResult>).generations;
  return Array.isArray(generations) ? generations : outcome;
}

/**
 * Tells the render queue that an imagine() outcome (its result, or the error it threw) has been
 * posted, or its post attempted: until then, on the shared queue, a restart of this chat process
 * would recover the job and post it (this process having died between the result and the post).
 * Every caller that publishes an outcome calls it after publishing; nothing for other outcomes.
 */
export async function confirmDelivery(outcome: unknown): Promise<void> {
  const key = deliveryKey(outcome);
  const confirm = key === undefined ? undefined : deliveries.get(key);
  if (confirm === undefined) return;
  deliveries.delete(key as object);
  await confirm();
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
  /** When the prompt stage began and ended (clock.monotonic()), for the timings. */
  promptStart: number;
  promptEnd: number;
}

/**
 * One /imagine as the render queue carries it: plain data, checked and settled in the process
 * that took the command, so that any worker process can run it.
 */
export interface ImagineJob {
  request: ImagineRequest;
  /** The subject after the gate. */
  subject: string;
  count: number;
  seed: number;
  /** The arm, or "model:<dir>" for a developer's --model. */
  arm: string;
  /** The reference the job's failure is logged under, in every process. */
  reference: string;
}

/** The two stages of an imagine job: prompt writing, then rendering and recording. */
export type ImagineProcessor = JobProcessor<ImagineJob, Prepared, ImagineResult>;

/** What the stages need: the pipeline's options less the queue. */
export type ProcessorOptions = Pick<
  PipelineOptions,
  "config" | "arms" | "filter" | "store" | "saveImage" | "logger" | "clock"
> & { backend: ImageBackend };

/** An imagine job's outcome as JSON (the PNGs base64), for a queue that crosses processes. */
export const imagineResultCodec: ResultCodec<ImagineResult> = {
  encode: (result) => ({
    ...result,
    generations: result.generations.map((image) => ({
      ...image,
      png: image.png.toString("base64"),
    })),
  }),
  decode: (wire) => {
    const result = wire as Omit<ImagineResult, "generations"> & {
      generations: (Omit<ImagineImage, "png"> & { png: string })[];
    };
    return {
      ...result,
      generations: result.generations.map((image) => ({
        ...image,
        png: Buffer.from(image.png, "base64"),
      })),
    };
  },
};

/**
 * The stages of an imagine job, wherever it runs: in the process that took the command (the
 * in-process queue) or in `imagine-bot worker`.
 */
export function createImagineProcessor(options: ProcessorOptions): ImagineProcessor {
  const { config, arms, backend, filter, store, saveImage } = options;
  const clock = options.clock ?? systemClock;

  function generatorFor(job: ImagineJob): Promise<PromptGenerator> {
    return job.request.modelDir ? arms.forModelDir(job.request.modelDir) : arms.get(job.arm);
  }

  return {
    async prepare(job, context) {
      const promptStart = clock.monotonic();
      context.progress({ kind: "writing-prompt" } satisfies ImagineProgress);
      const checked = await writeCheckedPrompts(await generatorFor(job), filter, {
        subject: job.subject,
        count: job.count,
        seed: job.seed,
        signal: context.signal,
      });
      const promptEnd = clock.monotonic();
      const logger = options.logger.child({ reference: job.reference });
      for (const refusal of checked.refused) {
        // A study's arm never reaches the info log: an operator who rates could read it there.
        logger.info(
          { index: refusal.index, ...(job.request.studyId === undefined ? { arm: job.arm } : {}) },
          "prompt refused after resamples",
        );
      }
      if (checked.prompts.length === 0) throw noCleanPromptError(job.count);
      return {
        prompts: checked.prompts.map(({ index, prompt }) => ({
          index,
          text: prompt.text,
          complete: prompt.complete,
        })),
        refused: checked.refused,
        arm: job.arm,
        promptStart,
        promptEnd,
      };
    },

    async render(job, prepared, context) {
      const { signal } = context;
      const started = context.submittedAt;
      const renderStart = clock.monotonic();
      const queuedMs = prepared.promptStart - started + (renderStart - prepared.promptEnd);
      const images: ImagineImage[] = [];
      let renderMs = 0;
      let saveMs = 0;
      const of = prepared.prompts.length;
      for (const [i, prompt] of prepared.prompts.entries()) {
        context.progress({ kind: "rendering", index: i + 1, of } satisfies ImagineProgress);
        const before = clock.monotonic();
        const image = await backend.render({
          prompt: prompt.text,
          negativePrompt: config.image.negativePrompt || undefined,
          width: config.image.width,
          height: config.image.height,
          steps: config.image.steps,
          guidance: config.image.guidance,
          seed: (job.seed + prompt.index - 1) % (MAX_SEED + 1),
          signal,
          onStep: (step, steps) =>
            context.progress({
              kind: "rendering",
              index: i + 1,
              of,
              step,
              steps,
            } satisfies ImagineProgress),
        });
        const rendered = clock.monotonic();
        if (signal.aborted) throw signal.reason;
        renderMs += rendered - before;
        const saved = await saveOne(
          job,
          prepared.arm,
          prompt,
          image,
          {
            queuedMs,
            promptMs: prepared.promptEnd - prepared.promptStart,
            renderMs: rendered - before,
            started,
          },
          signal,
        );
        saveMs += clock.monotonic() - rendered;
        images.push(saved);
      }
      return {
        subject: job.subject,
        seed: job.seed,
        generations: images,
        refused: prepared.refused,
        timings: {
          queuedMs: round(queuedMs),
          promptMs: round(prepared.promptEnd - prepared.promptStart),
          renderMs: round(renderMs),
          saveMs: round(saveMs),
          totalMs: round(clock.monotonic() - started),
        },
      };
    },
  };

  async function saveOne(
    job: ImagineJob,
    arm: string,
    prompt: Prepared["prompts"][number],
    image: RenderedImage,
    timing: { queuedMs: number; promptMs: number; renderMs: number; started: number },
    signal: AbortSignal,
  ): Promise<ImagineImage> {
    const { request, subject } = job;
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
}

export function createPipeline(options: PipelineOptions): Pipeline {
  const { config, arms, filter } = options;
  const clock = options.clock ?? systemClock;
  const { backend } = options;
  if (options.renderQueue === undefined && backend === undefined) {
    throw new TypeError("createPipeline needs an image backend or a render queue");
  }
  const local =
    options.renderQueue === undefined && backend !== undefined
      ? new LocalRenderQueue(
          {
            concurrency: config.queue.concurrency,
            perUserCap: config.queue.perUserCap,
            globalCap: config.queue.globalCap,
            deadlineMs: config.queue.deadlineMs,
            promptConcurrency: options.promptConcurrency ?? 1,
          },
          createImagineProcessor({ ...options, backend }),
          () => clock.monotonic(),
        )
      : undefined;
  const jobs = local ?? (options.renderQueue as RenderQueue<ImagineJob, ImagineResult>);

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
    let job: SubmittedJob<ImagineResult> | undefined;
    try {
      job = await submit(request, reference, emit);
      const result = await job.result;
      await claim(job);
      const claimed = job;
      deliveries.set(result.generations, () => claimed.confirmDelivery());
      emit({ kind: "done" });
      logger.info(
        { images: result.generations.length, refused: result.refused.length, ...result.timings },
        "imagine done",
      );
      return result;
    } catch (thrown) {
      if (isBotError(thrown) && thrown.code === "DELIVERED_ELSEWHERE") throw thrown;
      let failure = thrown;
      if (
        job !== undefined &&
        local === undefined &&
        isBotError(thrown) &&
        thrown.code === "QUEUE_CLOSED"
      ) {
        // The shared queue's job goes on without this process; its restart publishes the result.
        failure = new BotError(
          "QUEUE_CLOSED",
          "The bot is restarting; the image will be posted in this channel when it is back.",
        );
      } else if (job !== undefined) {
        await claim(job);
      }
      const error = ownFailure(failure);
      references.set(error, reference);
      if (job !== undefined && !(isBotError(failure) && failure.code === "QUEUE_CLOSED")) {
        const claimed = job;
        deliveries.set(error, () => claimed.confirmDelivery());
      }
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

  /** Another process (a chat process sharing this one's id) already published the outcome. */
  async function claim(job: SubmittedJob<ImagineResult>): Promise<void> {
    if (!(await job.claimDelivery())) {
      throw new BotError(
        "DELIVERED_ELSEWHERE",
        `job ${job.id}: another chat process published the outcome`,
      );
    }
  }

  async function submit(
    request: ImagineRequest,
    reference: string,
    emit: (event: ImagineProgress) => void,
  ): Promise<SubmittedJob<ImagineResult>> {
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
    if (local !== undefined) {
      // Throws ARM_UNKNOWN now; otherwise starts loading the model while the job waits. (A
      // worker process loads its own and reports an unknown arm the same way.)
      const generator = request.modelDir ? arms.forModelDir(request.modelDir) : arms.get(arm);
      generator.catch(() => {});
    }
    return jobs.submit(
      {
        user: request.requester,
        data: { request, subject, count, seed, arm, reference },
        ...(options.owner !== undefined ? { owner: options.owner } : {}),
      },
      {
        onPosition: (position) => emit({ kind: "queued", position }),
        onProgress: (update) => emit(update as ImagineProgress),
      },
    );
  }

  return {
    imagine,
    close: () => jobs.close(),
    jobs,
    queue: {
      snapshot: () =>
        local?.snapshot() ?? {
          waiting: 0,
          preparing: 0,
          ready: 0,
          rendering: 0,
          ...jobs.pending(),
        },
    },
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
