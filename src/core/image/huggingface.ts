/**
 * Hugging Face text-to-image through @huggingface/inference v4 (`InferenceClient.textToImage`):
 * a Hub model id routed to an Inference Provider (HF_IMAGE_MODEL, default
 * stabilityai/stable-diffusion-2, the model the paper rendered with), or a dedicated Inference
 * Endpoint (HF_ENDPOINT_URL). The token is HF_TOKEN.
 *
 * Parameter mapping (ImageRequest → `parameters`): width → width, height → height, steps →
 * num_inference_steps, guidance → guidance_scale, negativePrompt → negative_prompt (left out
 * when empty), seed → seed; the prompt is `inputs`. hf-inference and endpoints answer with the
 * image bytes (usually JPEG), which are decoded and re-encoded as PNG. The model reported is the
 * configured model id, also in endpoint mode (the endpoint URL is infrastructure, not a model);
 * the seed reported is the requested one.
 *
 * The library's own 503 loop retries immediately and forever, so `retry_on_error: false` is
 * passed and only our backoff runs. Its `fetch` option is wrapped to see each raw response (for
 * Retry-After and the content type) and is how tests reach a fake Hub and router.
 */

import {
  InferenceClient,
  type InferenceProviderOrPolicy,
  PROVIDERS_OR_POLICIES,
} from "@huggingface/inference";
import { ConfigError } from "../errors.js";
import { describeHuggingFaceFailure, routeHuggingFaceLogs } from "../huggingface.js";
import { networkFailure } from "../retry.js";
import type { ImageBackend, ImageRequest, RenderedImage } from "../types.js";
import { decodeToPng } from "./decode.js";
import { type BackendRuntimeOptions, remoteBackend, validateRuntime } from "./http.js";

export interface HuggingFaceImageOptions extends BackendRuntimeOptions {
  /** Hub model id (HF_IMAGE_MODEL); also the model named in the PNG metadata. */
  model: string;
  /** Inference Provider for model mode ("hf-inference", "auto", …). */
  provider?: string;
  /** A dedicated Inference Endpoint (HF_ENDPOINT_URL); replaces model-id routing. */
  endpointUrl?: string;
  /** HF_TOKEN; never logged or put in an error. */
  token: string | undefined;
}

type Target =
  | { model: string }
  | { model: string; provider: InferenceProviderOrPolicy }
  | { endpointUrl: string };

export function createHuggingFaceImageBackend(options: HuggingFaceImageOptions): ImageBackend {
  validateRuntime(options, "Hugging Face image backend");
  if (!options.token?.trim()) {
    throw new ConfigError(
      "IMAGE_BACKEND=huggingface needs a Hugging Face token: set HF_TOKEN (a token with Inference Providers permission)",
    );
  }
  const { args, label } = validateTarget(options);
  const client = new InferenceClient(options.token.trim());
  const baseFetch = options.fetch ?? globalThis.fetch;
  const logger = options.logger?.child({ component: "image", backend: "huggingface" });
  if (options.logger) routeHuggingFaceLogs(options.logger);

  async function attempt(request: ImageRequest, signal: AbortSignal): Promise<RenderedImage> {
    let lastResponse: Response | undefined;
    const recordingFetch: typeof fetch = async (input, init) => {
      const response = await baseFetch(input, init);
      lastResponse = response;
      return response;
    };
    let blob: Blob;
    try {
      blob = await client.textToImage(
        {
          ...args,
          inputs: request.prompt,
          parameters: {
            width: request.width,
            height: request.height,
            num_inference_steps: request.steps,
            guidance_scale: request.guidance,
            ...(request.negativePrompt ? { negative_prompt: request.negativePrompt } : {}),
            seed: request.seed,
          },
        },
        { fetch: recordingFetch, signal, retry_on_error: false, outputType: "blob" },
      );
    } catch (error) {
      throw describeHuggingFaceFailure(
        error,
        label,
        lastResponse,
        `returned no image${lastResponse?.headers.get("content-type") ? ` (${lastResponse.headers.get("content-type")})` : ""}`,
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await blob.arrayBuffer());
    } catch (error) {
      throw networkFailure(error, label);
    }
    const image = await decodeToPng(
      bytes,
      label,
      blob.type || lastResponse?.headers.get("content-type"),
    );
    return { ...image, model: options.model, seed: request.seed };
  }

  return remoteBackend("huggingface", "Hugging Face image", options, label, logger, attempt);
}

function validateTarget(options: HuggingFaceImageOptions): { args: Target; label: string } {
  const endpointUrl = options.endpointUrl?.trim();
  if (endpointUrl) {
    let url: URL;
    try {
      url = new URL(endpointUrl);
    } catch {
      throw new ConfigError("HF_ENDPOINT_URL is not a valid URL");
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new ConfigError(`HF_ENDPOINT_URL must be http(s), got ${url.protocol}`);
    }
    if (options.provider) {
      throw new ConfigError(
        "image.huggingface.provider applies to model ids only; remove it or unset HF_ENDPOINT_URL",
      );
    }
    return {
      args: { endpointUrl },
      label: `Hugging Face endpoint ${url.origin}${url.pathname.replace(/\/+$/, "")}`,
    };
  }
  const model = options.model?.trim();
  if (!model) {
    throw new ConfigError("Hugging Face image backend: set HF_IMAGE_MODEL (a Hub model id)");
  }
  if (options.provider === undefined)
    return { args: { model }, label: `Hugging Face model ${model}` };
  const provider = options.provider;
  if (!(PROVIDERS_OR_POLICIES as readonly string[]).includes(provider)) {
    throw new ConfigError(
      `image.huggingface.provider "${provider}" is unknown; use one of ${PROVIDERS_OR_POLICIES.join(", ")}`,
    );
  }
  return {
    args: { model, provider: provider as InferenceProviderOrPolicy },
    label: `Hugging Face model ${model} via ${provider}`,
  };
}
