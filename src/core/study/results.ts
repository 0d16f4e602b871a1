/**
 * From stored votes to the paper's results, with the study's design respected:
 * - Table 1: per-arm × dimension mean (SD), with 95% CIs from a bootstrap that resamples images
 *   (or images and raters), since an image's ratings are not independent;
 * - agreement pooled over the whole study and per survey, with the rater sets: Fleiss' κ where
 *   a survey's raters are complete, Krippendorff's α for the pooled, incomplete design;
 * - arm comparisons per dimension: an image-level permutation test (images exchanged within
 *   their survey; Holm-adjusted within a dimension), and Mann–Whitney U as a secondary test
 *   that treats every rating as independent.
 *
 * Ratings that carry an arm are server-side. `collectVoteRows` leaves the arm out for every
 * generation of a study that is not closed (the caller says which studies are revealed), so an
 * overall table never leaks a running study's arms.
 */

import { seededRandom } from "../random.js";
import {
  type AgreementReport,
  type ArmRating,
  agreementReport,
  type ClusterPermutationResult,
  clusterPermutationTest,
  formatSummaryTable,
  type GroupSummary,
  imageTotals,
  type MannWhitneyResult,
  mannWhitneyU,
  type ResampleUnit,
  summarize,
} from "../stats/index.js";
import type { Dimension, Generation, Vote, VoteEvent, VoteStore } from "../types.js";
import { DIMENSIONS } from "../types.js";
import type { PlanItem, StudyPlan } from "./plan.js";
import type { PublicStudy, StudyRecord } from "./record.js";

/** A current vote with what the export and statistics need from its generation. */
export interface VoteRow extends Vote {
  /** Null while the generation's study runs (hidden), or when the generation is unknown. */
  arm: string | null;
  studyId: string | null;
  /** The survey of a batch study's image ("1", "2", …); null outside batch studies. */
  survey: string | null;
}

/** A rating with its arm and, in a batch study, its survey. */
export interface StudyRating extends ArmRating {
  survey?: string;
}

export interface ArmComparison {
  dimension: string;
  first: string;
  second: string;
  /** The primary test: image-level permutation of the arm labels (within surveys). */
  permutation: ClusterPermutationResult;
  /** Holm–Bonferroni adjusted permutation p over the arm pairs of this dimension. */
  pHolm: number;
  /** Secondary: Mann–Whitney U treating every rating as independent (too small a p here). */
  mannWhitney: MannWhitneyResult;
  /** Holm-adjusted Mann–Whitney p within the dimension; null where p is. */
  mannWhitneyPHolm: number | null;
}

/** One survey's images, raters and agreement. */
export interface SurveyResults {
  survey: string;
  images: number;
  votes: number;
  /** The raters who rated at least one of its images, sorted. */
  raters: string[];
  /** Per-arm summaries within the survey (same bootstrap as the pooled ones). */
  summaries: GroupSummary[];
  agreement: AgreementReport;
}

/** How the uncertainty was computed, so that a report can be reproduced. */
export interface UncertaintySettings {
  /** What the bootstrap resampled. */
  unit: ResampleUnit;
  resamples: number;
  level: number;
  seed: number;
  /** Rounds of the permutation test. */
  permutationRounds: number;
  /** The permutation test exchanges images within these (the surveys), or "none". */
  strata: "surveys" | "none";
}

export interface ResultsReport {
  /** The study, when the results are one study's. */
  study?: PublicStudy;
  /** Current votes counted. */
  votes: number;
  generations: number;
  raters: number;
  /** Every rater, sorted. */
  raterIds: string[];
  arms: string[];
  summaries: GroupSummary[];
  /** Table 1 as text: rows Q and F, one column per arm, "mean (SD)". */
  table: string;
  uncertainty: UncertaintySettings;
  /** Agreement over all ratings (surveys pooled). */
  agreement: AgreementReport;
  /** Per survey (empty when the ratings carry no survey). */
  surveys: SurveyResults[];
  comparisons: ArmComparison[];
}

export interface ResultsOptions {
  /** Column order; arms without votes are left out of the summaries (default: appearance). */
  arms?: readonly string[];
  /** Seed of the bootstrap and the permutation test (default 1). */
  seed?: number;
  /** Bootstrap resamples (default 2,000). */
  resamples?: number;
  /** What the bootstrap resamples (default images; "images-raters" is the two-way bootstrap). */
  unit?: ResampleUnit;
  /** Permutation test rounds (default 9,999). */
  permutationRounds?: number;
}

/**
 * A study's current votes with their arms and surveys (only call this for a closed study).
 * The survey comes from the plan item the generation was made for (see surveyOf).
 */
export async function collectStudyRatings(
  votes: VoteStore,
  studyId: string,
  record?: StudyRecord,
): Promise<StudyRating[]> {
  const survey = record?.plan === undefined ? undefined : surveyOf(record.plan);
  const generations = new Map<string, Generation | undefined>();
  const ratings: StudyRating[] = [];
  for await (const vote of votes.studyVotes(studyId)) {
    let label: string | undefined;
    if (survey !== undefined) {
      if (!generations.has(vote.generationId)) {
        generations.set(vote.generationId, await votes.getGeneration(vote.generationId));
      }
      const generation = generations.get(vote.generationId);
      label = generation === undefined ? undefined : survey(generation);
    }
    ratings.push({
      item: vote.generationId,
      rater: vote.rater,
      dimension: vote.dimension,
      score: vote.score,
      arm: vote.arm,
      ...(label === undefined ? {} : { survey: label }),
    });
  }
  return ratings;
}

/**
 * The plan item a batch study's generation was made for: its `studyItem` (set by the poster), or
 * for generations stored without one, the item with the same concept (case and spacing aside),
 * arm and seed. Undefined when neither finds one. Shared by results, exports and the web survey.
 */
export function planItemOf(plan: StudyPlan): (generation: Generation) => PlanItem | undefined {
  const byId = new Map(plan.items.map((item) => [item.id, item]));
  const byContent = new Map<string, PlanItem>();
  for (const item of plan.items) byContent.set(contentKey(item.concept, item.arm, item.seed), item);
  return (generation) =>
    (generation.studyItem === undefined ? undefined : byId.get(generation.studyItem)) ??
    byContent.get(contentKey(generation.subject, generation.arm, generation.seed));
}

/** Which survey ("1", "2", …) a batch study's generation belongs to (see planItemOf). */
export function surveyOf(plan: StudyPlan): (generation: Generation) => string | undefined {
  const itemOf = planItemOf(plan);
  return (generation) => {
    const item = itemOf(generation);
    return item === undefined ? undefined : String(item.survey);
  };
}

function contentKey(concept: string, arm: string, seed: number): string {
  return `${concept.trim().replace(/\s+/g, " ").toLowerCase()}\u0000${arm}\u0000${seed}`;
}

/** Replays the event log into the current votes: add/replace set a vote, retract removes it. */
export async function currentVotes(events: AsyncIterable<VoteEvent>): Promise<Vote[]> {
  const current = new Map<string, Vote>();
  for await (const event of events) {
    const key = `${event.generationId}\u0000${event.rater}\u0000${event.dimension}`;
    if (event.kind === "retract") {
      if (current.get(key)?.score === event.score) current.delete(key);
    } else {
      current.set(key, {
        generationId: event.generationId,
        rater: event.rater,
        dimension: event.dimension,
        score: event.score,
        at: event.at,
      });
    }
  }
  return [...current.values()];
}

/**
 * Every current vote with its generation's arm, study and survey; the arm is null for
 * generations of a study that `revealed(studyId)` says is still hidden. `studies` (the study
 * records) give each batch image its survey; without them the survey is null.
 */
export async function collectVoteRows(
  votes: VoteStore,
  revealed: (studyId: string) => boolean,
  studies: readonly StudyRecord[] = [],
): Promise<VoteRow[]> {
  const surveys = new Map(
    studies.flatMap((study) =>
      study.plan === undefined ? [] : [[study.id, surveyOf(study.plan)] as const],
    ),
  );
  const generations = new Map<string, Generation | undefined>();
  // The keyv store streams every generation at once; any other store is asked one by one.
  const all = (votes as Partial<{ generations(): AsyncIterable<Generation> }>).generations;
  if (typeof all === "function") {
    for await (const generation of all.call(votes)) generations.set(generation.id, generation);
  }
  const rows: VoteRow[] = [];
  for (const vote of await currentVotes(votes.events())) {
    if (!generations.has(vote.generationId)) {
      generations.set(vote.generationId, await votes.getGeneration(vote.generationId));
    }
    const generation = generations.get(vote.generationId);
    const studyId = generation?.studyId ?? null;
    const hidden = studyId !== null && !revealed(studyId);
    const survey =
      generation === undefined || studyId === null ? undefined : surveys.get(studyId)?.(generation);
    rows.push({
      ...vote,
      arm: generation === undefined || hidden ? null : generation.arm,
      studyId,
      survey: survey ?? null,
    });
  }
  return rows;
}

/** Ratings for the statistics from vote rows: rows without a (revealed) arm are left out. */
export function ratingsFromRows(rows: readonly VoteRow[]): StudyRating[] {
  return rows
    .filter((row): row is VoteRow & { arm: string } => row.arm !== null)
    .map((row) => ({
      item: row.generationId,
      rater: row.rater,
      dimension: row.dimension,
      score: row.score,
      arm: row.arm,
      // Survey numbers are per study: qualify them when votes of several studies are pooled.
      ...(row.survey === null ? {} : { survey: `${row.studyId}/${row.survey}` }),
    }));
}

export function resultsReport(
  ratings: readonly StudyRating[],
  options: ResultsOptions = {},
): ResultsReport {
  const seed = options.seed ?? 1;
  const resamples = options.resamples ?? 2000;
  const unit = options.unit ?? "images";
  const permutationRounds = options.permutationRounds ?? 9999;
  const present = new Set(ratings.map((r) => r.arm));
  const arms = (options.arms ?? [...present]).filter((arm) => present.has(arm));
  // Dimensions in the paper's order (Q, then F), then any other.
  const ordered = [...ratings].sort(
    (a, b) =>
      dimensionRank(a.dimension) - dimensionRank(b.dimension) ||
      arms.indexOf(a.arm) - arms.indexOf(b.arm),
  );
  const summaryOptions = { seed, resamples, unit };
  const summaries = summarize(ordered, summaryOptions);
  const surveyOfItem = new Map<string, string>();
  for (const rating of ordered) {
    if (rating.survey !== undefined) surveyOfItem.set(rating.item, rating.survey);
  }
  const stratified = surveyOfItem.size > 0;
  const dimensions = [...new Set(ordered.map((r) => r.dimension ?? "all"))];
  const comparisons: ArmComparison[] = [];
  for (const dimension of dimensions) {
    const ofArm = (arm: string) =>
      ordered.filter((r) => (r.dimension ?? "all") === dimension && r.arm === arm);
    const pairs: ArmComparison[] = [];
    for (let i = 0; i < arms.length; i++) {
      for (let j = i + 1; j < arms.length; j++) {
        const first = arms[i] as string;
        const second = arms[j] as string;
        const a = ofArm(first);
        const b = ofArm(second);
        if (a.length === 0 || b.length === 0) continue;
        const stratum = (item: string) => surveyOfItem.get(item);
        pairs.push({
          dimension,
          first,
          second,
          permutation: clusterPermutationTest(
            imageTotals(a, stratum),
            imageTotals(b, stratum),
            seededRandom(streamSeed(seed, `${dimension}\u0000${first}\u0000${second}`)),
            permutationRounds,
          ),
          pHolm: 1,
          mannWhitney: mannWhitneyU(
            a.map((r) => r.score),
            b.map((r) => r.score),
          ),
          mannWhitneyPHolm: null,
        });
      }
    }
    const permutationHolm = holm(pairs.map((c) => c.permutation.p));
    const mannWhitneyHolm = holm(pairs.map((c) => c.mannWhitney.p));
    pairs.forEach((c, index) => {
      c.pHolm = permutationHolm[index] as number;
      c.mannWhitneyPHolm = mannWhitneyHolm[index] ?? null;
    });
    comparisons.push(...pairs);
  }
  const surveyLabels = [...new Set(surveyOfItem.values())].sort(compareLabels);
  const surveys: SurveyResults[] = surveyLabels.map((survey) => {
    const inSurvey = ordered.filter((r) => r.survey === survey);
    return {
      survey,
      images: new Set(inSurvey.map((r) => r.item)).size,
      votes: inSurvey.length,
      raters: [...new Set(inSurvey.map((r) => r.rater))].sort(),
      summaries: summarize(inSurvey, summaryOptions),
      agreement: agreementReport(inSurvey.map(plainRating)),
    };
  });
  const raterIds = [...new Set(ratings.map((r) => r.rater))].sort();
  return {
    votes: ratings.length,
    generations: new Set(ratings.map((r) => r.item)).size,
    raters: raterIds.length,
    raterIds,
    arms,
    summaries,
    table: summaries.length === 0 ? "no votes yet\n" : formatSummaryTable(summaries, { arms }),
    uncertainty: {
      unit,
      resamples,
      level: 0.95,
      seed,
      permutationRounds,
      strata: stratified ? "surveys" : "none",
    },
    agreement: agreementReport(ordered.map(plainRating)),
    surveys,
    comparisons,
  };
}

function plainRating({ item, rater, score, dimension }: StudyRating) {
  return dimension === undefined ? { item, rater, score } : { item, rater, score, dimension };
}

/** Survey labels in natural order: "2" before "10". */
function compareLabels(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

/** Holm–Bonferroni step-down adjusted p-values, in input order; null stays null. */
export function holm(pValues: readonly (number | null)[]): (number | null)[] {
  const order = pValues
    .map((p, index) => ({ p, index }))
    .filter((entry): entry is { p: number; index: number } => entry.p !== null)
    .sort((a, b) => a.p - b.p);
  const adjusted: (number | null)[] = pValues.map(() => null);
  const m = order.length;
  let running = 0;
  order.forEach(({ p, index }, rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * p));
    adjusted[index] = running;
  });
  return adjusted;
}

/** A 32-bit FNV-1a hash of the seed and a label: one random stream per comparison. */
function streamSeed(seed: number, label: string): number {
  let hash = 0x811c9dc5;
  const text = `${seed}\u0000${label}`;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function dimensionRank(dimension: string | undefined): number {
  const index = DIMENSIONS.indexOf(dimension as Dimension);
  return index === -1 ? DIMENSIONS.length : index;
}
