/**
 * Configuring several image backends: image.backends in a config file, IMAGE_BACKENDS as JSON or
 * in its compact form, the errors for each mistake (naming the variable), and the single-backend
 * settings still giving the one backend they gave before.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/core/config.js";
import { ConfigError } from "../../src/core/errors.js";
import { configuredBackends, openImageBackend } from "../../src/core/image/backends.js";
import { memoryCapacity } from "../../src/core/image/capacity.js";
import type { BackendPool } from "../../src/core/image/pool.js";

let dir: string;
let modelDir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "imagine-pool-config-"));
  modelDir = join(dir, "model");
  await mkdir(modelDir);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const env = (vars: Record<string, string>) => ({ IMAGINE_MODEL_DIR: modelDir, ...vars });

function configError(vars: Record<string, string>): string {
  try {
    loadConfig(env(vars));
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("several image backends: configuration", () => {
  it("reads the compact IMAGE_BACKENDS form: names, aliases, concurrency and weight", () => {
    const { config, secrets } = loadConfig(
      env({
        IMAGE_BACKENDS:
          "gpu1:a1111=http://gpu1:7860*2, a1111=http://ann:pw@gpu2:7860/sd^0.5,comfy=http://gpu3:8188*3^2",
      }),
    );
    const backends = configuredBackends(config, secrets);
    expect(backends.map((b) => [b.name, b.concurrency, b.weight, b.description])).toEqual([
      ["gpu1", 2, 1, "automatic1111 at http://gpu1:7860"],
      ["automatic1111-2", 1, 0.5, "automatic1111 at http://gpu2:7860/sd"],
      ["comfyui-1", 3, 2, "comfyui at http://gpu3:8188"],
    ]);
    // Each member is the only backend of its own configuration, credentials kept in its URL.
    const second = backends[1]?.config.image;
    expect(second?.backend).toBe("automatic1111");
    expect(second?.automatic1111.url).toBe("http://ann:pw@gpu2:7860/sd");
    expect(second?.automatic1111.sampler).toBe("Euler a");
    expect(second?.retries).toBe(0);
    expect(backends[2]?.config.image.comfyui.workflowFile).toBe(config.image.comfyui.workflowFile);
  });

  it("reads IMAGE_BACKENDS as JSON, resolving a workflow file against the working directory", () => {
    const { config, secrets } = loadConfig(
      env({
        IMAGE_BACKENDS: JSON.stringify([
          {
            name: "big",
            backend: "comfyui",
            url: "http://gpu3:8188",
            workflowFile: "flows/sdxl.json",
          },
          { backend: "huggingface", model: "stabilityai/sdxl", weight: 0.1, retries: 2 },
        ]),
      }),
    );
    const [big, hub] = configuredBackends(config, secrets);
    expect(big?.config.image.comfyui.workflowFile).toBe(join(process.cwd(), "flows/sdxl.json"));
    expect(hub).toMatchObject({ name: "huggingface-1", weight: 0.1, concurrency: 1 });
    expect(hub?.config.image.huggingface.model).toBe("stabilityai/sdxl");
    expect(hub?.config.image.retries).toBe(2);
  });

  it("reads image.backends from the deployer's file, paths relative to the file", async () => {
    const file = join(dir, "deploy.json");
    await writeFile(
      file,
      JSON.stringify({
        image: {
          backends: [
            { name: "a", backend: "automatic1111", url: "http://a:7860", sampler: "DPM++ 2M" },
            { name: "c", backend: "comfyui", url: "http://c:8188", workflowFile: "wf.json" },
          ],
          pool: { backoffBaseMs: 1000 },
        },
      }),
    );
    const { config, secrets } = loadConfig(env({ IMAGINE_CONFIG: file }));
    const [a, c] = configuredBackends(config, secrets);
    expect(a?.config.image.automatic1111.sampler).toBe("DPM++ 2M");
    expect(c?.config.image.comfyui.workflowFile).toBe(join(dir, "wf.json"));
    expect(config.image.pool).toEqual({ backoffBaseMs: 1000 });
  });

  it("says what is wrong with IMAGE_BACKENDS, naming it", () => {
    expect(configError({ IMAGE_BACKENDS: "gpu1" })).toMatch(
      /IMAGE_BACKENDS: "gpu1" is not \[name:\]backend=url\[\*concurrency\]\[\^weight\]/,
    );
    expect(configError({ IMAGE_BACKENDS: "[{" })).toMatch(/IMAGE_BACKENDS .* not valid JSON/);
    expect(configError({ IMAGE_BACKENDS: '{"backend":"comfyui"}' })).toMatch(/IMAGE_BACKENDS/);
    const badUrl = configError({ IMAGE_BACKENDS: "a1111=not-a-url" });
    expect(badUrl).toMatch(/image\.backends\.0\.url: .*\(set by IMAGE_BACKENDS\)/);
    const unknown = configError({ IMAGE_BACKENDS: "dalle=http://x:1" });
    expect(unknown).toMatch(/image\.backends\.0\.backend: .*\(set by IMAGE_BACKENDS\)/);
    const noUrl = configError({ IMAGE_BACKENDS: '[{"backend":"comfyui"}]' });
    expect(noUrl).toMatch(/image\.backends\.0\.url: automatic1111 and comfyui backends need/);
    const twice = configError({ IMAGE_BACKENDS: "g:a1111=http://a:1,g:comfy=http://b:2" });
    expect(twice).toMatch(/image\.backends\.1\.name: "g" names two backends.*IMAGE_BACKENDS/);
    const concurrency = configError({ IMAGE_BACKENDS: "a1111=http://a:1*0" });
    expect(concurrency).toMatch(/image\.backends\.0\.concurrency: .*\(set by IMAGE_BACKENDS\)/);
  });

  it("refuses IMAGE_BACKEND beside IMAGE_BACKENDS", () => {
    expect(
      configError({ IMAGE_BACKEND: "automatic1111", IMAGE_BACKENDS: "a1111=http://a:1" }),
    ).toMatch(/image\.backend: .*leave image\.backend \(IMAGE_BACKEND\) unset/);
  });

  it("keeps the single-backend settings as they were: that backend alone, even with shared slots", async () => {
    const { config, secrets } = loadConfig(env({ A1111_URL: "http://127.0.0.1:7860" }));
    const alone = openImageBackend(config, secrets);
    expect(alone.name).toBe("automatic1111");
    await alone.close();
    // Workers on their own GPU boxes each limit their own renders (queue.concurrency): a slot
    // count shared through Redis would cap them all together.
    const worker = openImageBackend(config, secrets, { sharedSlotsUrl: "redis://127.0.0.1:9" });
    expect(worker.name).toBe("automatic1111");
    await worker.close();
    const [only] = configuredBackends(config, secrets);
    expect(only).toMatchObject({ name: "automatic1111", concurrency: config.queue.concurrency });
    const pool = openImageBackend(config, secrets, {
      capacity: memoryCapacity(),
    }) as BackendPool;
    expect(pool.name).toBe("pool");
    expect(pool.status()).toEqual([
      expect.objectContaining({
        name: "automatic1111",
        description: "automatic1111 at http://127.0.0.1:7860",
        concurrency: config.queue.concurrency,
        state: "up",
      }),
    ]);
    await pool.close();
  });
});
