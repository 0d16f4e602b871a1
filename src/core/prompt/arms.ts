/**
 * Arms: named prompt generators from config (for example base, ft-no-tags, ft-tags), each a
 * model directory or a remote model with its own sampling settings. Models load on first use
 * and are shared: two arms on one model directory, or many concurrent requests, use one
 * onnxruntime session. `warm` loads a list of arms ahead of use (a study's, when it starts), so
 * that no arm's first image is slower than the others'.
 *
 * Info-level logs never name an arm (a study's items must not be traceable to their arm from a
 * log line next to them); the arm and its model appear at debug level only.
 */
import { resolve } from "node:path";
import { type ArmConfig, armSampling, type Config, type Secrets } from "../config.js";
import { UserError } from "../errors.js";
import { readPulledArms } from "../models/registry.js";
import type { Logger, PromptGenerator } from "../types.js";
import { Gpt2OnnxDecoder } from "./onnxDecoder.js";
import { OnnxPromptGenerator } from "./onnxGenerator.js";
import { createRemoteGenerator } from "./remote.js";

/** One arm made ready by PromptArms.warm. */
export interface ArmWarmUp {
  arm: string;
  /** Loading plus the tiny generation, in milliseconds (0 when it was already warm). */
  ms: number;
}

/** The generation that warms an arm: one prompt of one new token (prefill + one decoding step). */
const WARM_UP_REQUEST = { subject: "a lighthouse", count: 1, seed: 0, maxNewTokens: 1 } as const;

export class PromptArms {
  private readonly decoders = new Map<string, Promise<Gpt2OnnxDecoder>>();
  private readonly generators = new Map<string, Promise<PromptGenerator>>();
  /** Arms that have run their warm-up generation (a failed one is forgotten, to be retried). */
  private readonly warmed = new Map<string, Promise<void>>();
  /** The configured arms over those `models pull` registered in the data directory. */
  private readonly arms: Record<string, ArmConfig>;

  constructor(
    private readonly config: Config,
    private readonly secrets: Secrets,
    private readonly logger: Logger,
  ) {
    this.arms = { ...readPulledArms(config.dataDir), ...config.arms };
  }

  get names(): string[] {
    return Object.keys(this.arms);
  }

  get defaultArm(): string {
    return this.config.defaultArm;
  }

  /** The generator of a configured arm (the default arm when no name is given). */
  get(name: string = this.config.defaultArm): Promise<PromptGenerator> {
    const arm = this.armConfig(name);
    return this.cached(`arm:${name}`, () => this.create(name, arm));
  }

  private armConfig(name: string): ArmConfig {
    const arm = Object.hasOwn(this.arms, name) ? this.arms[name] : undefined;
    if (!arm) {
      throw new UserError(
        "ARM_UNKNOWN",
        `There is no arm called "${name}". Configured arms: ${this.names.join(", ")}.`,
      );
    }
    return arm;
  }

  /**
   * Loads every named arm and runs one tiny generation on each (one new token; for a remote arm
   * one short request, which also wakes a cold endpoint), so that the first real request of
   * every arm costs what the later ones do. The arms are warmed one after another (loading two
   * large models at once only competes for the same cores); an arm already warm costs nothing.
   * Rejects after every arm was tried, with the first failure (ARM_UNKNOWN for a name that is
   * not configured).
   */
  async warm(names: readonly string[]): Promise<ArmWarmUp[]> {
    const unique = [...new Set(names)];
    for (const name of unique) this.armConfig(name); // ARM_UNKNOWN before any work
    const done: ArmWarmUp[] = [];
    const failures: unknown[] = [];
    const started = performance.now();
    for (const name of unique) {
      const before = performance.now();
      const already = this.warmed.has(name);
      try {
        await this.warmOne(name);
        done.push({ arm: name, ms: already ? 0 : Math.round(performance.now() - before) });
        this.logger.debug({ arm: name, ms: done.at(-1)?.ms }, "prompt arm warmed");
      } catch (error) {
        failures.push(error);
        this.logger.debug({ arm: name, err: error }, "prompt arm warm-up failed");
      }
    }
    if (failures.length > 0) throw failures[0];
    this.logger.info(
      { arms: unique.length, ms: Math.round(performance.now() - started) },
      "prompt arms warmed",
    );
    return done;
  }

  private warmOne(name: string): Promise<void> {
    let warming = this.warmed.get(name);
    if (!warming) {
      warming = this.get(name).then(async (generator) => {
        await generator.generate({ ...WARM_UP_REQUEST });
      });
      this.warmed.set(name, warming);
      warming.catch(() => this.warmed.delete(name));
    }
    return warming;
  }

  /** A generator for a model directory outside the configuration (the CLI's --model). */
  forModelDir(dir: string): Promise<PromptGenerator> {
    const path = resolve(dir);
    return this.cached(`dir:${path}`, async () => {
      const decoder = await this.decoder(path);
      return new OnnxPromptGenerator(decoder, { sampling: this.config.sampling });
    });
  }

  private cached(key: string, make: () => Promise<PromptGenerator>): Promise<PromptGenerator> {
    let generator = this.generators.get(key);
    if (!generator) {
      generator = make();
      this.generators.set(key, generator);
      // A failed load is not cached: the next request retries (the files may have been fixed).
      generator.catch(() => this.generators.delete(key));
    }
    return generator;
  }

  private async create(name: string, arm: ArmConfig): Promise<PromptGenerator> {
    const sampling = armSampling(this.config, arm);
    if (arm.kind === "onnx") {
      const decoder = await this.decoder(arm.modelDir);
      this.logger.debug({ arm: name, modelDir: arm.modelDir }, "prompt model loaded");
      this.logger.info({}, "prompt model loaded");
      return new OnnxPromptGenerator(decoder, { sampling, maxNewTokens: arm.maxNewTokens });
    }
    return createRemoteGenerator({
      model: arm.model,
      endpointUrl: arm.endpointUrl,
      provider: arm.provider,
      token: this.secrets.hfToken,
      tags: arm.tags,
      maxNewTokens: arm.maxNewTokens,
      sampling,
      timeoutMs: this.config.remote.timeoutMs,
      retries: this.config.remote.retries,
      // No arm on the remote's retry warnings: study arms stay out of the info log.
      logger: this.logger,
    });
  }

  private decoder(dir: string): Promise<Gpt2OnnxDecoder> {
    const path = resolve(dir);
    let decoder = this.decoders.get(path);
    if (!decoder) {
      const { threads, spinning } = this.config.prompt;
      decoder = Gpt2OnnxDecoder.load(path, { threads, spinning });
      this.decoders.set(path, decoder);
      decoder.catch(() => this.decoders.delete(path));
    }
    return decoder;
  }

  /** Releases every loaded session. */
  async close(): Promise<void> {
    const generators = [...this.generators.values()];
    const decoders = [...this.decoders.values()];
    this.generators.clear();
    this.decoders.clear();
    this.warmed.clear();
    await Promise.allSettled(generators.map(async (g) => (await g).close()));
    await Promise.allSettled(decoders.map(async (d) => (await d).close()));
  }
}
