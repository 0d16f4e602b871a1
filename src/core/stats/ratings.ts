/**
 * Ratings as the statistics see them: who rated which item, on which dimension, with which score
 * from a declared category scale (the paper's Likert 1–4 by default). Everything here is pure;
 * invalid input is a RangeError (adapters check earlier and report line numbers).
 */
import { increment } from "./arrays.js";

/** One rating. A missing rating is simply an absent entry. */
export interface Rating {
  item: string;
  rater: string;
  score: number;
  /** e.g. "quality" or "faithfulness"; ratings without one belong to the dimension "all". */
  dimension?: string;
}

/**
 * A statistic that may be undefined for the data at hand (no pairs, no expected disagreement…):
 * then `value` is null and `reason` says why. Never NaN, never a silent 1.
 */
export type Estimate = { value: number; reason?: undefined } | { value: null; reason: string };

export const DEFAULT_CATEGORIES: readonly number[] = Object.freeze([1, 2, 3, 4]);
/** The dimension name used for ratings that carry none. */
export const ALL_DIMENSIONS = "all";

export function estimate(value: number): Estimate {
  if (!Number.isFinite(value)) throw new RangeError(`internal: non-finite statistic ${value}`);
  return { value };
}

export function undefinedEstimate(reason: string): Estimate {
  return { value: null, reason };
}

/** Checks a category scale: at least two distinct finite numbers in ascending order. */
export function checkCategories(categories: readonly number[]): readonly number[] {
  if (categories.length < 2) {
    throw new RangeError(`a scale needs at least two categories, got ${categories.length}`);
  }
  for (let i = 0; i < categories.length; i++) {
    const value = categories[i] as number;
    if (!Number.isFinite(value)) throw new RangeError(`category ${value} is not a finite number`);
    if (i > 0 && value <= (categories[i - 1] as number)) {
      throw new RangeError(
        `categories must be distinct and ascending, got ${categories.join(",")}`,
      );
    }
  }
  return categories;
}

/** Groups ratings by dimension, in order of first appearance ("all" when none is given). */
export function byDimension<T extends Rating>(ratings: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const rating of ratings) {
    const key = rating.dimension ?? ALL_DIMENSIONS;
    let group = groups.get(key);
    if (group === undefined) {
      group = [];
      groups.set(key, group);
    }
    group.push(rating);
  }
  return groups;
}

/**
 * One dimension's ratings as integer codes: items, raters and scores (as indexes into the
 * declared categories) in parallel typed arrays, so that the statistics run on flat loops.
 */
export interface CodedRatings {
  readonly categories: readonly number[];
  readonly items: readonly string[];
  readonly raters: readonly string[];
  readonly item: Int32Array;
  readonly rater: Int32Array;
  readonly category: Int32Array;
}

/**
 * Codes the ratings of one dimension. Throws a RangeError for a score outside the scale or for a
 * second rating of the same item by the same rater.
 */
export function codeRatings(
  ratings: readonly Rating[],
  categories: readonly number[] = DEFAULT_CATEGORIES,
): CodedRatings {
  checkCategories(categories);
  const categoryIndex = new Map<number, number>(categories.map((value, index) => [value, index]));
  const itemIndex = new Map<string, number>();
  const raterIndex = new Map<string, number>();
  const n = ratings.length;
  const item = new Int32Array(n);
  const rater = new Int32Array(n);
  const category = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const rating = ratings[r] as Rating;
    const c = categoryIndex.get(rating.score);
    if (c === undefined) {
      throw new RangeError(
        `score ${rating.score} (item ${rating.item}, rater ${rating.rater}) is not one of the categories ${categories.join(",")}`,
      );
    }
    let i = itemIndex.get(rating.item);
    if (i === undefined) {
      i = itemIndex.size;
      itemIndex.set(rating.item, i);
    }
    let j = raterIndex.get(rating.rater);
    if (j === undefined) {
      j = raterIndex.size;
      raterIndex.set(rating.rater, j);
    }
    item[r] = i;
    rater[r] = j;
    category[r] = c;
  }
  const coded: CodedRatings = {
    categories,
    items: [...itemIndex.keys()],
    raters: [...raterIndex.keys()],
    item,
    rater,
    category,
  };
  const duplicate = findDuplicate(coded);
  if (duplicate !== null) {
    const first = ratings[duplicate[0]] as Rating;
    throw new RangeError(
      `rater ${first.rater} rated item ${first.item} twice${first.dimension === undefined ? "" : ` on ${first.dimension}`}`,
    );
  }
  return coded;
}

/** Rating indexes ordered by rater, then item: each rater's ratings form one run. */
export function orderByRaterThenItem(coded: CodedRatings): {
  order: Int32Array;
  start: Int32Array;
} {
  return groupedOrder(coded.rater, coded.raters.length, coded.item, coded.items.length);
}

/** Rating indexes ordered by item, then rater: each item's ratings form one run. */
export function orderByItemThenRater(coded: CodedRatings): {
  order: Int32Array;
  start: Int32Array;
} {
  return groupedOrder(coded.item, coded.items.length, coded.rater, coded.raters.length);
}

/**
 * Rating indexes grouped by `group`, ordered by `within` inside each group (a counting sort by
 * `within`, then a stable one by `group`), and where each group's run starts.
 */
function groupedOrder(
  group: Int32Array,
  groups: number,
  within: Int32Array,
  withins: number,
): { order: Int32Array; start: Int32Array } {
  const n = group.length;
  const order = countingSort(group, groups, countingSort(within, withins, identityOrder(n)));
  const start = new Int32Array(groups + 1);
  for (let r = 0; r < n; r++) increment(start, (group[r] as number) + 1);
  for (let g = 0; g < groups; g++) start[g + 1] = (start[g + 1] as number) + (start[g] as number);
  return { order, start };
}

/** Per item, how many ratings fell in each category: a flat items × categories table. */
export function itemCategoryCounts(coded: CodedRatings): Int32Array {
  const k = coded.categories.length;
  const counts = new Int32Array(coded.items.length * k);
  for (let r = 0; r < coded.item.length; r++) {
    increment(counts, (coded.item[r] as number) * k + (coded.category[r] as number));
  }
  return counts;
}

function identityOrder(n: number): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return order;
}

function countingSort(keys: Int32Array, keyCount: number, input: Int32Array): Int32Array {
  const next = new Int32Array(keyCount + 1);
  for (let i = 0; i < input.length; i++) increment(next, (keys[input[i] as number] as number) + 1);
  for (let key = 0; key < keyCount; key++) {
    next[key + 1] = (next[key + 1] as number) + (next[key] as number);
  }
  const output = new Int32Array(input.length);
  for (let i = 0; i < input.length; i++) {
    const index = input[i] as number;
    const key = keys[index] as number;
    output[next[key] as number] = index;
    next[key] = (next[key] as number) + 1;
  }
  return output;
}

/** The first pair of rating indexes with the same (item, rater), or null. */
function findDuplicate(coded: CodedRatings): [number, number] | null {
  const { order } = orderByRaterThenItem(coded);
  for (let p = 1; p < order.length; p++) {
    const a = order[p - 1] as number;
    const b = order[p] as number;
    if (coded.rater[a] === coded.rater[b] && coded.item[a] === coded.item[b]) {
      return a < b ? [a, b] : [b, a];
    }
  }
  return null;
}
