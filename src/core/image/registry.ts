/**
 * Picks and builds the image backend named by config.image.backend (IMAGE_BACKEND). Every
 * configuration problem is a ConfigError that names the variable to set.
 */

import type { Config, Secrets } from "../config.js";
import { ConfigError } from "../errors.js";
import type { Sleep } from "../retry.js";
import type { ImageBackend, Logger } from "../types.js";
import { createAutomatic1111Backend } from "./automatic1111.js";
import { createComfyUIBackend } from "./comfyui.js";
import type { BackendRuntimeOptions } from "./http.js";
import { createHuggingFaceImageBackend } from "./huggingface.js";
import { createLocalImageBackend } from "./local/backend.js";

export interface ImageBackendOptions {
  logger?: Logger;
  /** Replaces global fetch (tests reach fake servers and the fake Hugging Face Hub with it). */
  fetch?: typeof fetch;
  /** Replaces the waits between retries and ComfyUI polls (tests do not wait for real). */
  sleep?: Sleep;
  /** Jitter source in [0, 1). */
  random?: () => number;
}

export const NO_BACKEND_MESSAGE =
  "No image backend is configured. Set IMAGE_BACKEND=huggingface with HF_TOKEN for Hugging Face " +
  "Inference (HF_IMAGE_MODEL picks the model, HF_ENDPOINT_URL a dedicated endpoint), or run a local " +
  "server and set IMAGE_BACKEND=automatic1111 with A1111_URL, or IMAGE_BACKEND=comfyui with COMFYUI_URL, " +
  "or render in this process with IMAGE_BACKEND=local and SD_MODEL_DIR (imagine-bot models pull sd-turbo).";

type BackendName = NonNullable<Config["image"]["backend"]>;

/**
 * Without IMAGE_BACKEND, the backend is the one whose settings are there: a local server's URL
 * (AUTOMATIC1111 or ComfyUI), else Hugging Face when HF_TOKEN or an endpoint is set. Two local
 * URLs are ambiguous and need IMAGE_BACKEND.
 */
export function inferBackend(config: Config, secrets: Secrets): BackendName {
  const image = config.image;
  const local: BackendName[] = [];
  if (image.automatic1111.url) local.push("automatic1111");
  if (image.comfyui.url) local.push("comfyui");
  if (local.length > 1) {
    throw new ConfigError(
      "Both A1111_URL and COMFYUI_URL are set: choose one with IMAGE_BACKEND=automatic1111 or IMAGE_BACKEND=comfyui.",
    );
  }
  if (local[0]) return local[0];
  if (secrets.hfToken || image.huggingface.endpointUrl) return "huggingface";
  throw new ConfigError(NO_BACKEND_MESSAGE);
}

export function createImageBackend(
  config: Config,
  secrets: Secrets,
  options: ImageBackendOptions = {},
): ImageBackend {
  const image = config.image;
  const runtime: BackendRuntimeOptions = {
    timeoutMs: image.timeoutMs,
    retries: image.retries,
    logger: options.logger,
    fetch: options.fetch,
    sleep: options.sleep,
    random: options.random,
  };
  switch (image.backend ?? inferBackend(config, secrets)) {
    case "huggingface":
      return createHuggingFaceImageBackend({
        ...runtime,
        model: image.huggingface.model,
        provider: image.huggingface.provider,
        endpointUrl: image.huggingface.endpointUrl,
        token: secrets.hfToken,
      });
    case "automatic1111":
      return createAutomatic1111Backend({
        ...runtime,
        url: image.automatic1111.url,
        sampler: image.automatic1111.sampler,
      });
    case "comfyui":
      return createComfyUIBackend({
        ...runtime,
        url: image.comfyui.url,
        workflowFile: image.comfyui.workflowFile,
      });
    case "local":
      return createLocalImageBackend({ ...image.local, logger: options.logger });
    default: {
      const unknown: never = image.backend as never;
      throw new ConfigError(
        `IMAGE_BACKEND "${String(unknown)}" is not one of huggingface, automatic1111, comfyui, local`,
      );
    }
  }
}
