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
  "server and set IMAGE_BACKEND=automatic1111 with A1111_URL, or IMAGE_BACKEND=comfyui with COMFYUI_URL.";

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
  switch (image.backend) {
    case null:
      throw new ConfigError(NO_BACKEND_MESSAGE);
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
    default: {
      const unknown: never = image.backend;
      throw new ConfigError(
        `IMAGE_BACKEND "${String(unknown)}" is not one of huggingface, automatic1111, comfyui`,
      );
    }
  }
}
