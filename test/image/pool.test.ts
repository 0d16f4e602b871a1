/**
 * The image backend pool (src/core/image/pool.ts) against fake AUTOMATIC1111 servers on
 * 127.0.0.1: failover, backoff and recovery, weights, per-backend concurrency, deadlines while
 * waiting, and the ImageBackend contract for a pool.
 */

import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PACKAGE_ROOT } from "../../src/core/config.js";
import { BotError } from "../../src/core/errors.js";
import { openImageBackend } from "../../src/core/image/backends.js";
import {
  AllBackendsDownError,
  type BackendPool,
  createBackendPool,
} from "../../src/core/image/pool.js";
import { seededRandom } from "../../src/core/random.js";
import { RemoteCallError } from "../../src/core/retry.js";
import { FakeComfyUI } from "../fakes/comfyui.js";
import { closedLoopbackPort } from "../fakes/loopback.js";
import { imageConfig } from "./config.js";
import { imageBackendContract, scriptedSubject } from "./contract.js";
import { recordingSleep } from "./images.js";
import {
  healthLog,
  memoryBackend,
  PoolFakeA1111,
  poolFromConfig,
  SMALL_REQUEST,
} from "./poolFakes.js";

imageBackendContract("pool of one automatic1111", async ({ retries, timeoutMs }) => {
  const fake = await new PoolFakeA1111().start();
  // The contract scripts every reply; the fallback image would hide a missing one.
  fake.otherwise({ kind: "error", status: 500, body: { error: "no reply scripted" } });
  const { delays, sleep } = recordingSleep();
  const config = imageConfig({
    backend: null,
    timeoutMs,
    backends: [{ backend: "automatic1111", url: fake.url, retries }],
    pool: { healthIntervalMs: 0, backoffBaseMs: 60_000 },
  });
  const backend = openImageBackend(config, {}, { sleep, random: () => 0.5 });
  return scriptedSubject(backend, delays, fake);
});

const WORKFLOW = join(PACKAGE_ROOT, "config", "comfyui-txt2img.json");

describe("image backend pool", () => {
  let fakes: PoolFakeA1111[];
  let pools: BackendPool[];

  beforeEach(() => {
    fakes = [];
    pools = [];
  });
  afterEach(async () => {
    await Promise.all(pools.map((pool) => pool.close()));
    await Promise.all(fakes.map((fake) => fake.stop()));
  });

  async function fake(): Promise<PoolFakeA1111> {
    const started = await new PoolFakeA1111().start();
    fakes.push(started);
    return started;
  }
  function track(pool: BackendPool): BackendPool {
    pools.push(pool);
    return pool;
  }

  it("sends renders to the healthy backend when the other fails, and takes the failing one out", async () => {
    const [broken, working] = [await fake(), await fake()];
    broken.down = true;
    const health = healthLog();
    const pool = track(
      poolFromConfig(
        [
          // The broken one is picked first nearly always, so the failover is exercised.
          { name: "broken", backend: "automatic1111", url: broken.url, weight: 1000 },
          { name: "working", backend: "automatic1111", url: working.url },
        ],
        {},
        { pool: { random: seededRandom(1).next, onHealthChange: health.onHealthChange } },
      ),
    );
    for (let i = 0; i < 8; i++) {
      const image = await pool.render({ ...SMALL_REQUEST, seed: i });
      expect(image.width).toBe(32);
    }
    expect(working.served).toBe(8);
    // Tried once, failed with a 503, then out of rotation for the backoff.
    expect(broken.renders).toHaveLength(1);
    expect(health.changes).toEqual([
      expect.objectContaining({ member: "broken", state: "down", retryInMs: 60_000 }),
    ]);
    const [brokenStatus, workingStatus] = pool.status();
    expect(brokenStatus).toMatchObject({ name: "broken", state: "down", failures: 1 });
    expect(brokenStatus?.reason).toMatch(/HTTP 503/);
    expect(workingStatus).toMatchObject({ name: "working", state: "up" });

    // Fixed: a health check run now (as a worker may at start) brings it back at once.
    broken.down = false;
    const checked = await pool.checkHealth();
    expect(checked.map((s) => s.state)).toEqual(["up", "up"]);
    expect((await pool.render(SMALL_REQUEST)).backend).toBe("broken");
  });

  it("counts renders that fail together on a server going down as one failure", async () => {
    const [broken, working] = [await fake(), await fake()];
    broken.down = true;
    const health = healthLog();
    const pool = track(
      poolFromConfig(
        [
          {
            name: "broken",
            backend: "automatic1111",
            url: broken.url,
            concurrency: 4,
            weight: 1e3,
          },
          { name: "working", backend: "automatic1111", url: working.url, concurrency: 4 },
        ],
        {},
        // 0: every render tries the heavy backend first.
        { pool: { random: () => 0, onHealthChange: health.onHealthChange } },
      ),
    );
    await Promise.all(Array.from({ length: 4 }, () => pool.render(SMALL_REQUEST)));
    expect(broken.renders).toHaveLength(4);
    expect(working.served).toBe(4);
    expect(health.changes).toHaveLength(1);
    expect(pool.status()[0]).toMatchObject({ state: "down", failures: 1 });
  });

  it("brings a backend back after its backoff once its health call answers, doubling the wait while it does not", async () => {
    const [flaky, steady] = [await fake(), await fake()];
    flaky.down = true;
    const health = healthLog();
    const pool = track(
      poolFromConfig(
        [
          { name: "flaky", backend: "automatic1111", url: flaky.url, weight: 1000 },
          { name: "steady", backend: "automatic1111", url: steady.url },
        ],
        { backoffBaseMs: 20, backoffMaxMs: 10_000 },
        { pool: { random: seededRandom(2).next, onHealthChange: health.onHealthChange } },
      ),
    );
    const secondDown = health.next("flaky", "down").then(() => health.next("flaky", "down"));
    await pool.render(SMALL_REQUEST);
    expect(steady.served).toBe(1);
    // The first health call (after 20 ms) still finds it broken: next try in 40 ms.
    expect((await secondDown).retryInMs).toBe(40);
    const renderCallsWhileDown = flaky.renders.length;
    await pool.render(SMALL_REQUEST);
    expect(flaky.renders).toHaveLength(renderCallsWhileDown);
    expect(steady.served).toBe(2);

    flaky.down = false;
    await health.next("flaky", "up");
    expect(pool.status()[0]).toMatchObject({ state: "up" });
    for (let i = 0; i < 3; i++) await pool.render(SMALL_REQUEST);
    expect(flaky.served).toBe(3);
    // A successful render clears the failure count, so the next failure backs off from 20 ms.
    expect(pool.status()[0]?.failures).toBe(0);
    const sequence = health.changes.filter((c) => c.member === "flaky").map((c) => c.retryInMs);
    expect(sequence.slice(0, 2)).toEqual([20, 40]);
  });

  it("routes to an AUTOMATIC1111 and a ComfyUI server alike, and health-checks both", async () => {
    const a1111 = await fake();
    const comfy = await new FakeComfyUI().start();
    comfy.otherwise({ kind: "image" });
    const pool = track(
      poolFromConfig(
        [
          { name: "a1111", backend: "automatic1111", url: a1111.url },
          { name: "comfy", backend: "comfyui", url: comfy.url, workflowFile: WORKFLOW },
        ],
        {},
        // ComfyUI polls its history between checks; the fake answers at once.
        { sleep: async () => {}, pool: { random: seededRandom(6).next } },
      ),
    );
    try {
      const images = [];
      for (let i = 0; i < 12; i++) images.push(await pool.render({ ...SMALL_REQUEST, seed: i }));
      const byBackend = images.map((image) => image.backend);
      expect(byBackend.filter((b) => b === "a1111").length).toBe(a1111.served);
      expect(byBackend.filter((b) => b === "comfy").length).toBe(comfy.renders.length);
      expect(a1111.served).toBeGreaterThan(0);
      expect(comfy.renders.length).toBeGreaterThan(0);
      expect(a1111.served + comfy.renders.length).toBe(12);
      expect((await pool.checkHealth()).map((s) => s.state)).toEqual(["up", "up"]);
      expect(comfy.requests.some((r) => r.path === "/system_stats")).toBe(true);
    } finally {
      await pool.close();
      await comfy.stop();
    }
  });

  it("spreads renders by weight over many seeded picks", async () => {
    const members = [
      { name: "w1", weight: 1 },
      { name: "w2", weight: 2 },
      { name: "w5", weight: 5 },
    ].map(({ name, weight }) => {
      const memory = memoryBackend(name);
      return { name, weight, concurrency: 1, backend: memory.backend, requests: memory.requests };
    });
    const pool = track(
      createBackendPool(members, { random: seededRandom(7).next, healthIntervalMs: 0 }),
    );
    const total = 4_000;
    for (let i = 0; i < total; i++) await pool.render(SMALL_REQUEST);
    const shares = members.map((member) => member.requests.length / total);
    expect(shares.reduce((a, b) => a + b)).toBeCloseTo(1, 10);
    expect(shares[0]).toBeCloseTo(1 / 8, 1);
    expect(shares[1]).toBeCloseTo(2 / 8, 1);
    expect(shares[2]).toBeCloseTo(5 / 8, 1);
    // Within 2 percentage points of the weights, not only to one decimal.
    for (const [i, weight] of [1, 2, 5].entries()) {
      expect(Math.abs((shares[i] as number) - weight / 8)).toBeLessThan(0.02);
    }
  });

  it("never runs more renders on a backend than its concurrency, and fills every slot", async () => {
    const [two, one] = [await fake(), await fake()];
    two.renderMs = 15;
    one.renderMs = 15;
    const pool = track(
      poolFromConfig(
        [
          { name: "two", backend: "automatic1111", url: two.url, concurrency: 2 },
          { name: "one", backend: "automatic1111", url: one.url, concurrency: 1 },
        ],
        {},
        { pool: { random: seededRandom(3).next } },
      ),
    );
    const images = await Promise.all(
      Array.from({ length: 24 }, (_, i) => pool.render({ ...SMALL_REQUEST, seed: i })),
    );
    expect(images.map((image) => image.seed)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(two.maxInFlight).toBe(2);
    expect(one.maxInFlight).toBe(1);
    expect(two.served + one.served).toBe(24);
  });

  it("gives up waiting for a slot when the job's deadline passes, without reaching a backend", async () => {
    let open: () => void = () => {};
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    const gated = memoryBackend("gated", () => opened);
    const pool = track(
      createBackendPool([{ name: "gated", backend: gated.backend, concurrency: 1, weight: 1 }], {
        healthIntervalMs: 0,
      }),
    );
    const started = gated.nextStart();
    const first = pool.render(SMALL_REQUEST);
    await started;
    const deadline = new AbortController();
    const second = pool.render({ ...SMALL_REQUEST, signal: deadline.signal });
    const reason = new BotError("DEADLINE", "The job ran past its deadline");
    // The queue's deadline timer fires while the render waits for the one slot.
    setTimeout(() => deadline.abort(reason), 30);
    await expect(second).rejects.toBe(reason);
    expect(gated.requests).toHaveLength(1);
    // A plain abort (no BotError reason) is reported as ABORTED.
    const cancelled = new AbortController();
    const third = pool.render({ ...SMALL_REQUEST, signal: cancelled.signal });
    cancelled.abort();
    await expect(third).rejects.toMatchObject({ code: "ABORTED" });
    open();
    expect((await first).model).toBe("gated");
    // The slot freed by the first render serves the next one.
    expect((await pool.render(SMALL_REQUEST)).model).toBe("gated");
  });

  it("when every backend is down, says so naming each one, why and when it is checked again", async () => {
    const [portA, portB] = [await closedLoopbackPort(), await closedLoopbackPort()];
    const pool = track(
      poolFromConfig([
        { name: "gpu1", backend: "automatic1111", url: `http://user:secret@127.0.0.1:${portA}` },
        { name: "gpu2", backend: "automatic1111", url: `http://127.0.0.1:${portB}` },
      ]),
    );
    // The render that found them down fails with the last backend's own error…
    const first = await pool.render(SMALL_REQUEST).catch((error: unknown) => error);
    expect(first).toBeInstanceOf(RemoteCallError);
    expect((first as Error).message).toMatch(/could not be reached/);
    // …and the next one at once with the operator's summary.
    const second = await pool.render(SMALL_REQUEST).catch((error: unknown) => error);
    expect(second).toBeInstanceOf(AllBackendsDownError);
    const message = (second as Error).message;
    expect(message).toContain(`gpu1 (automatic1111 at http://127.0.0.1:${portA})`);
    expect(message).toContain(`gpu2 (automatic1111 at http://127.0.0.1:${portB})`);
    expect(message).toMatch(/could not be reached.*checked again in 60 s/);
    expect(message).toContain("IMAGE_BACKENDS");
    expect(message).not.toContain("secret");
  });

  it("does not retry the request's own failure on another backend", async () => {
    const [first, second] = [await fake(), await fake()];
    first.script({ kind: "error", status: 400, body: { error: "width must be a multiple of 8" } });
    const pool = track(
      poolFromConfig(
        [
          { name: "first", backend: "automatic1111", url: first.url, weight: 1000 },
          { name: "second", backend: "automatic1111", url: second.url },
        ],
        {},
        { pool: { random: seededRandom(4).next } },
      ),
    );
    await expect(pool.render(SMALL_REQUEST)).rejects.toMatchObject({ status: 400 });
    expect(second.renders).toHaveLength(0);
    expect(pool.status().map((s) => s.state)).toEqual(["up", "up"]);
  });

  it("passes a busy server's render to another backend without taking it out of rotation", async () => {
    const [busy, free] = [await fake(), await fake()];
    busy.script({ kind: "rateLimited", retryAfter: "3600" });
    const pool = track(
      poolFromConfig(
        [
          { name: "busy", backend: "automatic1111", url: busy.url, weight: 1000 },
          { name: "free", backend: "automatic1111", url: free.url },
        ],
        {},
        { pool: { random: seededRandom(5).next } },
      ),
    );
    expect((await pool.render(SMALL_REQUEST)).width).toBe(32);
    expect(free.served).toBe(1);
    expect(pool.status().map((s) => s.state)).toEqual(["up", "up"]);
    // Still in rotation: the next render goes back to it.
    await pool.render(SMALL_REQUEST);
    expect(busy.served).toBe(1);
  });

  it("hands each backend the request as it came, with a signal that the pool's close aborts", async () => {
    const memory = memoryBackend("m");
    const pool = createBackendPool(
      [{ name: "m", backend: memory.backend, concurrency: 1, weight: 1 }],
      {
        healthIntervalMs: 0,
      },
    );
    const request = { ...SMALL_REQUEST, negativePrompt: "blurry" };
    await pool.render(request);
    const received = memory.requests[0];
    expect(received).toMatchObject(request);
    expect(received?.signal?.aborted).toBe(false);
    await pool.close();
    expect(received?.signal?.aborted).toBe(true);
    await expect(pool.render(request)).rejects.toMatchObject({ message: /pool is closed/ });
  });

  it("health-checks backends in rotation and takes a dead one out before a render finds it", async () => {
    const [dying, staying] = [await fake(), await fake()];
    const health = healthLog();
    const pool = track(
      poolFromConfig(
        [
          { name: "dying", backend: "automatic1111", url: dying.url },
          { name: "staying", backend: "automatic1111", url: staying.url },
        ],
        { healthIntervalMs: 25 },
        { pool: { onHealthChange: health.onHealthChange } },
      ),
    );
    dying.down = true;
    const down = await health.next("dying", "down");
    expect(down.reason).toMatch(/HTTP 503/);
    expect(dying.renders).toHaveLength(0);
    for (let i = 0; i < 4; i++) await pool.render(SMALL_REQUEST);
    expect(staying.served).toBe(4);
    expect(dying.renders).toHaveLength(0);
  });
});
