/**
 * The agreement report: every agreement statistic for every dimension, in the JSON shape that
 * `imagine-bot agreement --json` prints. Undefined statistics are null, and the dimension's
 * `notes` map says why, keyed by the field's path (e.g. "fleiss_kappa", "cohen.pairs[3].linear").
 */
import {
  ALPHA_METRICS,
  fleissKappa,
  KAPPA_WEIGHTINGS,
  krippendorffAlpha,
  meanOverPairs,
  pairwiseCohen,
  percentAgreement,
} from "./agreement.js";
import { increment } from "./arrays.js";
import {
  byDimension,
  type CodedRatings,
  codeRatings,
  DEFAULT_CATEGORIES,
  type Estimate,
  type Rating,
} from "./ratings.js";

export interface AgreementOptions {
  /** The declared category scale (default 1, 2, 3, 4). */
  categories?: readonly number[];
  /** Cohen's κ is computed for rater pairs with at least this many items in common (default 2). */
  minSharedItems?: number;
}

export interface PairReport {
  raters: [string, string];
  n_items: number;
  unweighted: number | null;
  linear: number | null;
  quadratic: number | null;
}

export interface DimensionReport {
  n_items: number;
  n_raters: number;
  n_ratings: number;
  /** Ratings per item: fewest, mean and most. */
  ratings_per_item: { min: number; mean: number; max: number };
  /** Items with two or more ratings: what percent agreement and Krippendorff's α use. */
  n_pairable_items: number;
  /** Fleiss' P̄: mean over pairable items of the share of agreeing rating pairs (0 to 1). */
  percent_agreement: number | null;
  cohen: {
    unweighted: number | null;
    linear: number | null;
    quadratic: number | null;
    pairs: PairReport[];
  };
  fleiss_kappa: number | null;
  /** The complete block Fleiss' κ is computed on: the items rated by every one of the raters. */
  fleiss_complete_block: { n_items: number; n_raters: number };
  krippendorff_alpha: { nominal: number | null; ordinal: number | null; interval: number | null };
  likert: { mean: number | null; sd: number | null };
  /** Why a field is null (or, for Cohen's means, which pairs were left out); absent when empty. */
  notes?: Record<string, string>;
}

export interface AgreementReport {
  dimensions: Record<string, DimensionReport>;
}

export function agreementReport(
  ratings: readonly Rating[],
  options: AgreementOptions = {},
): AgreementReport {
  const categories = options.categories ?? DEFAULT_CATEGORIES;
  const dimensions: Record<string, DimensionReport> = {};
  for (const [dimension, group] of byDimension(ratings)) {
    dimensions[dimension] = dimensionReport(
      codeRatings(group, categories),
      options.minSharedItems ?? 2,
    );
  }
  return { dimensions };
}

export function dimensionReport(coded: CodedRatings, minSharedItems = 2): DimensionReport {
  const notes: Record<string, string> = {};
  const value = (field: string | (() => string), result: Estimate): number | null => {
    if (result.value === null) notes[typeof field === "string" ? field : field()] = result.reason;
    return result.value;
  };

  const pairs = pairwiseCohen(coded, minSharedItems);
  const cohen: DimensionReport["cohen"] = {
    unweighted: null,
    linear: null,
    quadratic: null,
    pairs: pairs.map((pair, index) => ({
      raters: pair.raters,
      n_items: pair.nItems,
      unweighted: value(() => `cohen.pairs[${index}].unweighted`, pair.unweighted),
      linear: value(() => `cohen.pairs[${index}].linear`, pair.linear),
      quadratic: value(() => `cohen.pairs[${index}].quadratic`, pair.quadratic),
    })),
  };
  for (const weighting of KAPPA_WEIGHTINGS) {
    const mean = meanOverPairs(pairs, weighting, minSharedItems);
    cohen[weighting] = value(`cohen.${weighting}`, mean);
    if (mean.value !== null && mean.pairsUsed < pairs.length) {
      notes[`cohen.${weighting}`] =
        `mean over the ${mean.pairsUsed} of ${pairs.length} pairs where it is defined`;
    }
  }

  const alpha = {
    nominal: null,
    ordinal: null,
    interval: null,
  } as DimensionReport["krippendorff_alpha"];
  for (const metric of ALPHA_METRICS) {
    alpha[metric] = value(`krippendorff_alpha.${metric}`, krippendorffAlpha(coded, metric));
  }

  const perItem = new Int32Array(coded.items.length);
  for (let r = 0; r < coded.item.length; r++) increment(perItem, coded.item[r] as number);
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  let pairable = 0;
  for (const m of perItem) {
    min = Math.min(min, m);
    max = Math.max(max, m);
    if (m >= 2) pairable++;
  }
  const fleiss = fleissKappa(coded);
  const report: DimensionReport = {
    n_items: coded.items.length,
    n_raters: coded.raters.length,
    n_ratings: coded.item.length,
    ratings_per_item:
      perItem.length === 0
        ? { min: 0, mean: 0, max: 0 }
        : { min, mean: coded.item.length / perItem.length, max },
    n_pairable_items: pairable,
    percent_agreement: value("percent_agreement", percentAgreement(coded)),
    cohen,
    fleiss_kappa: value("fleiss_kappa", fleiss),
    fleiss_complete_block: { n_items: fleiss.nItems, n_raters: coded.raters.length },
    krippendorff_alpha: alpha,
    likert: likert(coded, (field, reason) => {
      notes[`likert.${field}`] = reason;
    }),
  };
  if (Object.keys(notes).length > 0) report.notes = notes;
  return report;
}

function likert(
  coded: CodedRatings,
  note: (field: "mean" | "sd", reason: string) => void,
): DimensionReport["likert"] {
  const n = coded.category.length;
  if (n === 0) {
    note("mean", "no ratings");
    note("sd", "no ratings");
    return { mean: null, sd: null };
  }
  let sum = 0;
  for (let r = 0; r < n; r++) sum += coded.categories[coded.category[r] as number] as number;
  const mean = sum / n;
  if (n < 2) {
    note("sd", "one rating: the sample SD needs two");
    return { mean, sd: null };
  }
  let squares = 0;
  for (let r = 0; r < n; r++) {
    squares += ((coded.categories[coded.category[r] as number] as number) - mean) ** 2;
  }
  return { mean, sd: Math.sqrt(squares / (n - 1)) };
}
