/**
 * A ComfyUI server (COMFYUI_URL) running an API-format workflow (image.comfyui.workflowFile,
 * default config/comfyui-txt2img.json; export your own with "Save (API Format)").
 *
 * One render: POST `{url}/prompt` `{prompt: workflow, client_id}` → `{prompt_id}`; poll
 * GET `{url}/history/{prompt_id}` until the job has outputs (or reports an error); then
 * GET `{url}/view?filename=…&subfolder=…&type=…` for the image. The timeout covers all three;
 * a retry queues the job again. A job given up on before it finished (timeout, abort, close, a
 * failed poll) is removed from the queue with POST `{url}/queue {"delete": [id]}`, best effort
 * (a job already running is left to finish).
 *
 * How the workflow is filled in — the rule deployers' own workflows must fit:
 *   - The sampler is the one node whose class_type is KSampler or KSamplerAdvanced. It gets
 *     seed (noise_seed for KSamplerAdvanced) ← seed, steps ← steps, cfg ← guidance.
 *   - The positive prompt goes to the text node wired to the sampler's `positive` input: the
 *     link is followed (through nodes such as ControlNetApply, by their `conditioning` or
 *     same-named input) to the first node with a string `text` input (CLIPTextEncode). The
 *     negative prompt goes likewise to the node wired to `negative` ("" when there is none).
 *   - Width and height go to the node wired to `latent_image` (EmptyLatentImage or any node with
 *     numeric width and height); its batch_size, if any, becomes 1.
 *   - The image is the first one in the outputs of a SaveImage node (any node's images if there
 *     is no SaveImage). The model reported is the first ckpt_name (or unet_name) in the graph, the
 *     sampler the sampler node's sampler_name.
 * Everything else (checkpoint, sampler_name, scheduler, LoRAs, VAE) stays as the file sets it.
 */

import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { ConfigError } from "../errors.js";
import { asRecord, RemoteCallError, sleepFor } from "../retry.js";
import type { ImageBackend, ImageRequest, RenderedImage } from "../types.js";
import { decodeToPng } from "./decode.js";
import {
  type BackendRuntimeOptions,
  readBytes,
  readJson,
  remoteBackend,
  send,
  serverTarget,
  validateRuntime,
} from "./http.js";

export interface ComfyUIOptions extends BackendRuntimeOptions {
  /** The server's base URL (COMFYUI_URL). */
  url: string | undefined;
  /** API-format workflow JSON (image.comfyui.workflowFile). */
  workflowFile: string;
  /** Wait between history polls; default 1000 ms. Waits go through `sleep`. */
  pollIntervalMs?: number;
}

/** One node of an API-format workflow. Inputs are literals or links `[nodeId, outputIndex]`. */
interface WorkflowNode {
  class_type: string;
  inputs: Record<string, unknown>;
  _meta?: unknown;
}

type Workflow = Record<string, WorkflowNode>;

/** Where each request field goes in the workflow, found once when the file is loaded. */
export interface WorkflowSlots {
  sampler: { id: string; seedInput: "seed" | "noise_seed" };
  positive: string;
  negative: string;
  latent: string;
  model: string | undefined;
  samplerName: string | undefined;
}

const SAMPLERS: Record<string, "seed" | "noise_seed"> = {
  KSampler: "seed",
  KSamplerAdvanced: "noise_seed",
};
const DEFAULT_POLL_INTERVAL_MS = 1_000;

export function createComfyUIBackend(options: ComfyUIOptions): ImageBackend {
  validateRuntime(options, "ComfyUI backend");
  const target = serverTarget(options.url, "ComfyUI", "COMFYUI_URL");
  const workflow = loadWorkflow(options.workflowFile);
  const slots = findSlots(workflow, options.workflowFile);
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const sleep = options.sleep ?? sleepFor;
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const clientId = randomUUID();
  const logger = options.logger?.child({ component: "image", backend: "comfyui" });
  const label = target.label;

  async function attempt(request: ImageRequest, signal: AbortSignal): Promise<RenderedImage> {
    const graph = fillWorkflow(workflow, slots, request);
    const queued = asRecord(
      await readJson(
        await send(
          fetchImpl,
          target,
          "/prompt",
          { method: "POST", json: { prompt: graph, client_id: clientId }, signal },
          label,
        ),
        label,
      ),
    );
    const promptId = queued?.prompt_id;
    if (typeof promptId !== "string" || !promptId) {
      throw new RemoteCallError(`${label} did not return a prompt_id for the queued workflow`, {
        retryable: false,
      });
    }
    let finished = false;
    try {
      const output = await waitForOutput(promptId, signal);
      finished = true;
      const query = new URLSearchParams({
        filename: output.filename,
        subfolder: output.subfolder,
        type: output.type,
      });
      const response = await send(
        fetchImpl,
        target,
        `/view?${query}`,
        { method: "GET", signal },
        label,
      );
      const bytes = await readBytes(response, label);
      const image = await decodeToPng(bytes, label, response.headers.get("content-type"));
      return {
        ...image,
        model: slots.model ?? `ComfyUI workflow ${basename(options.workflowFile)}`,
        ...(slots.samplerName ? { sampler: slots.samplerName } : {}),
        seed: request.seed,
      };
    } catch (error) {
      // Still queued or running (timeout, abort, a failed poll): a retry queues it afresh.
      if (!finished) forget(promptId);
      throw error;
    }
  }

  async function waitForOutput(
    promptId: string,
    signal: AbortSignal,
  ): Promise<{ filename: string; subfolder: string; type: string }> {
    for (;;) {
      const history = asRecord(
        await readJson(
          await send(
            fetchImpl,
            target,
            `/history/${encodeURIComponent(promptId)}`,
            { method: "GET", signal },
            label,
          ),
          label,
        ),
      );
      const entry = asRecord(history?.[promptId]);
      if (entry) return outputImage(entry, label);
      await sleep(pollIntervalMs, signal);
    }
  }

  /** Removes a job we stopped waiting for from the queue; failures are only logged. */
  function forget(promptId: string): void {
    const signal = AbortSignal.timeout(5_000);
    send(
      fetchImpl,
      target,
      "/queue",
      { method: "POST", json: { delete: [promptId] }, signal },
      label,
    )
      .then((response) => response.body?.cancel())
      .catch((error: unknown) =>
        logger?.debug({ promptId, err: error }, "could not remove an abandoned ComfyUI job"),
      );
  }

  return remoteBackend("comfyui", "ComfyUI", options, label, logger, attempt);
}

/** The first image of a finished job, or the job's error. */
function outputImage(
  entry: Record<string, unknown>,
  label: string,
): { filename: string; subfolder: string; type: string } {
  const status = asRecord(entry.status);
  if (status?.status_str === "error") {
    throw new RemoteCallError(`${label}: the workflow failed: ${executionError(status)}`, {
      retryable: false,
    });
  }
  const outputs = asRecord(entry.outputs) ?? {};
  const prompt = Array.isArray(entry.prompt) ? entry.prompt : [];
  const graph = asRecord(prompt[2]);
  const nodes = Object.entries(outputs);
  // SaveImage nodes first: PreviewImage outputs are temporary previews of the same image.
  nodes.sort(([a], [b]) => rank(graph, a) - rank(graph, b));
  for (const [, output] of nodes) {
    const images = asRecord(output)?.images;
    if (!Array.isArray(images)) continue;
    for (const image of images) {
      const record = asRecord(image);
      if (typeof record?.filename === "string" && record.filename) {
        return {
          filename: record.filename,
          subfolder: typeof record.subfolder === "string" ? record.subfolder : "",
          type: typeof record.type === "string" ? record.type : "output",
        };
      }
    }
  }
  throw new RemoteCallError(
    `${label}: the workflow finished without an image (does it end in a SaveImage node?)`,
    { retryable: false },
  );
}

function rank(graph: Record<string, unknown> | undefined, nodeId: string): number {
  return asRecord(graph?.[nodeId])?.class_type === "SaveImage" ? 0 : 1;
}

/** ComfyUI's status.messages holds ["execution_error", {exception_message, node_type, …}]. */
function executionError(status: Record<string, unknown>): string {
  const messages = Array.isArray(status.messages) ? status.messages : [];
  for (const message of messages) {
    if (!Array.isArray(message) || message[0] !== "execution_error") continue;
    const details = asRecord(message[1]);
    const text = typeof details?.exception_message === "string" ? details.exception_message : "";
    const node = typeof details?.node_type === "string" ? ` (in ${details.node_type})` : "";
    return `${text.trim().slice(0, 200) || "execution error"}${node}`;
  }
  return "execution error";
}

// ── The workflow file ─────────────────────────────────────────────────────────────────────────

/** Reads and checks an API-format workflow; every problem is a ConfigError naming the file. */
export function loadWorkflow(file: string): Workflow {
  const where = `image.comfyui.workflowFile (${file})`;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(
      `${where} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}. ` +
        "Point it at an API-format workflow JSON (ComfyUI: Workflow → Export (API)).",
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${where} is not valid JSON: ${(error as Error).message}`);
  }
  const record = asRecord(value);
  if (!record) throw new ConfigError(`${where} must hold a JSON object of workflow nodes`);
  if (Array.isArray(record.nodes) && Array.isArray(record.links)) {
    throw new ConfigError(
      `${where} is a UI-format workflow; export it in API format instead (ComfyUI: Workflow → Export (API))`,
    );
  }
  const workflow: Workflow = {};
  for (const [id, node] of Object.entries(record)) {
    const candidate = asRecord(node);
    if (typeof candidate?.class_type !== "string" || !asRecord(candidate.inputs)) {
      throw new ConfigError(`${where}: node "${id}" needs a class_type and an inputs object`);
    }
    workflow[id] = node as WorkflowNode;
  }
  if (Object.keys(workflow).length === 0) throw new ConfigError(`${where} has no nodes`);
  return workflow;
}

/** Applies the filling rule (see the top of this file) once, so a bad workflow fails at start. */
export function findSlots(workflow: Workflow, file: string): WorkflowSlots {
  const where = `image.comfyui.workflowFile (${file})`;
  const samplers = Object.entries(workflow).filter(([, node]) => node.class_type in SAMPLERS);
  if (samplers.length !== 1) {
    throw new ConfigError(
      `${where} must have exactly one KSampler or KSamplerAdvanced node; it has ${samplers.length}`,
    );
  }
  const [samplerId, sampler] = samplers[0] as [string, WorkflowNode];
  const textNode = (role: "positive" | "negative"): string => {
    let link = sampler.inputs[role];
    for (let depth = 0; depth < 16; depth++) {
      const id = linkTarget(link);
      const node = id === undefined ? undefined : workflow[id];
      if (id === undefined || !node) break;
      if (typeof node.inputs.text === "string") return id;
      link = node.inputs[role] ?? node.inputs.conditioning ?? node.inputs.conditioning_to;
    }
    throw new ConfigError(
      `${where}: the ${samplers[0]?.[1].class_type} node's "${role}" input must lead to a CLIPTextEncode (a node with a text input)`,
    );
  };
  const positive = textNode("positive");
  const negative = textNode("negative");
  if (positive === negative) {
    throw new ConfigError(`${where}: positive and negative must come from different text nodes`);
  }
  const latentId = linkTarget(sampler.inputs.latent_image);
  const latent = latentId === undefined ? undefined : workflow[latentId];
  if (
    latentId === undefined ||
    !latent ||
    !isNumberOrLink(latent.inputs.width) ||
    !isNumberOrLink(latent.inputs.height)
  ) {
    throw new ConfigError(
      `${where}: the sampler's "latent_image" input must come from an EmptyLatentImage (a node with width and height)`,
    );
  }
  const checkpoint = Object.values(workflow)
    .map((node) => node.inputs.ckpt_name ?? node.inputs.unet_name)
    .find((name): name is string => typeof name === "string" && name.length > 0);
  const samplerName = sampler.inputs.sampler_name;
  return {
    sampler: { id: samplerId, seedInput: SAMPLERS[sampler.class_type] as "seed" | "noise_seed" },
    positive,
    negative,
    latent: latentId,
    model: checkpoint,
    samplerName: typeof samplerName === "string" ? samplerName : undefined,
  };
}

/** A copy of the workflow with the request's values in their slots. */
export function fillWorkflow(
  workflow: Workflow,
  slots: WorkflowSlots,
  request: ImageRequest,
): Workflow {
  const graph = structuredClone(workflow);
  const set = (id: string, inputs: Record<string, unknown>) => {
    const node = graph[id] as WorkflowNode;
    node.inputs = { ...node.inputs, ...inputs };
  };
  set(slots.sampler.id, {
    [slots.sampler.seedInput]: request.seed,
    steps: request.steps,
    cfg: request.guidance,
  });
  set(slots.positive, { text: request.prompt });
  set(slots.negative, { text: request.negativePrompt ?? "" });
  const latent = graph[slots.latent] as WorkflowNode;
  set(slots.latent, {
    width: request.width,
    height: request.height,
    ...("batch_size" in latent.inputs ? { batch_size: 1 } : {}),
  });
  return graph;
}

function linkTarget(value: unknown): string | undefined {
  if (!Array.isArray(value) || value.length !== 2) return undefined;
  const [id, index] = value;
  return (typeof id === "string" || typeof id === "number") && typeof index === "number"
    ? String(id)
    : undefined;
}

function isNumberOrLink(value: unknown): boolean {
  return typeof value === "number" || linkTarget(value) !== undefined;
}
