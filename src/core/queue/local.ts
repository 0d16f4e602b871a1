/**
 * The in-process render queue, the embedded default: the render-queue contract over JobQueue
 * (../queue.ts), which keeps the two stages apart so that the next prompt is written while an
 * image renders. Jobs live in this process only; recover() finds none.
 */
import { JobQueue, type QueueOptions, type QueueSnapshot } from "../queue.js";
import type {
  JobProcessor,
  JobSubmission,
  JobWatcher,
  RecoveredJob,
  RenderQueue,
  SubmittedJob,
} from "./contract.js";

export class LocalRenderQueue<Data, Prepared, Result> implements RenderQueue<Data, Result> {
  readonly kind = "in-process";
  /** The queue itself, for its stage-by-stage counts. */
  readonly jobs: JobQueue;

  /** `now`: the monotonic clock that StageContext.submittedAt is read from (performance.now). */
  constructor(
    options: QueueOptions,
    private readonly processor: JobProcessor<Data, Prepared, Result>,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.jobs = new JobQueue(options);
  }

  async submit(
    submission: JobSubmission<Data>,
    watcher: JobWatcher = {},
  ): Promise<SubmittedJob<Result>> {
    const { data } = submission;
    const submittedAt = this.now();
    const progress = (update: unknown) => {
      try {
        watcher.onProgress?.(update);
      } catch {
        // A progress listener's failure must not break the job.
      }
    };
    const handle = this.jobs.submit<Prepared, Result>({
      user: submission.user,
      ...(watcher.onPosition ? { onPosition: watcher.onPosition } : {}),
      prepare: (signal) => this.processor.prepare(data, { signal, progress, submittedAt }),
      render: (prepared, signal) =>
        this.processor.render(data, prepared, { signal, progress, submittedAt }),
    });
    let claimed = false;
    return {
      id: String(handle.id),
      result: handle.result,
      claimDelivery: async () => {
        if (claimed) return false;
        claimed = true;
        return true;
      },
      // Nothing outlives this process, so there is nothing to confirm to.
      confirmDelivery: async () => {},
      cancel: (reason) => handle.cancel(reason),
    };
  }

  async recover(_owner: string): Promise<RecoveredJob<Data, Result>[]> {
    return [];
  }

  pending(): { total: number; perUser: Record<string, number> } {
    const { total, perUser } = this.jobs.snapshot();
    return { total, perUser };
  }

  snapshot(): QueueSnapshot {
    return this.jobs.snapshot();
  }

  close(): Promise<void> {
    return this.jobs.close();
  }
}
