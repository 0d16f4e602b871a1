/**
 * Backend slots shared through Redis (src/core/image/capacity.ts), against the test Redis
 * (`eval "$(scripts/services.sh)"`): several processes, each with its own connection, hold a
 * backend's concurrency together; a process that dies without releasing frees its slot when its
 * lease lapses; a live render's lease is renewed. Each test writes under its own key prefix and
 * the run deletes them afterwards.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { type BackendCapacity, redisCapacity } from "../../src/core/image/capacity.js";
import type { BackendPool } from "../../src/core/image/pool.js";
import { seededRandom } from "../../src/core/random.js";
import { deleteRedisKeys } from "../helpers/redis.js";
import { PoolFakeA1111, poolFromConfig, SMALL_REQUEST } from "./poolFakes.js";

const url = process.env.IMAGINE_TEST_REDIS_URL?.trim();
const ROOT = resolve(import.meta.dirname, "..", "..");
const CAPACITY_MODULE = resolve(ROOT, "src/core/image/capacity.ts");
const run = `t${Date.now().toString(36)}${process.pid.toString(36)}`;

if (!url) {
  describe("backend slots on Redis", () => {
    it("has a Redis server to test against", () => {
      throw new Error(
        'IMAGINE_TEST_REDIS_URL is not set: run `eval "$(scripts/services.sh)"` (starts the test Redis), or scripts/test.sh.',
      );
    });
  });
} else {
  const redisUrl = url;
  let testIndex = 0;
  let prefix: string;
  let opened: { close(): Promise<void> }[];

  afterAll(async () => {
    await deleteRedisKeys(redisUrl, `${run}:`);
  });

  beforeEach(() => {
    prefix = `${run}:${++testIndex}:`;
    opened = [];
  });
  afterEach(async () => {
    for (const resource of opened.reverse()) await resource.close();
  });

  /** One "process": its own connection to Redis. */
  function slots(leaseTtlMs?: number): BackendCapacity {
    const capacity = redisCapacity({ url: redisUrl, prefix, leaseTtlMs });
    opened.push(capacity);
    return capacity;
  }

  async function until(condition: () => Promise<boolean>, limitMs: number): Promise<number> {
    const started = performance.now();
    while (!(await condition())) {
      if (performance.now() - started > limitMs) throw new Error(`not within ${limitMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return performance.now() - started;
  }

  describe("backend slots on Redis", () => {
    it("holds a backend's concurrency across processes", async () => {
      const [first, second] = [slots(), slots()];
      const a = await first.tryAcquire("gpu1", 2);
      const b = await second.tryAcquire("gpu1", 2);
      expect(a).toBeDefined();
      expect(b).toBeDefined();
      expect(await first.tryAcquire("gpu1", 2)).toBeUndefined();
      expect(await second.tryAcquire("gpu1", 2)).toBeUndefined();
      // Another backend's slots are its own.
      expect(await second.tryAcquire("gpu2", 1)).toBeDefined();
      expect(await first.inUse("gpu1")).toBe(2);
      await a?.release();
      await a?.release();
      expect(await second.inUse("gpu1")).toBe(1);
      expect(await second.tryAcquire("gpu1", 2)).toBeDefined();
    });

    it("frees the slot of a worker process killed while holding it once its lease lapses", async () => {
      const survivor = slots(400);
      // A real process takes the slot, then is killed (SIGKILL: no release, no cleanup).
      const worker = spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          "--input-type=module",
          "-e",
          `import { redisCapacity } from ${JSON.stringify(CAPACITY_MODULE)};
           const slots = redisCapacity({ url: ${JSON.stringify(redisUrl)}, prefix: ${JSON.stringify(prefix)}, leaseTtlMs: 400 });
           const lease = await slots.tryAcquire("gpu1", 1);
           console.log(lease ? "held" : "refused");
           setInterval(() => {}, 1000);`,
        ],
        { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
      );
      opened.push({ close: async () => void worker.kill("SIGKILL") });
      const [line] = (await once(worker.stdout, "data")) as [Buffer];
      expect(line.toString().trim()).toBe("held");
      expect(await survivor.tryAcquire("gpu1", 1)).toBeUndefined();
      worker.kill("SIGKILL");
      await once(worker, "exit");
      const waitedMs = await until(
        async () => (await survivor.tryAcquire("gpu1", 1)) !== undefined,
        5_000,
      );
      // Not at once (the lease was live), and not later than its TTL plus a look or two.
      expect(waitedMs).toBeGreaterThan(50);
      expect(waitedMs).toBeLessThan(2_000);
    });

    it("renews a running render's lease, so a long render keeps its slot", async () => {
      const holder = slots(300);
      const other = slots(300);
      const lease = await holder.tryAcquire("gpu1", 1);
      expect(lease).toBeDefined();
      // Three lease lifetimes: without renewal the slot would be free by now.
      await new Promise((resolve) => setTimeout(resolve, 900));
      expect(await other.tryAcquire("gpu1", 1)).toBeUndefined();
      expect(await other.inUse("gpu1")).toBe(1);
      await lease?.release();
      expect(await other.tryAcquire("gpu1", 1)).toBeDefined();
    });

    it("names IMAGINE_QUEUE_URL when Redis cannot be reached", async () => {
      const unreachable = redisCapacity({ url: "redis://127.0.0.1:9", prefix });
      opened.push(unreachable);
      await expect(unreachable.tryAcquire("gpu1", 1)).rejects.toThrow(/IMAGINE_QUEUE_URL/);
    });

    it("keeps two worker processes' pools within one backend's concurrency together", async () => {
      const fake = await new PoolFakeA1111().start();
      opened.push({ close: () => fake.stop() });
      fake.renderMs = 20;
      const pools: BackendPool[] = [1, 2].map((seed) => {
        const pool = poolFromConfig(
          [{ name: "gpu1", backend: "automatic1111", url: fake.url, concurrency: 2 }],
          {},
          { capacity: slots(), pool: { random: seededRandom(seed).next, pollMs: 10 } },
        );
        opened.push(pool);
        return pool;
      });
      const renders = Array.from({ length: 16 }, (_, i) =>
        (pools[i % 2] as BackendPool).render({ ...SMALL_REQUEST, seed: i }),
      );
      await Promise.all(renders);
      expect(fake.served).toBe(16);
      // Each pool alone allows 2, so 4 would run without the shared count.
      expect(fake.maxInFlight).toBe(2);
    });
  });
}
