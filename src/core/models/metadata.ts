/**
 * imagine-model.json for a plain Hugging Face GPT-2 export, written from its config.json, so that
 * the prompt engine (src/core/prompt/modelDir.ts) loads the pulled directory as it is.
 */
import { UserError } from "../errors.js";
import { METADATA_FILE } from "../prompt/modelDir.js";
import { GPT2_VOCAB_SIZE } from "../prompt/tokenizer.js";

export { METADATA_FILE };

/**
 * The default cap on new tokens for a model without its own caption statistics. The paper caps
 * generation at the mean GPT-2 token length of the training captions; a base model has no
 * training captions, so this is a round estimate of that mean for short LAION-style captions
 * (the same value the metadata example in modelDir.ts uses). For a faithful replication,
 * replace it with the `mean caption length` that `imagine-bot data tokenize` prints for the
 * caption set the finetuned arms were trained on (or pass --mean-caption-tokens), so that all
 * three arms get the same budget.
 */
export const DEFAULT_MEAN_CAPTION_TOKENS = 20;

export interface HfGpt2Config {
  model_type?: string;
  n_layer?: number;
  n_head?: number;
  n_embd?: number;
  n_positions?: number;
  n_ctx?: number;
  vocab_size?: number;
}

export interface Provenance {
  baseModel: string;
  revision: string;
  pulledAt: string;
  [key: string]: unknown;
}

/** Checks a config.json for what the engine needs, before the large ONNX file is fetched. */
export function gpt2Architecture(config: unknown, source: string) {
  const c = (config ?? {}) as HfGpt2Config;
  if (c.model_type !== undefined && c.model_type !== "gpt2") {
    throw new UserError(
      "MODEL_INCONSISTENT",
      `${source}: model_type is "${c.model_type}"; only GPT-2 models are supported.`,
    );
  }
  const field = (name: keyof HfGpt2Config, fallback?: keyof HfGpt2Config): number => {
    const value = c[name] ?? (fallback ? c[fallback] : undefined);
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
      throw new UserError(
        "MODEL_INCONSISTENT",
        `${source}: ${name} is missing or not a positive whole number; is this a GPT-2 config.json?`,
      );
    }
    return value;
  };
  const architecture = {
    type: "gpt2" as const,
    vocabSize: field("vocab_size"),
    nPositions: field("n_positions", "n_ctx"),
    nEmbd: field("n_embd"),
    nLayer: field("n_layer"),
    nHead: field("n_head"),
  };
  if (architecture.vocabSize !== GPT2_VOCAB_SIZE) {
    throw new UserError(
      "MODEL_INCONSISTENT",
      `${source}: vocab_size is ${architecture.vocabSize}, but the engine's tokenizer is GPT-2's (${GPT2_VOCAB_SIZE} tokens); models with added tokens are not supported.`,
    );
  }
  if (architecture.nEmbd % architecture.nHead !== 0) {
    throw new UserError(
      "MODEL_INCONSISTENT",
      `${source}: n_embd (${architecture.nEmbd}) is not divisible by n_head (${architecture.nHead}).`,
    );
  }
  return architecture;
}

export interface CaptionTags {
  start: string;
  end: string;
}

/**
 * The imagine-model.json for a Hugging Face GPT-2 export: untagged unless the model was trained
 * with tags (a known alias says so), capped at the mean caption length unless told otherwise.
 */
export function metadataFromHfConfig(
  config: unknown,
  options: {
    onnx: string;
    provenance: Provenance;
    meanCaptionTokens?: number;
    source: string;
    tags?: CaptionTags | null;
    maxNewTokens?: number;
  },
) {
  return {
    format: "imagine-bot/model" as const,
    version: 1 as const,
    onnx: options.onnx,
    architecture: gpt2Architecture(config, options.source),
    // A base model was never trained with caption tags: it continues the subject (the paper's
    // control arm).
    tags: options.tags ?? null,
    meanCaptionTokens: options.meanCaptionTokens ?? DEFAULT_MEAN_CAPTION_TOKENS,
    ...(options.maxNewTokens !== undefined ? { maxNewTokens: options.maxNewTokens } : {}),
    provenance: {
      ...options.provenance,
      metadata: `written by imagine-bot models pull from config.json; meanCaptionTokens ${options.meanCaptionTokens === undefined ? "is the default estimate" : "was given"}`,
    },
  };
}
