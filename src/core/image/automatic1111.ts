/**
 * An AUTOMATIC1111-compatible server (stable-diffusion-webui started with --api, Forge, SD.Next's
 * compatible API): POST `{url}/sdapi/v1/txt2img`.
 *
 * Parameter mapping (ImageRequest → txt2img body):
 *   prompt → prompt, negativePrompt → negative_prompt (""), steps → steps, guidance → cfg_scale,
 *   width/height → width/height, seed → seed, config sampler → sampler_name,
 *   plus batch_size 1, n_iter 1, send_images true, save_images false.
 * The answer is `{images: [base64], parameters, info}` where info is a JSON string; the seed,
 * model (sd_model_name) and sampler reported are taken from it when present, since the server
 * may substitute them (seed -1, a sampler alias). Basic auth (--api-auth) goes in the URL:
 * http://user:password@host:7860.
 */

import { asRecord, RemoteCallError } from "../retry.js";
import type { ImageBackend, ImageRequest, RenderedImage } from "../types.js";
import { decodeToPng } from "./decode.js";
import {
  type BackendRuntimeOptions,
  readJson,
  remoteBackend,
  send,
  serverTarget,
  validateRuntime,
} from "./http.js";

export interface Automatic1111Options extends BackendRuntimeOptions {
  /** The server's base URL (A1111_URL). */
  url: string | undefined;
  /** sampler_name sent with every request ("Euler a"). */
  sampler: string;
}

/** The model name reported when the server's info does not say (older servers). */
const UNKNOWN_MODEL = "AUTOMATIC1111";

export function createAutomatic1111Backend(options: Automatic1111Options): ImageBackend {
  validateRuntime(options, "AUTOMATIC1111 backend");
  const target = serverTarget(options.url, "AUTOMATIC1111", "A1111_URL");
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const logger = options.logger?.child({ component: "image", backend: "automatic1111" });

  async function attempt(request: ImageRequest, signal: AbortSignal): Promise<RenderedImage> {
    const body = {
      prompt: request.prompt,
      negative_prompt: request.negativePrompt ?? "",
      steps: request.steps,
      cfg_scale: request.guidance,
      width: request.width,
      height: request.height,
      seed: request.seed,
      sampler_name: options.sampler,
      batch_size: 1,
      n_iter: 1,
      send_images: true,
      save_images: false,
    };
    const response = await send(
      fetchImpl,
      target,
      "/sdapi/v1/txt2img",
      { method: "POST", json: body, signal },
      target.label,
    );
    const json = asRecord(await readJson(response, target.label));
    const encoded = Array.isArray(json?.images) ? json.images[0] : undefined;
    if (typeof encoded !== "string" || encoded.length === 0) {
      throw new RemoteCallError(`${target.label} returned no image (no images[0] in the answer)`, {
        status: response.status,
        retryable: false,
      });
    }
    // Some forks prefix a data URL; base64 decoding ignores what is not base64, so strip it.
    const bytes = Buffer.from(encoded.replace(/^data:[^,]*,/, ""), "base64");
    const image = await decodeToPng(bytes, target.label);
    const info = parseInfo(json?.info);
    return {
      ...image,
      model: stringOr(info?.sd_model_name, UNKNOWN_MODEL),
      sampler: stringOr(info?.sampler_name, options.sampler),
      seed:
        typeof info?.seed === "number" && Number.isSafeInteger(info.seed)
          ? info.seed
          : request.seed,
    };
  }

  return remoteBackend("automatic1111", "AUTOMATIC1111", options, target.label, logger, attempt);
}

/** `info` is a JSON string in A1111's answer (an object in a few forks). */
function parseInfo(info: unknown): Record<string, unknown> | undefined {
  if (typeof info !== "string") return asRecord(info);
  try {
    return asRecord(JSON.parse(info));
  } catch {
    return undefined;
  }
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === "string" && value.trim() ? value : fallback;
}
