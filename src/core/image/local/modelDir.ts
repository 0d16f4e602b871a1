/**
 * A Stable Diffusion model directory in the diffusers ONNX layout, as the Hub publishes it
 * (optimum and diffusers exports):
 *
 *   model_index.json, scheduler/scheduler_config.json, tokenizer/{vocab.json, merges.txt,
 *   tokenizer_config.json, special_tokens_map.json} (tokenizer.json optional),
 *   text_encoder/model.onnx, unet/model.onnx (+ external data), vae_decoder/model.onnx,
 *   vae_decoder/config.json (scaling_factor; 0.18215 when absent).
 *
 * Everything is checked when the directory is read, so a missing or malformed file is reported
 * at start-up with its path, not at the first render.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { UserError } from "../../errors.js";

/** SD 1.x/2.x's VAE latent scale; diffusers uses it when vae config.json does not say. */
export const DEFAULT_VAE_SCALING_FACTOR = 0.18215;

export const SD_REQUIRED_FILES = [
  "model_index.json",
  "scheduler/scheduler_config.json",
  "tokenizer/tokenizer_config.json",
  "text_encoder/model.onnx",
  "unet/model.onnx",
  "vae_decoder/model.onnx",
] as const;

export interface SdModelDirectory {
  dir: string;
  /** model_index.json's _class_name, for the PNG's model name and logs. */
  pipelineClass: string;
  /** Hub repository recorded by `models pull` (.pull.json), else the folder's name. */
  name: string;
  scheduler: Record<string, unknown>;
  tokenizer: TokenizerFiles;
  textEncoder: string;
  unet: string;
  vaeDecoder: string;
  vaeScalingFactor: number;
}

export interface TokenizerFiles {
  /** tokenizer.json when the export has one. */
  tokenizerJson?: unknown;
  /** vocab.json + merges.txt (CLIP's slow-tokenizer files), when there is no tokenizer.json. */
  vocab?: Record<string, number>;
  merges?: string[];
  config: Record<string, unknown>;
  specialTokens: Record<string, unknown>;
}

export function readSdModelDirectory(dirArg: string): SdModelDirectory {
  const dir = resolve(dirArg);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw invalid(dir, "is not a directory");
  }
  const missing = SD_REQUIRED_FILES.filter((file) => !existsSync(join(dir, file)));
  if (missing.length > 0) {
    throw invalid(
      dir,
      `is not a Stable Diffusion ONNX directory (diffusers layout): it lacks ${missing.join(", ")}`,
    );
  }
  const index = readObject(join(dir, "model_index.json"));
  const pipelineClass = typeof index._class_name === "string" ? index._class_name : "unknown";
  const scheduler = readObject(join(dir, "scheduler/scheduler_config.json"));
  const vaeConfigPath = join(dir, "vae_decoder/config.json");
  const vaeConfig = existsSync(vaeConfigPath) ? readObject(vaeConfigPath) : {};
  const scaling = vaeConfig.scaling_factor ?? DEFAULT_VAE_SCALING_FACTOR;
  if (typeof scaling !== "number" || !(scaling > 0)) {
    throw invalid(vaeConfigPath, "has a scaling_factor that is not a positive number");
  }
  const manifest = existsSync(join(dir, ".pull.json")) ? readObject(join(dir, ".pull.json")) : {};
  return {
    dir,
    pipelineClass,
    name: typeof manifest.repo === "string" ? manifest.repo : (dir.split("/").at(-1) ?? dir),
    scheduler,
    tokenizer: readTokenizerFiles(dir),
    textEncoder: join(dir, "text_encoder/model.onnx"),
    unet: join(dir, "unet/model.onnx"),
    vaeDecoder: join(dir, "vae_decoder/model.onnx"),
    vaeScalingFactor: scaling,
  };
}

function readTokenizerFiles(dir: string): TokenizerFiles {
  const at = (file: string) => join(dir, "tokenizer", file);
  const config = readObject(at("tokenizer_config.json"));
  const specialTokens = existsSync(at("special_tokens_map.json"))
    ? readObject(at("special_tokens_map.json"))
    : {};
  if (existsSync(at("tokenizer.json"))) {
    return { tokenizerJson: readObject(at("tokenizer.json")), config, specialTokens };
  }
  if (!existsSync(at("vocab.json")) || !existsSync(at("merges.txt"))) {
    throw invalid(
      join(dir, "tokenizer"),
      "has neither tokenizer.json nor vocab.json with merges.txt (CLIP's BPE files)",
    );
  }
  const vocab = readObject(at("vocab.json"));
  for (const [token, id] of Object.entries(vocab)) {
    if (!Number.isInteger(id)) {
      throw invalid(at("vocab.json"), `maps ${JSON.stringify(token)} to a non-integer id`);
    }
  }
  // The first line of CLIP's merges.txt is a "#version" header; the rest are "left right" pairs.
  const merges = readFileSync(at("merges.txt"), "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "" && !line.startsWith("#version"));
  for (const line of merges) {
    if (line.split(" ").length !== 2) {
      throw invalid(at("merges.txt"), `has a line that is not two tokens: ${JSON.stringify(line)}`);
    }
  }
  return { vocab: vocab as Record<string, number>, merges, config, specialTokens };
}

function readObject(path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw invalid(path, `is not valid JSON (${(error as Error).message})`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalid(path, "must hold a JSON object");
  }
  return value as Record<string, unknown>;
}

function invalid(path: string, why: string): UserError {
  return new UserError("MODEL_DIR_INVALID", `${path} ${why}.`);
}
