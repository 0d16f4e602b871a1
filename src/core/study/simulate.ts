/**
 * Simulated raters for a batch plan, with known arm effects: for checking that the results
 * pipeline recovers them (scripts/replicate-paper.ts) and that its intervals and tests have
 * their nominal coverage and size (scripts/simulate-study.ts, test/study/simulate.test.ts).
 *
 * Model, per dimension: latent = μ(arm, dimension) + u(image) + b(rater) + e, with
 * u ~ N(0, imageSd²), b ~ N(0, raterSd²) and e ~ N(0, noiseSd²) independent; the score is the
 * latent rounded to the nearest of 1…4 (cuts at 1.5, 2.5, 3.5). The true mean score of an arm
 * over images and raters is then E[score] for latent ~ N(μ, imageSd² + raterSd² + noiseSd²),
 * computed exactly by expectedScore.
 */
import { type RandomSource, seededRandom } from "../random.js";
import { normalCdf, type ResampleUnit, summarize } from "../stats/index.js";
import { makeStudyPlan, type StudyPlan } from "./plan.js";
import { resultsReport, type StudyRating } from "./results.js";

export interface SimulationModel {
  /** μ: the latent mean per arm, then per dimension (e.g. { base: { quality: 2.8 } }). */
  latent: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** SD of the image random effect (one draw per image and dimension). */
  imageSd: number;
  /** SD of the rater leniency (one draw per rater and dimension; default 0). */
  raterSd?: number;
  /** SD of the rating noise. */
  noiseSd: number;
}

/** Raters of each survey: index 0 holds survey 1's rater ids. A rater may be in several. */
export type SurveyRaters = readonly (readonly string[])[];

/** Standard normal draws (Box–Muller) from a seeded source. */
export function gaussian(random: RandomSource): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
}

/** Rounds a latent value to the 1–4 scale (cuts at 1.5, 2.5, 3.5). */
export function likertScore(latent: number): number {
  return Math.min(4, Math.max(1, Math.round(latent)));
}

/**
 * Every rater of an item's survey rates it on every dimension that the model gives its arm.
 * Items are named by plan id (a study's generations would be uuids; the statistics only need
 * distinct names).
 */
export function simulateRatings(
  plan: StudyPlan,
  raters: SurveyRaters,
  model: SimulationModel,
  random: RandomSource,
): StudyRating[] {
  if (raters.length < plan.surveys) {
    throw new RangeError(`raters are given for ${raters.length} of ${plan.surveys} surveys`);
  }
  const normal = gaussian(random);
  const leniency = new Map<string, number>();
  const raterEffect = (rater: string, dimension: string): number => {
    const key = `${rater}\u0000${dimension}`;
    let value = leniency.get(key);
    if (value === undefined) {
      value = (model.raterSd ?? 0) * normal();
      leniency.set(key, value);
    }
    return value;
  };
  const ratings: StudyRating[] = [];
  for (const item of plan.items) {
    const means = model.latent[item.arm];
    if (means === undefined)
      throw new RangeError(`the model has no latent means for arm ${item.arm}`);
    for (const [dimension, mu] of Object.entries(means)) {
      const image = model.imageSd * normal();
      for (const rater of raters[item.survey - 1] as readonly string[]) {
        const latent = mu + image + raterEffect(rater, dimension) + model.noiseSd * normal();
        ratings.push({
          item: item.id,
          rater,
          dimension,
          score: likertScore(latent),
          arm: item.arm,
          survey: String(item.survey),
        });
      }
    }
  }
  return ratings;
}

/** E[score] when the latent is N(mu, sd²) and the score is it rounded to 1…4. */
export function expectedScore(mu: number, sd: number): number {
  if (!(sd > 0)) return likertScore(mu);
  // E = 1 + Σ_{k=1..3} P(latent > k + 0.5).
  let expected = 1;
  for (const cut of [1.5, 2.5, 3.5]) expected += 1 - normalCdf((cut - mu) / sd);
  return expected;
}

/** The latent mean μ whose expected score is `target` (in (1, 4)) at this total SD. */
export function latentForMean(target: number, sd: number): number {
  if (!(target > 1 && target < 4)) throw new RangeError(`target must be in (1, 4), got ${target}`);
  let low = -10;
  let high = 15;
  for (let i = 0; i < 200; i++) {
    const mid = (low + high) / 2;
    if (expectedScore(mid, sd) < target) low = mid;
    else high = mid;
  }
  return (low + high) / 2;
}

/** The total latent SD of the model: √(imageSd² + raterSd² + noiseSd²). */
export function totalSd(model: SimulationModel): number {
  return Math.sqrt(model.imageSd ** 2 + (model.raterSd ?? 0) ** 2 + model.noiseSd ** 2);
}

/** The paper's raters: two surveys of four, two raters in both (six people). */
export const PAPER_RATERS: SurveyRaters = Object.freeze([
  Object.freeze(["rater1", "rater2", "rater3", "rater4"]),
  Object.freeze(["rater3", "rater4", "rater5", "rater6"]),
]);

export interface CalibrationOptions {
  /** Simulated studies. */
  studies: number;
  seed: number;
  concepts: number;
  promptsPerConcept: number;
  arms: readonly string[];
  surveys: number;
  raters: SurveyRaters;
  imageSd: number;
  noiseSd: number;
  raterSd?: number;
  /** True mean scores per arm (per dimension "quality") for the coverage runs. */
  armMeans: Readonly<Record<string, number>>;
  /** Bootstrap resamples and permutation rounds per study. */
  resamples: number;
  permutationRounds: number;
  unit?: ResampleUnit;
  level?: number;
}

export interface CalibrationResult {
  studies: number;
  /** CIs from the coverage runs, and how many covered the true arm mean. */
  intervals: number;
  covered: number;
  /** The same ratings with the independent-ratings bootstrap, for contrast. */
  coveredByRatingsBootstrap: number;
  /** Arm comparisons in the null runs (every arm the same), and rejections at level α. */
  nullTests: number;
  permutationRejections: number;
  mannWhitneyRejections: number;
  alpha: number;
}

/**
 * Runs simulated studies through resultsReport: `studies` with the given arm means (coverage of
 * the 95% CIs of the arm means) and `studies` with every arm at the first arm's mean (how often
 * the arm tests reject at α = 0.05). Deterministic for a seed.
 */
export function checkCalibration(options: CalibrationOptions): CalibrationResult {
  const level = options.level ?? 0.95;
  const alpha = 0.05;
  const sd = Math.sqrt(options.imageSd ** 2 + (options.raterSd ?? 0) ** 2 + options.noiseSd ** 2);
  const latentOf = (means: Readonly<Record<string, number>>) =>
    Object.fromEntries(
      options.arms.map((arm) => [arm, { quality: latentForMean(means[arm] as number, sd) }]),
    );
  const concepts = Array.from({ length: options.concepts }, (_, i) => `concept${i + 1}`);
  const firstMean = options.armMeans[options.arms[0] as string] as number;
  const nullMeans = Object.fromEntries(options.arms.map((arm) => [arm, firstMean]));
  const random = seededRandom(options.seed);
  const result: CalibrationResult = {
    studies: options.studies,
    intervals: 0,
    covered: 0,
    coveredByRatingsBootstrap: 0,
    nullTests: 0,
    permutationRejections: 0,
    mannWhitneyRejections: 0,
    alpha,
  };
  for (let study = 0; study < options.studies; study++) {
    for (const run of ["coverage", "null"] as const) {
      const plan = makeStudyPlan({
        concepts,
        promptsPerConcept: options.promptsPerConcept,
        arms: options.arms,
        surveys: options.surveys,
        seed: Math.floor(random.next() * 2 ** 32),
      });
      const means = run === "coverage" ? options.armMeans : nullMeans;
      const model: SimulationModel = {
        latent: latentOf(means),
        imageSd: options.imageSd,
        noiseSd: options.noiseSd,
        ...(options.raterSd === undefined ? {} : { raterSd: options.raterSd }),
      };
      const ratings = simulateRatings(plan, options.raters, model, random);
      const seed = Math.floor(random.next() * 2 ** 32);
      if (run === "coverage") {
        const summaries = summarize(ratings, {
          seed,
          resamples: options.resamples,
          level,
          unit: options.unit ?? "images",
        });
        const independent = summarize(ratings, {
          seed,
          resamples: options.resamples,
          level,
          unit: "ratings",
        });
        summaries.forEach((s, i) => {
          const truth = means[s.arm] as number;
          const other = independent[i];
          result.intervals++;
          if (s.ci !== null && s.ci.low <= truth && truth <= s.ci.high) result.covered++;
          if (other?.ci != null && other.ci.low <= truth && truth <= other.ci.high) {
            result.coveredByRatingsBootstrap++;
          }
        });
      } else {
        const report = resultsReport(ratings, {
          arms: options.arms,
          seed,
          resamples: 1,
          permutationRounds: options.permutationRounds,
        });
        for (const c of report.comparisons) {
          result.nullTests++;
          if (c.permutation.p <= alpha) result.permutationRejections++;
          if (c.mannWhitney.p !== null && c.mannWhitney.p <= alpha) result.mannWhitneyRejections++;
        }
      }
    }
  }
  return result;
}
