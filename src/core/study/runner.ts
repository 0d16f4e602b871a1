/**
 * Posts a batch plan's items one by one at a steady pace, resumably.
 *
 * Pace is start to start: item i + 1 starts `intervalMs` after item i started (or right away if
 * posting took longer). Each item is marked posted (persisted by the caller) only after `post`
 * resolves, so a resume after a crash or a stop never posts an item twice — except the one item
 * that was in flight when the process died, which is posted again. Progress events carry only
 * the item id (survey and position), never the arm, so they are safe to show in chat.
 */
import type { PlanItem } from "./plan.js";

export interface PlanProgress {
  /** Items posted, this run and earlier ones. */
  posted: number;
  total: number;
  /** The item just posted ("s1-007"). */
  itemId: string;
}

export interface RunPlanOptions {
  /** The plan's items in posting order. */
  items: readonly PlanItem[];
  /** Ids already posted by an earlier run: skipped. */
  posted: Iterable<string>;
  /** Makes and posts one item's image (the caller passes arm and studyId to imagine). */
  post(item: PlanItem): Promise<void>;
  /** Persists that an item was posted, before the next one starts. */
  markPosted(item: PlanItem): Promise<void>;
  /** Milliseconds from one post's start to the next's. */
  intervalMs: number;
  /** Waits; injectable so tests never sleep (default: setTimeout, cancelled by the signal). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
  /** Stops between items (the item in flight finishes). */
  signal?: AbortSignal;
  onProgress?(progress: PlanProgress): void;
}

export interface RunPlanResult {
  /** Items posted by this run. */
  postedNow: number;
  /** Items posted in all, this run and earlier ones. */
  posted: number;
  total: number;
  /** True when every item has been posted; false when stopped by the signal. */
  complete: boolean;
}

export async function runStudyPlan(options: RunPlanOptions): Promise<RunPlanResult> {
  const { items, intervalMs, signal } = options;
  if (!(intervalMs >= 0)) throw new RangeError(`intervalMs must be ≥ 0, got ${intervalMs}`);
  const sleep = options.sleep ?? defaultSleep;
  const now = options.now ?? (() => performance.now());
  const done = new Set(options.posted);
  const total = items.length;
  let posted = items.filter((item) => done.has(item.id)).length;
  let postedNow = 0;
  let lastStart: number | undefined;
  for (const item of items) {
    if (done.has(item.id)) continue;
    if (signal?.aborted) break;
    if (lastStart !== undefined) {
      const wait = lastStart + intervalMs - now();
      if (wait > 0) await sleep(wait, signal);
      if (signal?.aborted) break;
    }
    lastStart = now();
    await options.post(item);
    await options.markPosted(item);
    done.add(item.id);
    posted++;
    postedNow++;
    options.onProgress?.({ posted, total, itemId: item.id });
  }
  return { postedNow, posted, total, complete: posted === total };
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
