/**
 * A cheap call that tells whether the configured image backend is there, without rendering:
 * what `imagine-bot doctor` reports. AUTOMATIC1111 lists its checkpoints, ComfyUI its system
 * stats; Hugging Face has no free call that proves a model will render, so it is not probed.
 */
import type { Config, Secrets } from "../config.js";
import { unreachableReason } from "../retry.js";
import { readSdModelDirectory } from "./local/modelDir.js";
import { inferBackend } from "./registry.js";

export interface BackendHealth {
  backend: string;
  /** "reachable" (answered), "unchecked" (no health call; the first render tells). */
  state: "reachable" | "unchecked";
  detail: string;
}

export async function checkImageBackend(
  config: Config,
  secrets: Secrets,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<BackendHealth> {
  const backend = config.image.backend ?? inferBackend(config, secrets);
  const get = async (url: string, variable: string): Promise<unknown> => {
    let response: Response;
    try {
      response = await (options.fetch ?? fetch)(url, {
        signal: AbortSignal.timeout(options.timeoutMs ?? 5_000),
      });
    } catch (error) {
      const why =
        unreachableReason(error) ?? (error instanceof Error ? error.message : String(error));
      throw new Error(`cannot reach ${url} (${why}): is the server running? check ${variable}`);
    }
    if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}; check ${variable}`);
    return response.json();
  };
  switch (backend) {
    case "automatic1111": {
      const base = (config.image.automatic1111.url ?? "").replace(/\/+$/, "");
      const models = (await get(
        `${base}/sdapi/v1/sd-models`,
        "A1111_URL (started with --api?)",
      )) as unknown[];
      return {
        backend,
        state: "reachable",
        detail: `${base} answers, ${Array.isArray(models) ? models.length : 0} checkpoint(s)`,
      };
    }
    case "comfyui": {
      const base = (config.image.comfyui.url ?? "").replace(/\/+$/, "");
      await get(`${base}/system_stats`, "COMFYUI_URL");
      return { backend, state: "reachable", detail: `${base} answers` };
    }
    case "huggingface":
      return {
        backend,
        state: "unchecked",
        detail: `${config.image.huggingface.endpointUrl ?? config.image.huggingface.model} (no health call: the first render tells)`,
      };
    case "local": {
      // The directory's files and configs are checked; the sessions load at the first render.
      const model = readSdModelDirectory(config.image.local.modelDir ?? "");
      return {
        backend,
        state: "unchecked",
        detail: `${model.dir} (${model.name}; the ONNX sessions load at the first render)`,
      };
    }
  }
}
