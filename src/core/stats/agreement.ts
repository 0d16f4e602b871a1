/**
 * Inter-rater agreement on one dimension: Cohen's κ per rater pair (unweighted, linear and
 * quadratic weights on the declared scale), Fleiss' κ, Krippendorff's α (nominal, ordinal,
 * interval; missing ratings allowed) and percent agreement (mean over items of the share of
 * agreeing rating pairs).
 *
 * Weights and distances use the declared category values, so a pair of raters who only used 1
 * and 2 is still weighed on the 1–4 scale. A statistic that the data leave undefined is an
 * Estimate with value null and a reason.
 */

import { increment } from "./arrays.js";
import {
  type CodedRatings,
  codeRatings,
  DEFAULT_CATEGORIES,
  type Estimate,
  estimate,
  itemCategoryCounts,
  orderByItemThenRater,
  orderByRaterThenItem,
  type Rating,
  undefinedEstimate,
} from "./ratings.js";

export type KappaWeighting = "unweighted" | "linear" | "quadratic";
export const KAPPA_WEIGHTINGS: readonly KappaWeighting[] = ["unweighted", "linear", "quadratic"];

/**
 * Disagreement weights d(i, j) on the declared scale (1 − the agreement weights):
 * unweighted 0/1, linear |xᵢ − xⱼ| / range, quadratic (xᵢ − xⱼ)² / range².
 */
export function disagreementWeights(
  categories: readonly number[],
  weighting: KappaWeighting,
): Float64Array {
  const k = categories.length;
  const range = (categories[k - 1] as number) - (categories[0] as number);
  const weights = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      const distance = Math.abs((categories[i] as number) - (categories[j] as number)) / range;
      weights[i * k + j] =
        i === j
          ? 0
          : weighting === "unweighted"
            ? 1
            : weighting === "linear"
              ? distance
              : distance ** 2;
    }
  }
  return weights;
}

const NO_EXPECTED_DISAGREEMENT: Estimate = Object.freeze(
  undefinedEstimate(
    "no expected disagreement: both raters gave the same single score to every shared item",
  ),
);

/**
 * Cohen's κ from a k × k contingency table (rows: first rater, columns: second rater):
 * κ = 1 − n·Σ d·observed / Σ d·rowᵢ·colⱼ. Null when there is no expected disagreement (both
 * raters used one and the same category throughout).
 */
export function cohenKappaFromTable(table: ArrayLike<number>, weights: Float64Array): Estimate {
  const k = Math.round(Math.sqrt(weights.length));
  if (table.length !== k * k)
    throw new RangeError(`table has ${table.length} cells, expected ${k * k}`);
  const rows = new Float64Array(k);
  const columns = new Float64Array(k);
  let n = 0;
  let observed = 0;
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      const count = table[i * k + j] as number;
      rows[i] = (rows[i] as number) + count;
      columns[j] = (columns[j] as number) + count;
      observed += (weights[i * k + j] as number) * count;
      n += count;
    }
  }
  if (n === 0) return undefinedEstimate("no items rated by both raters");
  let expected = 0;
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      expected += (weights[i * k + j] as number) * (rows[i] as number) * (columns[j] as number);
    }
  }
  if (expected === 0) return NO_EXPECTED_DISAGREEMENT;
  return estimate(1 - (n * observed) / expected);
}

/** Cohen's κ for two equally long lists of scores on the declared scale. */
export function cohenKappa(
  first: readonly number[],
  second: readonly number[],
  weighting: KappaWeighting = "unweighted",
  categories: readonly number[] = DEFAULT_CATEGORIES,
): Estimate {
  if (first.length !== second.length) {
    throw new RangeError(`rater lists differ in length: ${first.length} and ${second.length}`);
  }
  const ratings: Rating[] = [];
  first.forEach((score, i) => {
    ratings.push({ item: String(i), rater: "a", score });
    ratings.push({ item: String(i), rater: "b", score: second[i] as number });
  });
  const coded = codeRatings(ratings, categories);
  const k = categories.length;
  const table = new Float64Array(k * k);
  for (let r = 0; r < coded.item.length; r += 2) {
    increment(table, (coded.category[r] as number) * k + (coded.category[r + 1] as number));
  }
  return cohenKappaFromTable(table, disagreementWeights(categories, weighting));
}

export interface PairKappa {
  raters: [string, string];
  nItems: number;
  unweighted: Estimate;
  linear: Estimate;
  quadratic: Estimate;
}

/** Above this many pair × category cells the dense item-centric tables are not allocated. */
const DENSE_PAIR_CELL_LIMIT = 1 << 24;

/**
 * Cohen's κ for every pair of raters with at least `minSharedItems` items in common.
 *
 * "items" (default when it fits in memory): one pass over the items adds each pair of ratings of
 * an item to that rater pair's k × k table — Σ mᵢ² work for mᵢ ratings of item i. "merge": each
 * rater's ratings are one run sorted by item and a pair is a linear merge of two runs; pairs
 * whose smaller run is too short are skipped without merging. Both give identical results.
 */
export function pairwiseCohen(
  coded: CodedRatings,
  minSharedItems = 2,
  strategy: "auto" | "items" | "merge" = "auto",
): PairKappa[] {
  if (!Number.isInteger(minSharedItems) || minSharedItems < 1) {
    throw new RangeError(`minSharedItems must be a whole number ≥ 1, got ${minSharedItems}`);
  }
  const k = coded.categories.length;
  const raterCount = coded.raters.length;
  const pairCount = (raterCount * (raterCount - 1)) / 2;
  const dense =
    strategy === "items" || (strategy === "auto" && pairCount * k * k <= DENSE_PAIR_CELL_LIMIT);
  const weights = KAPPA_WEIGHTINGS.map((w) => disagreementWeights(coded.categories, w));
  const pairs: PairKappa[] = [];
  const rows = new Float64Array(k);
  const columns = new Float64Array(k);
  const add = (a: number, b: number, table: Float64Array, shared: number): void => {
    // Marginals once, then the three weightings (same formula as cohenKappaFromTable).
    rows.fill(0);
    columns.fill(0);
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) {
        const count = table[i * k + j] as number;
        rows[i] = (rows[i] as number) + count;
        columns[j] = (columns[j] as number) + count;
      }
    }
    const kappa = (w: Float64Array): Estimate => {
      let observed = 0;
      let expected = 0;
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          const d = w[i * k + j] as number;
          observed += d * (table[i * k + j] as number);
          expected += d * (rows[i] as number) * (columns[j] as number);
        }
      }
      return expected === 0
        ? NO_EXPECTED_DISAGREEMENT
        : estimate(1 - (shared * observed) / expected);
    };
    pairs.push({
      raters: [coded.raters[a] as string, coded.raters[b] as string],
      nItems: shared,
      unweighted: kappa(weights[0] as Float64Array),
      linear: kappa(weights[1] as Float64Array),
      quadratic: kappa(weights[2] as Float64Array),
    });
  };
  if (dense) {
    const tables = pairTablesByItem(coded);
    const cells = k * k;
    for (let a = 0, pair = 0; a < raterCount; a++) {
      for (let b = a + 1; b < raterCount; b++, pair++) {
        const table = tables.subarray(pair * cells, (pair + 1) * cells);
        let shared = 0;
        for (let c = 0; c < cells; c++) shared += table[c] as number;
        if (shared >= minSharedItems) add(a, b, table, shared);
      }
    }
    return pairs;
  }
  const { order, start } = orderByRaterThenItem(coded);
  // Items and categories laid out in rater runs, for cache-friendly merges.
  const runItem = new Int32Array(order.length);
  const runCategory = new Int32Array(order.length);
  for (let p = 0; p < order.length; p++) {
    runItem[p] = coded.item[order[p] as number] as number;
    runCategory[p] = coded.category[order[p] as number] as number;
  }
  const table = new Float64Array(k * k);
  for (let a = 0; a < raterCount; a++) {
    const aStart = start[a] as number;
    const aEnd = start[a + 1] as number;
    if (aEnd - aStart < minSharedItems) continue;
    for (let b = a + 1; b < raterCount; b++) {
      const bStart = start[b] as number;
      const bEnd = start[b + 1] as number;
      if (bEnd - bStart < minSharedItems) continue;
      table.fill(0);
      let shared = 0;
      let i = aStart;
      let j = bStart;
      while (i < aEnd && j < bEnd) {
        const itemA = runItem[i] as number;
        const itemB = runItem[j] as number;
        if (itemA < itemB) i++;
        else if (itemA > itemB) j++;
        else {
          increment(table, (runCategory[i] as number) * k + (runCategory[j] as number));
          shared++;
          i++;
          j++;
        }
      }
      if (shared >= minSharedItems) add(a, b, table, shared);
    }
  }
  return pairs;
}

/**
 * The k × k tables of all rater pairs (a < b, in order), filled in one pass over the items:
 * within an item the ratings are ordered by rater, so each pair of them is one (a, b) cell.
 */
function pairTablesByItem(coded: CodedRatings): Float64Array {
  const k = coded.categories.length;
  const cells = k * k;
  const raterCount = coded.raters.length;
  const tables = new Float64Array(((raterCount * (raterCount - 1)) / 2) * cells);
  const { order, start } = orderByItemThenRater(coded);
  for (let item = 0; item < coded.items.length; item++) {
    const end = start[item + 1] as number;
    for (let p = start[item] as number; p < end; p++) {
      const first = order[p] as number;
      const a = coded.rater[first] as number;
      const rowBase = a * raterCount - (a * (a + 1)) / 2 - a - 1; // pair index of (a, b) = rowBase + b
      const ca = (coded.category[first] as number) * k;
      for (let q = p + 1; q < end; q++) {
        const second = order[q] as number;
        increment(
          tables,
          (rowBase + (coded.rater[second] as number)) * cells +
            ca +
            (coded.category[second] as number),
        );
      }
    }
  }
  return tables;
}

/** The mean of a κ over pairs, over the pairs where it is defined. */
export function meanOverPairs(
  pairs: readonly PairKappa[],
  weighting: KappaWeighting,
  minSharedItems = 2,
): Estimate & { pairsUsed: number } {
  if (pairs.length === 0) {
    return {
      value: null,
      reason: `no pair of raters shares at least ${minSharedItems} items`,
      pairsUsed: 0,
    };
  }
  let sum = 0;
  let used = 0;
  for (const pair of pairs) {
    const value = pair[weighting].value;
    if (value !== null) {
      sum += value;
      used++;
    }
  }
  if (used === 0) {
    return {
      value: null,
      reason: `undefined for all ${pairs.length} rater pairs: ${pairs[0]?.[weighting].reason}`,
      pairsUsed: 0,
    };
  }
  return { value: sum / used, pairsUsed: used };
}

/**
 * Fleiss' κ over the items that every rater rated (the complete block of the ratings), from
 * the per-item category counts: κ = (P̄ − P̄ₑ) / (1 − P̄ₑ).
 */
export function fleissKappa(coded: CodedRatings): Estimate & { nItems: number } {
  const k = coded.categories.length;
  const raters = coded.raters.length;
  if (raters < 2) return { ...undefinedEstimate("needs at least two raters"), nItems: 0 };
  const counts = itemCategoryCounts(coded);
  const complete: number[] = [];
  for (let i = 0; i < coded.items.length; i++) {
    let m = 0;
    for (let c = 0; c < k; c++) m += counts[i * k + c] as number;
    if (m === raters) complete.push(i);
  }
  if (complete.length === 0) {
    return {
      ...undefinedEstimate(
        `no item was rated by all ${raters} raters (Fleiss' κ needs a complete block; Krippendorff's α allows missing ratings)`,
      ),
      nItems: 0,
    };
  }
  return {
    ...fleissKappaFromCounts(complete.map((i) => counts.subarray(i * k, (i + 1) * k))),
    nItems: complete.length,
  };
}

/** Fleiss' κ from an items × categories table of counts; every row must sum to the same m ≥ 2. */
export function fleissKappaFromCounts(rows: readonly ArrayLike<number>[]): Estimate {
  if (rows.length === 0) return undefinedEstimate("no items");
  const k = (rows[0] as ArrayLike<number>).length;
  let m = -1;
  const totals = new Float64Array(k);
  let agreement = 0;
  for (const row of rows) {
    let sum = 0;
    let squares = 0;
    for (let c = 0; c < k; c++) {
      const count = row[c] as number;
      sum += count;
      squares += count * count;
      totals[c] = (totals[c] as number) + count;
    }
    if (m === -1) m = sum;
    else if (sum !== m)
      throw new RangeError(`every item needs the same number of ratings (${m} and ${sum})`);
    agreement += (squares - sum) / (sum * (sum - 1));
  }
  if (m < 2) return undefinedEstimate("needs at least two ratings per item");
  const meanAgreement = agreement / rows.length;
  const all = rows.length * m;
  let chance = 0;
  let used = 0;
  for (let c = 0; c < k; c++) {
    const share = (totals[c] as number) / all;
    chance += share * share;
    if ((totals[c] as number) > 0) used++;
  }
  if (used <= 1) {
    return undefinedEstimate("every rating is the same score: chance agreement is 1");
  }
  return estimate((meanAgreement - chance) / (1 - chance));
}

export type AlphaMetric = "nominal" | "ordinal" | "interval";
export const ALPHA_METRICS: readonly AlphaMetric[] = ["nominal", "ordinal", "interval"];

/**
 * Krippendorff's coincidence matrix o(c, k) = Σᵤ (number of c–k pairs in unit u) / (mᵤ − 1)
 * over the pairable units (mᵤ ≥ 2), from per-unit category counts.
 */
export function coincidenceMatrix(unitCounts: Int32Array, k: number): Float64Array {
  const matrix = new Float64Array(k * k);
  const units = unitCounts.length / k;
  for (let u = 0; u < units; u++) {
    let m = 0;
    for (let c = 0; c < k; c++) m += unitCounts[u * k + c] as number;
    if (m < 2) continue;
    for (let c = 0; c < k; c++) {
      const nc = unitCounts[u * k + c] as number;
      if (nc === 0) continue;
      for (let d = 0; d < k; d++) {
        const nd = unitCounts[u * k + d] as number;
        if (nd === 0) continue;
        matrix[c * k + d] =
          (matrix[c * k + d] as number) + (c === d ? nc * (nc - 1) : nc * nd) / (m - 1);
      }
    }
  }
  return matrix;
}

/**
 * Krippendorff's α = 1 − (n − 1)·Σ o(c,k)·δ²(c,k) / Σ n_c·n_k·δ²(c,k), where n_c are the
 * coincidence marginals. δ²: nominal 0/1; interval (c − k)² on the category values; ordinal
 * (Σ_{g=c..k} n_g − (n_c + n_k)/2)² (Krippendorff's rank-based metric on the marginals).
 */
export function krippendorffAlpha(coded: CodedRatings, metric: AlphaMetric): Estimate {
  return alphaFromCoincidences(
    coincidenceMatrix(itemCategoryCounts(coded), coded.categories.length),
    coded.categories,
    metric,
  );
}

export function alphaFromCoincidences(
  matrix: Float64Array,
  categories: readonly number[],
  metric: AlphaMetric,
): Estimate {
  const k = categories.length;
  const marginals = new Float64Array(k);
  let n = 0;
  for (let c = 0; c < k; c++) {
    for (let d = 0; d < k; d++)
      marginals[c] = (marginals[c] as number) + (matrix[c * k + d] as number);
    n += marginals[c] as number;
  }
  if (n === 0) return undefinedEstimate("no item has two or more ratings");
  let observed = 0;
  let expected = 0;
  for (let c = 0; c < k; c++) {
    for (let d = 0; d < k; d++) {
      if (c === d) continue;
      const delta = distance(metric, categories, marginals, c, d);
      observed += (matrix[c * k + d] as number) * delta;
      expected += (marginals[c] as number) * (marginals[d] as number) * delta;
    }
  }
  if (expected === 0) {
    return undefinedEstimate(
      "no expected disagreement: every rating on items with two or more ratings is the same score",
    );
  }
  return estimate(1 - ((n - 1) * observed) / expected);
}

function distance(
  metric: AlphaMetric,
  categories: readonly number[],
  marginals: Float64Array,
  c: number,
  d: number,
): number {
  if (metric === "nominal") return 1;
  if (metric === "interval") return ((categories[c] as number) - (categories[d] as number)) ** 2;
  const low = Math.min(c, d);
  const high = Math.max(c, d);
  let sum = 0;
  for (let g = low; g <= high; g++) sum += marginals[g] as number;
  return (sum - ((marginals[low] as number) + (marginals[high] as number)) / 2) ** 2;
}

/**
 * Percent agreement, the usual definition for several raters with missing ratings (Fleiss'
 * P̄; irrCAC's pa.coeff.raw): for each item with mᵢ ≥ 2 ratings, the share of its rating pairs
 * that agree, Pᵢ = Σ_c n_ic(n_ic − 1) / (mᵢ(mᵢ − 1)); then the mean of Pᵢ over those items.
 * Every item weighs the same, however many raters it had (pooling the pairs of all items would
 * let items with more raters count more). A share in [0, 1], not a percentage.
 */
export function percentAgreement(coded: CodedRatings): Estimate {
  const k = coded.categories.length;
  const counts = itemCategoryCounts(coded);
  let sum = 0;
  let pairable = 0;
  for (let i = 0; i < coded.items.length; i++) {
    let m = 0;
    let agreeing = 0;
    for (let c = 0; c < k; c++) {
      const count = counts[i * k + c] as number;
      agreeing += count * (count - 1);
      m += count;
    }
    if (m < 2) continue;
    sum += agreeing / (m * (m - 1));
    pairable++;
  }
  if (pairable === 0) return undefinedEstimate("no item has two or more ratings");
  return estimate(sum / pairable);
}
