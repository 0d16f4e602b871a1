import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PACKAGE_ROOT } from "../../src/core/config.js";
import { ConfigError } from "../../src/core/errors.js";
import {
  createComfyUIBackend,
  fillWorkflow,
  findSlots,
  loadWorkflow,
} from "../../src/core/image/comfyui.js";
import { createImageBackend } from "../../src/core/image/registry.js";
import type { ImageBackend } from "../../src/core/types.js";
import { FakeComfyUI } from "../fakes/comfyui.js";
import { imageConfig } from "./config.js";
import { CONTRACT_REQUEST, imageBackendContract, scriptedSubject } from "./contract.js";
import { recordingSleep } from "./images.js";

const SHIPPED_WORKFLOW = join(PACKAGE_ROOT, "config", "comfyui-txt2img.json");

type Graph = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

imageBackendContract("comfyui", async ({ retries, timeoutMs }) => {
  const fake = await new FakeComfyUI().start();
  const { delays, sleep } = recordingSleep();
  const config = imageConfig({
    backend: "comfyui",
    retries,
    timeoutMs,
    comfyui: { url: fake.url, workflowFile: SHIPPED_WORKFLOW },
  });
  const backend = createImageBackend(config, {}, { sleep, random: () => 0.5 });
  return scriptedSubject(backend, delays, fake);
});

function workflowFile(graph: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), "imagine-comfy-")), "workflow.json");
  writeFileSync(file, typeof graph === "string" ? graph : JSON.stringify(graph));
  return file;
}

describe("ComfyUI backend", () => {
  let fake: FakeComfyUI;
  let backends: ImageBackend[];
  let delays: number[];

  beforeEach(async () => {
    fake = await new FakeComfyUI().start();
    backends = [];
    delays = [];
  });

  afterEach(async () => {
    await Promise.all(backends.map((backend) => backend.close()));
    await fake.stop();
  });

  function backend(overrides: { workflowFile?: string; timeoutMs?: number } = {}): ImageBackend {
    const created = createComfyUIBackend({
      url: fake.url,
      workflowFile: overrides.workflowFile ?? SHIPPED_WORKFLOW,
      timeoutMs: overrides.timeoutMs ?? 10_000,
      retries: 0,
      pollIntervalMs: 250,
      sleep: async (ms) => void delays.push(ms),
    });
    backends.push(created);
    return created;
  }

  it("fills the shipped workflow and queues it with a client id", async () => {
    fake.script({ kind: "image" });
    await backend().render(CONTRACT_REQUEST);
    const body = fake.renders[0]?.body as { prompt: Graph; client_id: string };
    expect(body.client_id).toMatch(/^[0-9a-f-]{36}$/);
    const graph = body.prompt;
    expect(graph["3"]?.inputs).toMatchObject({ seed: 42, steps: 20, cfg: 7.5 });
    expect(graph["6"]?.inputs.text).toBe("a lighthouse at dusk, oil painting");
    expect(graph["7"]?.inputs.text).toBe("blurry");
    expect(graph["5"]?.inputs).toMatchObject({ width: 96, height: 64, batch_size: 1 });
    // What the file sets stays.
    expect(graph["3"]?.inputs.sampler_name).toBe("euler_ancestral");
    expect(graph["4"]?.inputs.ckpt_name).toBe("768-v-ema.safetensors");
  });

  it("polls the history with the injected sleep until outputs appear, then fetches the image", async () => {
    fake.pendingPolls = 3;
    fake.script({ kind: "image" });
    const image = await backend().render(CONTRACT_REQUEST);
    expect(fake.historyPolls.map((r) => r.path)).toEqual(Array(4).fill("/history/job-1"));
    expect(delays).toEqual([250, 250, 250]);
    expect(fake.views[0]?.path).toBe("/view?filename=job-1_00001_.png&subfolder=&type=output");
    expect(image).toMatchObject({
      model: "768-v-ema.safetensors",
      sampler: "euler_ancestral",
      seed: 42,
    });
  });

  it("reports a job's execution error without retrying", async () => {
    fake.failNextJob("CUDA out of memory");
    fake.script({ kind: "image" });
    await expect(backend().render(CONTRACT_REQUEST)).rejects.toThrow(
      /workflow failed: CUDA out of memory \(in KSampler\)/,
    );
    expect(fake.renders).toHaveLength(1);
  });

  it("removes a job it stopped waiting for from the queue", async () => {
    fake.pendingPolls = Number.POSITIVE_INFINITY;
    fake.script({ kind: "image" });
    const created = createComfyUIBackend({
      url: fake.url,
      workflowFile: SHIPPED_WORKFLOW,
      timeoutMs: 200,
      retries: 0,
      // The poll wait lasts until the timeout aborts it: no real sleeping, no busy polling.
      sleep: (_ms, signal) =>
        new Promise((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason))),
    });
    backends.push(created);
    await expect(created.render(CONTRACT_REQUEST)).rejects.toThrow(/timed out/);
    await expect.poll(() => fake.deleted).toEqual(["job-1"]);
  });

  it("fills a deployer's workflow by the wiring, not by node ids", async () => {
    const file = workflowFile({
      "10": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "sdxl.safetensors" } },
      "11": { class_type: "CLIPTextEncode", inputs: { text: "NEG", clip: ["10", 1] } },
      "12": { class_type: "CLIPTextEncode", inputs: { text: "POS", clip: ["10", 1] } },
      "13": {
        class_type: "ControlNetApply",
        inputs: { conditioning: ["12", 0], control_net: ["99", 0], image: ["98", 0], strength: 1 },
      },
      "14": {
        class_type: "EmptyLatentImage",
        inputs: { width: 1024, height: 1024, batch_size: 4 },
      },
      "15": {
        class_type: "KSamplerAdvanced",
        inputs: {
          noise_seed: 1,
          steps: 10,
          cfg: 1,
          sampler_name: "dpmpp_2m",
          positive: ["13", 0],
          negative: ["11", 0],
          latent_image: ["14", 0],
          model: ["10", 0],
        },
      },
      "16": { class_type: "SaveImage", inputs: { images: ["17", 0], filename_prefix: "x" } },
    });
    const workflow = loadWorkflow(file);
    const graph = fillWorkflow(workflow, findSlots(workflow, file), CONTRACT_REQUEST);
    expect(graph["12"]?.inputs.text).toBe(CONTRACT_REQUEST.prompt);
    expect(graph["11"]?.inputs.text).toBe("blurry");
    expect(graph["15"]?.inputs).toMatchObject({ noise_seed: 42, steps: 20, cfg: 7.5 });
    expect(graph["14"]?.inputs).toMatchObject({ width: 96, height: 64, batch_size: 1 });
    // The loaded workflow itself is not changed.
    expect(workflow["12"]?.inputs.text).toBe("POS");
  });

  it("names the workflow file in every configuration error", () => {
    const missing = join(tmpdir(), "no-such-dir-imagine", "workflow.json");
    const cases: [string, RegExp][] = [
      [missing, /cannot be read: ENOENT/],
      [workflowFile("{not json"), /is not valid JSON/],
      [workflowFile({ nodes: [], links: [] }), /UI-format workflow; export it in API format/],
      [workflowFile({ "1": { inputs: {} } }), /node "1" needs a class_type/],
      [
        workflowFile({ "1": { class_type: "CLIPTextEncode", inputs: { text: "" } } }),
        /exactly one KSampler or KSamplerAdvanced node; it has 0/,
      ],
      [
        workflowFile({
          "1": { class_type: "KSampler", inputs: { positive: ["2", 0], negative: ["2", 0] } },
          "2": { class_type: "CLIPTextEncode", inputs: { text: "" } },
        }),
        /different text nodes/,
      ],
      [
        workflowFile({
          "1": {
            class_type: "KSampler",
            inputs: { positive: ["2", 0], negative: ["3", 0], latent_image: ["9", 0] },
          },
          "2": { class_type: "CLIPTextEncode", inputs: { text: "" } },
          "3": { class_type: "CLIPTextEncode", inputs: { text: "" } },
        }),
        /latent_image/,
      ],
    ];
    for (const [file, message] of cases) {
      let error: unknown;
      try {
        backend({ workflowFile: file });
      } catch (caught) {
        error = caught;
      }
      expect(error, file).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain(file);
      expect((error as Error).message).toMatch(message);
    }
  });

  it("needs COMFYUI_URL", () => {
    const config = imageConfig({ backend: "comfyui", comfyui: { workflowFile: SHIPPED_WORKFLOW } });
    expect(() => createImageBackend(config, {})).toThrow(/COMFYUI_URL/);
  });
});
