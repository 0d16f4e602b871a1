/**
 * The IMAGE_BACKENDS variable: the image.backends list in one environment variable, as JSON
 * (the same objects as the config file) or in a compact form, comma-separated:
 *
 *   [name:]backend=url[*concurrency][^weight]
 *   IMAGE_BACKENDS="gpu1:a1111=http://gpu1:7860*2,gpu2:a1111=http://gpu2:7860^0.5,comfyui=http://gpu3:8188"
 *
 * `a1111` and `comfy` are accepted for automatic1111 and comfyui. Unnamed backends are called
 * after their kind and position among that kind ("automatic1111-1"). Values are checked by the
 * config schema afterwards, whose errors name IMAGE_BACKENDS.
 */
import { ConfigError } from "../errors.js";

export const BACKENDS_VARIABLE = "IMAGE_BACKENDS";

const ALIASES: Record<string, string> = {
  a1111: "automatic1111",
  comfy: "comfyui",
  hf: "huggingface",
};

const ENTRY = /^(?:([^:=\s]+):)?([a-z0-9]+)=(\S+?)(?:\*(\d+))?(?:\^(\d+(?:\.\d+)?))?$/i;

/** The list that IMAGE_BACKENDS stands for (unvalidated entries). */
export function parseBackendList(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) {
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (error) {
      throw new ConfigError(
        `${BACKENDS_VARIABLE} starts with "[" but is not valid JSON: ${(error as Error).message}`,
      );
    }
    if (!Array.isArray(value)) throw new ConfigError(`${BACKENDS_VARIABLE} must be a JSON array`);
    return value;
  }
  return trimmed
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "")
    .map((part) => {
      const match = ENTRY.exec(part);
      if (!match) {
        throw new ConfigError(
          `${BACKENDS_VARIABLE}: "${part}" is not [name:]backend=url[*concurrency][^weight] ` +
            '(e.g. "gpu1:a1111=http://gpu1:7860*2"), nor is the variable a JSON array',
        );
      }
      const [, name, kind = "", url, concurrency, weight] = match;
      return {
        ...(name === undefined ? {} : { name }),
        backend: ALIASES[kind.toLowerCase()] ?? kind.toLowerCase(),
        url,
        ...(concurrency === undefined ? {} : { concurrency: Number(concurrency) }),
        ...(weight === undefined ? {} : { weight: Number(weight) }),
      };
    });
}

/** A backend's name: its own, or its kind and 1-based position among that kind. */
export function backendNames(entries: readonly { name?: string; backend: string }[]): string[] {
  const seen = new Map<string, number>();
  return entries.map((entry) => {
    const position = (seen.get(entry.backend) ?? 0) + 1;
    seen.set(entry.backend, position);
    return entry.name ?? `${entry.backend}-${position}`;
  });
}
