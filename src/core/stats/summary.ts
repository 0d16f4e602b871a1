/**
 * Per-arm, per-dimension summaries of ratings: n, mean, sample SD (n − 1) and a percentile
 * bootstrap confidence interval of the mean, plus the paper's Table 1 as text, JSON and CSV.
 *
 * The interval resamples images by default (cluster bootstrap, see cluster.ts): an image's
 * ratings share the image, so treating them as independent makes intervals too narrow. The
 * "ratings" unit keeps the independent-ratings bootstrap below, for comparison.
 *
 * The ratings bootstrap resamples n ratings with replacement B times. Ratings take few distinct values,
 * so a resample is drawn as its counts per value — one multinomial draw, made of exact binomial
 * draws — which has exactly the distribution of n single draws at a fraction of the cost.
 */

import { csvField } from "../csv.js";
import { type RandomSource, seededRandom } from "../random.js";
import { unique } from "./arrays.js";
import { clusterBootstrapMeanCi, clusterScores, type ResampleUnit } from "./cluster.js";
import { quantileSorted, sampleBinomial } from "./distributions.js";
import { ALL_DIMENSIONS, type Rating } from "./ratings.js";

/** A rating with the arm (prompt generator) that produced the rated image. */
export interface ArmRating extends Rating {
  arm: string;
}

export interface BootstrapOptions {
  /** Number of bootstrap resamples B (default 2,000). */
  resamples?: number;
  /** Confidence level (default 0.95). */
  level?: number;
}

export interface ConfidenceInterval {
  low: number;
  high: number;
  level: number;
  resamples: number;
  /** What was resampled (absent from bootstrapMeanCi, which resamples ratings). */
  unit?: ResampleUnit;
}

export interface GroupSummary {
  arm: string;
  dimension: string;
  n: number;
  mean: number;
  /** Sample SD (divides by n − 1); null for a single rating. */
  sd: number | null;
  /** Percentile bootstrap CI of the mean; null for a single rating. */
  ci: ConfidenceInterval | null;
  /** Why sd or ci is null. */
  notes?: Record<string, string>;
}

export interface SummaryOptions extends BootstrapOptions {
  /** Seed of the bootstrap (default 1). Each group draws from its own stream derived from it. */
  seed?: number;
  /** What the bootstrap resamples: images (default), images and raters, or ratings. */
  unit?: ResampleUnit;
}

/**
 * Summaries per (arm, dimension), groups ordered by first appearance of the arm, then of the
 * dimension. The same seed gives the same intervals, whatever the order of the ratings.
 */
export function summarize(
  ratings: readonly ArmRating[],
  options: SummaryOptions = {},
): GroupSummary[] {
  const seed = options.seed ?? 1;
  const arms: string[] = [];
  const dimensions: string[] = [];
  const groups = new Map<string, ArmRating[]>();
  for (const rating of ratings) {
    if (!Number.isFinite(rating.score)) throw new RangeError(`score ${rating.score} is not finite`);
    const dimension = rating.dimension ?? ALL_DIMENSIONS;
    if (!arms.includes(rating.arm)) arms.push(rating.arm);
    if (!dimensions.includes(dimension)) dimensions.push(dimension);
    const key = groupKey(rating.arm, dimension);
    let group = groups.get(key);
    if (group === undefined) {
      group = [];
      groups.set(key, group);
    }
    group.push(rating);
  }
  const summaries: GroupSummary[] = [];
  for (const arm of arms) {
    for (const dimension of dimensions) {
      const key = groupKey(arm, dimension);
      const group = groups.get(key);
      if (group === undefined) continue;
      summaries.push(
        summarizeGroup(arm, dimension, group, seededRandom(hashSeed(seed, key)), options),
      );
    }
  }
  return summaries;
}

function summarizeGroup(
  arm: string,
  dimension: string,
  group: readonly ArmRating[],
  random: RandomSource,
  options: SummaryOptions,
): GroupSummary {
  const scores = group.map((rating) => rating.score);
  const { n, mean, sd } = meanAndSd(scores);
  if (sd === null) {
    return {
      arm,
      dimension,
      n,
      mean,
      sd: null,
      ci: null,
      notes: { sd: "one rating: the sample SD needs two", ci: "one rating: no interval" },
    };
  }
  const unit = options.unit ?? "images";
  const ci: ConfidenceInterval =
    unit === "ratings"
      ? { ...bootstrapMeanCi(scores, random, options), unit }
      : clusterBootstrapMeanCi(clusterScores(group), random, { ...options, unit });
  return { arm, dimension, n, mean, sd, ci };
}

/** n, mean and sample SD (null when n = 1). Throws for an empty list. */
export function meanAndSd(values: readonly number[]): {
  n: number;
  mean: number;
  sd: number | null;
} {
  const n = values.length;
  if (n === 0) throw new RangeError("no values");
  let sum = 0;
  for (const value of values) sum += value;
  const mean = sum / n;
  if (n === 1) return { n, mean, sd: null };
  let squares = 0;
  for (const value of values) squares += (value - mean) ** 2;
  return { n, mean, sd: Math.sqrt(squares / (n - 1)) };
}

/**
 * Percentile bootstrap CI of the mean: B resampled means, cut at (1 − level)/2 and
 * (1 + level)/2 with linear interpolation between order statistics (Hyndman–Fan type 7).
 */
export function bootstrapMeanCi(
  values: readonly number[],
  random: RandomSource,
  options: BootstrapOptions = {},
): ConfidenceInterval {
  const resamples = options.resamples ?? 2000;
  const level = options.level ?? 0.95;
  if (!Number.isInteger(resamples) || resamples < 1) {
    throw new RangeError(`resamples must be a whole number ≥ 1, got ${resamples}`);
  }
  if (!(level > 0 && level < 1)) throw new RangeError(`level must be in (0, 1), got ${level}`);
  const n = values.length;
  if (n === 0) throw new RangeError("no values");
  // Distinct values in ascending order and their counts: the resample is a multinomial draw.
  const sorted = Float64Array.from(values).sort();
  const distinct: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < n; i++) {
    const value = sorted[i] as number;
    if (i > 0 && value === sorted[i - 1]) counts[counts.length - 1] = (counts.at(-1) as number) + 1;
    else {
      distinct.push(value);
      counts.push(1);
    }
  }
  const means = new Float64Array(resamples);
  const k = distinct.length;
  for (let b = 0; b < resamples; b++) {
    let remaining = n;
    let unassigned = n; // ratings of the original not yet covered by earlier values
    let sum = 0;
    for (let c = 0; c < k && remaining > 0; c++) {
      const count = counts[c] as number;
      const drawn = c === k - 1 ? remaining : sampleBinomial(remaining, count / unassigned, random);
      sum += drawn * (distinct[c] as number);
      remaining -= drawn;
      unassigned -= count;
    }
    means[b] = sum / n;
  }
  means.sort();
  return {
    low: quantileSorted(means, (1 - level) / 2),
    high: quantileSorted(means, (1 + level) / 2),
    level,
    resamples,
  };
}

function groupKey(arm: string, dimension: string): string {
  return `${arm}\u0000${dimension}`;
}

/** A 32-bit FNV-1a hash of the seed and the group, so each group has its own random stream. */
function hashSeed(seed: number, key: string): number {
  let hash = 0x811c9dc5;
  const text = `${seed}\u0000${key}`;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export interface TableOptions {
  /** Column order (default: order of appearance). */
  arms?: readonly string[];
  /** Row order (default: order of appearance). */
  dimensions?: readonly string[];
  /** Display names: arms by name, dimensions by name (default quality → Q, faithfulness → F). */
  labels?: Record<string, string>;
  /** Decimals (default 2, as in the paper). */
  digits?: number;
}

const DEFAULT_LABELS: Record<string, string> = { quality: "Q", faithfulness: "F" };

/**
 * The paper's Table 1 as text: one row per dimension (Q, F), one column per arm, each cell
 * "mean (SD)"; "–" where a group has no ratings.
 */
export function formatSummaryTable(
  summaries: readonly GroupSummary[],
  options: TableOptions = {},
): string {
  const digits = options.digits ?? 2;
  const labels = { ...DEFAULT_LABELS, ...options.labels };
  const arms = options.arms ?? unique(summaries.map((s) => s.arm));
  const dimensions = options.dimensions ?? unique(summaries.map((s) => s.dimension));
  const cell = (arm: string, dimension: string): string => {
    const s = summaries.find((x) => x.arm === arm && x.dimension === dimension);
    if (s === undefined) return "–";
    return `${s.mean.toFixed(digits)} (${s.sd === null ? "–" : s.sd.toFixed(digits)})`;
  };
  const rows: string[][] = [
    ["", ...arms.map((arm) => labels[arm] ?? arm)],
    ...dimensions.map((d) => [labels[d] ?? d, ...arms.map((arm) => cell(arm, d))]),
  ];
  const widths = (rows[0] as string[]).map((_, column) =>
    Math.max(...rows.map((row) => (row[column] as string).length)),
  );
  return rows
    .map((row) =>
      row
        .map((text, column) => text.padEnd(widths[column] as number))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")
    .concat("\n");
}

/** Summaries as plain JSON objects (snake_case, CI flattened). */
export function summariesToJson(summaries: readonly GroupSummary[]): Array<{
  arm: string;
  dimension: string;
  n: number;
  mean: number;
  sd: number | null;
  ci_low: number | null;
  ci_high: number | null;
  ci_level: number | null;
  resamples: number | null;
  /** What the bootstrap resampled: "images", "images-raters" or "ratings". */
  ci_unit: ResampleUnit | null;
  notes?: Record<string, string>;
}> {
  return summaries.map((s) => ({
    arm: s.arm,
    dimension: s.dimension,
    n: s.n,
    mean: s.mean,
    sd: s.sd,
    ci_low: s.ci?.low ?? null,
    ci_high: s.ci?.high ?? null,
    ci_level: s.ci?.level ?? null,
    resamples: s.ci?.resamples ?? null,
    ci_unit: s.ci?.unit ?? null,
    ...(s.notes === undefined ? {} : { notes: s.notes }),
  }));
}

/** Summaries as CSV (RFC 4180 quoting), one row per group; empty fields for nulls. */
export function summariesToCsv(summaries: readonly GroupSummary[]): string {
  const header = "arm,dimension,n,mean,sd,ci_low,ci_high,ci_level,resamples,ci_unit";
  const lines = summariesToJson(summaries).map((s) =>
    [s.arm, s.dimension, s.n, s.mean, s.sd, s.ci_low, s.ci_high, s.ci_level, s.resamples, s.ci_unit]
      .map(csvField)
      .join(","),
  );
  return `${[header, ...lines].join("\n")}\n`;
}
