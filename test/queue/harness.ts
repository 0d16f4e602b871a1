/**
 * The render queues under test, each as a "system": a queue to submit to and the processes that
 * run jobs. In-process: LocalRenderQueue. BullMQ: BullmqRenderQueue plus BullmqRenderWorkers in
 * this process, on the test Redis (IMAGINE_TEST_REDIS_URL) under a fresh key prefix that
 * close() deletes.
 */
import { Redis } from "ioredis";
import { BullmqRenderQueue, BullmqRenderWorker } from "../../src/core/queue/bullmq.js";
import type { JobProcessor, RenderQueue } from "../../src/core/queue/contract.js";
import { LocalRenderQueue } from "../../src/core/queue/local.js";
import { runId } from "../votes/services.js";

export interface QueueLimits {
  concurrency: number;
  perUserCap: number;
  globalCap: number;
  deadlineMs: number;
}

export interface QueueSystem<Data, Result> {
  queue: RenderQueue<Data, Result>;
  /** Another submitting process on the same jobs (BullMQ only). */
  secondQueue?(): RenderQueue<Data, Result>;
  close(): Promise<void>;
}

export type SystemFactory = <Data, Prepared, Result>(
  limits: QueueLimits,
  processor: JobProcessor<Data, Prepared, Result>,
) => Promise<QueueSystem<Data, Result>>;

export const localSystem: SystemFactory = async (limits, processor) => {
  const queue = new LocalRenderQueue(limits, processor);
  return { queue, close: () => queue.close() };
};

/** Deletes every key whose name starts with `prefix`. */
export async function deletePrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    await redis.quit();
  }
}

export function bullmqSystem(url: string): SystemFactory {
  return async (limits, processor) => {
    const prefix = `imagine-test-${runId()}`;
    const queues: { close(): Promise<void> }[] = [];
    const open = () => {
      const queue = new BullmqRenderQueue<never, never>({ url, prefix, ...limits });
      queues.push(queue);
      return queue;
    };
    const worker = new BullmqRenderWorker(
      { url, prefix, concurrency: limits.concurrency },
      processor,
    );
    await worker.waitUntilReady();
    return {
      queue: open(),
      secondQueue: open,
      async close() {
        await Promise.allSettled(queues.map((q) => q.close()));
        await worker.close(true);
        await deletePrefix(url, prefix);
      },
    } as unknown as QueueSystem<never, never>;
  };
}
