/**
 * Arms: named prompt generators from config (for example base, ft-no-tags, ft-tags), each a
 * model directory or a remote model with its own sampling settings. Models load on first use
 * and are shared: two arms on one model directory, or many concurrent requests, use one
 * onnxruntime session.
 */
import { resolve } from "node:path";
import { type ArmConfig, armSampling, type Config, type Secrets } from "../config.js";
import { UserError } from "../errors.js";
import type { Logger, PromptGenerator } from "../types.js";
import { Gpt2OnnxDecoder } from "./onnxDecoder.js";
import { OnnxPromptGenerator } from "./onnxGenerator.js";
import { createRemoteGenerator } from "./remote.js";

export class PromptArms {
  private readonly decoders = new Map<string, Promise<Gpt2OnnxDecoder>>();
  private readonly generators = new Map<string, Promise<PromptGenerator>>();

  constructor(
    private readonly config: Config,
    private readonly secrets: Secrets,
    private readonly logger: Logger,
  ) {}

  get names(): string[] {
    return Object.keys(this.config.arms);
  }

  get defaultArm(): string {
    return this.config.defaultArm;
  }

  /** The generator of a configured arm (the default arm when no name is given). */
  get(name: string = this.config.defaultArm): Promise<PromptGenerator> {
    const arm = this.config.arms[name];
    if (!arm) {
      throw new UserError(
        "ARM_UNKNOWN",
        `There is no arm called "${name}". Configured arms: ${this.names.join(", ")}.`,
      );
    }
    return this.cached(`arm:${name}`, () => this.create(name, arm));
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
      this.logger.info({ arm: name, modelDir: arm.modelDir }, "prompt model loaded");
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
      logger: this.logger.child({ arm: name }),
    });
  }

  private decoder(dir: string): Promise<Gpt2OnnxDecoder> {
    const path = resolve(dir);
    let decoder = this.decoders.get(path);
    if (!decoder) {
      decoder = Gpt2OnnxDecoder.load(path, { threads: this.config.prompt.threads });
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
    await Promise.allSettled(generators.map(async (g) => (await g).close()));
    await Promise.allSettled(decoders.map(async (d) => (await d).close()));
  }
}
