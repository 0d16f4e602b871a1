/**
 * One zod schema for every setting. Layers, later wins:
 *   config/default.json  →  the deployer's file (IMAGINE_CONFIG=path)  →  environment variables.
 * Relative paths are resolved against the file that set them (the package root for the
 * defaults, the deployer file's folder for theirs, the working directory for the environment).
 * Secrets come only from the environment and are kept apart from the rest.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { ConfigError } from "./errors.js";
import { BACKENDS_VARIABLE, backendNames, parseBackendList } from "./image/backendList.js";

/** The package root: config/default.json and the shipped models live here. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DEFAULT_CONFIG_FILE = join(PACKAGE_ROOT, "config", "default.json");

const samplingSchema = z
  .object({
    temperature: z.number().min(0).max(10),
    topK: z.number().int().min(0),
    topP: z.number().gt(0).max(1),
    repetitionPenalty: z.number().min(1).max(10),
  })
  .strict();

const tagsSchema = z.object({ start: z.string().min(1), end: z.string().min(1) }).strict();

const onnxArmSchema = z
  .object({
    kind: z.literal("onnx"),
    /** A model directory: model.onnx + imagine-model.json (see src/core/prompt/modelDir.ts). */
    modelDir: z.string().min(1),
    sampling: samplingSchema.partial().optional(),
    maxNewTokens: z.number().int().positive().optional(),
  })
  .strict();

const remoteArmSchema = z
  .object({
    kind: z.literal("remote"),
    /** A Hugging Face model id served by Inference Providers… */
    model: z.string().min(1).optional(),
    /** …or a dedicated endpoint URL (exactly one of the two). */
    endpointUrl: z.url().optional(),
    provider: z.string().min(1).optional(),
    tags: tagsSchema.nullable(),
    maxNewTokens: z.number().int().positive(),
    sampling: samplingSchema.partial().optional(),
  })
  .strict()
  .refine((arm) => (arm.model === undefined) !== (arm.endpointUrl === undefined), {
    message: "set exactly one of model or endpointUrl",
  });

const armSchema = z.discriminatedUnion("kind", [onnxArmSchema, remoteArmSchema]);

const ARM_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/**
 * One server of several (image.backends / IMAGE_BACKENDS, see src/core/image/pool.ts). Settings
 * left out come from the single-backend ones (image.automatic1111.sampler, …, image.retries).
 */
const backendMemberSchema = z
  .object({
    /** Unique; default: its kind and position among that kind ("automatic1111-2"). */
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "letters, digits, _ . - (at most 64)")
      .optional(),
    backend: z.enum(["huggingface", "automatic1111", "comfyui"]),
    /** The server (automatic1111, comfyui) or a dedicated endpoint (huggingface). */
    url: z.url().optional(),
    /** Renders at once on this backend, across every worker when slots are shared. Default 1. */
    concurrency: z.number().int().min(1).max(64).optional(),
    /** Share of renders while several backends have room. Default 1. */
    weight: z.number().positive().max(1000).optional(),
    /** Retries on this backend before the pool tries another. Default 0. */
    retries: z.number().int().min(0).max(10).optional(),
    sampler: z.string().min(1).optional(),
    workflowFile: z.string().min(1).optional(),
    /** huggingface: the model id (default image.huggingface.model). */
    model: z.string().min(1).optional(),
  })
  .strict()
  .refine((member) => member.backend === "huggingface" || member.url !== undefined, {
    path: ["url"],
    message: "automatic1111 and comfyui backends need the server's url",
  });

export type BackendMemberConfig = z.infer<typeof backendMemberSchema>;

export const configSchema = z
  .object({
    /** Where the vote store, images and logs live (IMAGINE_DATA_DIR). */
    dataDir: z.string().min(1),
    /** The arm /imagine uses outside a study; its modelDir can be set with IMAGINE_MODEL_DIR. */
    defaultArm: z.string().regex(ARM_NAME),
    arms: z.record(
      z.string().regex(ARM_NAME, "arm names are lowercase, digits, - and _"),
      armSchema,
    ),
    /** Sampling defaults for every arm; an arm's own sampling overrides them field by field. */
    sampling: samplingSchema,
    prompt: z
      .object({
        /** Prompts written per subject when the request does not say. */
        count: z.number().int().min(1).max(16),
        maxSubjectLength: z.number().int().min(1).max(1000),
        /** onnxruntime intra-op threads; 0 lets onnxruntime use every core. */
        threads: z.number().int().min(0).max(256),
        /**
         * Let those threads spin-wait between kernels instead of sleeping: faster on a host the
         * bot has to itself, twice as slow on a busy one (README, Configuration).
         */
        spinning: z.boolean(),
      })
      .strict(),
    remote: z
      .object({
        timeoutMs: z.number().int().positive(),
        retries: z.number().int().min(0).max(10),
      })
      .strict(),
    /** Image rendering: which backend, and the generation parameters every backend gets. */
    image: z
      .object({
        /** null: none configured; `imagine` then says what to set (IMAGE_BACKEND). */
        backend: z.enum(["huggingface", "automatic1111", "comfyui", "local"]).nullable(),
        width: z.number().int().min(64).max(2048).multipleOf(8),
        height: z.number().int().min(64).max(2048).multipleOf(8),
        steps: z.number().int().min(1).max(200),
        guidance: z.number().min(0).max(30),
        negativePrompt: z.string(),
        timeoutMs: z.number().int().positive(),
        retries: z.number().int().min(0).max(10),
        huggingface: z
          .object({
            /** Model id on the Hub (HF_IMAGE_MODEL); the paper rendered with Stable Diffusion 2.0. */
            model: z.string().min(1),
            provider: z.string().min(1).optional(),
            /** A dedicated Inference Endpoint instead of the model id (HF_ENDPOINT_URL). */
            endpointUrl: z.url().optional(),
          })
          .strict(),
        automatic1111: z.object({ url: z.url().optional(), sampler: z.string().min(1) }).strict(),
        comfyui: z
          .object({
            url: z.url().optional(),
            /** API-format workflow JSON; relative to the file that set it. */
            workflowFile: z.string().min(1),
          })
          .strict(),
        /** Several backends at once (IMAGE_BACKENDS); replaces image.backend when set. */
        backends: z.array(backendMemberSchema).optional(),
        /** How the pool of image.backends takes backends out of rotation and back. */
        pool: z
          .object({
            /** First time out of rotation after a failure; doubles per consecutive failure. */
            backoffBaseMs: z.number().int().min(10),
            backoffMaxMs: z.number().int().min(10),
            /** Health calls to backends in rotation; 0 turns them off. */
            healthIntervalMs: z.number().int().min(0),
            /** A worker's slot on a backend lapses this long after it stops renewing it. */
            leaseTtlMs: z.number().int().min(1000),
          })
          .partial()
          .strict()
          .optional(),
        /** Stable Diffusion in this process (IMAGE_BACKEND=local, src/core/image/local/). */
        local: z
          .object({
            /** A diffusers ONNX export (SD_MODEL_DIR); relative to the file that set it. */
            modelDir: z.string().min(1).optional(),
            /** Replaces the export's scheduler class (SD_SCHEDULER). */
            scheduler: z.enum(["euler", "euler_a", "ddim", "turbo"]).optional(),
            /** Replace image.steps / guidance / width / height for this backend (SD-Turbo: 1–4 steps, guidance 0, 512). */
            steps: z.number().int().min(1).max(200).optional(),
            guidance: z.number().min(0).max(30).optional(),
            width: z.number().int().min(64).max(2048).multipleOf(8).optional(),
            height: z.number().int().min(64).max(2048).multipleOf(8).optional(),
            /** auto: CUDA when onnxruntime-node offers it and it loads, else CPU (SD_DEVICE). */
            device: z.enum(["auto", "cpu", "cuda"]),
            /** onnxruntime intra-op threads; 0 = every core. */
            threads: z.number().int().min(0).max(256),
            /** Renders at once in this process; 1 keeps one UNet's activations in memory. */
            concurrency: z.number().int().min(1).max(16),
          })
          .strict(),
      })
      .strict(),
    /** The job queue in front of prompt generation and rendering. */
    queue: z
      .object({
        /** Renders running at once per backend. */
        concurrency: z.number().int().min(1).max(64),
        /** Jobs one person may have waiting or running. */
        perUserCap: z.number().int().min(1).max(100),
        /** Jobs waiting or running in total. */
        globalCap: z.number().int().min(1).max(10_000),
        /** A job still unfinished after this long is cancelled and reported. */
        deadlineMs: z.number().int().positive(),
        /**
         * Redis for a queue shared by several processes (IMAGINE_QUEUE_URL): chat processes
         * submit to it and `imagine-bot worker` processes run the jobs (src/core/queue/bullmq.ts).
         * Unset: the in-process queue.
         */
        url: z
          .string()
          .regex(/^rediss?:\/\/\S+$/, "a redis:// or rediss:// URL")
          .optional(),
        /** Redis key prefix of the shared queue, so that deployments can share one Redis. */
        prefix: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,64}$/, "letters, digits, _ . - (at most 64)")
          .optional(),
      })
      .strict(),
    /** Votes: the vote store and the reactions that mean a score (index 0 = score 1). */
    votes: z
      .object({
        /** sqlite://path (embedded, default), redis://…, postgresql://…, or memory:// (tests). */
        storeUrl: z.string().min(1),
        discordEmoji: z
          .object({
            quality: z.array(z.string().min(1)).length(4),
            faithfulness: z.array(z.string().min(1)).length(4),
          })
          .strict(),
        /** Slack reaction names, without colons. */
        slackEmoji: z
          .object({
            quality: z.array(z.string().min(1)).length(4),
            faithfulness: z.array(z.string().min(1)).length(4),
          })
          .strict(),
        /**
         * Reconciliation (stored votes brought to the visible reactions on start and after a
         * reconnect) looks at the image messages of the last this many days, plus every message
         * of a running study however old; 0 means the running studies' messages only.
         */
        reconcileDays: z.number().min(0).max(365),
      })
      .strict(),
    /** Discord: channel ids where commands are answered; empty = every channel (DISCORD_CHANNELS). */
    discord: z
      .object({
        channels: z.array(z.string().regex(/^\d{17,20}$/, "a Discord channel id (17–20 digits)")),
      })
      .strict(),
    /** Slack: conversation ids where commands are answered; empty = every channel (SLACK_CHANNELS). */
    slack: z
      .object({
        channels: z.array(z.string().regex(/^[CG][A-Z0-9]{6,}$/, "a Slack channel id (C… or G…)")),
      })
      .strict(),
    /** The explicit-text filter (src/core/safety): the shipped blocklist plus these changes. */
    safety: z
      .object({
        /** Extra words or phrases to block, matched like the shipped list. */
        extraBlockedWords: z.array(z.string().min(1)),
        /** Shipped entries to stop blocking (exact entries of the list). */
        allowedWords: z.array(z.string().min(1)),
      })
      .strict(),
    log: z
      .object({ level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]) })
      .strict(),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (!(config.defaultArm in config.arms)) {
      ctx.addIssue({
        code: "custom",
        path: ["defaultArm"],
        message: `"${config.defaultArm}" is not one of the configured arms (${Object.keys(config.arms).join(", ") || "none"})`,
      });
    }
    const members = config.image.backends ?? [];
    if (members.length > 0 && config.image.backend !== null) {
      ctx.addIssue({
        code: "custom",
        path: ["image", "backend"],
        message: `image.backends (${BACKENDS_VARIABLE}) lists the backends: leave image.backend (IMAGE_BACKEND) unset`,
      });
    }
    const names = backendNames(members);
    for (const [index, name] of names.entries()) {
      if (names.indexOf(name) !== index) {
        ctx.addIssue({
          code: "custom",
          path: ["image", "backends", index, "name"],
          message: `"${name}" names two backends; give each a unique name`,
        });
      }
    }
  });

export type Config = z.infer<typeof configSchema>;
export type ArmConfig = z.infer<typeof armSchema>;
export type SamplingConfig = z.infer<typeof samplingSchema>;

/** Secrets, read only from the environment and never written to a config file or a log. */
export interface Secrets {
  hfToken?: string;
}

export interface LoadedConfig {
  config: Config;
  secrets: Secrets;
  /** The files that were read, in order, for --help and error messages. */
  sources: string[];
}

type Json = Record<string, unknown>;

/** Environment variables mapped onto settings; named in errors when their value is wrong. */
const ENV_SETTINGS: { variable: string; path: (config: Json) => string[]; isPath?: boolean }[] = [
  { variable: "IMAGINE_DATA_DIR", path: () => ["dataDir"], isPath: true },
  {
    variable: "IMAGINE_MODEL_DIR",
    // Only onto an arm that exists; otherwise the defaultArm error below says what is wrong.
    path: (config) => {
      const arms = isPlainObject(config.arms) ? config.arms : {};
      return String(config.defaultArm) in arms
        ? ["arms", String(config.defaultArm), "modelDir"]
        : [];
    },
    isPath: true,
  },
  { variable: "IMAGINE_LOG_LEVEL", path: () => ["log", "level"] },
  { variable: "IMAGE_BACKEND", path: () => ["image", "backend"] },
  { variable: "IMAGINE_VOTE_STORE", path: () => ["votes", "storeUrl"] },
  { variable: "IMAGINE_QUEUE_URL", path: () => ["queue", "url"] },
  { variable: "HF_IMAGE_MODEL", path: () => ["image", "huggingface", "model"] },
  { variable: "HF_ENDPOINT_URL", path: () => ["image", "huggingface", "endpointUrl"] },
  { variable: "A1111_URL", path: () => ["image", "automatic1111", "url"] },
  { variable: "COMFYUI_URL", path: () => ["image", "comfyui", "url"] },
  { variable: "SD_MODEL_DIR", path: () => ["image", "local", "modelDir"], isPath: true },
  { variable: "SD_SCHEDULER", path: () => ["image", "local", "scheduler"] },
  { variable: "SD_DEVICE", path: () => ["image", "local", "device"] },
];

/**
 * Loads and validates the configuration. Throws ConfigError naming each wrong setting, where it
 * came from and what would be valid.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const sources = [DEFAULT_CONFIG_FILE];
  // The shipped model is found in the package; the default data folder is ./data where it runs.
  let merged = resolvePaths(readJsonFile(DEFAULT_CONFIG_FILE), PACKAGE_ROOT, process.cwd());
  const deployerFile = env.IMAGINE_CONFIG?.trim();
  if (deployerFile) {
    const file = resolve(deployerFile);
    if (!existsSync(file)) {
      throw new ConfigError(
        `IMAGINE_CONFIG points to ${file}, which does not exist. Set it to a JSON file with the settings to override (see config/default.json), or unset it.`,
      );
    }
    merged = deepMerge(merged, resolvePaths(readJsonFile(file), dirname(file)));
    sources.push(file);
  }

  const fromEnv = new Map<string, string>();
  for (const setting of ENV_SETTINGS) {
    const value = env[setting.variable]?.trim();
    if (!value) continue;
    const path = setting.path(merged);
    if (path.length === 0) continue;
    setAt(merged, path, setting.isPath ? resolve(value) : value);
    fromEnv.set(path.join("."), setting.variable);
  }
  const backendList = env[BACKENDS_VARIABLE]?.trim();
  if (backendList) {
    const image = isPlainObject(merged.image) ? merged.image : {};
    merged.image = {
      ...image,
      backends: resolveMemberPaths(parseBackendList(backendList), process.cwd()),
    };
    fromEnv.set("image.backends", BACKENDS_VARIABLE);
  }

  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const path = issue.path.join(".");
      const variable = variableFor(fromEnv, path);
      return `  - ${path || "(root)"}: ${issue.message}${variable ? ` (set by ${variable})` : ""}`;
    });
    throw new ConfigError(
      `Invalid configuration (${sources.join(" + ")} + environment):\n${lines.join("\n")}`,
    );
  }
  checkDirectories(parsed.data, fromEnv);
  return { config: parsed.data, secrets: readSecrets(env), sources };
}

/** The variable that set this setting or the list or object it is in (IMAGE_BACKENDS). */
function variableFor(fromEnv: Map<string, string>, path: string): string | undefined {
  for (let at = path; at !== ""; at = at.includes(".") ? at.slice(0, at.lastIndexOf(".")) : "") {
    const variable = fromEnv.get(at);
    if (variable) return variable;
  }
  return undefined;
}

function readSecrets(env: NodeJS.ProcessEnv): Secrets {
  const hfToken = env.HF_TOKEN?.trim();
  return hfToken ? { hfToken } : {};
}

/** Model directories must exist at start-up, not at the first /imagine an hour later. */
function checkDirectories(config: Config, fromEnv: Map<string, string>): void {
  for (const [name, arm] of Object.entries(config.arms)) {
    if (arm.kind !== "onnx") continue;
    const path = `arms.${name}.modelDir`;
    if (!existsSync(arm.modelDir) || !statSync(arm.modelDir).isDirectory()) {
      const variable = fromEnv.get(path);
      throw new ConfigError(
        `${path}${variable ? ` (set by ${variable})` : ""}: ${arm.modelDir} is not a directory. ` +
          "It must be a model directory holding model.onnx and imagine-model.json, as written by training/export_onnx.py.",
      );
    }
  }
}

function readJsonFile(file: string): Json {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(`Cannot read configuration file ${file}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      `Configuration file ${file} is not valid JSON: ${(error as Error).message}`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(`Configuration file ${file} must hold a JSON object`);
  }
  return value as Json;
}

/** Resolves the path-valued settings of one layer against that layer's base folder. */
function resolvePaths(layer: Json, base: string, dataBase = base): Json {
  const resolveFrom = (from: string, value: unknown) =>
    typeof value === "string" && !isAbsolute(value) ? resolve(from, value) : value;
  const resolvePath = (value: unknown) => resolveFrom(base, value);
  const out: Json = { ...layer };
  if ("dataDir" in out) out.dataDir = resolveFrom(dataBase, out.dataDir);
  const image = out.image;
  if (isPlainObject(image) && isPlainObject(image.comfyui) && "workflowFile" in image.comfyui) {
    out.image = {
      ...image,
      comfyui: { ...image.comfyui, workflowFile: resolvePath(image.comfyui.workflowFile) },
    };
  }
  if (isPlainObject(out.image) && Array.isArray(out.image.backends)) {
    out.image = { ...out.image, backends: resolveMemberPaths(out.image.backends, base) };
  }
  const local = isPlainObject(out.image) ? out.image.local : undefined;
  if (isPlainObject(out.image) && isPlainObject(local) && "modelDir" in local) {
    out.image = { ...out.image, local: { ...local, modelDir: resolvePath(local.modelDir) } };
  }
  if (out.arms && typeof out.arms === "object") {
    const arms: Json = {};
    for (const [name, arm] of Object.entries(out.arms as Json)) {
      arms[name] =
        arm && typeof arm === "object" && "modelDir" in arm
          ? { ...(arm as Json), modelDir: resolvePath((arm as Json).modelDir) }
          : arm;
    }
    out.arms = arms;
  }
  return out;
}

/** A ComfyUI member's workflowFile, relative to the file (or working directory) that set it. */
function resolveMemberPaths(members: unknown[], base: string): unknown[] {
  return members.map((member) =>
    isPlainObject(member) && typeof member.workflowFile === "string"
      ? { ...member, workflowFile: resolve(base, member.workflowFile) }
      : member,
  );
}

function deepMerge(base: Json, override: Json): Json {
  const out: Json = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Json {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function setAt(target: Json, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (!isPlainObject(node[key])) node[key] = {};
    node = node[key] as Json;
  }
  node[path[path.length - 1] as string] = value;
}

/** Sampling for an arm: the global defaults overridden by the arm's own settings. */
export function armSampling(config: Config, arm: ArmConfig): SamplingConfig {
  return { ...config.sampling, ...arm.sampling };
}
