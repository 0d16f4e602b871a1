import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError } from "../../src/core/errors.js";
import { createHuggingFaceImageBackend } from "../../src/core/image/huggingface.js";
import { createImageBackend } from "../../src/core/image/registry.js";
import type { ImageBackend, Logger } from "../../src/core/types.js";
import { FakeHuggingFace } from "../fakes/huggingface.js";
import { imageConfig } from "./config.js";
import { CONTRACT_REQUEST, imageBackendContract } from "./contract.js";
import { recordingSleep } from "./images.js";

const TOKEN = "hf_secretImageToken456";
const MODEL = "stabilityai/stable-diffusion-2";

/** Collects log lines; passing it also routes the library's console chatter here. */
function memoryLogger(lines: string[] = []): Logger {
  const write = (_obj: object, msg?: string) => void lines.push(msg ?? "");
  const logger: Logger = {
    debug: write,
    info: write,
    warn: write,
    error: write,
    child: () => logger,
  };
  return logger;
}

/** Runs the contract against the fake in one of the client's two addressing modes. */
function contract(mode: "endpoint" | "model id") {
  imageBackendContract(`huggingface (${mode})`, async ({ retries, timeoutMs }) => {
    const fake = await new FakeHuggingFace().start();
    fake.serveModel(MODEL, "text-to-image");
    const { delays, sleep } = recordingSleep();
    const config = imageConfig({
      backend: "huggingface",
      retries,
      timeoutMs,
      huggingface:
        mode === "endpoint"
          ? { model: MODEL, endpointUrl: `${fake.url}/endpoints/sd2` }
          : { model: MODEL },
    });
    const backend = createImageBackend(
      config,
      { hfToken: TOKEN },
      { sleep, random: () => 0.5, fetch: fake.fetch, logger: memoryLogger() },
    );
    return {
      backend,
      delays,
      fake: {
        script: (...replies) => fake.scriptImages(...replies),
        renderCount: () => fake.textToImageRequests.length,
      },
      stop: () => fake.stop(),
    };
  });
}

contract("endpoint");
contract("model id");

/** Every string reachable from value through own properties, including non-enumerable ones. */
function reachableStrings(value: unknown, seen = new Set<unknown>()): string[] {
  if (typeof value === "string") return [value];
  if (value === null || typeof value !== "object" || seen.has(value)) return [];
  seen.add(value);
  return Reflect.ownKeys(value).flatMap((key) =>
    reachableStrings((value as Record<PropertyKey, unknown>)[key], seen),
  );
}

describe("Hugging Face image backend", () => {
  let fake: FakeHuggingFace;
  let backends: ImageBackend[];

  beforeEach(async () => {
    fake = await new FakeHuggingFace().start();
    fake.serveModel(MODEL, "text-to-image");
    backends = [];
  });

  afterEach(async () => {
    await Promise.all(backends.map((backend) => backend.close()));
    await fake.stop();
  });

  function backend(
    overrides: Partial<Parameters<typeof createHuggingFaceImageBackend>[0]> = {},
  ): ImageBackend {
    const created = createHuggingFaceImageBackend({
      model: MODEL,
      token: TOKEN,
      timeoutMs: 10_000,
      retries: 0,
      fetch: fake.fetch,
      sleep: async () => {},
      logger: memoryLogger(),
      ...overrides,
    });
    backends.push(created);
    return created;
  }

  it("sends the prompt and parameters in text-to-image names, with the token", async () => {
    fake.scriptImages({ kind: "image" });
    const image = await backend({ endpointUrl: `${fake.url}/endpoints/sd2` }).render(
      CONTRACT_REQUEST,
    );
    const request = fake.textToImageRequests[0];
    expect(request?.path).toBe("/endpoints/sd2");
    expect(request?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(request?.body).toEqual({
      inputs: "a lighthouse at dusk, oil painting",
      parameters: {
        width: 96,
        height: 64,
        num_inference_steps: 20,
        guidance_scale: 7.5,
        negative_prompt: "blurry",
        seed: 42,
      },
    });
    expect(image).toMatchObject({ model: MODEL, seed: 42 });
  });

  it("leaves an empty negative prompt out", async () => {
    fake.scriptImages({ kind: "image" });
    await backend().render({ ...CONTRACT_REQUEST, negativePrompt: "" });
    const body = fake.textToImageRequests[0]?.body as { parameters: Record<string, unknown> };
    expect(body.parameters).not.toHaveProperty("negative_prompt");
  });

  it("routes a model id through the Hub lookup to hf-inference", async () => {
    // A model id of its own: the client caches Hub lookups for the whole process.
    const model = "someone/sd-routing-test";
    fake.serveModel(model, "text-to-image").scriptImages({ kind: "image" });
    const image = await backend({ model }).render(CONTRACT_REQUEST);
    expect(fake.requests.map((r) => `${r.method} ${r.path.split("?")[0]}`)).toEqual([
      `GET /api/models/${model}`,
      `POST /hf-inference/models/${model}`,
    ]);
    expect(image.model).toBe(model);
  });

  it("sends the library's console chatter to the logger instead of stdout", async () => {
    const lines: string[] = [];
    const model = "someone/sd-logging-test";
    fake.serveModel(model, "text-to-image").scriptImages({ kind: "image" });
    await backend({ model, logger: memoryLogger(lines) }).render(CONTRACT_REQUEST);
    expect(lines).toContain("Auto selected provider: hf-inference");
  });

  it("keeps the token out of errors", async () => {
    fake.scriptImages({ kind: "error", status: 401, body: { error: "Invalid credentials" } });
    const error = await backend()
      .render(CONTRACT_REQUEST)
      .catch((caught: unknown) => caught);
    expect(String(error)).toMatch(
      /Hugging Face model stabilityai\/stable-diffusion-2 failed with HTTP 401: Invalid credentials/,
    );
    expect(reachableStrings(error).some((text) => text.includes(TOKEN))).toBe(false);
  });

  it("needs HF_TOKEN, and names HF_ENDPOINT_URL when it is wrong", () => {
    expect(() => backend({ token: undefined })).toThrow(ConfigError);
    expect(() => backend({ token: "" })).toThrow(/HF_TOKEN/);
    expect(() => backend({ endpointUrl: "ftp://x" })).toThrow(/HF_ENDPOINT_URL/);
    expect(() => backend({ provider: "no-such-provider" })).toThrow(/provider/);
  });
});
