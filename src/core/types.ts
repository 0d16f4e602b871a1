/**
 * The contracts between imagine-bot's layers. Adapters (Discord, Slack, CLI) and commands depend
 * on these; implementations live next to them in src/core and stay lean.
 *
 * Dependency direction: adapters → commands → core. Nothing in src/core imports an adapter, a
 * command or a platform SDK (test/boundary.test.ts fails if it does).
 */

/**
 * How the next token is drawn from the model's logits. Applied in this order: repetition
 * penalty, temperature, top-k, top-p, then a draw from the seeded random source.
 *
 * @example
 * const sampling: SamplingSettings = { temperature: 0.9, topK: 50, topP: 0.95, repetitionPenalty: 1.2 };
 */
export interface SamplingSettings {
  /** Divides the logits; lower is more conservative. 0 means greedy (argmax). */
  temperature: number;
  /** Keep only the k most likely tokens; 0 disables the cut. */
  topK: number;
  /** Keep the smallest set of tokens whose probability sums to at least p; 1 disables the cut. */
  topP: number;
  /**
   * CTRL-style penalty (Keskar et al. 2019) for tokens already in the sequence, subject included:
   * positive logits are divided by it, negative ones multiplied. 1 disables it.
   */
  repetitionPenalty: number;
}

/** One request to a prompt generator. */
export interface GenerateRequest {
  /** The bare subject a person typed, already validated (see validateSubject). */
  subject: string;
  /** How many prompts to write for this subject, decoded together as one batch. */
  count: number;
  /** Same seed, same model, same settings → same prompts. */
  seed: number;
  /** Cap on new tokens; defaults to the model's mean caption length in tokens. */
  maxNewTokens?: number;
  /** Overrides the arm's sampling settings field by field. */
  sampling?: Partial<SamplingSettings>;
  /** Aborts generation between decoding steps (or the remote request). */
  signal?: AbortSignal;
}

/** One prompt written for a subject. */
export interface GeneratedPrompt {
  /** The full prompt text: the subject followed by the model's continuation, tags removed. */
  text: string;
  /** Number of tokens the model generated (end tag included when it was reached). */
  tokens: number;
  /** True when the model closed the caption with its end tag; untagged models never do. */
  complete: boolean;
}

/**
 * Turns a subject into complete text-to-image prompts. Implemented by the local ONNX engine
 * (src/core/prompt/onnxGenerator.ts) and by a remote text-generation endpoint
 * (src/core/prompt/remote.ts). Implementations are safe to call concurrently.
 *
 * @example
 * const prompts = await generator.generate({ subject: "a lighthouse", count: 5, seed: 1 });
 * // → [{ text: "a lighthouse on a cliff at sunset, oil painting", tokens: 9, complete: true }, …]
 */
export interface PromptGenerator {
  /** Describes the model for logs and provenance (never shown to raters during a study). */
  readonly description: string;
  generate(request: GenerateRequest): Promise<GeneratedPrompt[]>;
  /** Releases native sessions or sockets. Safe to call twice. */
  close(): Promise<void>;
}

/** Structured logger (pino-compatible subset) so the core does not depend on a logging library. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: object): Logger;
}
