/**
 * From stored votes to the paper's results: per-arm × dimension summaries with bootstrap CIs
 * (Table 1), agreement per dimension, and Mann–Whitney U between every pair of arms per
 * dimension (two-sided p, and Holm-adjusted p within a dimension).
 *
 * Ratings that carry an arm are server-side. `collectAllRatings` leaves out every generation of
 * a study that is not closed (the caller says which studies are revealed), so an overall table
 * never leaks a running study's arms.
 */
import {
  type AgreementReport,
  type ArmRating,
  agreementReport,
  formatSummaryTable,
  type GroupSummary,
  type MannWhitneyResult,
  mannWhitneyU,
  summarize,
} from "../stats/index.js";
import type { Dimension, Generation, Vote, VoteEvent, VoteStore } from "../types.js";
import { DIMENSIONS } from "../types.js";

/** A current vote with what the export and statistics need from its generation. */
export interface VoteRow extends Vote {
  /** Null while the generation's study runs (hidden), or when the generation is unknown. */
  arm: string | null;
  studyId: string | null;
}

export interface ArmComparison {
  dimension: string;
  first: string;
  second: string;
  mannWhitney: MannWhitneyResult;
  /** Holm–Bonferroni adjusted p over the arm pairs of this dimension; null where p is. */
  pHolm: number | null;
}

export interface ResultsReport {
  /** Current votes counted. */
  votes: number;
  generations: number;
  raters: number;
  arms: string[];
  summaries: GroupSummary[];
  /** Table 1 as text: rows Q and F, one column per arm, "mean (SD)". */
  table: string;
  agreement: AgreementReport;
  comparisons: ArmComparison[];
}

export interface ResultsOptions {
  /** Column order; arms without votes are left out of the summaries (default: appearance). */
  arms?: readonly string[];
  /** Bootstrap seed (default 1) and resamples (default 2,000). */
  seed?: number;
  resamples?: number;
}

/** A study's current votes with their arms (only call this for a closed study). */
export async function collectStudyRatings(votes: VoteStore, studyId: string): Promise<ArmRating[]> {
  const ratings: ArmRating[] = [];
  for await (const vote of votes.studyVotes(studyId)) {
    ratings.push({
      item: vote.generationId,
      rater: vote.rater,
      dimension: vote.dimension,
      score: vote.score,
      arm: vote.arm,
    });
  }
  return ratings;
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
 * Every current vote with its generation's arm and study; the arm is null for generations of a
 * study that `revealed(studyId)` says is still hidden.
 */
export async function collectVoteRows(
  votes: VoteStore,
  revealed: (studyId: string) => boolean,
): Promise<VoteRow[]> {
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
    rows.push({
      ...vote,
      arm: generation === undefined || hidden ? null : generation.arm,
      studyId,
    });
  }
  return rows;
}

/** Ratings for the statistics from vote rows: rows without a (revealed) arm are left out. */
export function ratingsFromRows(rows: readonly VoteRow[]): ArmRating[] {
  return rows
    .filter((row): row is VoteRow & { arm: string } => row.arm !== null)
    .map((row) => ({
      item: row.generationId,
      rater: row.rater,
      dimension: row.dimension,
      score: row.score,
      arm: row.arm,
    }));
}

export function resultsReport(
  ratings: readonly ArmRating[],
  options: ResultsOptions = {},
): ResultsReport {
  const present = new Set(ratings.map((r) => r.arm));
  const arms = (options.arms ?? [...present]).filter((arm) => present.has(arm));
  // Dimensions in the paper's order (Q, then F), then any other.
  const ordered = [...ratings].sort(
    (a, b) =>
      dimensionRank(a.dimension) - dimensionRank(b.dimension) ||
      arms.indexOf(a.arm) - arms.indexOf(b.arm),
  );
  const summaries = summarize(ordered, {
    seed: options.seed ?? 1,
    ...(options.resamples === undefined ? {} : { resamples: options.resamples }),
  });
  const dimensions = [...new Set(ordered.map((r) => r.dimension ?? "all"))];
  const comparisons: ArmComparison[] = [];
  for (const dimension of dimensions) {
    const scores = (arm: string) =>
      ordered
        .filter((r) => (r.dimension ?? "all") === dimension && r.arm === arm)
        .map((r) => r.score);
    const pairs: ArmComparison[] = [];
    for (let i = 0; i < arms.length; i++) {
      for (let j = i + 1; j < arms.length; j++) {
        const first = arms[i] as string;
        const second = arms[j] as string;
        const a = scores(first);
        const b = scores(second);
        if (a.length === 0 || b.length === 0) continue;
        pairs.push({ dimension, first, second, mannWhitney: mannWhitneyU(a, b), pHolm: null });
      }
    }
    holm(pairs);
    comparisons.push(...pairs);
  }
  return {
    votes: ratings.length,
    generations: new Set(ratings.map((r) => r.item)).size,
    raters: new Set(ratings.map((r) => r.rater)).size,
    arms,
    summaries,
    table: summaries.length === 0 ? "no votes yet\n" : formatSummaryTable(summaries, { arms }),
    agreement: agreementReport(
      ordered.map(({ item, rater, score, dimension }) =>
        dimension === undefined ? { item, rater, score } : { item, rater, score, dimension },
      ),
    ),
    comparisons,
  };
}

/** Holm–Bonferroni step-down adjustment, in place, over the comparisons with a p-value. */
function holm(comparisons: ArmComparison[]): void {
  const withP = comparisons
    .filter((c) => c.mannWhitney.p !== null)
    .sort((a, b) => (a.mannWhitney.p as number) - (b.mannWhitney.p as number));
  const m = withP.length;
  let running = 0;
  withP.forEach((c, i) => {
    running = Math.max(running, Math.min(1, (m - i) * (c.mannWhitney.p as number)));
    c.pHolm = running;
  });
}

function dimensionRank(dimension: string | undefined): number {
  const index = DIMENSIONS.indexOf(dimension as Dimension);
  return index === -1 ? DIMENSIONS.length : index;
}
