import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError } from "../../src/core/errors.js";
import { createAutomatic1111Backend } from "../../src/core/image/automatic1111.js";
import { createImageBackend } from "../../src/core/image/registry.js";
import type { ImageBackend } from "../../src/core/types.js";
import { FakeAutomatic1111, type Txt2ImgBody } from "../fakes/automatic1111.js";
import { imageConfig } from "./config.js";
import { CONTRACT_REQUEST, imageBackendContract, scriptedSubject } from "./contract.js";
import { recordingSleep } from "./images.js";

imageBackendContract("automatic1111", async ({ retries, timeoutMs }) => {
  const fake = await new FakeAutomatic1111().start();
  const { delays, sleep } = recordingSleep();
  const config = imageConfig({
    backend: "automatic1111",
    retries,
    timeoutMs,
    automatic1111: { url: fake.url },
  });
  const backend = createImageBackend(config, {}, { sleep, random: () => 0.5 });
  return scriptedSubject(backend, delays, fake);
});

describe("AUTOMATIC1111 backend", () => {
  let fake: FakeAutomatic1111;
  let backends: ImageBackend[];

  beforeEach(async () => {
    fake = await new FakeAutomatic1111().start();
    backends = [];
  });

  afterEach(async () => {
    await Promise.all(backends.map((backend) => backend.close()));
    await fake.stop();
  });

  function backend(url = fake.url, sampler = "DPM++ 2M Karras"): ImageBackend {
    const created = createAutomatic1111Backend({
      url,
      sampler,
      timeoutMs: 10_000,
      retries: 0,
      sleep: async () => {},
    });
    backends.push(created);
    return created;
  }

  it("sends every parameter in A1111's txt2img names", async () => {
    fake.script({ kind: "image" });
    await backend().render(CONTRACT_REQUEST);
    const body = fake.renders[0]?.body as Txt2ImgBody;
    expect(body).toMatchObject({
      prompt: "a lighthouse at dusk, oil painting",
      negative_prompt: "blurry",
      steps: 20,
      cfg_scale: 7.5,
      width: 96,
      height: 64,
      seed: 42,
      sampler_name: "DPM++ 2M Karras",
      batch_size: 1,
      n_iter: 1,
    });
    expect(fake.renders[0]?.headers["content-type"]).toBe("application/json");
  });

  it("sends an empty negative prompt when there is none", async () => {
    fake.script({ kind: "image" });
    await backend().render({ ...CONTRACT_REQUEST, negativePrompt: undefined });
    expect((fake.renders[0]?.body as Txt2ImgBody | undefined)?.negative_prompt).toBe("");
  });

  it("reports the seed, model and sampler from the answer's info", async () => {
    fake.script({ kind: "image", seed: 1234567 });
    const image = await backend().render(CONTRACT_REQUEST);
    expect(image).toMatchObject({
      seed: 1234567,
      model: "v2-1_768-ema-pruned",
      sampler: "DPM++ 2M Karras",
    });
  });

  it("falls back to the requested seed and a generic model name when info lacks them", async () => {
    fake.modelName = undefined;
    fake.script({ kind: "image" });
    const image = await backend().render(CONTRACT_REQUEST);
    expect(image.model).toBe("AUTOMATIC1111");
    expect(image.seed).toBe(42);
  });

  it("sends user:password from the URL as Basic auth and keeps it out of errors", async () => {
    const url = fake.url.replace("http://", "http://alice:s3cret%21@");
    fake.script({ kind: "image" }, { kind: "error", status: 500 });
    const created = backend(url);
    await created.render(CONTRACT_REQUEST);
    expect(fake.renders[0]?.headers.authorization).toBe(
      `Basic ${Buffer.from("alice:s3cret!").toString("base64")}`,
    );
    const error = await created.render(CONTRACT_REQUEST).catch((caught: Error) => caught);
    expect(String(error)).toMatch(
      /AUTOMATIC1111 at http:\/\/127\.0\.0\.1:\d+ failed with HTTP 500/,
    );
    expect(String(error)).not.toContain("s3cret");
  });

  it("keeps a path prefix (a reverse proxy) in the URL", async () => {
    const created = backend(`${fake.url}/sd/`);
    fake.script({ kind: "image" });
    await created.render(CONTRACT_REQUEST).catch(() => undefined);
    expect(fake.requests[0]?.path).toBe("/sd/sdapi/v1/txt2img");
  });

  it("rejects an answer without images", async () => {
    fake.script({ kind: "error", status: 200, body: { images: [], info: "{}" } });
    await expect(backend().render(CONTRACT_REQUEST)).rejects.toThrow(/no image/);
  });

  it("needs A1111_URL", () => {
    expect(() => backend("")).toThrow(ConfigError);
    expect(() => backend("")).toThrow(/A1111_URL/);
    expect(() => backend("ftp://host")).toThrow(/A1111_URL must be an http/);
  });
});
