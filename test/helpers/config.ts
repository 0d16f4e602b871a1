/**
 * A validated Config for tests: config/default.json with the test's changes merged in, so a
 * new setting with a default never breaks the tests that do not care about it.
 */
import { readFileSync } from "node:fs";
import { type Config, configSchema, DEFAULT_CONFIG_FILE } from "../../src/core/config.js";

export const TINY_MODEL_DIR = new URL("../../models/tiny-caption-gpt2", import.meta.url).pathname;

type Json = Record<string, unknown>;
export type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> | T[K] : T[K];
};

function merge(base: Json, changes: Json): Json {
  const out: Json = { ...base };
  for (const [key, value] of Object.entries(changes)) {
    const current = out[key];
    const bothObjects =
      value !== null &&
      typeof value === "object" &&
      !Array.isArray(value) &&
      current !== null &&
      typeof current === "object" &&
      !Array.isArray(current);
    out[key] = bothObjects ? merge(current as Json, value as Json) : value;
  }
  return out;
}

/**
 * Defaults: the tiny model as the only arm, one onnxruntime thread, silent logs, an in-memory
 * vote store. `arms` given by the test replace the default arms rather than merge with them.
 */
export function testConfig(changes: DeepPartial<Config> = {}): Config {
  const defaults = JSON.parse(readFileSync(DEFAULT_CONFIG_FILE, "utf8")) as Json;
  const base = merge(defaults, {
    dataDir: "/tmp/imagine-test-data",
    arms: {},
    prompt: { threads: 1 },
    votes: { storeUrl: "memory://" },
    log: { level: "silent" },
  });
  base.arms = { "ft-tags": { kind: "onnx", modelDir: TINY_MODEL_DIR } };
  const { arms, ...rest } = changes as Json;
  const merged = merge(base, rest);
  if (arms) merged.arms = arms;
  return configSchema.parse(merged);
}
