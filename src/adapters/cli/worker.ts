/**
 * `imagine-bot worker`: runs render jobs from the shared queue (IMAGINE_QUEUE_URL) until SIGINT
 * or SIGTERM. A worker writes the prompts with its own arms, renders with its own image backend
 * (A1111_URL, COMFYUI_URL or HF_TOKEN, as for serve), saves the PNG under its data directory and
 * records the generation in the vote store (votes.storeUrl: share a Redis or PostgreSQL store
 * between the processes); the chat process that took the command posts the result. Progress
 * reaches it through the queue. A worker that dies leaves its jobs locked for --lock-ms, after
 * which another worker retries them; a worker whose backend fails hands the job back and pauses.
 */
import type { Command } from "commander";
import { openApp } from "../../app/index.js";
import { UserError } from "../../core/errors.js";
import { saveImage } from "../../core/image/store.js";
import {
  createImagineProcessor,
  type ImagineJob,
  type ImagineResult,
  imagineResultCodec,
} from "../../core/pipeline.js";
import { BullmqRenderWorker } from "../../core/queue/bullmq.js";
import { loadExplicitFilter } from "../../core/safety/index.js";
import type { ImageBackend, Logger } from "../../core/types.js";
import { integer } from "./parse.js";
import { untilSignal } from "./web.js";

export interface WorkerOptions {
  env?: NodeJS.ProcessEnv;
  /** Jobs at once (default config.queue.concurrency). */
  concurrency?: number;
  /** Stalled-job lock (default 30 s). */
  lockMs?: number;
  /** Replaces the configured image backend (tests). */
  backend?: ImageBackend;
  logger?: Logger;
}

export interface RunningWorker {
  /** Finishes the jobs it holds (or, forced, leaves them to other workers), then disconnects. */
  close(force?: boolean): Promise<void>;
}

export async function startWorker(options: WorkerOptions = {}): Promise<RunningWorker> {
  const env = options.env ?? process.env;
  const app = openApp({
    env,
    ...(options.backend !== undefined ? { backend: options.backend } : {}),
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
  });
  const { config, logger } = app;
  const url = config.queue.url;
  try {
    if (url === undefined) {
      throw new UserError(
        "CONFIG_INVALID",
        "imagine-bot worker takes jobs from a shared queue: set IMAGINE_QUEUE_URL=redis://host:6379 (the same for the chat processes).",
      );
    }
    const processor = createImagineProcessor({
      config,
      arms: app.arms,
      backend: app.backend(),
      filter: loadExplicitFilter(config.safety),
      store: await app.votes(),
      saveImage,
      logger,
    });
    const worker = new BullmqRenderWorker<ImagineJob, unknown, ImagineResult>(
      {
        url,
        ...(config.queue.prefix !== undefined ? { prefix: config.queue.prefix } : {}),
        concurrency: options.concurrency ?? config.queue.concurrency,
        ...(options.lockMs !== undefined ? { lockMs: options.lockMs } : {}),
        codec: imagineResultCodec,
        logger,
        // A refusal or a deadline belongs to the job; anything else in the render stage is this
        // worker's backend failing, and another worker may well succeed.
        handOff: (error) => !(error instanceof UserError),
      },
      processor,
    );
    await worker.waitUntilReady();
    logger.info(
      { concurrency: options.concurrency ?? config.queue.concurrency, backend: app.backend().name },
      "worker taking jobs",
    );
    return {
      async close(force = false) {
        await worker.close(force);
        await app.close();
      },
    };
  } catch (error) {
    await app.close();
    throw error;
  }
}

export function registerWorkerCommands(program: Command): void {
  program
    .command("worker")
    .description(
      "Run render jobs from the shared queue (IMAGINE_QUEUE_URL) until SIGINT/SIGTERM: prompts,\n" +
        "images (A1111_URL, COMFYUI_URL or HF_TOKEN), PNGs and generation records.",
    )
    .option("--concurrency <n>", "jobs at once (default: config queue.concurrency)", integer(1, 64))
    .option(
      "--lock-ms <ms>",
      "how long a dead worker's jobs stay locked before another retries them (default 30000)",
      integer(500, 600_000),
    )
    .action(async (flags: { concurrency?: number; lockMs?: number }) => {
      const worker = await startWorker({
        ...(flags.concurrency !== undefined ? { concurrency: flags.concurrency } : {}),
        ...(flags.lockMs !== undefined ? { lockMs: flags.lockMs } : {}),
      });
      await untilSignal();
      await worker.close();
    });
}
