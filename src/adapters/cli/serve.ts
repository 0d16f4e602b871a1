/**
 * `imagine-bot serve`: runs every chat adapter whose credentials are set, on shared services
 * built once (configuration, logger, prompt arms, image backend, pipeline, vote store), until
 * SIGINT or SIGTERM; then stops taking commands, lets running jobs finish within a grace period
 * (the rest fail with "shutting down"), disconnects and closes the store. Once the adapters run,
 * batch studies are posted in their channels (chat/studyPoster.ts; pace STUDY_POST_INTERVAL_MS,
 * default one minute) and running ones resume; shutdown stops posting first. The arms of running
 * studies are warmed before anything is posted, and the web survey (src/adapters/web) runs
 * beside the chat adapters when IMAGINE_WEB_SECRET is set.
 *
 * A chat platform is one entry in CHAT_ADAPTERS.
 */
import type { Command } from "commander";
import { openApp } from "../../app/index.js";
import { isBotError, UserError } from "../../core/errors.js";
import { type ImagineJob, type ImagineResult, recoveredFailure } from "../../core/pipeline.js";
import type { RecoveredJob } from "../../core/queue/contract.js";
import { readWebSettings, WEB_SECRET_VARIABLE } from "../../core/study/webSettings.js";
import type { ImageBackend, Logger } from "../../core/types.js";
import type { KeyvVoteStore } from "../../core/votes/index.js";
import { type AnyCommand, CHAT_COMMANDS } from "../chat/commands.js";
import type { AdapterStarter, ChatServices, RunningAdapter } from "../chat/services.js";
import { DEFAULT_STUDY_INTERVAL_MS, studyPoster } from "../chat/studyPoster.js";
import { discordStarter } from "../discord/starter.js";
import { slackStarter } from "../slack/starter.js";
import { type RunningWebServer, startWebServer } from "../web/server.js";

/** Every chat platform serve can run; each starts when its credentials are set. */
export const CHAT_ADAPTERS: AdapterStarter[] = [discordStarter, slackStarter];

/** The longest a shutdown waits for running jobs before failing them. */
export const MAX_GRACE_MS = 30_000;

export interface ServeOptions {
  env?: NodeJS.ProcessEnv;
  adapters?: readonly AdapterStarter[];
  commands?: readonly AnyCommand[];
  /** Replaces the configured image backend (tests). */
  backend?: ImageBackend;
  /** Replaces the configured vote store (tests). */
  votes?: KeyvVoteStore;
  logger?: Logger;
  /** How long a shutdown waits for running jobs; default min(queue deadline, 30 s). */
  graceMs?: number;
  /**
   * Pace of batch-study posting, start to start; default STUDY_POST_INTERVAL_MS from the
   * environment, else one minute.
   */
  studyIntervalMs?: number;
}

export interface ServeHandle {
  readonly adapters: readonly RunningAdapter[];
  readonly services: ChatServices;
  /** The web survey, when IMAGINE_WEB_SECRET is set. */
  readonly web: RunningWebServer | undefined;
  /** Stops everything; safe to call more than once (later calls wait for the first). */
  shutdown(reason?: string): Promise<void>;
  /** Resolves once shutdown has finished. */
  readonly closed: Promise<void>;
}

export function noAdapterMessage(adapters: readonly AdapterStarter[] = CHAT_ADAPTERS): string {
  const names = [...new Set([...adapters.map((a) => a.credentials), "SLACK_BOT_TOKEN"])];
  return `No chat platform is configured: set ${names.join(" or ")} (see .env.example) to serve.`;
}

export async function startServe(options: ServeOptions = {}): Promise<ServeHandle> {
  const env = options.env ?? process.env;
  const starters = (options.adapters ?? CHAT_ADAPTERS).filter((a) => a.configured(env));
  if (starters.length === 0)
    throw new UserError("CONFIG_INVALID", noAdapterMessage(options.adapters));

  // Every platform's secrets are masked, whether or not it runs.
  const app = openApp({
    env,
    secretVariables: [
      ...(options.adapters ?? CHAT_ADAPTERS).flatMap((a) => a.secretVariables),
      WEB_SECRET_VARIABLE,
    ],
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
    ...(options.backend !== undefined ? { backend: options.backend } : {}),
    ...(options.votes !== undefined ? { votes: options.votes } : {}),
  });
  const { config, logger } = app;
  let services: ChatServices;
  let studyIntervalMs: number;
  try {
    studyIntervalMs = options.studyIntervalMs ?? studyIntervalFromEnv(env);
    services = {
      config,
      logger,
      arms: app.arms,
      pipeline: await app.pipeline(),
      votes: await app.votes(),
      studies: app.studies(),
      ...(env[WEB_SECRET_VARIABLE]?.trim() ? { web: readWebSettings(env) } : {}),
      commands: options.commands ?? CHAT_COMMANDS,
    };
  } catch (error) {
    await app.close();
    throw error;
  }
  const { pipeline, studies } = services as Required<ChatServices>;
  // Every arm of a running study is loaded and warmed before its first image, here and when a
  // study starts, so that no arm's first image is slower than the others' (a timing side channel).
  studies.setWarmer(app.arms);
  const warm = await studies.warmOpenStudies();
  if (warm.warmed.length > 0) logger.info({ studies: warm.warmed.length }, "study arms warm");

  const adapters: RunningAdapter[] = [];
  try {
    for (const starter of starters) {
      adapters.push(await starter.start(services, env));
      logger.info({ adapter: starter.name }, "adapter started");
    }
  } catch (error) {
    await Promise.allSettled(adapters.map((adapter) => adapter.close()));
    await app.close();
    throw error;
  }

  // The web survey and results pages, when their link secret is set.
  let web: RunningWebServer | undefined;
  if (services.web !== undefined) {
    try {
      web = await startWebServer({
        settings: services.web,
        dataDir: config.dataDir,
        votes: services.votes as KeyvVoteStore,
        studies,
        logger,
      });
      logger.info({ url: web.url, publicUrl: web.publicUrl }, "web survey listening");
    } catch (error) {
      await Promise.allSettled(adapters.map((adapter) => adapter.close()));
      await app.close();
      throw error;
    }
  }

  // Batch studies are posted by the adapter that owns each study's channel; running ones resume.
  studies.setPoster(
    studyPoster(adapters, services, {
      intervalMs: studyIntervalMs,
    }),
  );
  const resumed = await studies.resumePosting().catch((error: unknown) => {
    logger.error({ err: error }, "batch studies could not be resumed");
    return [];
  });
  if (resumed.length > 0) logger.info({ studies: resumed }, "batch study posting resumed");

  // On the shared queue: the jobs an earlier process under this id took and never answered
  // (it was killed or restarted mid-job) are published now, in their channels, when they finish.
  const recovered = await pipeline.jobs.recover(app.chatId).catch((error: unknown) => {
    logger.error({ err: error }, "unpublished jobs could not be read from the queue");
    return [];
  });
  if (recovered.length > 0) logger.info({ jobs: recovered.length }, "publishing recovered jobs");
  const recovering = Promise.allSettled(
    recovered.map((job) => publishRecovered(job, adapters, logger)),
  );

  const graceMs = options.graceMs ?? Math.min(config.queue.deadlineMs, MAX_GRACE_MS);
  let closing: Promise<void> | undefined;
  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => {
    markClosed = resolve;
  });
  const shutdown = (reason = "shutdown") => {
    closing ??= (async () => {
      logger.info({ reason, graceMs }, "shutting down: no new commands");
      for (const adapter of adapters) adapter.stopAccepting();
      // Batch studies post nothing more.
      await studies.close().catch((error: unknown) => {
        logger.warn({ err: error }, "studies did not close cleanly");
      });
      const drained = Promise.all(adapters.map((adapter) => adapter.drain()));
      if (!(await within(drained, graceMs))) {
        logger.warn({ graceMs }, "grace period over: failing unfinished jobs");
      }
      // Fails whatever is left with "shutting down"; the adapters tell the people waiting.
      await pipeline.close();
      await recovering;
      if (!(await within(drained, 5_000)))
        logger.warn({}, "some replies were not sent before exit");
      await Promise.allSettled([
        ...adapters.map((adapter) => adapter.close()),
        ...(web === undefined ? [] : [web.close()]),
      ]);
      await app.close();
      logger.info({}, "stopped");
    })().finally(markClosed);
    return closing;
  };
  return { adapters, services, web, shutdown, closed };
}

/**
 * Publishes a recovered job once across chat processes (the queue's delivery claim, a lease
 * confirmed after the post): in place of the original reply while the platform still lets the
 * bot edit it (Discord: 15 minutes), with the images or the failure; after that as ordinary
 * channel messages, the images or the public failure line with the job's reference.
 *
 * A process killed after its claim and before the confirmation leaves the job to its next
 * restart, which posts it again: an edit of the original reply replaces itself, and images the
 * killed process already posted in the channel are skipped (their message is remembered with
 * the generation before the next is posted); only a failure line or an image posted in the
 * instant before its message was remembered can then appear twice.
 */
export async function publishRecovered(
  job: RecoveredJob<ImagineJob, ImagineResult>,
  adapters: readonly RunningAdapter[],
  logger: Logger,
): Promise<void> {
  const { request } = job.data;
  const log = logger.child({ job: job.id, reference: job.data.reference });
  const adapter = adapters.find((a) => a.name === request.platform);
  let outcome: { result: ImagineResult } | { error: unknown };
  try {
    outcome = { result: await job.result };
  } catch (error) {
    // Shutting down again: the job stays listed for the next start.
    if (isBotError(error) && error.code === "QUEUE_CLOSED") return;
    outcome = { error: recoveredFailure(error, job.data.reference) };
    // Its reply names the reference only: the reason is in the log, under it.
    log.warn({ err: error }, "a recovered job failed");
  }
  if (adapter === undefined) {
    // Left listed: a start with that platform's adapter publishes it.
    log.warn({ platform: request.platform }, "a recovered job's platform is not running here");
    return;
  }
  if (!(await job.claimDelivery())) return;
  try {
    await postRecovered(request, outcome, adapter, log);
  } catch (error) {
    log.error({ err: error }, "a recovered job could not be posted");
  }
  // Posted or given up: either way no later start posts it again.
  await job.confirmDelivery().catch((error: unknown) => {
    log.warn({ err: error }, "delivery not confirmed to the queue");
  });
}

async function postRecovered(
  request: ImagineJob["request"],
  outcome: { result: ImagineResult } | { error: unknown },
  adapter: RunningAdapter,
  log: Logger,
): Promise<void> {
  const requester = request.requester.replace(`${request.platform}:`, "");
  const resumed =
    request.replyHandle === undefined || adapter.resumeReply === undefined
      ? undefined
      : await adapter.resumeReply(request.replyHandle, outcome, requester).catch((error) => {
          log.warn({ err: error }, "the original reply could not be edited");
          return undefined;
        });
  if (resumed !== undefined) {
    log.info({ messages: resumed.map((m) => m.ref) }, "recovered job answered in its reply");
    return;
  }
  if (request.channel === undefined) {
    log.warn({ platform: request.platform }, "a recovered job has no channel to post in");
    return;
  }
  if ("error" in outcome) {
    const posted = await adapter.postFailure?.(request.channel, outcome.error);
    if (posted === undefined) {
      log.warn({ err: outcome.error }, "a recovered job's failure could not be posted");
    } else {
      log.info({ message: posted.ref }, "recovered job's failure posted in its channel");
    }
    return;
  }
  if (adapter.postResult === undefined) {
    log.warn({ platform: request.platform }, "no running adapter can post a recovered job");
    return;
  }
  const posted = await adapter.postResult(request.channel, outcome.result);
  log.info({ messages: posted.map((m) => m.ref) }, "recovered job posted in its channel");
}

function studyIntervalFromEnv(env: NodeJS.ProcessEnv): number {
  const raw = env.STUDY_POST_INTERVAL_MS?.trim();
  if (raw === undefined || raw === "") return DEFAULT_STUDY_INTERVAL_MS;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) {
    throw new UserError(
      "CONFIG_INVALID",
      `STUDY_POST_INTERVAL_MS must be a number of milliseconds ≥ 0, got "${raw}"`,
    );
  }
  return value;
}

/** Resolves true when `promise` settles within `ms`, false otherwise. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function registerServeCommands(program: Command): void {
  program
    .command("serve")
    .description(
      "Run the chat bots whose credentials are set (DISCORD_TOKEN; Slack: SLACK_BOT_TOKEN) until\n" +
        "SIGINT/SIGTERM. DISCORD_CHANNELS / SLACK_CHANNELS=id,id limit commands to those channels.",
    )
    .action(async () => {
      const handle = await startServe();
      const onSignal = (signal: NodeJS.Signals) => {
        void handle.shutdown(signal);
      };
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      try {
        await handle.closed;
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}
