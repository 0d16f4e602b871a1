/**
 * The shared render queue (BullMQ on Redis, src/core/queue/bullmq.ts) with a fake backend whose
 * every render takes a fixed time. Issue 16's goals, printed next to each figure:
 *
 * 1. Throughput scales with workers: 1, 2 and 4 workers × concurrency 2, the queue kept full;
 *    jobs per minute within 85% of linear (workers × 2 × 60 000 / render ms).
 * 2. Queue overhead per job, enqueue → worker start, one job at a time with idle workers:
 *    p95 < 20 ms on loopback Redis.
 * 3. --restart-soak N: two submitting processes ("chat", each publishing its results once through
 *    the delivery claim, and recovering its jobs after a restart) and three worker processes;
 *    a seeded random one of them is killed with SIGKILL every --kill-every-ms and started again,
 *    until all N jobs are published. None may be lost and none published twice.
 *
 * Workers of parts 1 and 2 run in this process, each with its own Redis connections as a worker
 * process has (the fake render is a timer, so they do not compete for the CPU); part 3 uses real
 * processes. Redis: IMAGINE_QUEUE_URL, else IMAGINE_TEST_REDIS_URL (`eval "$(scripts/services.sh)"`).
 * Every run uses its own key prefix and deletes it.
 *
 *   npx tsx bench/queue.ts [--render-ms 2000] [--jobs-per-slot 4] [--overhead-jobs 200]
 *   npx tsx bench/queue.ts --restart-soak 200 [--render-ms 200] [--kill-every-ms 1500] [--seed 1]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { availableParallelism, loadavg } from "node:os";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { BullmqRenderQueue, BullmqRenderWorker } from "../src/core/queue/bullmq.js";
import type { JobProcessor } from "../src/core/queue/contract.js";
import { seededRandom } from "../src/core/random.js";

const { values: flags } = parseArgs({
  options: {
    "render-ms": { type: "string" },
    "jobs-per-slot": { type: "string", default: "4" },
    "overhead-jobs": { type: "string", default: "200" },
    "restart-soak": { type: "string" },
    "kill-every-ms": { type: "string", default: "1500" },
    seed: { type: "string", default: "1" },
    // Internal: the child processes of the soak.
    role: { type: "string" },
    prefix: { type: "string" },
    index: { type: "string", default: "0" },
    jobs: { type: "string", default: "0" },
  },
});

const URL = process.env.IMAGINE_QUEUE_URL?.trim() || process.env.IMAGINE_TEST_REDIS_URL?.trim();
if (!URL) {
  process.stderr.write(
    'bench/queue.ts needs Redis: set IMAGINE_QUEUE_URL, or run `eval "$(scripts/services.sh)"`\n',
  );
  process.exit(2);
}
const REDIS_URL: string = URL;
const SOAK = flags["restart-soak"] === undefined ? undefined : positive("restart-soak");
const RENDER_MS = flags["render-ms"] === undefined ? (SOAK ? 200 : 2000) : positive("render-ms");
const LOCK_MS = 1_000;
const WARM_UP_JOBS = 10;
const SLOTS_PER_WORKER = 2;

function positive(name: keyof typeof flags): number {
  const value = Number(flags[name]);
  if (!Number.isInteger(value) || value < 0) {
    process.stderr.write(`--${name} must be a whole number ≥ 0, got "${flags[name]}"\n`);
    process.exit(2);
  }
  return value;
}

interface BenchJob {
  /** The logical request ("c0-17"): published twice would be a double post. */
  request: string;
  /** performance.timeOrigin + performance.now() at submit (enqueue → start, same machine). */
  enqueuedAt: number;
}

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Prompt stage: nothing; render stage: the fixed render time. */
function processor(
  renderMs: number,
  onStart?: (job: BenchJob) => void,
): JobProcessor<BenchJob, null, string> {
  return {
    async prepare(job) {
      onStart?.(job);
      return null;
    },
    async render(job) {
      await sleep(renderMs);
      return job.request;
    },
  };
}

function queueFor(prefix: string) {
  return new BullmqRenderQueue<BenchJob, string>({
    url: REDIS_URL,
    prefix,
    perUserCap: 10_000,
    globalCap: 10_000,
    deadlineMs: 600_000,
  });
}

function workerFor(prefix: string, renderMs = RENDER_MS, onStart?: (job: BenchJob) => void) {
  return new BullmqRenderWorker(
    { url: REDIS_URL, prefix, concurrency: SLOTS_PER_WORKER, lockMs: LOCK_MS },
    processor(renderMs, onStart),
  );
}

async function deletePrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
  await redis.quit();
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** The machine's state, printed with the figures: a shared machine's load moves the tail. */
function machine(): string {
  const [one] = loadavg();
  return `${availableParallelism()} CPUs, load average ${one?.toFixed(1)}`;
}

const run = `bench-queue-${Date.now().toString(36)}-${process.pid}`;

async function throughput(workers: number): Promise<void> {
  const prefix = `${run}-t${workers}`;
  const queue = queueFor(prefix);
  const pool = Array.from({ length: workers }, () => workerFor(prefix));
  try {
    await Promise.all(pool.map((w) => w.waitUntilReady()));
    const jobs = workers * SLOTS_PER_WORKER * positive("jobs-per-slot");
    const started = performance.now();
    const submitted = await Promise.all(
      Array.from({ length: jobs }, (_, i) =>
        queue.submit({ user: `u${i}`, data: { request: `j${i}`, enqueuedAt: now() } }),
      ),
    );
    await Promise.all(submitted.map((job) => job.result));
    const ms = performance.now() - started;
    const perMinute = (jobs / ms) * 60_000;
    const linear = (workers * SLOTS_PER_WORKER * 60_000) / RENDER_MS;
    const ratio = perMinute / linear;
    console.log(
      `  ${workers} worker${workers === 1 ? " " : "s"} × ${SLOTS_PER_WORKER}: ${jobs} jobs in ${(ms / 1000).toFixed(2)} s = ${perMinute.toFixed(1)} jobs/min; linear ${linear.toFixed(1)} → ${(ratio * 100).toFixed(1)}% (goal ≥ 85%) ${ratio >= 0.85 ? "ok" : "MISSED"}`,
    );
  } finally {
    await queue.close();
    await Promise.all(pool.map((w) => w.close(true)));
    await deletePrefix(prefix);
  }
}

async function overhead(): Promise<void> {
  const prefix = `${run}-o`;
  const queue = queueFor(prefix);
  const waits: number[] = [];
  const pool = [1, 2].map(() =>
    // Renders of 0 ms: only the queue's own time is measured.
    workerFor(prefix, 0, (job) => {
      waits.push(now() - job.enqueuedAt);
    }),
  );
  try {
    await Promise.all(pool.map((w) => w.waitUntilReady()));
    const count = positive("overhead-jobs");
    // Warm-up, not counted: connections, Lua scripts loaded, JIT.
    for (let i = 0; i < WARM_UP_JOBS; i++) {
      await (await queue.submit({ user: "u", data: { request: `w${i}`, enqueuedAt: now() } }))
        .result;
    }
    waits.length = 0;
    for (let i = 0; i < count; i++) {
      const job = await queue.submit({ user: "u", data: { request: `o${i}`, enqueuedAt: now() } });
      await job.result;
    }
    const sorted = [...waits].sort((a, b) => a - b);
    const p95 = percentile(sorted, 95);
    console.log(
      `  enqueue → worker start, ${count} jobs one at a time (after ${WARM_UP_JOBS} uncounted): p50 ${percentile(sorted, 50).toFixed(2)} ms, p95 ${p95.toFixed(2)} ms, max ${(sorted.at(-1) ?? NaN).toFixed(2)} ms (goal p95 < 20 ms) ${p95 < 20 ? "ok" : "MISSED"}`,
    );
  } finally {
    await queue.close();
    await Promise.all(pool.map((w) => w.close(true)));
    await deletePrefix(prefix);
  }
}

// ---------------------------------------------------------------- restart soak

const POSTED = (prefix: string) => `${prefix}:bench:posted`;

/** A soak worker process: takes jobs until killed. */
async function workerRole(prefix: string): Promise<void> {
  const worker = workerFor(prefix);
  await worker.waitUntilReady();
  console.log("ready");
}

/**
 * A soak chat process: the first start submits its share, then every start (the first and each
 * restart) publishes its jobs' results once: claim, RPUSH of the logical request id (the post),
 * confirm; a kill between claim and confirm leaves the job to the restart.
 */
async function chatRole(prefix: string, index: number, jobs: number): Promise<void> {
  const queue = queueFor(prefix);
  const owner = `chat-${index}`;
  const redis = new Redis(REDIS_URL);
  const publish = async (job: {
    result: Promise<string>;
    claimDelivery(): Promise<boolean>;
    confirmDelivery(): Promise<void>;
  }) => {
    const request = await job.result;
    if (!(await job.claimDelivery())) return;
    await redis.rpush(POSTED(prefix), request);
    await job.confirmDelivery();
  };
  const recovered = await queue.recover(owner);
  const first = (await redis.set(`${prefix}:bench:started:${index}`, "1", "NX")) === "OK";
  const work = recovered.map(publish);
  if (first) {
    for (let i = 0; i < jobs; i++) {
      const job = await queue.submit({
        user: `${owner}-u${i}`,
        owner,
        data: { request: `c${index}-${i}`, enqueuedAt: now() },
      });
      work.push(publish(job));
    }
  }
  console.log("ready");
  await Promise.all(work);
}

interface SoakProcess {
  role: "worker" | "chat";
  index: number;
  child: ChildProcess;
  exited: Promise<unknown>;
}

async function restartSoak(total: number): Promise<void> {
  const prefix = `${run}-soak`;
  const random = seededRandom(Number(flags.seed));
  const killEvery = positive("kill-every-ms");
  const chats = 2;
  const share = (i: number) => Math.floor(total / chats) + (i < total % chats ? 1 : 0);
  const spawnRole = async (role: "worker" | "chat", index: number): Promise<SoakProcess> => {
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        import.meta.filename,
        "--role",
        role,
        "--prefix",
        prefix,
        "--index",
        String(index),
        "--jobs",
        String(share(index)),
        "--render-ms",
        String(RENDER_MS),
      ],
      {
        stdio: ["ignore", "pipe", "inherit"],
        env: { ...process.env, IMAGINE_QUEUE_URL: REDIS_URL },
      },
    );
    const exited = once(child, "exit");
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    await Promise.race([
      once(lines, "line"),
      exited.then(() => {
        throw new Error(`${role} ${index} exited before it was ready`);
      }),
    ]);
    return { role, index, child, exited };
  };
  const processes: SoakProcess[] = await Promise.all([
    ...[0, 1, 2].map((i) => spawnRole("worker", i)),
    ...Array.from({ length: chats }, (_, i) => spawnRole("chat", i)),
  ]);
  const redis = new Redis(REDIS_URL);
  const started = performance.now();
  let kills = 0;
  const killed: Record<string, number> = { worker: 0, chat: 0 };
  try {
    while ((await redis.llen(POSTED(prefix))) < total) {
      await sleep(killEvery);
      if ((await redis.llen(POSTED(prefix))) >= total) break;
      const at = Math.floor(random.next() * processes.length);
      const victim = processes[at] as SoakProcess;
      victim.child.kill("SIGKILL");
      await victim.exited;
      kills++;
      killed[victim.role] = (killed[victim.role] ?? 0) + 1;
      processes[at] = await spawnRole(victim.role, victim.index);
    }
    // Every chat process has published what it waits for; a double would be in the list by now.
    await Promise.all(processes.filter((p) => p.role === "chat").map((p) => p.exited));
    const posted = await redis.lrange(POSTED(prefix), 0, -1);
    const unique = new Set(posted);
    const lost = total - unique.size;
    const doubled = posted.length - unique.size;
    console.log(
      `  ${total} jobs, render ${RENDER_MS} ms, ${kills} SIGKILLs (${killed.worker} workers, ${killed.chat} chat processes) in ${((performance.now() - started) / 1000).toFixed(1)} s: lost ${lost}, published twice ${doubled} (goal 0 and 0) ${lost === 0 && doubled === 0 ? "ok" : "MISSED"}`,
    );
  } finally {
    for (const p of processes) p.child.kill("SIGKILL");
    await redis.quit();
    await deletePrefix(prefix);
  }
}

if (flags.role === "worker") {
  await workerRole(flags.prefix as string);
} else if (flags.role === "chat") {
  await chatRole(flags.prefix as string, Number(flags.index), Number(flags.jobs));
  process.exit(0);
} else if (SOAK !== undefined) {
  console.log(`restart soak (Redis ${REDIS_URL}; ${machine()}):`);
  await restartSoak(SOAK);
  process.exit(0);
} else {
  console.log(`throughput, fake render ${RENDER_MS} ms (Redis ${REDIS_URL}; ${machine()}):`);
  for (const workers of [1, 2, 4]) await throughput(workers);
  console.log(`queue overhead (${machine()}):`);
  await overhead();
  process.exit(0);
}
