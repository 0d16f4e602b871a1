/**
 * Is one arm rated differently from another on a dimension? Mann–Whitney U with the normal
 * approximation (tie-corrected variance, continuity correction, two-sided p), and a seeded
 * Monte-Carlo permutation test on the difference in means.
 */
import type { RandomSource } from "../random.js";
import { twoSidedP } from "./distributions.js";

export interface MannWhitneyResult {
  n1: number;
  n2: number;
  /** U of the first sample: pairs (x from the first, y from the second) with x > y, ties ½. */
  u: number;
  /** Continuity-corrected z, positive when the first sample tends to be higher; null if undefined. */
  z: number | null;
  /** Two-sided p-value of the normal approximation; null if undefined. */
  p: number | null;
  /** Rank-biserial correlation 2U/(n1·n2) − 1 = P(x > y) − P(x < y). */
  rankBiserial: number;
  /** mean(first) − mean(second). */
  meanDifference: number;
  /** Why z and p are null. */
  reason?: string;
}

/**
 * Mann–Whitney U test. With midranks R₁ of the first sample: U = R₁ − n₁(n₁+1)/2,
 * σ² = n₁n₂/12 · ((n+1) − Σ(t³ − t)/(n(n−1))) over tie groups of size t,
 * z = sign(U − n₁n₂/2) · max(|U − n₁n₂/2| − ½, 0) / σ, p = 2·Q(|z|) — the same as
 * scipy.stats.mannwhitneyu(method="asymptotic") and R's wilcox.test(exact = FALSE, correct = TRUE).
 */
export function mannWhitneyU(
  first: readonly number[],
  second: readonly number[],
): MannWhitneyResult {
  const n1 = first.length;
  const n2 = second.length;
  if (n1 === 0 || n2 === 0) throw new RangeError("both samples need at least one value");
  for (const value of [...first, ...second]) {
    if (!Number.isFinite(value)) throw new RangeError(`value ${value} is not finite`);
  }
  const n = n1 + n2;
  // Both samples sorted (native numeric sort), then merged: each run of equal values is one
  // tie group whose members share the midrank.
  const a = Float64Array.from(first).sort();
  const b = Float64Array.from(second).sort();
  let rankSumFirst = 0;
  let tieTerm = 0;
  let i = 0;
  let j = 0;
  let rank = 0; // ranks assigned so far
  while (i < n1 || j < n2) {
    const value = Math.min(
      i < n1 ? (a[i] as number) : Infinity,
      j < n2 ? (b[j] as number) : Infinity,
    );
    let inFirst = 0;
    while (i < n1 && a[i] === value) {
      i++;
      inFirst++;
    }
    let inSecond = 0;
    while (j < n2 && b[j] === value) {
      j++;
      inSecond++;
    }
    const t = inFirst + inSecond;
    rankSumFirst += inFirst * (rank + (t + 1) / 2);
    tieTerm += t * t * t - t;
    rank += t;
  }
  const u = rankSumFirst - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  const meanDifference = average(first) - average(second);
  const rankBiserial = (2 * u) / (n1 * n2) - 1;
  if (!(variance > 0)) {
    return {
      n1,
      n2,
      u,
      z: null,
      p: null,
      rankBiserial,
      meanDifference,
      reason: "every value is the same: the rank statistic has no variance",
    };
  }
  const deviation = u - mean;
  const z = (Math.sign(deviation) * Math.max(Math.abs(deviation) - 0.5, 0)) / Math.sqrt(variance);
  return { n1, n2, u, z: z === 0 ? 0 : z, p: twoSidedP(z), rankBiserial, meanDifference };
}

export interface PermutationResult {
  n1: number;
  n2: number;
  meanDifference: number;
  /** (1 + permutations at least as extreme) / (1 + rounds), two-sided on |difference|. */
  p: number;
  rounds: number;
}

/**
 * Monte-Carlo permutation test on mean(first) − mean(second): the pooled values are reassigned
 * to the two groups at random `rounds` times (partial Fisher–Yates). Deterministic for a seeded
 * random source. p counts the observed split, so it is never 0.
 */
export function permutationTest(
  first: readonly number[],
  second: readonly number[],
  random: RandomSource,
  rounds = 10_000,
): PermutationResult {
  const n1 = first.length;
  const n2 = second.length;
  if (n1 === 0 || n2 === 0) throw new RangeError("both samples need at least one value");
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new RangeError(`rounds must be ≥ 1, got ${rounds}`);
  const pooled = Float64Array.from([...first, ...second]);
  const n = pooled.length;
  let total = 0;
  for (let i = 0; i < n; i++) total += pooled[i] as number;
  const difference = (sumFirst: number): number => sumFirst / n1 - (total - sumFirst) / n2;
  const observed = difference(sumOf(first));
  // Relative tolerance so that splits equal to the observed one count despite rounding.
  const threshold = Math.abs(observed) * (1 - 1e-12) - 1e-12;
  let extreme = 0;
  for (let round = 0; round < rounds; round++) {
    let sumFirst = 0;
    for (let i = 0; i < n1; i++) {
      const j = i + Math.floor(random.next() * (n - i));
      const picked = pooled[j] as number;
      pooled[j] = pooled[i] as number;
      pooled[i] = picked;
      sumFirst += picked;
    }
    if (Math.abs(difference(sumFirst)) >= threshold) extreme++;
  }
  return { n1, n2, meanDifference: observed, p: (extreme + 1) / (rounds + 1), rounds };
}

function sumOf(values: readonly number[]): number {
  let sum = 0;
  for (const value of values) sum += value;
  return sum;
}

function average(values: readonly number[]): number {
  return sumOf(values) / values.length;
}
