/**
 * Uncertainty that respects a rating design: the ratings of one image are not independent
 * observations (they share the image), so the bootstrap resamples images — and optionally
 * raters too — and the arm comparison permutes whole images between arms.
 *
 * - Image (cluster) bootstrap: B resamples of the images with replacement; each resample's mean
 *   is Σ scores / Σ ratings over the drawn images (the same rating-weighted mean as Table 1).
 * - Two-way bootstrap (images × raters): images and raters are drawn independently with
 *   replacement; a rating counts (times its image was drawn) × (times its rater was drawn).
 *   It also carries the uncertainty of which raters happened to rate.
 * - Image-level permutation test: the arm labels of the two arms' images are shuffled among
 *   those images (within each stratum, e.g. survey, so each stratum keeps its count per arm);
 *   a rating moves with its image. Exact under the null that images are exchangeable.
 *
 * All deterministic for a seeded random source. Validated by scripts/simulate-study.ts
 * (coverage and false-rejection rate over simulated studies) and test/stats/cluster.test.ts.
 */
import type { RandomSource } from "../random.js";
import { increment } from "./arrays.js";
import { quantileSorted } from "./distributions.js";

/** What the bootstrap resamples: ratings (independent), images, or images and raters. */
export type ResampleUnit = "ratings" | "images" | "images-raters";
export const RESAMPLE_UNITS: readonly ResampleUnit[] = ["ratings", "images", "images-raters"];

/** One group's ratings coded by image and rater, for the clustered statistics. */
export interface ClusteredScores {
  /** Image index (0 … images − 1) of each rating. */
  readonly item: Int32Array;
  /** Rater index (0 … raters − 1) of each rating. */
  readonly rater: Int32Array;
  readonly score: Float64Array;
  readonly items: number;
  readonly raters: number;
}

/**
 * Codes a group's ratings by image and rater. Indexes follow the sorted names, so that a seed
 * gives the same resamples whatever the order the ratings came in.
 */
export function clusterScores(
  ratings: readonly { item: string; rater: string; score: number }[],
): ClusteredScores {
  const index = (names: Iterable<string>) =>
    new Map([...new Set(names)].sort().map((name, i) => [name, i] as const));
  const items = index(ratings.map((r) => r.item));
  const raters = index(ratings.map((r) => r.rater));
  const n = ratings.length;
  const item = new Int32Array(n);
  const rater = new Int32Array(n);
  const score = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const rating = ratings[r] as { item: string; rater: string; score: number };
    if (!Number.isFinite(rating.score)) throw new RangeError(`score ${rating.score} is not finite`);
    item[r] = items.get(rating.item) as number;
    rater[r] = raters.get(rating.rater) as number;
    score[r] = rating.score;
  }
  return { item, rater, score, items: items.size, raters: raters.size };
}

export interface ClusterBootstrapOptions {
  /** Images (default) or images and raters. */
  unit?: Exclude<ResampleUnit, "ratings">;
  /** Resamples B (default 2,000). */
  resamples?: number;
  /** Confidence level (default 0.95). */
  level?: number;
}

export interface ClusterInterval {
  low: number;
  high: number;
  level: number;
  resamples: number;
  unit: Exclude<ResampleUnit, "ratings">;
}

/**
 * Percentile bootstrap CI of the rating-weighted mean, resampling images (or images and
 * raters). Needs at least one rating; with one image the interval is that image's mean.
 */
export function clusterBootstrapMeanCi(
  data: ClusteredScores,
  random: RandomSource,
  options: ClusterBootstrapOptions = {},
): ClusterInterval {
  const resamples = options.resamples ?? 2000;
  const level = options.level ?? 0.95;
  const unit = options.unit ?? "images";
  if (!Number.isInteger(resamples) || resamples < 1) {
    throw new RangeError(`resamples must be a whole number ≥ 1, got ${resamples}`);
  }
  if (!(level > 0 && level < 1)) throw new RangeError(`level must be in (0, 1), got ${level}`);
  if (data.score.length === 0) throw new RangeError("no ratings");
  const means = new Float64Array(resamples);
  const { items } = data;
  const sums = new Float64Array(items);
  const counts = new Float64Array(items);
  for (let r = 0; r < data.score.length; r++) {
    const i = data.item[r] as number;
    sums[i] = (sums[i] as number) + (data.score[r] as number);
    increment(counts, i);
  }
  if (unit === "images") {
    // sfc32 inlined (see sfc32State): the draws dominate the cost.
    let [a, b, c, d] = sfc32State(random);
    for (let resample = 0; resample < resamples; resample++) {
      let sum = 0;
      let count = 0;
      for (let draw = 0; draw < items; draw++) {
        const t = (((a + b) >>> 0) + d) >>> 0;
        d = (d + 1) >>> 0;
        a = b ^ (b >>> 9);
        b = (c + (c << 3)) >>> 0;
        c = ((c << 21) | (c >>> 11)) >>> 0;
        c = (c + t) >>> 0;
        const i = Math.floor((t / 4294967296) * items);
        sum += sums[i] as number;
        count += counts[i] as number;
      }
      means[resample] = sum / count;
    }
  } else {
    const itemWeight = new Float64Array(items);
    const raterWeight = new Float64Array(data.raters);
    for (let b = 0; b < resamples; b++) {
      // A draw of images and raters that shares no rating has no mean: draw again (rare except
      // for tiny designs; bounded so that a design with no overlap at all cannot loop forever).
      let mean = Number.NaN;
      for (let attempt = 0; attempt < 1000 && Number.isNaN(mean); attempt++) {
        itemWeight.fill(0);
        raterWeight.fill(0);
        for (let draw = 0; draw < items; draw++) {
          increment(itemWeight, Math.floor(random.next() * items));
        }
        for (let draw = 0; draw < data.raters; draw++) {
          increment(raterWeight, Math.floor(random.next() * data.raters));
        }
        let sum = 0;
        let count = 0;
        for (let r = 0; r < data.score.length; r++) {
          const weight =
            (itemWeight[data.item[r] as number] as number) *
            (raterWeight[data.rater[r] as number] as number);
          sum += weight * (data.score[r] as number);
          count += weight;
        }
        if (count > 0) mean = sum / count;
      }
      if (Number.isNaN(mean)) {
        throw new RangeError("images × raters bootstrap: no resample kept any rating");
      }
      means[b] = mean;
    }
  }
  means.sort();
  return {
    low: quantileSorted(means, (1 - level) / 2),
    high: quantileSorted(means, (1 + level) / 2),
    level,
    resamples,
    unit,
  };
}

/** One image's ratings, summed, for the image-level permutation test. */
export interface ImageTotals {
  /** Σ scores of the image's ratings. */
  sum: number;
  /** Number of ratings of the image (≥ 1). */
  count: number;
  /** Images are only exchanged within a stratum (e.g. a survey); default: all one stratum. */
  stratum?: string;
}

/** Sums and counts per image of a group's ratings, each with its stratum. */
export function imageTotals(
  ratings: readonly { item: string; score: number }[],
  stratumOf: (item: string) => string | undefined = () => undefined,
): ImageTotals[] {
  const byItem = new Map<string, ImageTotals>();
  for (const rating of ratings) {
    let totals = byItem.get(rating.item);
    if (totals === undefined) {
      const stratum = stratumOf(rating.item);
      totals = { sum: 0, count: 0, ...(stratum === undefined ? {} : { stratum }) };
      byItem.set(rating.item, totals);
    }
    totals.sum += rating.score;
    totals.count++;
  }
  return [...byItem.values()];
}

export interface ClusterPermutationResult {
  /** Images of each arm. */
  images1: number;
  images2: number;
  /** Rating-weighted mean(first) − mean(second). */
  meanDifference: number;
  /** (1 + relabellings at least as extreme) / (1 + rounds), two-sided on |difference|. */
  p: number;
  rounds: number;
  /** Strata that images were exchanged within (1 when unstratified). */
  strata: number;
}

/**
 * Image-level permutation test of mean(first) − mean(second): each round, within each stratum,
 * as many of the stratum's images as the first arm has there are drawn at random (partial
 * Fisher–Yates) to be "first", the rest "second". p counts the observed labelling, so p > 0 and
 * P(p ≤ α) ≤ α under exchangeability.
 */
export function clusterPermutationTest(
  first: readonly ImageTotals[],
  second: readonly ImageTotals[],
  random: RandomSource,
  rounds = 10_000,
): ClusterPermutationResult {
  if (first.length === 0 || second.length === 0) {
    throw new RangeError("both arms need at least one rated image");
  }
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new RangeError(`rounds must be ≥ 1, got ${rounds}`);
  }
  for (const image of [...first, ...second]) {
    if (!(image.count >= 1) || !Number.isFinite(image.sum)) {
      throw new RangeError(`an image needs ≥ 1 rating and a finite sum, got ${image.count}`);
    }
  }
  // Strata in order of appearance; per stratum the pooled images and how many are "first".
  const strata = new Map<string, { sums: number[]; counts: number[]; firstCount: number }>();
  const add = (image: ImageTotals, isFirst: boolean) => {
    const key = image.stratum ?? "";
    let stratum = strata.get(key);
    if (stratum === undefined) {
      stratum = { sums: [], counts: [], firstCount: 0 };
      strata.set(key, stratum);
    }
    stratum.sums.push(image.sum);
    stratum.counts.push(image.count);
    if (isFirst) stratum.firstCount++;
  };
  for (const image of first) add(image, true);
  for (const image of second) add(image, false);
  // All images in one pair of arrays, stratum by stratum; a round shuffles within each range.
  const sums = Float64Array.from([...strata.values()].flatMap((s) => s.sums));
  const counts = Float64Array.from([...strata.values()].flatMap((s) => s.counts));
  const rangeStart = new Int32Array(strata.size);
  const rangeSize = new Int32Array(strata.size);
  const rangeFirst = new Int32Array(strata.size);
  let offset = 0;
  [...strata.values()].forEach((s, g) => {
    rangeStart[g] = offset;
    rangeSize[g] = s.sums.length;
    rangeFirst[g] = s.firstCount;
    offset += s.sums.length;
  });
  let totalSum = 0;
  let totalCount = 0;
  for (let i = 0; i < sums.length; i++) {
    totalSum += sums[i] as number;
    totalCount += counts[i] as number;
  }
  const difference = (sumFirst: number, countFirst: number): number =>
    sumFirst / countFirst - (totalSum - sumFirst) / (totalCount - countFirst);
  let observedSum = 0;
  let observedCount = 0;
  for (const image of first) {
    observedSum += image.sum;
    observedCount += image.count;
  }
  const observed = difference(observedSum, observedCount);
  // Relative tolerance so that labellings equal to the observed one count despite rounding.
  const threshold = Math.abs(observed) * (1 - 1e-12) - 1e-12;
  const groups = strata.size;
  // sfc32 inlined (see sfc32State): the draws dominate the cost.
  let [a, b, c, d] = sfc32State(random);
  let extreme = 0;
  for (let round = 0; round < rounds; round++) {
    let sumFirst = 0;
    let countFirst = 0;
    for (let g = 0; g < groups; g++) {
      const start = rangeStart[g] as number;
      const n = rangeSize[g] as number;
      const end = start + (rangeFirst[g] as number);
      for (let i = start; i < end; i++) {
        const t = (((a + b) >>> 0) + d) >>> 0;
        d = (d + 1) >>> 0;
        a = b ^ (b >>> 9);
        b = (c + (c << 3)) >>> 0;
        c = ((c << 21) | (c >>> 11)) >>> 0;
        c = (c + t) >>> 0;
        const j = i + Math.floor((t / 4294967296) * (n - (i - start)));
        const sum = sums[j] as number;
        const count = counts[j] as number;
        sums[j] = sums[i] as number;
        counts[j] = counts[i] as number;
        sums[i] = sum;
        counts[i] = count;
        sumFirst += sum;
        countFirst += count;
      }
    }
    if (Math.abs(difference(sumFirst, countFirst)) >= threshold) extreme++;
  }
  return {
    images1: first.length,
    images2: second.length,
    meanDifference: observed,
    p: (extreme + 1) / (rounds + 1),
    rounds,
    strata: groups,
  };
}

/**
 * The starting state of an sfc32 generator seeded from `random`, mixed by a few discarded
 * outputs as random.ts does. The hot loops step this state inline: the draws dominate their
 * cost, and local variables run several times faster than calls through RandomSource.
 */
function sfc32State(random: RandomSource): [number, number, number, number] {
  let a = (random.next() * 2 ** 32) >>> 0;
  let b = (random.next() * 2 ** 32) >>> 0;
  let c = (random.next() * 2 ** 32) >>> 0;
  let d = 1;
  for (let i = 0; i < 12; i++) {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
  }
  return [a, b, c, d];
}
