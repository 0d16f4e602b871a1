/**
 * The render queues under test, each as a "system": a queue to submit to and the processes that
 * run jobs. In-process: LocalRenderQueue. BullMQ: BullmqRenderQueue plus BullmqRenderWorkers in
 * this process, on the test Redis (IMAGINE_TEST_REDIS_URL) under a fresh key prefix that
 * close() deletes.
 */
import { BullmqRenderQueue, BullmqRenderWorker } from "../../src/core/queue/bullmq.js";
import type { JobProcessor, RenderQueue } from "../../src/core/queue/contract.js";
import { LocalRenderQueue } from "../../src/core/queue/local.js";
import { deleteRedisKeys } from "../helpers/redis.js";
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
        await deleteRedisKeys(url, prefix);
      },
    } as unknown as QueueSystem<never, never>;
  };
}
