/**
 * The job queue in front of one image backend. A job has two stages:
 *
 *   prepare (prompt writing, CPU)  ──▶  render (the backend: remote or GPU)
 *
 * Each stage has its own concurrency, so while one image renders the next job's prompt is
 * written: the prompt stage runs ahead of the render stage by up to `lookahead` prepared jobs
 * (default: the render concurrency, enough to refill every render slot the moment it frees).
 *
 * Guarantees:
 * - FIFO: prompts start in the order jobs were submitted; render slots go to the earliest
 *   submitted job whose prompt is ready.
 * - Bounded: at most `concurrency` renders and `promptConcurrency` prompt stages run at once.
 *   A stage that ignores its AbortSignal keeps its slot until it really settles, so the bounds
 *   hold even then.
 * - Caps: a person may have `perUserCap` unfinished jobs and everyone together `globalCap`;
 *   a submit beyond them throws a UserError saying so ("QUEUE_USER_FULL", "QUEUE_FULL"). Nothing
 *   is dropped silently.
 * - Every job settles: with its result, its stage's error, BotError "DEADLINE" once
 *   `deadlineMs` have passed since submit (the stage's AbortSignal is aborted with that error),
 *   or BotError "QUEUE_CLOSED" when the queue closes.
 * - Position: until its render starts a job hears its place in line, 1 being next to render,
 *   whenever that place changes.
 *
 * One queue serves one backend; the pipeline creates it from config.queue.
 */
import { BotError, UserError } from "./errors.js";

export interface QueueOptions {
  /** Renders running at once (config.queue.concurrency). */
  concurrency: number;
  /** Unfinished jobs one user may have (config.queue.perUserCap). */
  perUserCap: number;
  /** Unfinished jobs in total (config.queue.globalCap). */
  globalCap: number;
  /** A job unfinished this long after submit is cancelled (config.queue.deadlineMs). */
  deadlineMs: number;
  /** Prompt stages running at once; default 1 (the ONNX engine already uses every core). */
  promptConcurrency?: number;
  /** Prepared jobs allowed to wait for a render slot; default `concurrency`. */
  lookahead?: number;
}

export interface JobStages<Prepared, Result> {
  /** Who asked: the per-user cap counts their unfinished jobs. */
  user: string;
  /** The prompt stage. */
  prepare(signal: AbortSignal): Promise<Prepared>;
  /** The render stage, given what prepare returned. */
  render(prepared: Prepared, signal: AbortSignal): Promise<Result>;
  /** Called on submit and whenever the place in line changes, until the render starts. */
  onPosition?(position: number): void;
}

export interface JobHandle<Result> {
  readonly id: number;
  /** Settles exactly once: the render's result or the reason the job failed. */
  readonly result: Promise<Result>;
  /** Cancels the job; its promise rejects with BotError "ABORTED" (or `reason`). */
  cancel(reason?: BotError): void;
}

/** Counts at one moment, for tests, metrics and /status. */
export interface QueueSnapshot {
  /** Submitted, prompt not started. */
  waiting: number;
  preparing: number;
  /** Prompt written, waiting for a render slot. */
  ready: number;
  rendering: number;
  /** Unfinished jobs (what the global cap counts); includes cancelled stages still settling. */
  total: number;
  perUser: Record<string, number>;
}

type State = "waiting" | "preparing" | "ready" | "rendering" | "done";

interface Job {
  id: number;
  user: string;
  stages: JobStages<unknown, unknown>;
  state: State;
  /** The job's promise has settled (it may still have a stage running that ignored abort). */
  settled: boolean;
  controller: AbortController;
  timer?: NodeJS.Timeout;
  prepared?: unknown;
  position: number;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export class JobQueue {
  private readonly promptConcurrency: number;
  private readonly lookahead: number;
  private nextId = 1;
  /** Jobs whose render has not started, in submit order: their index + 1 is their position. */
  private readonly line: Job[] = [];
  private readonly waiting: Job[] = [];
  /** Prepared jobs in submit order. */
  private readonly ready: Job[] = [];
  private preparing = 0;
  private rendering = 0;
  private total = 0;
  private readonly perUser = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Jobs with a stage running (preparing or rendering). */
  private readonly running = new Set<Job>();
  private closed = false;

  constructor(private readonly options: QueueOptions) {
    for (const key of ["concurrency", "perUserCap", "globalCap", "deadlineMs"] as const) {
      if (!Number.isInteger(options[key]) || options[key] < 1) {
        throw new RangeError(`queue ${key} must be a positive integer, got ${options[key]}`);
      }
    }
    this.promptConcurrency = options.promptConcurrency ?? 1;
    this.lookahead = Math.max(options.lookahead ?? options.concurrency, this.promptConcurrency);
  }

  /**
   * Adds a job at the end of the line. Throws, without queuing anything, a UserError when the
   * user or the queue is at its cap and BotError "QUEUE_CLOSED" after close().
   */
  submit<Prepared, Result>(stages: JobStages<Prepared, Result>): JobHandle<Result> {
    if (this.closed) {
      throw new BotError("QUEUE_CLOSED", "The bot is shutting down; try again in a moment.");
    }
    const mine = this.perUser.get(stages.user) ?? 0;
    if (mine >= this.options.perUserCap) {
      throw new UserError(
        "QUEUE_USER_FULL",
        `You already have ${mine} ${mine === 1 ? "image" : "images"} waiting; wait for one to finish.`,
      );
    }
    if (this.total >= this.options.globalCap) {
      throw new UserError(
        "QUEUE_FULL",
        `The queue is full (${this.options.globalCap} jobs); try again in a few minutes.`,
      );
    }
    let resolve!: (value: unknown) => void;
    let reject!: (error: unknown) => void;
    const result = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const job: Job = {
      id: this.nextId++,
      user: stages.user,
      stages: stages as JobStages<unknown, unknown>,
      state: "waiting",
      settled: false,
      controller: new AbortController(),
      position: 0,
      resolve,
      reject,
    };
    this.total++;
    this.perUser.set(job.user, mine + 1);
    this.line.push(job);
    this.waiting.push(job);
    job.timer = setTimeout(() => this.expire(job), this.options.deadlineMs);
    this.announce(this.line.length - 1);
    this.pump();
    return {
      id: job.id,
      result: result as Promise<Result>,
      cancel: (reason) =>
        this.fail(job, reason ?? new BotError("ABORTED", "The request was cancelled.")),
    };
  }

  snapshot(): QueueSnapshot {
    return {
      waiting: this.waiting.length,
      preparing: this.preparing,
      ready: this.ready.length,
      rendering: this.rendering,
      total: this.total,
      perUser: Object.fromEntries(this.perUser),
    };
  }

  /**
   * Refuses new jobs, fails every unfinished one with "QUEUE_CLOSED" (aborting running stages)
   * and resolves once every stage has settled.
   */
  async close(): Promise<void> {
    this.closed = true;
    const error = new BotError("QUEUE_CLOSED", "The bot is shutting down; try again in a moment.");
    for (const job of [...this.line, ...this.runningJobs()]) this.fail(job, error);
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private runningJobs(): Job[] {
    return [...this.running];
  }

  /** Starts whatever the bounds allow: renders first (they free capacity), then prompts. */
  private pump(): void {
    while (this.rendering < this.options.concurrency && this.ready.length > 0) {
      const job = this.ready.shift() as Job;
      this.startRender(job);
    }
    while (
      this.preparing < this.promptConcurrency &&
      this.preparing + this.ready.length < this.lookahead &&
      this.waiting.length > 0
    ) {
      const job = this.waiting.shift() as Job;
      this.startPrepare(job);
    }
  }

  private startPrepare(job: Job): void {
    job.state = "preparing";
    this.preparing++;
    this.running.add(job);
    this.track(
      (async () => {
        try {
          job.prepared = await job.stages.prepare(job.controller.signal);
        } catch (error) {
          this.preparing--;
          this.running.delete(job);
          this.finish(job, { error });
          return;
        }
        this.preparing--;
        this.running.delete(job);
        if (job.settled) {
          this.release(job);
          return;
        }
        job.state = "ready";
        insertInOrder(this.ready, job);
        this.pump();
      })(),
    );
  }

  private startRender(job: Job): void {
    job.state = "rendering";
    this.rendering++;
    this.running.add(job);
    this.leaveLine(job);
    this.track(
      (async () => {
        let outcome: { value: unknown } | { error: unknown };
        try {
          outcome = { value: await job.stages.render(job.prepared, job.controller.signal) };
        } catch (error) {
          outcome = { error };
        }
        this.rendering--;
        this.running.delete(job);
        this.finish(job, outcome);
      })(),
    );
  }

  private track(promise: Promise<void>): void {
    this.inFlight.add(promise);
    void promise.finally(() => this.inFlight.delete(promise));
  }

  /** A stage ended: settle the job (unless the deadline or close already did) and free it. */
  private finish(job: Job, outcome: { value: unknown } | { error: unknown }): void {
    if (!job.settled) {
      job.settled = true;
      clearTimeout(job.timer);
      if ("value" in outcome) job.resolve(outcome.value);
      else job.reject(outcome.error);
    }
    this.release(job);
  }

  /** Frees the job's place under the caps and lets the next jobs start. */
  private release(job: Job): void {
    if (job.state === "done") return;
    job.state = "done";
    clearTimeout(job.timer);
    this.leaveLine(job);
    this.total--;
    const mine = (this.perUser.get(job.user) ?? 1) - 1;
    if (mine === 0) this.perUser.delete(job.user);
    else this.perUser.set(job.user, mine);
    this.pump();
  }

  private expire(job: Job): void {
    this.fail(
      job,
      new BotError(
        "DEADLINE",
        `The image was not ready within ${formatDuration(this.options.deadlineMs)}, so it was cancelled. Try again later.`,
      ),
    );
  }

  /**
   * Fails a job now. A job still waiting leaves the queue at once; a running stage is aborted
   * and keeps its slot until it settles.
   */
  private fail(job: Job, error: BotError): void {
    if (job.settled) return;
    job.settled = true;
    clearTimeout(job.timer);
    job.reject(error);
    job.controller.abort(error);
    this.leaveLine(job);
    if (job.state === "waiting") {
      remove(this.waiting, job);
      this.release(job);
    } else if (job.state === "ready") {
      remove(this.ready, job);
      this.release(job);
    }
  }

  /** Removes a job from the line and tells everyone behind it their new position. */
  private leaveLine(job: Job): void {
    const index = this.line.indexOf(job);
    if (index < 0) return;
    this.line.splice(index, 1);
    this.announce(index);
  }

  private announce(from: number): void {
    for (let i = from; i < this.line.length; i++) {
      const job = this.line[i] as Job;
      if (job.position === i + 1 || job.settled) continue;
      job.position = i + 1;
      try {
        job.stages.onPosition?.(i + 1);
      } catch {
        // A progress listener's failure must not break the queue.
      }
    }
  }
}

function remove(list: Job[], job: Job): void {
  const index = list.indexOf(job);
  if (index >= 0) list.splice(index, 1);
}

function insertInOrder(list: Job[], job: Job): void {
  let index = list.length;
  while (index > 0 && (list[index - 1] as Job).id > job.id) index--;
  list.splice(index, 0, job);
}

function formatDuration(ms: number): string {
  if (ms >= 120_000) return `${Math.round(ms / 60_000)} minutes`;
  if (ms >= 1_000) return `${Math.round(ms / 1_000)} seconds`;
  return `${ms} ms`;
}
