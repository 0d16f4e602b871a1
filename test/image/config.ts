/** A validated Config for image tests: config/default.json with image settings overridden. */

import { readFileSync } from "node:fs";
import { type Config, configSchema, DEFAULT_CONFIG_FILE } from "../../src/core/config.js";

type ImageOverrides = {
  [K in keyof Config["image"]]?: Partial<Config["image"][K]> | Config["image"][K];
};

export function imageConfig(image: ImageOverrides): Config {
  const defaults = JSON.parse(readFileSync(DEFAULT_CONFIG_FILE, "utf8")) as Record<string, unknown>;
  const base = defaults.image as Record<string, unknown>;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(image)) {
    const current = base[key];
    merged[key] =
      value && typeof value === "object" && current && typeof current === "object"
        ? { ...(current as object), ...(value as object) }
        : value;
  }
  return configSchema.parse({ ...defaults, image: merged });
}
