/**
 * The image backend a deployment renders with, from its configuration:
 *
 *   image.backends (IMAGE_BACKENDS)   a pool of those servers (src/core/image/pool.ts)
 *   the single-backend settings       that backend alone, as before (src/core/image/registry.ts);
 *                                     a pool of one when slots are shared across workers, so
 *                                     that queue.concurrency holds for all of them together
 *
 * Each member is built by the registry from the configuration with its own settings put in
 * place of the single-backend ones, and health-checked by the same call doctor makes.
 */
import type { BackendMemberConfig, Config, Secrets } from "../config.js";
import type { ImageBackend } from "../types.js";
import { backendNames } from "./backendList.js";
import { type BackendCapacity, memoryCapacity, redisCapacity } from "./capacity.js";
import { checkImageBackend } from "./health.js";
import { type BackendPoolOptions, createBackendPool, type PoolMember } from "./pool.js";
import { createImageBackend, type ImageBackendOptions, inferBackend } from "./registry.js";

export interface ConfiguredBackend {
  name: string;
  /** The configuration with this backend's settings as the single-backend ones. */
  config: Config;
  concurrency: number;
  weight: number;
  /** "automatic1111 at http://gpu1:7860" (never credentials). */
  description: string;
}

export interface OpenImageBackendOptions extends ImageBackendOptions {
  /**
   * A Redis URL (the queue's, IMAGINE_QUEUE_URL) on which every worker counts the backends'
   * slots, so that each backend's concurrency holds across processes.
   */
  sharedSlotsUrl?: string;
  /** Replaces the slot counting (tests, bench). */
  capacity?: BackendCapacity;
  /** Pool settings tests replace (seeded weights, health callbacks, clock). */
  pool?: Pick<BackendPoolOptions, "random" | "onHealthChange" | "now" | "pollMs">;
}

/** Whether the configuration lists several backends (image.backends). */
export function hasBackendList(config: Config): boolean {
  return (config.image.backends?.length ?? 0) > 0;
}

/**
 * The backends the configuration names: image.backends, or the single-backend settings as a
 * list of one (named after its kind, with queue.concurrency). ConfigError when there is none.
 */
export function configuredBackends(config: Config, secrets: Secrets): ConfiguredBackend[] {
  const members = config.image.backends ?? [];
  if (members.length === 0) {
    const kind = config.image.backend ?? inferBackend(config, secrets);
    const image = config.image;
    const where =
      kind === "automatic1111"
        ? image.automatic1111.url
        : kind === "comfyui"
          ? image.comfyui.url
          : kind === "huggingface"
            ? (image.huggingface.endpointUrl ?? image.huggingface.model)
            : undefined;
    return [
      {
        name: kind,
        config: { ...config, image: { ...image, backend: kind } },
        concurrency: config.queue.concurrency,
        weight: 1,
        description: describe(kind, where),
      },
    ];
  }
  const names = backendNames(members);
  return members.map((member, index) => ({
    name: names[index] as string,
    config: memberConfig(config, member),
    concurrency: member.concurrency ?? 1,
    weight: member.weight ?? 1,
    description: describe(
      member.backend,
      member.url ??
        (member.backend === "huggingface"
          ? (member.model ?? config.image.huggingface.model)
          : undefined),
    ),
  }));
}

/** The configuration as if this member were the only backend. */
function memberConfig(config: Config, member: BackendMemberConfig): Config {
  const image = config.image;
  return {
    ...config,
    image: {
      ...image,
      backend: member.backend,
      backends: undefined,
      retries: member.retries ?? 0,
      automatic1111: {
        url: member.url,
        sampler: member.sampler ?? image.automatic1111.sampler,
      },
      comfyui: {
        url: member.url,
        workflowFile: member.workflowFile ?? image.comfyui.workflowFile,
      },
      huggingface: {
        ...image.huggingface,
        model: member.model ?? image.huggingface.model,
        endpointUrl: member.backend === "huggingface" ? member.url : undefined,
      },
    },
  };
}

function describe(kind: string, where: string | undefined): string {
  if (where === undefined) return kind;
  try {
    const url = new URL(where);
    return `${kind} at ${url.origin}${url.pathname.replace(/\/+$/, "")}`;
  } catch {
    return `${kind} ${where}`;
  }
}

/**
 * The deployment's image backend. Without image.backends it is the registry's single backend,
 * unchanged, even with the queue on Redis: each worker then limits its own renders
 * (queue.concurrency), as workers on separate GPU boxes with their own A1111_URL expect.
 */
export function openImageBackend(
  config: Config,
  secrets: Secrets,
  options: OpenImageBackendOptions = {},
): ImageBackend {
  if (!hasBackendList(config) && options.capacity === undefined) {
    return createImageBackend(config, secrets, options);
  }
  const settings = config.image.pool ?? {};
  const capacity =
    options.capacity ??
    (options.sharedSlotsUrl === undefined
      ? memoryCapacity()
      : redisCapacity({
          url: options.sharedSlotsUrl,
          prefix: `${config.queue.prefix ?? "imagine"}:backend-slots:`,
          leaseTtlMs: settings.leaseTtlMs,
          logger: options.logger,
        }));
  const members: PoolMember[] = [];
  try {
    for (const configured of configuredBackends(config, secrets)) {
      members.push({
        name: configured.name,
        // Two deployments may both call their server "automatic1111": the slots are the server's.
        slotKey: `${configured.name} ${configured.description}`,
        backend: createImageBackend(configured.config, secrets, options),
        concurrency: configured.concurrency,
        weight: configured.weight,
        description: configured.description,
        probe: () => checkImageBackend(configured.config, secrets, { fetch: options.fetch }),
      });
    }
  } catch (error) {
    for (const member of members) void member.backend.close();
    void capacity.close();
    throw error;
  }
  return createBackendPool(members, {
    capacity,
    logger: options.logger,
    backoffBaseMs: settings.backoffBaseMs,
    backoffMaxMs: settings.backoffMaxMs,
    healthIntervalMs: settings.healthIntervalMs,
    ...options.pool,
  });
}
