/**
 * The queue under load and at its edges, through the pipeline: caps, FIFO, positions, deadlines,
 * prompt/render overlap, closing. Synchronisation is by events from the fakes, never by sleeping.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BotError, UserError } from "../../src/core/errors.js";
import { createLogger } from "../../src/core/logger.js";
import {
  createPipeline,
  type ImagineProgress,
  type ImagineResult,
  type Pipeline,
} from "../../src/core/pipeline.js";
import { JobQueue } from "../../src/core/queue.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import type { GenerateRequest, ImageRequest } from "../../src/core/types.js";
import {
  armsOf,
  FakeBackend,
  inTestSaveImage,
  MemoryGenerationStore,
  nextEvent,
  type RenderCall,
  ScriptedGenerator,
  testConfig,
} from "./fakes.js";

const filter = loadExplicitFilter({});
const logger = createLogger({ level: "silent" });

let dataDir: string;
let pipeline: Pipeline | undefined;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), "imagine-queue-"));
});
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
  rmSync(dataDir, { recursive: true, force: true });
});

function build(
  queue: Parameters<typeof testConfig>[1],
  backend: FakeBackend,
  generator = new ScriptedGenerator(),
) {
  const store = new MemoryGenerationStore();
  pipeline = createPipeline({
    config: testConfig(dataDir, queue),
    arms: armsOf(generator),
    backend,
    filter,
    store,
    saveImage: inTestSaveImage(),
    logger,
  });
  return { pipeline, store, generator, backend };
}

/** The subject encodes the request number; the fake generator keeps it in the prompt. */
const subjectOf = (n: number) => `fox number ${n}`;
const numberOf = (prompt: string) => Number(/fox number (\d+)/.exec(prompt)?.[1]);

describe("caps under load", () => {
  it("50 concurrent requests from 10 users: each finishes or is refused with a reason, caps hold throughout, nothing lost or duplicated", async () => {
    const caps = { concurrency: 2, perUserCap: 3, globalCap: 20 };
    const backend = new FakeBackend();
    const generator = new ScriptedGenerator();
    const { store } = build(caps, backend, generator);
    const queue = pipeline?.queue as JobQueue;

    // Accepted-and-unfinished requests per user, as the requesters see them.
    const open = new Map<string, number>();
    let openTotal = 0;
    const violations: string[] = [];
    const check = (when: string) => {
      const snapshot = queue.snapshot();
      if (backend.running > caps.concurrency)
        violations.push(`${when}: ${backend.running} renders`);
      if (generator.running > 1) violations.push(`${when}: ${generator.running} prompt stages`);
      if (snapshot.total > caps.globalCap) violations.push(`${when}: ${snapshot.total} jobs`);
      if (openTotal > caps.globalCap) violations.push(`${when}: ${openTotal} open`);
      for (const [user, n] of [...open, ...Object.entries(snapshot.perUser)]) {
        if (n > caps.perUserCap) violations.push(`${when}: ${user} has ${n}`);
      }
    };
    backend.onStart = () => check("render start");
    generator.on("start", () => check("prompt start"));

    const accepted: number[] = [];
    const submit = (n: number, user: string): Promise<ImagineResult | Error> => {
      let counted = false;
      const settle = () => {
        if (!counted) return;
        open.set(user, (open.get(user) ?? 1) - 1);
        openTotal--;
        check("settle");
      };
      return (pipeline as Pipeline)
        .imagine({ subject: subjectOf(n), requester: user, platform: "discord" }, (event) => {
          if (event.kind === "queued" && !counted) {
            counted = true;
            accepted.push(n);
            open.set(user, (open.get(user) ?? 0) + 1);
            openTotal++;
            check("accept");
          }
        })
        .then(
          (result) => {
            settle();
            return result;
          },
          (error: Error) => {
            settle();
            return error;
          },
        );
    };

    // Bursts: user k sends requests 5k…5k+4, interleaved in two waves so that later requests
    // arrive while earlier ones are finishing.
    const users = Array.from({ length: 10 }, (_, k) => `user${k}`);
    const requests: { n: number; user: string }[] = [];
    for (let n = 0; n < 50; n++) requests.push({ n, user: users[Math.floor(n / 5)] as string });
    const firstWave = requests.slice(0, 25).map(({ n, user }) => submit(n, user));
    await nextEvent(backend, "end");
    const secondWave = requests.slice(25).map(({ n, user }) => submit(n, user));
    const outcomes = await Promise.all([...firstWave, ...secondWave]);

    expect(violations).toEqual([]);
    const done = outcomes.filter((o): o is ImagineResult => !(o instanceof Error));
    const refused = outcomes.filter((o): o is Error => o instanceof Error);
    expect(done.length + refused.length).toBe(50);
    for (const error of refused) {
      expect(error).toBeInstanceOf(UserError);
      expect(["QUEUE_FULL", "QUEUE_USER_FULL"]).toContain((error as UserError).code);
      expect(error.message).toMatch(
        /^(The queue is full \(20 jobs\); try again in a few minutes\.|You already have 3 images waiting; wait for one to finish\.)$/,
      );
    }
    // Both caps were reached in this run.
    expect(new Set(refused.map((e) => (e as UserError).code))).toEqual(
      new Set(["QUEUE_FULL", "QUEUE_USER_FULL"]),
    );
    // Every accepted request finished, exactly once, with its own image.
    expect(done).toHaveLength(accepted.length);
    const rendered = backend.finished.map((r) => numberOf(r.prompt));
    expect([...rendered].sort((a, b) => a - b)).toEqual([...accepted].sort((a, b) => a - b));
    expect(new Set(rendered).size).toBe(rendered.length);
    const ids = store.generations.map((g) => g.id);
    expect(new Set(ids).size).toBe(done.length);
    expect(ids.sort()).toEqual(done.map((d) => d.generations[0]?.generation.id).sort());
    // FIFO: renders started in the order requests were accepted.
    expect(backend.calls.map((r) => numberOf(r.prompt))).toEqual(accepted);
    expect(backend.maxRunning).toBe(2);
    expect(queue.snapshot()).toMatchObject({ total: 0, waiting: 0, rendering: 0, perUser: {} });
  });
});

describe("order and positions", () => {
  it("renders in submit order and tells each job its place in line as it moves up", async () => {
    const backend = new FakeBackend("manual");
    build({ concurrency: 1 }, backend);
    const renders: RenderCall[] = [];
    backend.on("render", (call: RenderCall) => renders.push(call));
    const events: ImagineProgress[][] = [[], [], [], []];
    const users = ["a", "b", "c", "d"];
    const firstRender = nextEvent<RenderCall>(backend, "render");
    const results = users.map((user, i) =>
      pipeline?.imagine({ subject: subjectOf(i), requester: user, platform: "slack" }, (e) =>
        events[i]?.push(e),
      ),
    );
    await firstRender;
    for (let i = 0; i < 4; i++) {
      const call = renders[i] as RenderCall;
      expect(numberOf(call.request.prompt)).toBe(i);
      const next = i < 3 ? nextEvent<RenderCall>(backend, "render") : undefined;
      call.resolve();
      await next;
    }
    await Promise.all(results);
    const positions = events.map((list) =>
      list.filter((e) => e.kind === "queued").map((e) => (e as { position: number }).position),
    );
    expect(positions).toEqual([[1], [2, 1], [3, 2, 1], [4, 3, 2, 1]]);
    // The last job's prompt is written while it waits its turn to render (lookahead: one job
    // ahead at concurrency 1); rendering and done come last.
    const kinds = events[3]?.map((e) => e.kind) ?? [];
    expect(kinds[0]).toBe("queued");
    expect(kinds.filter((k) => k === "writing-prompt")).toHaveLength(1);
    expect(kinds.slice(-2)).toEqual(["rendering", "done"]);
  });
});

describe("deadline", () => {
  it("cancels a hung render through its AbortSignal and fails the job and the one behind it", async () => {
    const backend = new FakeBackend("hang");
    const { store } = build({ concurrency: 1, deadlineMs: 150 }, backend);
    const aborted = nextEvent<ImageRequest>(backend, "abort");
    const first: ImagineProgress[] = [];
    const second: ImagineProgress[] = [];
    const a = pipeline
      ?.imagine({ subject: subjectOf(1), requester: "u1", platform: "cli" }, (e) => first.push(e))
      .catch((e: unknown) => e);
    const b = pipeline
      ?.imagine({ subject: subjectOf(2), requester: "u2", platform: "cli" }, (e) => second.push(e))
      .catch((e: unknown) => e);
    const [errorA, errorB, abortedRequest] = await Promise.all([a, b, aborted]);

    expect(errorA).toBeInstanceOf(BotError);
    expect(errorA).not.toBeInstanceOf(UserError);
    expect((errorA as BotError).code).toBe("DEADLINE");
    expect((errorB as BotError).code).toBe("DEADLINE");
    expect(abortedRequest.signal?.aborted).toBe(true);
    expect(abortedRequest.signal?.reason).toBe(errorA);
    // The second may have reached the backend in the moment between the two deadlines; any
    // render that started was cancelled.
    expect(backend.calls.length).toBeGreaterThanOrEqual(1);
    for (const call of backend.calls) expect(call.signal?.aborted).toBe(true);
    expect(first.at(-1)).toMatchObject({
      kind: "failed",
      reason: expect.stringMatching(/not ready within 150 ms/),
      reference: expect.stringMatching(/^[0-9a-f]{8}$/),
    });
    expect(second.at(-1)).toMatchObject({ kind: "failed" });
    expect(store.generations).toEqual([]);
    expect(pipeline?.queue.snapshot().total).toBe(0);
  });

  it("takes a job whose deadline passes while it waits out of the line without running it", async () => {
    const queue = new JobQueue({ concurrency: 1, perUserCap: 5, globalCap: 5, deadlineMs: 60 });
    let finishStuck!: () => void;
    const stuck = queue.submit({
      user: "u",
      prepare: async () => 1,
      // Ignores its signal, so the slot stays taken past every deadline.
      render: () => new Promise<number>((resolve) => (finishStuck = () => resolve(1))),
    });
    const stages: string[] = [];
    const positions: number[] = [];
    const waiting = queue.submit({
      user: "v",
      prepare: async () => {
        stages.push("prepare");
        return 2;
      },
      render: async (value) => {
        stages.push("render");
        return value;
      },
      onPosition: (p) => positions.push(p),
    });
    await expect(stuck.result).rejects.toMatchObject({ code: "DEADLINE" });
    await expect(waiting.result).rejects.toMatchObject({ code: "DEADLINE" });
    // Its prompt was written ahead (lookahead) but it never rendered, and it left the queue.
    expect(stages).toEqual(["prepare"]);
    expect(positions).toEqual([2, 1]);
    expect(queue.snapshot()).toMatchObject({ ready: 0, rendering: 1, total: 1, perUser: { u: 1 } });
    finishStuck();
    await queue.close();
    expect(queue.snapshot()).toMatchObject({ rendering: 0, total: 0 });
  });

  it("keeps the render slot of a stage that ignores the abort until it settles", async () => {
    const queue = new JobQueue({ concurrency: 1, perUserCap: 5, globalCap: 5, deadlineMs: 20 });
    let finishStuck!: () => void;
    const stuck = queue.submit({
      user: "u",
      prepare: async () => 1,
      render: () => new Promise<number>((resolve) => (finishStuck = () => resolve(1))),
    });
    await expect(stuck.result).rejects.toMatchObject({ code: "DEADLINE" });
    // The job failed on time, but its render is still running: the slot stays taken.
    expect(queue.snapshot()).toMatchObject({ rendering: 1, total: 1 });
    const started: number[] = [];
    const next = queue.submit({
      user: "v",
      prepare: async () => 2,
      render: async (value) => {
        started.push(value);
        return value;
      },
    });
    expect(started).toEqual([]);
    finishStuck();
    await expect(next.result).resolves.toBe(2);
    expect(queue.snapshot()).toMatchObject({ rendering: 0, total: 0 });
  });
});

describe("prompt and render stages overlap", () => {
  it("writes the next job's prompt while the first job renders", async () => {
    const log: string[] = [];
    const generator = new ScriptedGenerator();
    generator.on("start", (r: GenerateRequest) => log.push(`prompt-start ${numberOf(r.subject)}`));
    const backend = new FakeBackend("manual");
    backend.on("render", (call: RenderCall) => {
      const n = numberOf(call.request.prompt);
      log.push(`render-start ${n}`);
      if (n === 1) {
        // Finish job 1's render only once job 2's prompt has started.
        const release = () => {
          log.push("render-end 1");
          call.resolve();
        };
        if (log.includes("prompt-start 2")) release();
        else
          generator.on("start", (r: GenerateRequest) => {
            if (numberOf(r.subject) === 2) release();
          });
      } else {
        log.push(`render-end ${n}`);
        call.resolve();
      }
    });
    build({ concurrency: 1 }, backend, generator);
    await Promise.all(
      [1, 2].map((n) =>
        pipeline?.imagine({ subject: subjectOf(n), requester: `u${n}`, platform: "cli" }),
      ),
    );
    expect(log.indexOf("render-start 1")).toBeLessThan(log.indexOf("prompt-start 2"));
    expect(log.indexOf("prompt-start 2")).toBeLessThan(log.indexOf("render-end 1"));
    expect(log.at(-1)).toBe("render-end 2");
  });
});

describe("closing", () => {
  it("fails waiting and running jobs with QUEUE_CLOSED and refuses new ones", async () => {
    const backend = new FakeBackend("hang");
    build({ concurrency: 1 }, backend);
    const rendering = nextEvent(backend, "render");
    const jobs = [1, 2].map((n) =>
      pipeline
        ?.imagine({ subject: subjectOf(n), requester: `u${n}`, platform: "cli" })
        .catch((e: unknown) => e),
    );
    await rendering;
    await pipeline?.close();
    for (const error of await Promise.all(jobs)) {
      expect((error as BotError).code).toBe("QUEUE_CLOSED");
    }
    await expect(
      pipeline?.imagine({ subject: "a fox", requester: "u3", platform: "cli" }),
    ).rejects.toMatchObject({ code: "QUEUE_CLOSED" });
  });
});
