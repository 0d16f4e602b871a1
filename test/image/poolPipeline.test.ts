/**
 * The imagine pipeline on a pool: the same progress events as on one backend, the render moved
 * off a failing server, and the generation record naming the server that rendered it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createBackendPool } from "../../src/core/image/pool.js";
import { createLogger } from "../../src/core/logger.js";
import { createPipeline, type ImagineProgress, type Pipeline } from "../../src/core/pipeline.js";
import { RemoteCallError } from "../../src/core/retry.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import type { ImageBackend } from "../../src/core/types.js";
import {
  armsOf,
  FakeBackend,
  inTestSaveImage,
  MemoryGenerationStore,
  ScriptedGenerator,
  testConfig,
} from "../pipeline/fakes.js";

let dataDir: string;
let pipeline: Pipeline | undefined;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), "imagine-pool-pipeline-"));
});
afterEach(async () => {
  await pipeline?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A server that is down: every render is a 502. */
const failing: ImageBackend = {
  name: "automatic1111",
  async render() {
    throw new RemoteCallError("AUTOMATIC1111 at http://gpu1:7860 failed with HTTP 502", {
      status: 502,
      retryable: true,
    });
  },
  async close() {},
};

describe("the imagine pipeline on a backend pool", () => {
  it("reports the same progress, renders on the healthy server and records which one", async () => {
    const healthy = new FakeBackend();
    const pool = createBackendPool(
      [
        { name: "gpu1", backend: failing, concurrency: 1, weight: 1000 },
        { name: "gpu2", backend: healthy, concurrency: 1, weight: 1 },
      ],
      { healthIntervalMs: 0, backoffBaseMs: 60_000, random: () => 0 },
    );
    const store = new MemoryGenerationStore();
    pipeline = createPipeline({
      config: testConfig(dataDir),
      arms: armsOf(new ScriptedGenerator()),
      backend: pool,
      filter: loadExplicitFilter({}),
      store,
      saveImage: inTestSaveImage(),
      logger: createLogger({ level: "silent" }),
    });
    const events: ImagineProgress[] = [];
    const result = await pipeline.imagine(
      { subject: "a lighthouse", requester: "u1", platform: "cli", count: 2, seed: 3 },
      (event) => events.push(event),
    );
    expect(events).toEqual([
      { kind: "queued", position: 1 },
      { kind: "writing-prompt" },
      { kind: "rendering", index: 1, of: 2 },
      { kind: "rendering", index: 2, of: 2 },
      { kind: "done" },
    ]);
    expect(result.generations).toHaveLength(2);
    expect(healthy.finished).toHaveLength(2);
    expect(store.generations.map((g) => g.image.backend)).toEqual(["gpu2", "gpu2"]);
    expect(pool.status().map((s) => s.state)).toEqual(["down", "up"]);
  });
});
