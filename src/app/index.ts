/**
 * The composition root: what `imagine-bot serve`, `imagine` and the other commands run on,
 * opened in one place and closed in one order.
 *
 *   config + logger (every secret masked)   at once
 *   arms (prompt models load on first use)  at once
 *   image backend, vote store, pipeline,    on first use, once: `prompt` never needs an image
 *   studies                                 backend, `stats` never loads a model
 *
 * close(): the pipeline first (unfinished jobs fail, running stages end), then the studies
 * (batch posting stops), then what they used: arms, backend, vote store.
 *
 * @example
 * ```ts
 * const app = openApp();
 * try {
 *   const pipeline = await app.pipeline();
 *   await pipeline.imagine({ subject: "a lighthouse", requester: "cli:ann", platform: "cli" });
 * } finally {
 *   await app.close();
 * }
 * ```
 */
import { hostname } from "node:os";
import { type Config, type LoadedConfig, loadConfig } from "../core/config.js";
import { openImageBackend } from "../core/image/backends.js";
import { saveImage } from "../core/image/store.js";
import { createLogger } from "../core/logger.js";
import {
  createPipeline,
  type ImagineJob,
  type ImagineResult,
  imagineResultCodec,
  type Pipeline,
} from "../core/pipeline.js";
import { PromptArms } from "../core/prompt/arms.js";
import { BullmqRenderQueue } from "../core/queue/bullmq.js";
import { loadExplicitFilter } from "../core/safety/index.js";
import { StudyManager } from "../core/study/manager.js";
import type { ImageBackend, Logger } from "../core/types.js";
import { type KeyvVoteStore, openVoteStore } from "../core/votes/index.js";

export interface AppOptions {
  /** Where configuration comes from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Environment variables whose values are masked in every log line (platform secrets). */
  secretVariables?: readonly string[];
  /** Replaces the configured logger (tests). */
  logger?: Logger;
  /** Where the configured logger writes (default stderr; tests). */
  logDestination?: NodeJS.WritableStream;
  /** Replaces the configured image backend (tests). */
  backend?: ImageBackend;
  /** Replaces the configured vote store (tests); the app closes it like its own. */
  votes?: KeyvVoteStore;
}

export interface App {
  readonly config: Config;
  readonly secrets: LoadedConfig["secrets"];
  readonly logger: Logger;
  readonly arms: PromptArms;
  /** The configured image backend; a ConfigError names what to set when there is none. */
  backend(): ImageBackend;
  /** The vote store (votes.storeUrl), also where generations are recorded. */
  votes(): Promise<KeyvVoteStore>;
  /**
   * The imagine pipeline over the backend and the vote store. With queue.url (IMAGINE_QUEUE_URL)
   * its jobs go to the shared BullMQ queue and `imagine-bot worker` processes run them.
   */
  pipeline(): Promise<Pipeline>;
  /**
   * This chat process's id on the shared queue (IMAGINE_CHAT_ID, default the host name): a
   * process restarted under the same id publishes the results of the jobs its predecessor took.
   */
  readonly chatId: string;
  /** Studies in the data directory. */
  studies(): StudyManager;
  /** Closes what was opened, in order; later calls wait for the first. */
  close(): Promise<void>;
}

/** Loads the configuration (a ConfigError names the setting) and opens nothing else yet. */
export function openApp(options: AppOptions = {}): App {
  const env = options.env ?? process.env;
  const loaded = loadConfig(env);
  const { config, secrets } = loaded;
  const platformSecrets = (options.secretVariables ?? [])
    .map((name) => env[name]?.trim())
    .filter((value): value is string => typeof value === "string" && value.length > 0);
  // IMAGINE_LOG_FILE (set by the CLI for one-shot commands) sends the JSON log lines to a file.
  const logFile = env.IMAGINE_LOG_FILE?.trim() || undefined;
  const logger =
    options.logger ??
    createLogger({
      level: config.log.level,
      ...(options.logDestination !== undefined ? { destination: options.logDestination } : {}),
      ...(logFile !== undefined ? { file: logFile } : {}),
      secrets: [
        ...Object.values(secrets).filter((v): v is string => typeof v === "string"),
        ...platformSecrets,
      ],
    });
  const arms = new PromptArms(config, secrets, logger);
  let backend: ImageBackend | undefined = options.backend;
  let votes: Promise<KeyvVoteStore> | undefined =
    options.votes === undefined ? undefined : Promise.resolve(options.votes);
  let pipeline: Promise<Pipeline> | undefined;
  let studies: StudyManager | undefined;
  let closing: Promise<void> | undefined;

  const app: App = {
    chatId: env.IMAGINE_CHAT_ID?.trim() || hostname(),
    config,
    secrets,
    logger,
    arms,
    backend() {
      // With the queue on Redis, every worker counts the backends' slots there.
      backend ??= openImageBackend(config, secrets, { logger, sharedSlotsUrl: config.queue.url });
      return backend;
    },
    votes() {
      votes ??= openVoteStore(config.votes.storeUrl, { dataDir: config.dataDir, logger });
      return votes;
    },
    pipeline() {
      pipeline ??= (async () => {
        const url = config.queue.url;
        if (url !== undefined) {
          // Workers render; this process only needs the store, for its own commands and votes.
          const store = await app.votes();
          return createPipeline({
            config,
            arms,
            filter: loadExplicitFilter(config.safety),
            store,
            saveImage,
            logger,
            owner: app.chatId,
            renderQueue: new BullmqRenderQueue<ImagineJob, ImagineResult>({
              url,
              ...(config.queue.prefix !== undefined ? { prefix: config.queue.prefix } : {}),
              perUserCap: config.queue.perUserCap,
              globalCap: config.queue.globalCap,
              deadlineMs: config.queue.deadlineMs,
              codec: imagineResultCodec,
              logger,
            }),
          });
        }
        // The backend first, so that a missing one is reported before anything else opens.
        const imageBackend = app.backend();
        return createPipeline({
          config,
          arms,
          backend: imageBackend,
          filter: loadExplicitFilter(config.safety),
          store: await app.votes(),
          saveImage,
          logger,
        });
      })();
      return pipeline;
    },
    studies() {
      studies ??= new StudyManager({ dataDir: config.dataDir, logger });
      return studies;
    },
    close() {
      closing ??= (async () => {
        const opened = await pipeline?.catch(() => undefined);
        await opened?.close();
        await studies?.close().catch((error: unknown) => {
          logger.warn({ err: error }, "studies did not close cleanly");
        });
        const store = await votes?.catch(() => undefined);
        await Promise.allSettled([arms.close(), backend?.close(), store?.close()]);
      })();
      return closing;
    },
  };
  return app;
}
