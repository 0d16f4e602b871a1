/**
 * What only the shared (BullMQ) queue does, on a real Redis: a job outlives the process that
 * submitted it (recover), a worker whose backend fails hands the job to another, a dead worker's
 * job is retried elsewhere once its lock lapses, and the settings that select it.
 */
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/core/config.js";
import { BotError, ConfigError } from "../../src/core/errors.js";
import { BullmqRenderQueue, BullmqRenderWorker } from "../../src/core/queue/bullmq.js";
import type { JobProcessor } from "../../src/core/queue/contract.js";
import { deleteRedisKeys } from "../helpers/redis.js";
import { requireService, runId } from "../votes/services.js";

const url = requireService("IMAGINE_TEST_REDIS_URL", "Redis");
const LIMITS = { perUserCap: 5, globalCap: 50, deadlineMs: 60_000 };

interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe.runIf(url !== undefined)("BullMQ render queue", () => {
  const redis = url as string;
  const closers: (() => Promise<unknown>)[] = [];
  let prefix: string;

  function queue(limits: Partial<typeof LIMITS> = {}) {
    const q = new BullmqRenderQueue<{ name: string }, string>({
      url: redis,
      prefix,
      ...LIMITS,
      ...limits,
    });
    closers.push(() => q.close());
    return q;
  }

  function worker(processor: JobProcessor<{ name: string }, null, string>, lockMs?: number) {
    const w = new BullmqRenderWorker(
      {
        url: redis,
        prefix,
        concurrency: 1,
        backoffMs: 60_000,
        handOff: () => true,
        ...(lockMs ? { lockMs } : {}),
      },
      processor,
    );
    closers.push(() => w.close(true));
    return w;
  }

  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await deleteRedisKeys(redis, prefix);
  });

  it("gives a restarted submitter its unpublished jobs, finished or not, once", async () => {
    prefix = `imagine-test-${runId()}`;
    const gate = deferred();
    const w = worker({
      prepare: async () => null,
      render: async (job) => {
        if (job.name === "b") await gate.promise;
        return `${job.name} done`;
      },
    });
    await w.waitUntilReady();
    const first = queue();
    const finished = await first.submit({ user: "u", owner: "chat-1", data: { name: "a" } });
    await finished.result;
    const running = await first.submit({ user: "u", owner: "chat-1", data: { name: "b" } });
    const other = await first.submit({ user: "u", owner: "chat-2", data: { name: "c" } });
    other.result.catch(() => {});
    const stillRunning = running.result.catch((error: unknown) => error);
    // The process goes away without publishing anything; its waits end, the jobs go on.
    await first.close();
    expect(await stillRunning).toMatchObject({ code: "QUEUE_CLOSED" });
    gate.resolve();

    const second = queue();
    const recovered = await second.recover("chat-1");
    expect(recovered.map((job) => job.data.name).sort()).toEqual(["a", "b"]);
    expect(recovered.every((job) => job.user === "u")).toBe(true);
    expect(await Promise.all(recovered.map((job) => job.result))).toEqual(
      recovered.map((job) => `${job.data.name} done`),
    );
    expect(await Promise.all(recovered.map((job) => job.claimDelivery()))).toEqual([true, true]);
    await Promise.all(recovered.map((job) => job.confirmDelivery()));
    // Posted: neither a later restart nor the other owner's recovery sees them again.
    expect(await queue().recover("chat-1")).toEqual([]);
    const theirs = await queue().recover("chat-2");
    expect(theirs.map((job) => job.id)).toEqual([other.id]);
    await expect(theirs[0]?.result).resolves.toBe("c done");
  });

  it("gives a job claimed but never confirmed (its process died before posting) to the owner's restart, once", async () => {
    prefix = `imagine-test-${runId()}`;
    const w = worker({ prepare: async () => null, render: async (job) => `${job.name} done` });
    await w.waitUntilReady();
    const first = queue();
    const lost = await first.submit({ user: "u", owner: "chat-1", data: { name: "lost" } });
    const posted = await first.submit({ user: "u", owner: "chat-1", data: { name: "posted" } });
    await Promise.all([lost.result, posted.result]);
    expect(await lost.claimDelivery()).toBe(true);
    expect(await posted.claimDelivery()).toBe(true);
    await posted.confirmDelivery();
    // The process hangs here for good, as if killed: "lost" was claimed and never posted.

    // Another owner's process, even recovering its own jobs, cannot take this owner's lease.
    expect(await queue().recover("chat-2")).toEqual([]);
    const second = queue();
    const recovered = await second.recover("chat-1");
    expect(recovered.map((job) => job.data.name)).toEqual(["lost"]);
    const [again] = recovered;
    await expect(again?.result).resolves.toBe("lost done");
    // The restart takes over its dead predecessor's lease, once.
    expect(await Promise.all([again?.claimDelivery(), again?.claimDelivery()])).toEqual(
      expect.arrayContaining([true, false]),
    );
    // Until it confirms, a further restart would post it again; after, nobody does.
    expect((await queue().recover("chat-1")).map((job) => job.data.name)).toEqual(["lost"]);
    await again?.confirmDelivery();
    expect(await queue().recover("chat-1")).toEqual([]);
    // Nor may the hung process, whose lease was taken over, claim it again.
    expect(await lost.claimDelivery()).toBe(false);
  });

  it("recovers a finished job's result even after its deadline has passed", async () => {
    prefix = `imagine-test-${runId()}`;
    const w = worker({ prepare: async () => null, render: async (job) => `${job.name} done` });
    await w.waitUntilReady();
    const first = queue({ deadlineMs: 200 });
    const job = await first.submit({ user: "u", owner: "chat-1", data: { name: "a" } });
    await job.result;
    await first.close();
    // The chat process stays down past the job's deadline (the subject of this test: time).
    await new Promise((resolve) => setTimeout(resolve, 300));
    const [recovered] = await queue({ deadlineMs: 200 }).recover("chat-1");
    await expect(recovered?.result).resolves.toBe("a done");
  });

  it("hands a job whose render failed to another worker and pauses the failing one", async () => {
    prefix = `imagine-test-${runId()}`;
    const failed = deferred<string>();
    const broken = worker({
      prepare: async () => null,
      render: async (job) => {
        failed.resolve(job.name);
        throw new BotError("GENERATION_FAILED", "A1111 answered 500");
      },
    });
    await broken.waitUntilReady();
    const paused = once(broken.worker, "paused");
    const q = queue();
    const job = await q.submit({ user: "u", data: { name: "a" } });
    expect(await failed.promise).toBe("a");
    await paused;
    const healthy = worker({ prepare: async () => null, render: async (j) => `${j.name} ok` });
    await healthy.waitUntilReady();
    await expect(job.result).resolves.toBe("a ok");
  });

  it("retries a dead worker's job on another once its lock lapses", async () => {
    prefix = `imagine-test-${runId()}`;
    const taken = deferred();
    const dying = worker(
      {
        prepare: async () => null,
        render: async () => {
          taken.resolve();
          return new Promise<string>(() => {});
        },
      },
      500,
    );
    await dying.waitUntilReady();
    const q = queue();
    const job = await q.submit({ user: "u", data: { name: "a" } });
    await taken.promise;
    // Gone without a word: its lock is no longer renewed.
    await dying.close(true);
    const rescuer = worker(
      { prepare: async () => null, render: async (j) => `${j.name} again` },
      500,
    );
    await rescuer.waitUntilReady();
    await expect(job.result).resolves.toBe("a again");
  });
});

describe("shared queue settings", () => {
  it("takes IMAGINE_QUEUE_URL and names it when it is not a Redis URL", () => {
    expect(loadConfig({ IMAGINE_QUEUE_URL: "redis://10.0.0.5:6379" }).config.queue.url).toBe(
      "redis://10.0.0.5:6379",
    );
    expect(loadConfig({}).config.queue.url).toBeUndefined();
    expect(() => loadConfig({ IMAGINE_QUEUE_URL: "http://10.0.0.5" })).toThrow(ConfigError);
    expect(() => loadConfig({ IMAGINE_QUEUE_URL: "http://10.0.0.5" })).toThrow(/IMAGINE_QUEUE_URL/);
  });
});
