/**
 * The render queue on BullMQ (Redis), for a deployment of several processes: chat processes
 * submit (BullmqRenderQueue), `imagine-bot worker` processes run the stages (BullmqRenderWorker).
 *
 * BullMQ gives the job lifecycle: a job a worker holds is locked; a worker that dies stops
 * renewing the lock and another worker's stalled-job check puts the job back in line, so it is
 * retried elsewhere. Job ids are ours (random UUIDs), results stay a day (a chat process that
 * restarts mid-job finds them), and progress and outcomes reach every submitter through BullMQ's
 * event stream (QueueEvents). What BullMQ does not have, this adds with a few Redis keys under
 * `<prefix>:<name>:x:`:
 *
 *   caps:u:<user>, caps:all   sorted sets of unfinished job ids, scored by their deadline: the
 *                             per-user and global caps, checked and taken in one Lua script, so
 *                             they hold across processes; entries past their deadline are purged
 *   line, seq                 jobs not started yet, scored by submit order: the queue positions
 *   owner:<owner>             the unpublished jobs of a chat process (recover()); a job leaves
 *                             it when its outcome is confirmed posted, not when it is claimed
 *   claim:<job id>            who publishes the outcome: a lease "lease <owner> <process>"
 *                             (claimDelivery()), then "delivered" (confirmDelivery()); a
 *                             restart of the owner takes over the lease of its dead predecessor
 *
 * Outcomes travel as JSON: { ok: <codec.encode(result)> } or { failure: { type, code, message } },
 * so a UserError or BotError thrown in a worker is rethrown with its class, code and message in the
 * submitting process. A job ends as BullMQ "failed" only when something outside the processor
 * failed (it stalled too often); that is a BotError "GENERATION_FAILED".
 */
import { randomUUID } from "node:crypto";
import { type Job, Queue, QueueEvents, WaitingError, Worker } from "bullmq";
import { Redis } from "ioredis";
import { BotError, type ErrorCode, isBotError, UserError } from "../errors.js";
import type { Logger } from "../types.js";
import type {
  JobProcessor,
  JobSubmission,
  JobWatcher,
  RecoveredJob,
  RenderQueue,
  ResultCodec,
  StageContext,
  SubmittedJob,
} from "./contract.js";

const identity: ResultCodec<never> = {
  encode: (result) => result,
  decode: (wire) => wire as never,
};

export interface BullmqOptions {
  /** redis:// or rediss:// URL (IMAGINE_QUEUE_URL, config queue.url). */
  url: string;
  /** Key prefix, so that several deployments or tests share one Redis (default "imagine"). */
  prefix?: string;
  /** The queue's name under the prefix (default "render"). */
  name?: string;
  logger?: Logger;
}

export interface BullmqQueueOptions<Result> extends BullmqOptions {
  perUserCap: number;
  globalCap: number;
  deadlineMs: number;
  codec?: ResultCodec<Result>;
}

/** How long finished jobs (and their results) are kept for a chat process that comes back. */
export const KEEP_FINISHED_S = 24 * 60 * 60;

interface JobEnvelope<Data> {
  user: string;
  /** Times a worker whose backend failed has handed it back. */
  handOffs?: number;
  owner?: string;
  /** Wall-clock ms after which the job is past its deadline. */
  deadlineAt: number;
  payload: Data;
}

interface WireFailure {
  type: "user" | "bot" | "error";
  code?: string;
  message: string;
}

type WireOutcome = { ok: unknown } | { failure: WireFailure };

/** The Redis keys this module keeps beside BullMQ's. */
class Keys {
  readonly base: string;
  constructor(prefix: string, name: string) {
    this.base = `${prefix}:${name}:x`;
  }
  user(user: string): string {
    return `${this.base}:caps:u:${user}`;
  }
  get all(): string {
    return `${this.base}:caps:all`;
  }
  get line(): string {
    return `${this.base}:line`;
  }
  get seq(): string {
    return `${this.base}:seq`;
  }
  owner(owner: string): string {
    return `${this.base}:owner:${owner}`;
  }
  claim(id: string): string {
    return `${this.base}:claim:${id}`;
  }
}

/** The claim of a job whose outcome has been posted: no claim succeeds again. */
const DELIVERED = "delivered";

/**
 * Claims a job's delivery. KEYS: claim. ARGV: this process's lease, seconds to keep it, and the
 * lease prefix of this owner's earlier processes ("" for none: a recovered job may take over
 * their lease, since a process restarting under the owner's id means the earlier one is gone).
 * Returns 1 when the claim is this process's now.
 */
const CLAIM = `
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then return 0 end
if current and not (ARGV[3] ~= '' and string.sub(current, 1, #ARGV[3]) == ARGV[3]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
`;

/**
 * Marks a claimed job delivered and takes it off its owner's list, if this process still holds
 * the lease. KEYS: claim[, owner list]. ARGV: the lease, seconds to keep the mark, job id.
 */
const CONFIRM = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], '${DELIVERED}', 'EX', ARGV[2])
if KEYS[2] then redis.call('SREM', KEYS[2], ARGV[3]) end
return 1
`;

/**
 * Takes a place under both caps and in line, atomically. KEYS: user set, global set, line, seq.
 * ARGV: now, deadlineAt, job id, perUserCap, globalCap. Returns {-1, mine} (user full),
 * {-2, all} (queue full) or {seq, mine}.
 */
const RESERVE = `
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(expired) do redis.call('ZREM', KEYS[3], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local mine = redis.call('ZCARD', KEYS[1])
if mine >= tonumber(ARGV[4]) then return {-1, mine} end
local all = redis.call('ZCARD', KEYS[2])
if all >= tonumber(ARGV[5]) then return {-2, all} end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
local seq = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[3], seq, ARGV[3])
return {seq, mine + 1}
`;

function connect(url: string): Redis {
  if (!/^rediss?:\/\//.test(url)) {
    throw new BotError(
      "CONFIG_INVALID",
      `IMAGINE_QUEUE_URL must be a redis:// or rediss:// URL, got "${url}"`,
    );
  }
  // BullMQ blocks on its connections: commands must wait for a reconnect, never give up.
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false });
}

async function release(redis: Redis, keys: Keys, id: string, user: string): Promise<void> {
  await redis.multi().zrem(keys.user(user), id).zrem(keys.all, id).zrem(keys.line, id).exec();
}

function wireFailure(error: unknown): WireFailure {
  if (error instanceof UserError) return { type: "user", code: error.code, message: error.message };
  if (isBotError(error)) return { type: "bot", code: error.code, message: error.message };
  return { type: "error", message: error instanceof Error ? error.message : String(error) };
}

function fromWire(failure: WireFailure): BotError {
  const code = (failure.code ?? "GENERATION_FAILED") as ErrorCode;
  if (failure.type === "user") return new UserError(code, failure.message);
  if (failure.type === "bot") return new BotError(code, failure.message);
  return new BotError("GENERATION_FAILED", failure.message);
}

function deadlineError(deadlineMs: number): BotError {
  const text =
    deadlineMs >= 120_000
      ? `${Math.round(deadlineMs / 60_000)} minutes`
      : deadlineMs >= 1_000
        ? `${Math.round(deadlineMs / 1_000)} seconds`
        : `${deadlineMs} ms`;
  return new BotError(
    "DEADLINE",
    `The image was not ready within ${text}, so it was cancelled. Try again later.`,
  );
}

interface Waiter {
  id: string;
  user: string;
  watcher: JobWatcher;
  /** 0 once the job has started (or never announced); else the last position told. */
  position: number;
  started: boolean;
  settled: boolean;
  timer?: NodeJS.Timeout;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** The submitting side: chat processes (and the benchmark's producer). */
export class BullmqRenderQueue<Data, Result> implements RenderQueue<Data, Result> {
  readonly kind = "bullmq";
  private readonly keys: Keys;
  private readonly redis: Redis;
  private readonly queue: Queue;
  private events: QueueEvents | undefined;
  private readonly eventsRedis: Redis;
  private readonly codec: ResultCodec<Result>;
  private readonly waiters = new Map<string, Waiter>();
  private readonly ready: Promise<void>;
  private closed = false;
  private refreshing: Promise<void> | undefined;
  private refreshAgain = false;
  /** This process among the owner's successive ones, in its delivery leases. */
  private readonly instance = randomUUID();

  constructor(private readonly options: BullmqQueueOptions<Result>) {
    for (const key of ["perUserCap", "globalCap", "deadlineMs"] as const) {
      if (!Number.isInteger(options[key]) || options[key] < 1) {
        throw new RangeError(`queue ${key} must be a positive integer, got ${options[key]}`);
      }
    }
    const prefix = options.prefix ?? "imagine";
    const name = options.name ?? "render";
    this.keys = new Keys(prefix, name);
    this.codec = (options.codec ?? identity) as ResultCodec<Result>;
    this.redis = connect(options.url);
    this.eventsRedis = connect(options.url);
    this.queue = new Queue(name, { connection: this.redis, prefix });
    this.ready = this.start(prefix, name);
    this.ready.catch(() => {});
  }

  /**
   * Reads events from the stream's current end, taken before listening starts: an outcome
   * written after that point is never missed, and earlier ones are read from the job itself.
   */
  private async start(prefix: string, name: string): Promise<void> {
    const last = (await this.redis.xrevrange(`${prefix}:${name}:events`, "+", "-", "COUNT", 1))[0];
    const events = new QueueEvents(name, {
      connection: this.eventsRedis,
      prefix,
      lastEventId: last?.[0] ?? "0-0",
    });
    events.on("progress", ({ jobId, data }) => this.onProgress(jobId, data));
    events.on("completed", ({ jobId, returnvalue }) => this.onCompleted(jobId, returnvalue));
    events.on("failed", ({ jobId, failedReason }) => this.onFailed(jobId, failedReason));
    events.on("removed", () => this.refreshPositions());
    // A job a worker took is out of the line whether or not the worker has said so yet.
    events.on("active", ({ jobId }) => {
      void this.redis
        .zrem(this.keys.line, jobId)
        .catch(() => 0)
        .then(() => this.refreshPositions());
    });
    events.on("error", (error) => {
      if (!this.closed) this.options.logger?.error({ err: error }, "queue events error");
    });
    this.events = events;
    await events.waitUntilReady();
  }

  async submit(
    submission: JobSubmission<Data>,
    watcher: JobWatcher = {},
  ): Promise<SubmittedJob<Result>> {
    if (this.closed) {
      throw new BotError("QUEUE_CLOSED", "The bot is shutting down; try again in a moment.");
    }
    await this.ready;
    const id = randomUUID();
    const now = Date.now();
    const deadlineAt = now + this.options.deadlineMs;
    const [seq, count] = (await this.redis.eval(
      RESERVE,
      4,
      this.keys.user(submission.user),
      this.keys.all,
      this.keys.line,
      this.keys.seq,
      now,
      deadlineAt,
      id,
      this.options.perUserCap,
      this.options.globalCap,
    )) as [number, number];
    if (seq === -1) {
      throw new UserError(
        "QUEUE_USER_FULL",
        `You already have ${count} ${count === 1 ? "image" : "images"} waiting; wait for one to finish.`,
      );
    }
    if (seq === -2) {
      throw new UserError(
        "QUEUE_FULL",
        `The queue is full (${this.options.globalCap} jobs); try again in a few minutes.`,
      );
    }
    const result = this.wait(id, submission.user, watcher, deadlineAt);
    const envelope: JobEnvelope<Data> = {
      user: submission.user,
      ...(submission.owner !== undefined ? { owner: submission.owner } : {}),
      deadlineAt,
      payload: submission.data,
    };
    try {
      // Listed under its owner first: a crash right after the add still leaves it recoverable.
      if (submission.owner !== undefined) {
        await this.redis.sadd(this.keys.owner(submission.owner), id);
      }
      await this.queue.add("render", envelope, {
        jobId: id,
        removeOnComplete: { age: KEEP_FINISHED_S },
        removeOnFail: { age: KEEP_FINISHED_S },
      });
    } catch (error) {
      // Nobody holds this job's promise: the caller gets the error thrown below.
      result.catch(() => {});
      this.settle(id, { error });
      await release(this.redis, this.keys, id, submission.user).catch(() => {});
      if (submission.owner !== undefined) {
        await this.redis.srem(this.keys.owner(submission.owner), id).catch(() => {});
      }
      throw error;
    }
    this.refreshPositions();
    return this.handle(id, result, submission.owner);
  }

  private handle(
    id: string,
    result: Promise<Result>,
    owner: string | undefined,
    recovered = false,
  ): SubmittedJob<Result> {
    return {
      id,
      result,
      claimDelivery: () => this.claim(id, owner, recovered),
      confirmDelivery: () => this.confirm(id, owner),
      cancel: (reason) => {
        const waiter = this.waiters.get(id);
        if (!waiter) return;
        this.settle(id, { error: reason ?? new BotError("ABORTED", "The request was cancelled.") });
        void this.queue.remove(id).catch(() => {});
        void release(this.redis, this.keys, id, waiter.user).catch(() => {});
      },
    };
  }

  private lease(owner: string | undefined): string {
    return `lease ${owner ?? ""} ${this.instance}`;
  }

  /**
   * Leases the delivery to this process. A recovered job may take over the lease of an earlier
   * process of its owner: that process claimed it and died before confirming the post.
   */
  private async claim(id: string, owner: string | undefined, recovered: boolean): Promise<boolean> {
    const predecessors = recovered && owner !== undefined ? `lease ${owner} ` : "";
    const won = await this.redis.eval(
      CLAIM,
      1,
      this.keys.claim(id),
      this.lease(owner),
      KEEP_FINISHED_S,
      predecessors,
    );
    return won === 1;
  }

  private async confirm(id: string, owner: string | undefined): Promise<void> {
    const keys = [this.keys.claim(id), ...(owner !== undefined ? [this.keys.owner(owner)] : [])];
    await this.redis.eval(CONFIRM, keys.length, ...keys, this.lease(owner), KEEP_FINISHED_S, id);
  }

  /**
   * Registers the outcome listener for a job (before it can finish), with its deadline timer
   * unless `deadlineAt` is undefined (armDeadline later).
   */
  private wait(
    id: string,
    user: string,
    watcher: JobWatcher,
    deadlineAt: number | undefined,
  ): Promise<Result> {
    const result = new Promise<Result>((resolve, reject) => {
      const waiter: Waiter = {
        id,
        user,
        watcher,
        position: 0,
        started: false,
        settled: false,
        resolve: resolve as (value: unknown) => void,
        reject,
      };
      this.waiters.set(id, waiter);
      if (deadlineAt !== undefined) this.armDeadline(waiter, deadlineAt);
    });
    return result;
  }

  private armDeadline(waiter: Waiter, deadlineAt: number): void {
    waiter.timer = setTimeout(() => this.expire(waiter), Math.max(0, deadlineAt - Date.now()));
  }

  /** Past the deadline: the job fails here; a waiting job leaves the queue, a running one aborts. */
  private expire(waiter: Waiter): void {
    this.settle(waiter.id, { error: deadlineError(this.options.deadlineMs) });
    void this.queue.remove(waiter.id).catch(() => {
      // Locked by a worker: it aborts at the same deadline.
    });
    void release(this.redis, this.keys, waiter.id, waiter.user).catch(() => {});
  }

  private settle(id: string, outcome: { value: unknown } | { error: unknown }): void {
    const waiter = this.waiters.get(id);
    if (!waiter || waiter.settled) return;
    waiter.settled = true;
    clearTimeout(waiter.timer);
    this.waiters.delete(id);
    if ("value" in outcome) waiter.resolve(outcome.value);
    else waiter.reject(outcome.error);
  }

  private onProgress(id: string, data: unknown): void {
    const waiter = this.waiters.get(id);
    if (waiter && !waiter.settled) {
      waiter.started = true;
      try {
        waiter.watcher.onProgress?.(data);
      } catch {
        // A progress listener's failure must not break the queue.
      }
    }
    this.refreshPositions();
  }

  private onCompleted(id: string, returnvalue: unknown): void {
    if (this.waiters.has(id)) this.settle(id, this.outcomeOf(returnvalue));
    this.refreshPositions();
  }

  private onFailed(id: string, reason: string): void {
    if (this.waiters.has(id)) {
      this.settle(id, { error: new BotError("GENERATION_FAILED", `the job failed: ${reason}`) });
    }
    this.refreshPositions();
  }

  private outcomeOf(returnvalue: unknown): { value: unknown } | { error: unknown } {
    try {
      const wire = (
        typeof returnvalue === "string" ? JSON.parse(returnvalue) : returnvalue
      ) as WireOutcome;
      if ("failure" in wire) return { error: fromWire(wire.failure) };
      return { value: this.codec.decode(wire.ok) };
    } catch (error) {
      return { error };
    }
  }

  /** Tells every waiting job of this process its place in line; one refresh at a time. */
  private refreshPositions(): void {
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        const waiting = [...this.waiters.values()].filter((w) => !w.started && !w.settled);
        if (waiting.length === 0) break;
        const batch = this.redis.multi();
        for (const waiter of waiting) batch.zrank(this.keys.line, waiter.id);
        const ranks = (await batch.exec()) ?? [];
        for (const [i, waiter] of waiting.entries()) {
          const rank = ranks[i]?.[1] as number | null | undefined;
          if (rank === null || rank === undefined) {
            waiter.started = true;
            continue;
          }
          if (waiter.position === rank + 1 || waiter.settled) continue;
          waiter.position = rank + 1;
          try {
            waiter.watcher.onPosition?.(rank + 1);
          } catch {
            // A progress listener's failure must not break the queue.
          }
        }
      } while (this.refreshAgain && !this.closed);
    })()
      .catch((error: unknown) => {
        if (!this.closed) this.options.logger?.warn({ err: error }, "queue positions not read");
      })
      .finally(() => {
        this.refreshing = undefined;
      });
  }

  async recover(owner: string): Promise<RecoveredJob<Data, Result>[]> {
    await this.ready;
    const ids = await this.redis.smembers(this.keys.owner(owner));
    const recovered: RecoveredJob<Data, Result>[] = [];
    for (const id of ids) {
      const job = (await this.queue.getJob(id)) as Job<JobEnvelope<Data>> | undefined;
      if (!job) {
        // Removed (cancelled, or kept past KEEP_FINISHED_S): nothing left to publish.
        await this.redis.srem(this.keys.owner(owner), id);
        continue;
      }
      const envelope = job.data;
      // Listening first, then reading the state: an outcome in between is heard either way.
      const result = this.wait(id, envelope.user, {}, undefined);
      const waiter = this.waiters.get(id) as Waiter;
      waiter.started = true;
      const state = await job.getState();
      if (state === "completed") {
        // Finished before we listened (perhaps past its deadline since): read it from the job.
        const finished = (await this.queue.getJob(id)) ?? job;
        this.settle(id, this.outcomeOf(finished.returnvalue));
      } else if (state === "failed") {
        this.onFailed(id, job.failedReason);
      } else if (!waiter.settled) {
        this.armDeadline(waiter, envelope.deadlineAt);
      }
      result.catch(() => {});
      recovered.push({
        ...this.handle(id, result, owner, true),
        data: envelope.payload,
        user: envelope.user,
        submittedAt: new Date(job.timestamp),
      });
    }
    return recovered;
  }

  pending(): { total: number; perUser: Record<string, number> } {
    const perUser: Record<string, number> = {};
    for (const waiter of this.waiters.values()) {
      perUser[waiter.user] = (perUser[waiter.user] ?? 0) + 1;
    }
    return { total: this.waiters.size, perUser };
  }

  /** Stops listening; the jobs go on in the workers and a restart recovers them. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new BotError("QUEUE_CLOSED", "The bot is shutting down; try again in a moment.");
    for (const id of [...this.waiters.keys()]) this.settle(id, { error });
    await this.ready.catch(() => {});
    await Promise.allSettled([this.events?.close(), this.queue.close()]);
    await this.refreshing;
    await Promise.allSettled([this.redis.quit(), this.eventsRedis.quit()]);
  }
}

export interface BullmqWorkerOptions<Result> extends BullmqOptions {
  /** Jobs this worker runs at once. */
  concurrency: number;
  /**
   * How long a job's lock lasts without renewal: a worker that dies leaves its jobs for this
   * long before another worker's stalled-job check puts them back in line (BullMQ default 30 s).
   */
  lockMs?: number;
  codec?: ResultCodec<Result>;
  /**
   * Whether a render-stage error means this worker cannot run jobs now (its image backend is
   * down) rather than that the job is bad: the job goes back in line for another worker, and
   * this one stops taking jobs for a backoff (1 s, doubling to 60 s; reset by a success).
   */
  handOff?(error: unknown): boolean;
  /**
   * How often one job may be handed back before it fails with the error (default: no limit;
   * the job's deadline ends it if no worker can render it).
   */
  maxHandOffs?: number;
  /** The first backoff after a handed-off job (default 1 s). */
  backoffMs?: number;
}

/** The processing side: `imagine-bot worker`. */
export class BullmqRenderWorker<Data, Prepared, Result> {
  private readonly keys: Keys;
  private readonly redis: Redis;
  private readonly workerRedis: Redis;
  readonly worker: Worker;
  private readonly codec: ResultCodec<Result>;
  private failuresInARow = 0;
  private resumeTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly options: BullmqWorkerOptions<Result>,
    private readonly processor: JobProcessor<Data, Prepared, Result>,
  ) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new RangeError(
        `worker concurrency must be a positive integer, got ${options.concurrency}`,
      );
    }
    const prefix = options.prefix ?? "imagine";
    const name = options.name ?? "render";
    this.keys = new Keys(prefix, name);
    this.codec = (options.codec ?? identity) as ResultCodec<Result>;
    this.redis = connect(options.url);
    this.workerRedis = connect(options.url);
    const lockMs = options.lockMs ?? 30_000;
    this.worker = new Worker(name, (job, token) => this.run(job, token), {
      connection: this.workerRedis,
      prefix,
      concurrency: options.concurrency,
      lockDuration: lockMs,
      stalledInterval: Math.max(100, Math.floor(lockMs / 2)),
      // Each stall is a worker lost mid-job; more than this and the job itself is suspect.
      maxStalledCount: 3,
    });
    this.worker.on("error", (error) => {
      if (!this.closed) options.logger?.error({ err: error }, "queue worker error");
    });
  }

  /** Resolves once the worker is connected and taking jobs. */
  async waitUntilReady(): Promise<void> {
    await this.worker.waitUntilReady();
  }

  private async run(job: Job<JobEnvelope<Data>>, token: string | undefined): Promise<WireOutcome> {
    const { payload, deadlineAt, user } = job.data;
    const id = job.id as string;
    // Started: out of the line, so that the jobs behind it move up (the submitters also take it
    // out when they hear it is active; nothing here waits for that).
    const leftLine = this.redis.zrem(this.keys.line, id).catch(() => 0);
    const remaining = deadlineAt - Date.now();
    if (remaining <= 0) {
      await release(this.redis, this.keys, id, user);
      return { failure: wireFailure(deadlineError(deadlineAt - job.timestamp)) };
    }
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(deadlineError(deadlineAt - job.timestamp)),
      remaining,
    );
    const context: StageContext = {
      signal: controller.signal,
      progress: (update) => {
        void job.updateProgress(update as object).catch(() => {});
      },
      submittedAt: performance.now() - (Date.now() - job.timestamp),
    };
    let handedOff = false;
    let stage: "prepare" | "render" = "prepare";
    try {
      const prepared = await this.processor.prepare(payload, context);
      stage = "render";
      const result = await this.processor.render(payload, prepared, context);
      this.failuresInARow = 0;
      return { ok: this.codec.encode(result) };
    } catch (error) {
      const outcome = controller.signal.aborted ? controller.signal.reason : error;
      const handOffs = job.data.handOffs ?? 0;
      if (
        stage === "render" &&
        !controller.signal.aborted &&
        this.options.handOff?.(error) &&
        handOffs < (this.options.maxHandOffs ?? Number.POSITIVE_INFINITY) &&
        token !== undefined
      ) {
        handedOff = true;
        this.options.logger?.warn(
          { err: error, job: id },
          "backend failed: job handed to another worker",
        );
        this.backOff();
        await job.updateData({ ...job.data, handOffs: handOffs + 1 });
        await job.moveToWait(token);
        throw new WaitingError();
      }
      return { failure: wireFailure(outcome) };
    } finally {
      clearTimeout(timer);
      await leftLine;
      if (!handedOff) await release(this.redis, this.keys, id, user).catch(() => {});
    }
  }

  /** Stops taking jobs for a while: the backend just failed. */
  private backOff(): void {
    this.failuresInARow++;
    const ms = Math.min((this.options.backoffMs ?? 1_000) * 2 ** (this.failuresInARow - 1), 60_000);
    void this.worker.pause(true);
    clearTimeout(this.resumeTimer);
    this.resumeTimer = setTimeout(() => {
      if (!this.closed) this.worker.resume();
    }, ms);
  }

  /** Finishes the jobs it holds, then disconnects. */
  async close(force = false): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.resumeTimer);
    await this.worker.close(force);
    await Promise.allSettled([this.redis.quit(), this.workerRedis.quit()]);
  }
}
