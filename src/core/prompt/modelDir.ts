/**
 * A model directory is self-describing: an ONNX GPT-2 decoder with a KV cache plus
 * imagine-model.json (architecture, tags, mean caption length, provenance). training/export_onnx.py
 * writes both; a Hugging Face ONNX export of GPT-2 (optimum's decoder_model_merged.onnx or
 * decoder_with_past_model.onnx) loads too once an imagine-model.json is put beside it.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { UserError } from "../errors.js";
import { GPT2_VOCAB_SIZE } from "./tokenizer.js";

export const METADATA_FILE = "imagine-model.json";

/** ONNX files looked for, in order, when imagine-model.json does not name one. */
const ONNX_CANDIDATES = [
  "model.onnx",
  "decoder_model_merged.onnx",
  "onnx/decoder_model_merged.onnx",
  "decoder_with_past_model.onnx",
  "onnx/decoder_with_past_model.onnx",
];

const metadataSchema = z.object({
  format: z.literal("imagine-bot/model"),
  version: z.literal(1),
  onnx: z.string().min(1).optional(),
  architecture: z.object({
    type: z.literal("gpt2"),
    vocabSize: z.number().int().positive(),
    nPositions: z.number().int().positive(),
    nEmbd: z.number().int().positive(),
    nLayer: z.number().int().positive(),
    nHead: z.number().int().positive(),
  }),
  /** Start and end tags wrapped around every training caption, or null for untagged models. */
  tags: z.object({ start: z.string().min(1), end: z.string().min(1) }).nullable(),
  /** Mean GPT-2 token length of the training captions: the default cap on new tokens. */
  meanCaptionTokens: z.number().positive(),
  /**
   * Default cap on new tokens when given: a tagged model stops itself, so its cap can sit above
   * most caption lengths (the shipped default uses its data's 99th percentile) instead of at
   * the mean, which would cut half of its captions short.
   */
  maxNewTokens: z.number().int().positive().optional(),
  provenance: z.record(z.string(), z.unknown()).default({}),
});

export type ModelMetadata = z.infer<typeof metadataSchema>;

export interface ModelDirectory {
  dir: string;
  onnxPath: string;
  metadata: ModelMetadata;
}

const EXAMPLE_METADATA = `{"format":"imagine-bot/model","version":1,"architecture":{"type":"gpt2","vocabSize":50257,"nPositions":1024,"nEmbd":768,"nLayer":12,"nHead":12},"tags":null,"meanCaptionTokens":20,"provenance":{"baseModel":"gpt2"}}`;

function invalid(message: string): UserError {
  return new UserError("MODEL_DIR_INVALID", message);
}

/** Reads and checks a model directory's files; the ONNX graph itself is checked on load. */
export function readModelDirectory(dirInput: string): ModelDirectory {
  const dir = resolve(dirInput);
  if (!existsSync(dir)) {
    throw invalid(
      `Model directory ${dir} does not exist. Point --model or IMAGINE_MODEL_DIR at a folder written by training/export_onnx.py.`,
    );
  }
  if (!statSync(dir).isDirectory()) {
    throw invalid(
      `${dir} is a file, not a model directory. Point --model or IMAGINE_MODEL_DIR at the folder that holds model.onnx and ${METADATA_FILE}.`,
    );
  }
  const metadataPath = join(dir, METADATA_FILE);
  if (!existsSync(metadataPath)) {
    throw invalid(
      `${metadataPath} is missing. training/export_onnx.py writes it; for a Hugging Face ONNX export of GPT-2, create it by hand, for example: ${EXAMPLE_METADATA}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(metadataPath, "utf8"));
  } catch (error) {
    throw invalid(`${metadataPath} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = metadataSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`)
      .join("; ");
    throw invalid(
      `${metadataPath} is not valid model metadata (${problems}). Expected for example: ${EXAMPLE_METADATA}`,
    );
  }
  const metadata = parsed.data;
  const { architecture } = metadata;
  if (architecture.vocabSize !== GPT2_VOCAB_SIZE) {
    throw new UserError(
      "MODEL_INCONSISTENT",
      `${metadataPath}: architecture.vocabSize is ${architecture.vocabSize}, but the tokenizer is GPT-2's (${GPT2_VOCAB_SIZE} tokens). Models with added tokens are not supported; use text tags instead.`,
    );
  }
  if (architecture.nEmbd % architecture.nHead !== 0) {
    throw new UserError(
      "MODEL_INCONSISTENT",
      `${metadataPath}: architecture.nEmbd (${architecture.nEmbd}) is not divisible by nHead (${architecture.nHead}).`,
    );
  }

  const candidates = metadata.onnx ? [metadata.onnx] : ONNX_CANDIDATES;
  const onnxFile = candidates.find((name) => existsSync(join(dir, name)));
  if (!onnxFile) {
    throw invalid(
      metadata.onnx
        ? `${metadataPath} names "${metadata.onnx}", but ${join(dir, metadata.onnx)} does not exist. Re-export with training/export_onnx.py or fix the "onnx" field.`
        : `No ONNX decoder in ${dir}: looked for ${ONNX_CANDIDATES.join(", ")}. Re-export with training/export_onnx.py.`,
    );
  }
  return { dir, onnxPath: join(dir, onnxFile), metadata };
}
