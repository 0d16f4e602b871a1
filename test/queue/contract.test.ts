/**
 * One contract, two render queues: the in-process JobQueue and BullMQ on a real Redis. Jobs are
 * held by gates the test opens, so that order, caps and positions are checked at known moments.
 */
import { afterEach, describe, expect, it } from "vitest";
import { BotError, UserError } from "../../src/core/errors.js";
import type { JobProcessor, StageContext } from "../../src/core/queue/contract.js";
import { requireService } from "../votes/services.js";
import {
  bullmqSystem,
  localSystem,
  type QueueLimits,
  type QueueSystem,
  type SystemFactory,
} from "./harness.js";

interface TestJob {
  name: string;
  /** What the render stage throws instead of returning. */
  fail?: { type: "user" | "bot"; code: "SUBJECT_EXPLICIT" | "GENERATION_FAILED"; message: string };
  /** The render stage waits for the test to open this job's gate. */
  gated?: boolean;
  /** The render stage waits for its abort signal. */
  hang?: boolean;
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** The processor every test uses, and what it saw. */
class Recorder implements JobProcessor<TestJob, string, { name: string }> {
  readonly prepared: string[] = [];
  readonly aborted: string[] = [];
  private readonly gates = new Map<string, Deferred>();
  private readonly rendering = new Map<string, Deferred>();

  gate(name: string): Deferred {
    let gate = this.gates.get(name);
    if (!gate) {
      gate = deferred();
      this.gates.set(name, gate);
    }
    return gate;
  }

  /** Resolves once `name`'s render stage has begun. */
  renderStarted(name: string): Promise<void> {
    let started = this.rendering.get(name);
    if (!started) {
      started = deferred();
      this.rendering.set(name, started);
    }
    return started.promise;
  }

  async prepare(job: TestJob, context: StageContext): Promise<string> {
    this.prepared.push(job.name);
    context.progress({ step: "prepared", name: job.name });
    return `${job.name}-prompt`;
  }

  async render(job: TestJob, prepared: string, context: StageContext): Promise<{ name: string }> {
    context.progress({ step: "rendering", prompt: prepared });
    void this.renderStarted(job.name);
    this.rendering.get(job.name)?.resolve();
    if (job.hang) {
      await new Promise<void>((_resolve, reject) => {
        context.signal.addEventListener("abort", () => {
          this.aborted.push(job.name);
          reject(context.signal.reason);
        });
      });
    }
    if (job.gated) await this.gate(job.name).promise;
    if (job.fail?.type === "user") throw new UserError(job.fail.code, job.fail.message);
    if (job.fail?.type === "bot") throw new BotError(job.fail.code, job.fail.message);
    return { name: job.name };
  }
}

const LIMITS: QueueLimits = { concurrency: 1, perUserCap: 3, globalCap: 10, deadlineMs: 60_000 };

const redisUrl = requireService("IMAGINE_TEST_REDIS_URL", "Redis");
const implementations: [string, SystemFactory][] = [["in-process", localSystem]];
if (redisUrl !== undefined) implementations.push(["bullmq", bullmqSystem(redisUrl)]);

describe.each(implementations)("render queue contract: %s", (_name, factory) => {
  let system: QueueSystem<TestJob, { name: string }> | undefined;
  let recorder: Recorder;

  async function open(limits: Partial<QueueLimits> = {}) {
    recorder = new Recorder();
    system = await factory({ ...LIMITS, ...limits }, recorder);
    return system.queue;
  }

  afterEach(async () => {
    await system?.close();
    system = undefined;
  });

  it("hands back the result, with the progress updates in order", async () => {
    const queue = await open();
    const updates: unknown[] = [];
    const job = await queue.submit(
      { user: "u1", data: { name: "a" } },
      { onProgress: (update) => updates.push(update) },
    );
    await expect(job.result).resolves.toEqual({ name: "a" });
    expect(updates).toEqual([
      { step: "prepared", name: "a" },
      { step: "rendering", prompt: "a-prompt" },
    ]);
    expect(queue.pending().total).toBe(0);
  });

  it("rethrows a stage's UserError and BotError with their class, code and message", async () => {
    const queue = await open();
    const refused = await queue.submit({
      user: "u1",
      data: { name: "r", fail: { type: "user", code: "SUBJECT_EXPLICIT", message: "not that" } },
    });
    const error = await refused.result.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect(error).toMatchObject({ code: "SUBJECT_EXPLICIT", message: "not that" });
    const failed = await queue.submit({
      user: "u1",
      data: { name: "f", fail: { type: "bot", code: "GENERATION_FAILED", message: "backend 500" } },
    });
    const failure = await failed.result.catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(BotError);
    expect(failure).not.toBeInstanceOf(UserError);
    expect(failure).toMatchObject({ code: "GENERATION_FAILED", message: "backend 500" });
  });

  it("starts jobs in submit order and tells waiting jobs their place in line", async () => {
    const queue = await open({ concurrency: 1 });
    const a = await queue.submit({ user: "u1", data: { name: "a", gated: true } });
    await recorder.renderStarted("a");
    const positions: Record<string, number[]> = { b: [], c: [] };
    const b = await queue.submit(
      { user: "u2", data: { name: "b", gated: true } },
      { onPosition: (p) => positions.b?.push(p) },
    );
    const cPlaced = deferred();
    const cMoved = deferred();
    // From another submitting process where there is one: the line is the same for everyone.
    const c = await (system?.secondQueue?.() ?? queue).submit(
      { user: "u3", data: { name: "c" } },
      {
        onPosition: (p) => {
          positions.c?.push(p);
          if (p === 2) cPlaced.resolve();
          if (p === 1) cMoved.resolve();
        },
      },
    );
    await cPlaced.promise;
    expect(positions.b).toEqual([1]);
    recorder.gate("a").resolve();
    await a.result;
    await recorder.renderStarted("b");
    await cMoved.promise;
    expect(positions.c).toEqual([2, 1]);
    recorder.gate("b").resolve();
    await Promise.all([b.result, c.result]);
    expect(recorder.prepared).toEqual(["a", "b", "c"]);
  });

  it("holds the per-user and global caps, refusing without queuing, until jobs finish", async () => {
    const queue = await open({ concurrency: 2, perUserCap: 2, globalCap: 3 });
    const first = await queue.submit({ user: "ann", data: { name: "a1", gated: true } });
    await queue.submit({ user: "ann", data: { name: "a2", gated: true } });
    await expect(queue.submit({ user: "ann", data: { name: "a3" } })).rejects.toMatchObject({
      code: "QUEUE_USER_FULL",
    });
    await queue.submit({ user: "bob", data: { name: "b1", gated: true } });
    const full = await queue.submit({ user: "cid", data: { name: "c1" } }).catch((e: unknown) => e);
    expect(full).toBeInstanceOf(UserError);
    expect(full).toMatchObject({ code: "QUEUE_FULL" });
    // Another submitting process sees the same caps (BullMQ: they live in Redis).
    const other = system?.secondQueue?.();
    if (other) {
      await expect(other.submit({ user: "cid", data: { name: "c2" } })).rejects.toMatchObject({
        code: "QUEUE_FULL",
      });
    }
    recorder.gate("a1").resolve();
    await first.result;
    const again = await queue.submit({ user: "ann", data: { name: "a4" } });
    recorder.gate("a2").resolve();
    recorder.gate("b1").resolve();
    await expect(again.result).resolves.toEqual({ name: "a4" });
  });

  it("fails a job past its deadline with DEADLINE and aborts its stage", async () => {
    const queue = await open({ deadlineMs: 400 });
    const job = await queue.submit({ user: "u1", data: { name: "slow", hang: true } });
    const error = await job.result.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BotError);
    expect(error).toMatchObject({ code: "DEADLINE" });
    await expect.poll(() => recorder.aborted).toEqual(["slow"]);
  });

  it("lets exactly one caller publish a job's outcome", async () => {
    const queue = await open();
    const job = await queue.submit({ user: "u1", data: { name: "a" } });
    await job.result;
    const claims = await Promise.all([job.claimDelivery(), job.claimDelivery()]);
    expect(claims.sort()).toEqual([false, true]);
    // Confirmed posted: no later claim succeeds.
    await job.confirmDelivery();
    expect(await job.claimDelivery()).toBe(false);
  });
});
