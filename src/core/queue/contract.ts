/**
 * The render-queue contract: what the pipeline needs from a job queue, met by two
 * implementations.
 *
 *   in-process (local.ts)  the embedded default: JobQueue (../queue.ts) in this process; jobs
 *                          live and die with it
 *   BullMQ (bullmq.ts)     Redis (IMAGINE_QUEUE_URL / config queue.url): chat processes submit,
 *                          `imagine-bot worker` processes run the stages; jobs, caps, deadlines and
 *                          positions are shared, and a job outlives the process that submitted it
 *
 * A job is plain data handed to a two-stage processor (prompt writing, then rendering), so that
 * another process can run it. Both implementations guarantee (test/queue/contract.test.ts):
 * - the processor's result or error reaches the submitter (a UserError or BotError keeps its class,
 *   code and message); progress updates arrive in order;
 * - jobs start in submit order;
 * - a user may have `perUserCap` unfinished jobs and everyone together `globalCap`; a submit
 *   beyond them throws UserError "QUEUE_USER_FULL" / "QUEUE_FULL" and queues nothing;
 * - a job unfinished `deadlineMs` after submit fails with BotError "DEADLINE" and its stage's
 *   AbortSignal is aborted;
 * - until it starts, a job's watcher hears its place in line (1 = next) whenever it changes;
 * - claimDelivery() is true for exactly one caller per job, whichever process asks, until the
 *   outcome is published; a job claimed and never confirmed (its chat process died between the
 *   claim and the post) goes back to its owner's restart (BullMQ), so a publish is never lost.
 */
import type { BotError } from "../errors.js";

/** What a stage may do besides its work. */
export interface StageContext {
  /** Aborted at the deadline, on cancel, or when the queue closes. */
  signal: AbortSignal;
  /** Tells the submitter (in whichever process it runs) how the job is going; JSON only. */
  progress(update: unknown): void;
  /**
   * When the job was submitted, on this process's performance.now() clock (for queued-time
   * figures measured in a process other than the submitter's).
   */
  submittedAt: number;
}

/** Runs one job: the prompt stage, then the render stage with what the first returned. */
export interface JobProcessor<Data, Prepared, Result> {
  prepare(data: Data, context: StageContext): Promise<Prepared>;
  render(data: Data, prepared: Prepared, context: StageContext): Promise<Result>;
}

/** Listens to one job on the submitter's side. */
export interface JobWatcher {
  /** The place in line, 1 being next; called on submit and whenever it changes, until it starts. */
  onPosition?(position: number): void;
  /** A stage's progress update, in order. */
  onProgress?(update: unknown): void;
}

export interface JobSubmission<Data> {
  /** Who asked: the per-user cap counts their unfinished jobs. */
  user: string;
  data: Data;
  /**
   * The chat process that will publish the result (IMAGINE_CHAT_ID). With BullMQ, a process
   * that restarts under the same id gets its unpublished jobs back from recover().
   */
  owner?: string;
}

export interface SubmittedJob<Result> {
  readonly id: string;
  /** Settles exactly once: the processor's result, its error, or why the job failed. */
  readonly result: Promise<Result>;
  /**
   * Whether the caller is the one to publish this job's outcome: true for exactly one call per
   * job across every process. The claim is a lease held by this process: the job stays on its
   * owner's unpublished list until confirmDelivery(), so that if this process dies before it
   * posts, the owner's restart recovers the job and claims it again.
   */
  claimDelivery(): Promise<boolean>;
  /**
   * The claimed outcome has been published (or its post attempted and given up): the job leaves
   * its owner's unpublished list and no claim succeeds again. Call it after the post.
   */
  confirmDelivery(): Promise<void>;
  /** Gives up on the job: it fails with `reason` (default BotError "ABORTED"). */
  cancel(reason?: BotError): void;
}

/**
 * A job submitted by an earlier process of this owner whose outcome nobody has published: not
 * claimed, or claimed by that earlier process and never confirmed (it died before posting).
 */
export interface RecoveredJob<Data, Result> extends SubmittedJob<Result> {
  readonly data: Data;
  readonly user: string;
  /** When it was submitted (wall clock). */
  readonly submittedAt: Date;
}

export interface RenderQueue<Data, Result> {
  /** "in-process" or "bullmq", for logs and /status. */
  readonly kind: string;
  /**
   * Queues a job. Rejects, without queuing anything, with a UserError when the user or the
   * queue is at its cap and BotError "QUEUE_CLOSED" after close().
   */
  submit(submission: JobSubmission<Data>, watcher?: JobWatcher): Promise<SubmittedJob<Result>>;
  /**
   * The jobs `owner` submitted whose outcome was never claimed (a chat process that restarted
   * mid-job). The in-process queue has none: its jobs died with the process.
   */
  recover(owner: string): Promise<RecoveredJob<Data, Result>[]>;
  /** Unfinished jobs this process is waiting for, by user (tests, metrics). */
  pending(): { total: number; perUser: Record<string, number> };
  /**
   * Stops taking jobs. In-process: unfinished jobs fail with "QUEUE_CLOSED" once their stages
   * settle. BullMQ: this process stops listening; the jobs go on and a restart recovers them.
   */
  close(): Promise<void>;
}

/** How a result crosses processes (BullMQ): to JSON and back. */
export interface ResultCodec<Result> {
  encode(result: Result): unknown;
  decode(wire: unknown): Result;
}
