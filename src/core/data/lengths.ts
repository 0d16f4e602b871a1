/**
 * `data lengths`: GPT-2 token lengths of cleaned captions — the paper sets the generation
 * length to the mean caption length. Streams through the same ordered batch pipeline as
 * prepare (no explicit filter, no output files); lengths are small integers, so a histogram
 * gives the exact median and p90 without keeping the lengths.
 */
import { availableParallelism } from "node:os";
import { createBatchProcessor, openSources, runPipeline } from "./prepare.js";
import { REASON_EMPTY } from "./prepareWorker.js";
import type { Progress } from "./progress.js";
import type { CaptionFormat } from "./readers.js";

export interface LengthOptions {
  inputs: string[];
  column?: string;
  format?: CaptionFormat;
  /** Measure the first N non-empty cleaned captions (the paper: 300,000). */
  limit?: number;
  workers?: number;
  batchSize?: number;
  progress?: Progress;
}

export interface LengthStats {
  /** Captions measured. */
  count: number;
  mean: number;
  /** The middle length (the mean of the two middle ones for an even count). */
  median: number;
  /** Nearest-rank 90th percentile: the smallest length that ≥ 90% of captions do not exceed. */
  p90: number;
  min: number;
  max: number;
}

export interface LengthReport extends LengthStats {
  inputs: string[];
  read: number;
  dropped: { empty: number; malformed: number };
  limit: number | null;
  durationSeconds: number;
}

/** A histogram of small non-negative integers with exact order statistics. */
export class LengthHistogram {
  private counts: number[] = [];
  private total = 0;
  private sum = 0;

  add(length: number, times = 1): void {
    while (this.counts.length <= length) this.counts.push(0);
    this.counts[length] = (this.counts[length] ?? 0) + times;
    this.total += times;
    this.sum += length * times;
  }

  get count(): number {
    return this.total;
  }

  /** The value at 1-based rank r (1 ≤ r ≤ count). */
  private atRank(rank: number): number {
    let seen = 0;
    for (let value = 0; value < this.counts.length; value++) {
      seen += this.counts[value] ?? 0;
      if (seen >= rank) return value;
    }
    return this.counts.length - 1;
  }

  stats(): LengthStats {
    const n = this.total;
    if (n === 0) return { count: 0, mean: 0, median: 0, p90: 0, min: 0, max: 0 };
    const median =
      n % 2 === 1 ? this.atRank((n + 1) / 2) : (this.atRank(n / 2) + this.atRank(n / 2 + 1)) / 2;
    return {
      count: n,
      mean: this.sum / n,
      median,
      p90: this.atRank(Math.ceil(0.9 * n)),
      min: this.atRank(1),
      // add() only grows the array up to a length it has seen.
      max: this.counts.length - 1,
    };
  }
}

export async function captionLengths(options: LengthOptions): Promise<LengthReport> {
  const startedAt = performance.now();
  const sources = await openSources(options.inputs, options);
  const processor = await createBatchProcessor(
    Math.max(1, options.workers ?? availableParallelism()),
    null,
  );
  const histogram = new LengthHistogram();
  const dropped = { empty: 0, malformed: 0 };
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  let read = 0;
  try {
    await runPipeline(
      sources,
      processor,
      {
        wantText: false,
        wantIds: false,
        ...(options.batchSize ? { batchSize: options.batchSize } : {}),
        ...(options.progress ? { progress: options.progress } : {}),
        ...(options.limit ? { consumerFraction: () => histogram.count / limit } : {}),
      },
      (batch, result) => {
        let t = 0;
        let k = 0;
        for (const record of batch.records) {
          read += 1;
          if (record.text === undefined) {
            dropped.malformed += 1;
            continue;
          }
          if (result.reasons[t++] === REASON_EMPTY) {
            dropped.empty += 1;
            continue;
          }
          histogram.add(result.lengths[k++] as number);
          if (histogram.count >= limit) return false;
        }
        return true;
      },
    );
  } finally {
    options.progress?.done();
    await processor.close();
  }
  return {
    ...histogram.stats(),
    inputs: options.inputs,
    read,
    dropped,
    limit: options.limit ?? null,
    durationSeconds: (performance.now() - startedAt) / 1000,
  };
}
